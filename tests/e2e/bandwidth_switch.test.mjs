// A viewer whose link drops is moved to a lower rendition of its stream and keeps playing,
// then comes back to the full size once its link recovers; a viewer of the same stream on a
// good link is never moved (issue 15, "Bandwidth", beyond WCS).
//
// The SDK in Chromium plays a vod-live translation of a 720p ~1.9 Mbit/s H.264 file (made
// here with ffmpeg: testsrc2 with noise, one keyframe a second) through a UDP relay
// (link_relay.mjs) whose link to the second viewer is narrowed to 400 kbit/s mid-play, then
// widened again. What is asserted is what the browser decodes (inbound-rtp frameWidth/Height,
// framesDecoded, freezeCount), the SDK's status, REST's listing and the server's counters.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  launchBrowser, measure, openSdkPage, readStats, restPost, sdkPlay, startServer,
  waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';
import { FRONT_IP, linkRelay, make720 } from './link_relay.mjs';

const LINK_BPS = 400_000;
const NAME = 'vod-live://switch720.mp4';

async function metric(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : NaN;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a viewer moved between renditions for its link', { timeout: 180000 }, () => {
  let server;
  let relay;
  let browser;
  let goodPage;
  let narrowPage;

  before(async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-switch-'));
    const file = make720(dir);
    server = await startServer({
      files: [file],
      settings: { ip: FRONT_IP, ip_local: '127.0.0.1', vod_live_loop: 'true' },
    });
    relay = await linkRelay(server.media);
    browser = await launchBrowser();
    goodPage = await openSdkPage(browser);
    narrowPage = await openSdkPage(browser);
  }, { timeout: 90000 });

  after(async () => {
    await browser?.close();
    relay?.close();
    await server?.stop();
  });

  test('down to a lower rendition within seconds of a 400 kbit/s link, frames going on, and back to 1280x720 when it widens', { timeout: 150000 }, async (t) => {
    const good = await sdkPlay(goodPage, server, NAME);
    await waitForStatus(goodPage, good, 'PLAYING', 20000)
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    relay.controlNew();
    const narrow = await sdkPlay(narrowPage, server, NAME);
    await waitForStatus(narrowPage, narrow, 'PLAYING', 20000)
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    await waitForStats(narrowPage, (s) => s.video?.frameWidth === 1280 && s.video.framesDecoded > 30,
      { timeoutMs: 15000, what: 'the narrow viewer at 1280x720' });
    await sleep(2000);

    // The link drops: within a few seconds the browser decodes a smaller picture.
    relay.setLink(LINK_BPS);
    const dropped = Date.now();
    const down = await waitForStats(narrowPage, (s) => s.video && s.video.frameWidth > 0 && s.video.frameWidth < 1280,
      { timeoutMs: 15000, intervalMs: 50, what: 'a lower rendition' })
      .catch((e) => { throw new Error(withServerLog(server, `${e.message}; relay ${JSON.stringify(relay.stats)}`)); });
    const downMs = Date.now() - dropped;
    t.diagnostic(`moved down ${downMs} ms after the link dropped: ${down.video.frameWidth}x${down.video.frameHeight}`);
    assert.ok(down.video.frameHeight < 720 && down.video.frameHeight > 0);
    assert.ok(downMs < 8000, `too late: ${downMs} ms`);
    const narrowed = Object.values(relay.stats).filter((s) => s.controlled);
    assert.ok(narrowed.some((s) => s.dropped > 50), `the relay dropped too little to test anything: ${JSON.stringify(relay.stats)}`);

    // Frames keep coming at the lower size on the narrow link: ≥ 20 fps over 4 s, few freezes.
    await sleep(1500);
    const m = await measure(narrowPage, 4000);
    const fps = m.frames / 4;
    const freezes = m.last.video.freezeCount - m.first.video.freezeCount;
    t.diagnostic(`on the lower rendition: ${fps} fps, ${freezes} freezes, ${m.last.video.frameWidth}x${m.last.video.frameHeight}`);
    assert.ok(fps >= 20, withServerLog(server, `frames on the lower rendition: ${JSON.stringify(m)}`));
    assert.ok(freezes <= 2, withServerLog(server, `freezes on the lower rendition: ${JSON.stringify(m)}`));
    assert.ok(m.last.video.frameWidth < 1280);
    const events = await narrowPage.evaluate((i) => window.__events[i], narrow);
    // Told PLAYING once (not again on the move), and nothing ended.
    const statuses = events.map((e) => e.status);
    assert.equal(statuses.filter((s) => s === 'PLAYING').length, 1, `the SDK's statuses: ${JSON.stringify(events)}`);
    assert.ok(!statuses.some((s) => s === 'STOPPED' || s === 'FAILED'), JSON.stringify(events));

    // REST lists the viewer on its new size, and the counts moved with it.
    const plays = (await restPost(server, '/stream/find_all')).body.filter((s) => s.mediaType === 'play');
    const sizes = plays.map((p) => `${p.width}x${p.height}`).sort();
    assert.equal(plays.length, 2, JSON.stringify(plays));
    assert.ok(sizes.includes('1280x720') && sizes.some((s) => s !== '1280x720'), `REST sizes: ${sizes}`);
    assert.equal(await metric(server, 'reelcast_viewer_rendition_moves_total{direction="down"}'), 1);

    // The link widens: back to 1280x720 after the clean wait (10 s) and a keyframe.
    relay.setLink(null);
    const widened = Date.now();
    await waitForStats(narrowPage, (s) => s.video?.frameWidth === 1280,
      { timeoutMs: 30000, intervalMs: 100, what: 'back to 1280x720' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    t.diagnostic(`back up ${Date.now() - widened} ms after the link widened`);
    const back = await measure(narrowPage, 2000);
    assert.ok(back.frames / 2 >= 20, `frames after moving back up: ${JSON.stringify(back)}`);
    assert.equal(await metric(server, 'reelcast_viewer_rendition_moves_total{direction="up"}'), 1);

    // The viewer on a good link was never moved, and both play on.
    const goodStats = await readStats(goodPage);
    assert.equal(goodStats.video.frameWidth, 1280);
    assert.equal(await metric(server, 'reelcast_viewer_rendition_moves_total{direction="down"}'), 1);
    const goodEvents = await goodPage.evaluate((i) => window.__events[i], good);
    assert.deepEqual(goodEvents.map((e) => e.status).filter((s) => s !== 'PENDING'), ['PLAYING']);
    const narrowEvents = (await narrowPage.evaluate((i) => window.__events[i], narrow)).map((e) => e.status);
    assert.ok(!narrowEvents.some((s) => s === 'STOPPED' || s === 'FAILED'), JSON.stringify(narrowEvents));
  });
});
