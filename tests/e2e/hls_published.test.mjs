// HLS and LL-HLS of published streams (`/NAME/NAME.m3u8` where NAME is a published
// stream's name), with publishers and players we did not write: Chromium's fake camera
// and microphone publishing through the WCS SDK, and Python aiortc publishing by WHIP
// (whip_aiortc.py); hls.js in headless Chromium (regular and low-latency mode) and
// ffprobe reading the playlist. Their Opus reaches HLS re-encoded to AAC.
//
// Checked: pictures shown and audio decoded by hls.js; ffprobe finds H.264 + AAC with
// no error; every playlist served over a few seconds obeys the RFC 8216bis rules a
// validator checks (hls_shared.mjs' checker), every segment starting INDEPENDENT (the
// publisher is asked for a keyframe at each target duration); the HLS reader listed by
// REST as a viewer of the published stream; the publisher's end gives the playlist
// #EXT-X-ENDLIST, then 404; a name nobody publishes is a 404 (no auto-start).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  FAKE_MEDIA_FLAGS, SAMPLE, addSdkPublisher, assertServerUp, freeTcpPort, launchBrowser, openSdkPage, requireFiles,
  restPost, startServer, waitForStatus, withServerLog,
} from './helpers.mjs';
import { checkPlaylistsFor, parsePlaylist, playWithHlsJs, run } from './hls_shared.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AIORTC_CLIENT = path.join(here, 'whip_aiortc.py');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('HLS of published streams', { timeout: 300000 }, () => {
  let server, hlsBase, publisherBrowser, playerBrowser, pub;
  before(async () => {
    requireFiles(SAMPLE, AIORTC_CLIENT);
    const hlsPort = await freeTcpPort();
    server = await startServer({ settings: { 'hls.port': hlsPort } });
    hlsBase = `http://127.0.0.1:${hlsPort}`;
    publisherBrowser = await launchBrowser({ args: FAKE_MEDIA_FLAGS });
    playerBrowser = await launchBrowser();
    pub = await openSdkPage(publisherBrowser);
    await addSdkPublisher(pub);
  }, { timeout: 60000 });
  after(async () => {
    if (publisherBrowser) await publisherBrowser.close();
    if (playerBrowser) await playerBrowser.close();
    if (server) await server.stop();
  });

  const playlistUrl = (name) => `${hlsBase}/${encodeURIComponent(name)}/${encodeURIComponent(name)}.m3u8`;

  /** The HLS plays REST lists for `name` (polled, 10 s at most for one to show). */
  async function hlsPlaysOf(name) {
    for (let i = 0; i < 40; i += 1) {
      const r = await restPost(server, '/stream/find_all');
      const plays = r.status === 200 ? r.body.filter((s) => s.protocol === 'hls' && s.name === name) : [];
      if (plays.length) return plays;
      await sleep(250);
    }
    return [];
  }

  /** ffprobe reads the playlist: one H.264 and one AAC stream, nothing reported. */
  async function probe(name) {
    const r = await run('ffprobe', ['-hide_banner', '-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', playlistUrl(name)]);
    assert.equal(r.code, 0, withServerLog(server, `ffprobe failed: ${r.stderr}`));
    assert.equal(r.stderr.trim(), '', 'ffprobe reports nothing wrong');
    assert.deepEqual([...new Set(r.stdout.split('\n').filter(Boolean))].sort(), ['aac', 'h264'], 'H.264 and AAC');
  }

  /** After the publisher's end: the playlist says #EXT-X-ENDLIST (within 10 s), and once
   * its window has lingered, the name is a 404. */
  async function endsWithEndlist(name) {
    let ended = false;
    let last = '';
    for (let i = 0; i < 50 && !ended; i += 1) {
      const res = await fetch(playlistUrl(name));
      last = `${res.status} ${await res.text()}`;
      ended = res.status === 200 && parsePlaylist(last.slice(4)).ended;
      if (!ended) await sleep(200);
    }
    assert.ok(ended, withServerLog(server, `no #EXT-X-ENDLIST after the publisher's end; last answer: ${last}`));
    let status = 200;
    for (let i = 0; i < 60 && status === 200; i += 1) {
      await sleep(250);
      status = (await fetch(playlistUrl(name))).status;
    }
    assert.equal(status, 404, 'the ended stream is a 404 once its last playlist has lingered');
  }

  test('a name nobody publishes is a 404: published names are never started', async () => {
    for (const name of ['nobody', 'cam']) {
      const res = await fetch(playlistUrl(name));
      assert.equal(res.status, 404, `${name}: ${res.status}`);
      assert.match(await res.text(), /not found/i);
    }
  });

  test('a browser publishing through the WCS SDK: hls.js plays it (both modes), ffprobe reads H.264 + AAC, playlists obey the RFC, its end ends HLS', { timeout: 150000 }, async (t) => {
    const idx = await pub.evaluate(([url, n]) => window.__publish(url, n, false, { audio: true, video: { width: 640, height: 360 } }), [server.wsUrl, 'cam']);
    const ev = await waitForStatus(pub, idx, ['PUBLISHING', 'FAILED', 'UNPUBLISHED'], 20000);
    assert.equal(ev.status, 'PUBLISHING', withServerLog(server, JSON.stringify(ev)));

    const url = playlistUrl('cam');
    const [regular, plays] = await Promise.all([
      playWithHlsJs(playerBrowser, server.base, url),
      hlsPlaysOf('cam'),
    ]);
    assert.deepEqual(regular.errors, [], withServerLog(server, 'no fatal hls.js error'));
    assert.ok(regular.pictures >= 60, withServerLog(server, `${regular.pictures} pictures shown`));
    assert.ok(regular.decoded >= 60, `${regular.decoded} pictures decoded`);
    assert.ok(regular.width > 0, `picture width ${regular.width}`);
    t.diagnostic(`picture width: ${regular.width} (the publisher asked for 640x360; Chromium lowers it under CPU load)`);
    assert.ok(regular.audioBytes > 0, 'audio decoded (Opus re-encoded to AAC)');
    assert.ok(regular.fragments > 0, 'whole segments loaded');
    // The HLS reader is a viewer of the published stream (REST, docs/HLS.md).
    assert.ok(plays.length >= 1, 'REST find_all lists an HLS viewer of the published stream');
    assert.equal(plays[0].mediaProvider, 'HLS');
    assert.equal(plays[0].mediaType, 'play');
    t.diagnostic(`hls.js latency (regular mode): ${regular.latency?.toFixed(2)} s`);

    const low = await playWithHlsJs(playerBrowser, server.base, url, { lowLatencyMode: true });
    assert.deepEqual(low.errors, [], withServerLog(server, 'no fatal hls.js error (low latency)'));
    assert.ok(low.pictures >= 60, `${low.pictures} pictures shown (low latency)`);
    assert.ok(low.audioBytes > 0, 'audio decoded (low latency)');
    assert.ok(low.parts > 0, `partial segments loaded (${low.parts})`);
    t.diagnostic(`hls.js latency (low-latency mode): ${low.latency?.toFixed(2)} s`);

    await probe('cam');
    const { last, dependent } = await checkPlaylistsFor(url, 6000);
    assert.ok(last.segments.filter((s) => s.uri).length >= 3, 'complete segments listed');
    assert.deepEqual(dependent, [], 'every segment starts with an INDEPENDENT part (a keyframe asked for)');

    await pub.evaluate((i) => window.__unpublish(i), idx);
    await endsWithEndlist('cam');
    await assertServerUp(server);
  });

  test('an aiortc WHIP publisher: hls.js plays it, ffprobe reads H.264 + AAC, playlists obey the RFC, its DELETE ends HLS', { timeout: 120000 }, async () => {
    const name = 'py cam';
    const whip = `${server.base}/whip/${encodeURIComponent(name)}`;
    // Its failure is reported below, after the checks (never as an unhandled rejection).
    const publishing = promisify(execFile)('python3', [AIORTC_CLIENT, whip, '--seconds', '25'], { timeout: 60000 })
      .catch((error) => ({ error }));
    // Listed once its offer is answered.
    for (let i = 0; i < 100; i += 1) {
      const r = await restPost(server, '/stream/find_all');
      if (r.status === 200 && r.body.some((s) => s.name === name && s.status === 'PUBLISHING')) break;
      await sleep(150);
    }
    const url = playlistUrl(name);
    const seen = await playWithHlsJs(playerBrowser, server.base, url, { pictures: 40 });
    assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
    assert.ok(seen.pictures >= 40, withServerLog(server, `${seen.pictures} pictures shown`));
    assert.equal(seen.width, 320, 'aiortc sends 320x240');
    assert.ok(seen.audioBytes > 0, 'audio decoded');
    await probe(name);
    const { dependent } = await checkPlaylistsFor(url, 4000);
    assert.deepEqual(dependent, [], 'every segment starts with an INDEPENDENT part');

    const done = await publishing;
    if (done.error) throw new Error(withServerLog(server, `aiortc client failed: ${done.error.stderr || done.error.message}`));
    const { stdout } = done;
    const r = JSON.parse(stdout.trim().split('\n').pop());
    assert.equal(r.delete_status, 200, JSON.stringify(r));
    await endsWithEndlist(name);
  });
});

// A published stream's HLS muxer (its Opus re-encoded to AAC: CPU) runs only while HLS is
// read: after `hls_muxer_idle_timeout` without a request it closes, and the next request
// attaches a new one (a new run of the window, played as before).
describe('HLS of a published stream nobody reads any more', { timeout: 120000 }, () => {
  let server, hlsBase, browser;
  before(async () => {
    requireFiles(SAMPLE, AIORTC_CLIENT);
    const hlsPort = await freeTcpPort();
    server = await startServer({ settings: { 'hls.port': hlsPort, hls_muxer_idle_timeout: 3000 } });
    hlsBase = `http://127.0.0.1:${hlsPort}`;
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  /** The playlist once it lists a complete segment (15 s at most). */
  async function playlistWithSegments(url) {
    let last = '';
    for (let i = 0; i < 75; i += 1) {
      const res = await fetch(url);
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) {
        const p = parsePlaylist(last.slice(4));
        if (p.segments.some((s) => s.uri)) return p;
      }
      await sleep(200);
    }
    throw new Error(withServerLog(server, `no segment listed; last answer: ${last}`));
  }

  test('the muxer closes after the idle timeout and a later request starts a new one that hls.js plays', { timeout: 90000 }, async () => {
    const name = 'idle cam';
    const whip = `${server.base}/whip/${encodeURIComponent(name)}`;
    const publishing = promisify(execFile)('python3', [AIORTC_CLIENT, whip, '--seconds', '40'], { timeout: 80000 })
      .catch((error) => ({ error }));
    const url = `${hlsBase}/${encodeURIComponent(name)}/${encodeURIComponent(name)}.m3u8`;
    const first = await playlistWithSegments(url);
    assert.ok(!first.ended);

    // No request now: the muxer closes within the timeout and a second.
    let closed = false;
    for (let i = 0; i < 40 && !closed; i += 1) {
      await sleep(250);
      closed = /HLS of the stream closed/.test(server.stderr());
    }
    assert.ok(closed, withServerLog(server, 'the unread muxer closed'));

    const second = await playlistWithSegments(url);
    assert.ok(!second.ended, 'the stream still runs: no #EXT-X-ENDLIST');
    assert.notEqual(second.map, first.map, 'a new run of the window (a new muxer)');
    const seen = await playWithHlsJs(browser, server.base, url, { pictures: 30 });
    assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
    assert.ok(seen.pictures >= 30, withServerLog(server, `${seen.pictures} pictures shown`));
    assert.ok(seen.audioBytes > 0, 'audio decoded');
    // Read all along: it did not close again.
    assert.equal(server.stderr().match(/HLS of the stream closed/g).length, 1, 'closed once');

    const done = await publishing;
    if (done.error) throw new Error(withServerLog(server, `aiortc client failed: ${done.error.stderr || done.error.message}`));
  });
});
