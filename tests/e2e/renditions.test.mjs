// Transcoding on play (WCS "Stream transcoding"): a viewer whose play asks for a size or
// bit rate (the SDK's `constraints: {video: {width, height, bitrate}}`, WHEP's
// `?width=&height=&bitrate=`) gets that rendition. Checked in Chromium through the
// official SDK and WHEP: the picture the browser decodes has the asked size and keeps the
// source's frame rate; viewers asking the same share one encoder (the server's own
// gauge), which stops when they leave; a viewer asking nothing still gets the source;
// a personal VOD is encoded at the asked size; the transcoding settings refuse such
// plays with WCS's words, and nonsense is refused in plain words.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  addSdkPublisher, FAKE_MEDIA_FLAGS, launchBrowser, makeH264File, metricBecomes, metricValue, openSdkPage,
  readStats, restPost, startServer, waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';
import { closeAllViewers, installFrameRecorder } from './frames.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FPS = 30;

/**
 * Plays `name` through the SDK in a new page with `constraints` (as createStream takes
 * them); returns { page, ev } with the first PLAYING/FAILED/STOPPED event.
 */
async function sdkPlayWith(browser, server, name, constraints, page = null) {
  page = page || await openSdkPage(browser);
  const idx = await page.evaluate(async ([url, n, c]) => {
    const session = await window.__session(url);
    const div = document.createElement('div');
    document.getElementById('displays').appendChild(div);
    const S = Flashphoner.constants.STREAM_STATUS;
    const events = [];
    window.__events.push(events);
    const options = { name: n, display: div };
    if (c) options.constraints = c;
    const stream = session.createStream(options);
    for (const st of [S.PLAYING, S.STOPPED, S.FAILED]) {
      stream.on(st, (s) => events.push({ status: st, info: s.getInfo ? s.getInfo() : undefined }));
    }
    stream.play();
    return window.__events.length - 1;
  }, [server.wsUrl, name, constraints]);
  const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000);
  return { page, ev };
}

/** WHEP with a query (`width=320&height=180`): the page's new peer; throws on a refusal. */
async function whepPlayWith(page, name, query) {
  await installFrameRecorder(page);
  return page.evaluate(async ([n, q]) => {
    const pc = window.__whep.peer();
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    document.body.appendChild(video);
    pc.ontrack = (e) => { video.srcObject = e.streams[0]; video.play().catch(() => {}); };
    await window.__whep.offer(pc);
    const res = await fetch(`/whep/${encodeURIComponent(n)}?${q}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    const body = await res.text();
    if (res.status !== 201) { pc.close(); return { status: res.status, body }; }
    window.__whepLocations = [...(window.__whepLocations || []), res.headers.get('location')];
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    return { status: 201 };
  }, [name, query]);
}

/**
 * Waits for pictures of `size` ('320x180') in `page`, then checks for 4 s that they keep
 * coming at the source's rate (80 % of it, for a loaded machine).
 */
async function assertPictures(page, server, size, what) {
  await waitForStats(page, (s) => s.video?.framesDecoded > 10 && `${s.video.frameWidth}x${s.video.frameHeight}` === size,
    { timeoutMs: 15000, what: `${what}: ${size} pictures` })
    .catch((e) => { throw new Error(withServerLog(server, e.message)); });
  const first = await readStats(page);
  const t0 = Date.now();
  await sleep(4000);
  const last = await readStats(page);
  const seconds = (Date.now() - t0) / 1000;
  // No video stats at all: the peer connection closed (the stream ended).
  const frames = (last.video?.framesDecoded ?? 0) - first.video.framesDecoded;
  assert.ok(frames >= 0.8 * FPS * seconds,
    withServerLog(server, `${what}: ${frames} frames in ${seconds.toFixed(1)} s (source: ${FPS} fps); connection ${last.connectionState}`));
  assert.equal(`${last.video.frameWidth}x${last.video.frameHeight}`, size, what);
  assert.ok(last.audio?.totalSamplesReceived > 0, `${what}: no sound`);
}

async function closePage(page) {
  await closeAllViewers(page).catch(() => {});
  await page.close();
}

describe('renditions: transcoding on play', { timeout: 300000 }, () => {
  let dir;
  let file;
  let browser;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'reelcast-renditions-'));
    file = makeH264File(dir, { name: 'r720.mp4', width: 1280, height: 720, fps: FPS });
    browser = await launchBrowser();
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a translation: two SDK viewers at 320x180 (asked as 320x180 and as width 320) share one encoder, a third gets 1280x720, WHEP asks by query', { timeout: 120000 }, async () => {
    const server = await startServer({ files: [file], settings: { vod_live_loop: 'true' } });
    const pages = [];
    try {
      const name = 'vod-live://r720.mp4';
      const small = { video: { width: 320, height: 180 } };
      const a = await sdkPlayWith(browser, server, name, small);
      pages.push(a.page);
      assert.equal(a.ev.status, 'PLAYING', withServerLog(server, JSON.stringify(a.ev)));
      // Width alone comes to the same picture (16:9): the same rendition.
      const b = await sdkPlayWith(browser, server, name, { video: { width: 320 } });
      pages.push(b.page);
      assert.equal(b.ev.status, 'PLAYING', JSON.stringify(b.ev));
      const plain = await sdkPlayWith(browser, server, name, undefined);
      pages.push(plain.page);
      assert.equal(plain.ev.status, 'PLAYING', JSON.stringify(plain.ev));
      await Promise.all([
        assertPictures(a.page, server, '320x180', 'first 320x180 viewer'),
        assertPictures(b.page, server, '320x180', 'second 320x180 viewer'),
        assertPictures(plain.page, server, '1280x720', 'viewer without constraints'),
      ]);
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 1,
        'two viewers asking the same rendition: one encoder');

      // REST: each viewer's play object has the size it receives.
      const found = await restPost(server, '/stream/find_all');
      const plays = found.body.filter((s) => s.mediaType === 'play').map((s) => `${s.width}x${s.height}`).sort();
      assert.deepEqual(plays, ['1280x720', '320x180', '320x180']);
      // … and a rendition's viewers how fast its encoder runs (once 5 s of media are
      // judged); the viewer of the untouched source has no such field.
      let objects = found.body.filter((s) => s.mediaType === 'play');
      for (let i = 0; i < 40 && objects.filter((s) => s.transcodeSpeed !== undefined).length < 2; i += 1) {
        await sleep(250);
        objects = (await restPost(server, '/stream/find_all')).body.filter((s) => s.mediaType === 'play');
      }
      for (const s of objects) {
        if (s.width === 320) assert.ok(s.transcodeSpeed > 1, `the rendition keeps up: ${JSON.stringify(s)}`);
        else assert.equal(s.transcodeSpeed, undefined, JSON.stringify(s));
      }

      // WHEP, height only: the source's aspect, a second rendition.
      const whep = await browser.newPage();
      pages.push(whep);
      await whep.goto(`${server.base}/api/files`);
      const r = await whepPlayWith(whep, name, 'height=240');
      assert.equal(r.status, 201, JSON.stringify(r));
      await assertPictures(whep, server, '426x240', 'WHEP ?height=240');
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 2, 'a second rendition, a second encoder');
      const bad = await whepPlayWith(whep, name, 'width=5');
      assert.equal(bad.status, 400);
      assert.equal(bad.body, 'Bad constraints: width must be 0 or 16 to 3840');

      // The last viewers of a rendition leave: its encoder stops; the source plays on.
      await closePage(pages.shift());
      await closePage(pages.shift());
      await metricBecomes(server, 'video_transcoders_busy', 1, 'the 320x180 viewers left');
      await closePage(pages.pop());
      await metricBecomes(server, 'video_transcoders_busy', 0, 'the WHEP viewer left');
      const still = await readStats(plain.page);
      await sleep(1000);
      assert.ok((await readStats(plain.page)).video.framesDecoded > still.video.framesDecoded + 15,
        'the viewer without constraints plays on');
    } finally {
      for (const p of pages) await closePage(p).catch(() => {});
      await server.stop();
    }
  });

  test('a personal VOD with constraints is encoded at that size; the same size as the source passes through', { timeout: 60000 }, async () => {
    const server = await startServer({ files: [file] });
    try {
      const a = await sdkPlayWith(browser, server, 'vod://r720.mp4', { video: { width: 640 } });
      assert.equal(a.ev.status, 'PLAYING', withServerLog(server, JSON.stringify(a.ev)));
      await assertPictures(a.page, server, '640x360', 'personal VOD at width 640');
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 1);
      await closePage(a.page);
      await metricBecomes(server, 'video_transcoders_busy', 0, 'the personal VOD ended');
      const same = await sdkPlayWith(browser, server, 'vod://r720.mp4', { video: { width: 1280, height: 720 } });
      assert.equal(same.ev.status, 'PLAYING', JSON.stringify(same.ev));
      await assertPictures(same.page, server, '1280x720', 'personal VOD asking the source size');
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 0, 'the source size needs no encoder');
      await closePage(same.page);
    } finally {
      await server.stop();
    }
  });

  test('transcoding_disabled=true refuses plays with constraints in WCS\'s words; nonsense is refused plainly', { timeout: 60000 }, async () => {
    const server = await startServer({ files: [file], settings: { transcoding_disabled: 'true', vod_live_loop: 'true' } });
    const pages = [];
    try {
      for (const name of ['vod-live://r720.mp4', 'vod://r720.mp4']) {
        const r = await sdkPlayWith(browser, server, name, { video: { width: 320, height: 180 } });
        pages.push(r.page);
        assert.equal(r.ev.status, 'FAILED', `${name}: ${JSON.stringify(r.ev)}`);
        assert.equal(r.ev.info, 'Transcoding required, but disabled', name);
      }
      const ok = await sdkPlayWith(browser, server, 'vod-live://r720.mp4', undefined);
      pages.push(ok.page);
      assert.equal(ok.ev.status, 'PLAYING', JSON.stringify(ok.ev));
      const bad = await sdkPlayWith(browser, server, 'vod-live://r720.mp4', { video: { bitrate: 999999 } });
      pages.push(bad.page);
      assert.equal(bad.ev.status, 'FAILED', JSON.stringify(bad.ev));
      assert.equal(bad.ev.info, 'Bad constraints: bitrate must be 0 or 50 to 20000');
      assert.ok(server.alive());
    } finally {
      for (const p of pages) await closePage(p).catch(() => {});
      await server.stop();
    }
  });

  test('video_transcoders_max=1 counts rendition encoders: a second rendition fails with "No available transcoders"; a translation watched only through a rendition stays up', { timeout: 60000 }, async () => {
    // vod_stream_timeout 2 s: the translation has no viewer of its own, only its
    // rendition's, and must not stop for that.
    const server = await startServer({ files: [file], settings: { video_transcoders_max: '1', vod_live_loop: 'true', vod_stream_timeout: '2000' } });
    const pages = [];
    try {
      const a = await sdkPlayWith(browser, server, 'vod-live://r720.mp4', { video: { width: 320, height: 180 } });
      pages.push(a.page);
      assert.equal(a.ev.status, 'PLAYING', JSON.stringify(a.ev));
      const b = await sdkPlayWith(browser, server, 'vod-live://r720.mp4', { video: { bitrate: 300 } });
      pages.push(b.page);
      assert.equal(b.ev.status, 'FAILED', JSON.stringify(b.ev));
      assert.equal(b.ev.info, 'No available transcoders');
      await assertPictures(a.page, server, '320x180', 'the first rendition goes on');
      await sleep(1000);
      await assertPictures(a.page, server, '320x180', 'the rendition still plays past vod_stream_timeout');
    } finally {
      for (const p of pages) await closePage(p).catch(() => {});
      await server.stop();
    }
  });

  test('a published stream: a viewer asking width 160 gets 160x90 from a 640x360 publisher, and hears the publisher stop', { timeout: 90000 }, async () => {
    const server = await startServer({ files: [file] });
    const camera = await launchBrowser({ args: FAKE_MEDIA_FLAGS });
    let viewer;
    try {
      const pub = await openSdkPage(camera);
      await addSdkPublisher(pub);
      const p = await pub.evaluate(([url]) => window.__publish(url, 'cam', false, { audio: true, video: { width: 640, height: 360 } }), [server.wsUrl]);
      const pev = await waitForStatus(pub, p, ['PUBLISHING', 'FAILED', 'UNPUBLISHED'], 20000);
      assert.equal(pev.status, 'PUBLISHING', withServerLog(server, JSON.stringify(pev)));
      const v = await sdkPlayWith(browser, server, 'cam', { video: { width: 160 } });
      viewer = v.page;
      assert.equal(v.ev.status, 'PLAYING', withServerLog(server, JSON.stringify(v.ev)));
      // The camera's rate drops under load: pictures keep coming, at the asked size.
      const first = await waitForStats(viewer, (s) => s.video?.framesDecoded > 10 && s.video.frameWidth === 160,
        { timeoutMs: 15000, what: '160-wide pictures of the published stream' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      assert.equal(first.video.frameHeight, 90, 'the publisher\'s aspect is kept');
      await sleep(3000);
      const later = await readStats(viewer);
      assert.ok(later.video.framesDecoded - first.video.framesDecoded >= 30,
        withServerLog(server, `${later.video.framesDecoded - first.video.framesDecoded} pictures in 3 s`));
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 1);
      await pub.evaluate((i) => window.__unpublish(i), p);
      const end = await waitForStatus(viewer, 0, ['STOPPED', 'FAILED'], 10000);
      assert.equal(end.info, 'Stopped by publisher stop', JSON.stringify(end));
      await metricBecomes(server, 'video_transcoders_busy', 0, 'the published stream ended');
    } finally {
      if (viewer) await closePage(viewer).catch(() => {});
      await camera.close();
      await server.stop();
    }
  });
});
