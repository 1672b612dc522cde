// HLS and LL-HLS of live translations (hls.port), played by clients we did not write:
// hls.js in headless Chromium (regular and low-latency mode, from another origin: CORS)
// and ffmpeg reading the playlist and its segments; its playlists checked against the
// rules of RFC 8216bis a validator checks (hls_shared.mjs).
//
// Played means: the <video> presented pictures (requestVideoFrameCallback counts them, the
// playback quality agrees), decoded audio bytes rose, and in low-latency mode hls.js
// loaded partial segments (EXT-X-PART) through blocking playlist reloads. While hls.js
// plays, REST /stream/find_all lists it as an HLS viewer and /metrics counts it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  SAMPLE, assertServerUp, freeTcpPort, launchBrowser, startServer, testMedia, withServerLog,
} from './helpers.mjs';
import { HLS_JS, checkPlaylistsFor, playWithHlsJs as playHlsJs, run } from './hls_shared.mjs';

const NAME = encodeURIComponent('vod-live://sample.mp4');

describe('HLS of live translations', { timeout: 240000 }, () => {
  let server, browser, hlsBase;
  before(async () => {
    const hlsPort = await freeTcpPort();
    server = await startServer({
      files: [SAMPLE, ...['tc_mp3.mp4', 'tc_ac3.mp4', 'opus.mp4', 'tc_av1.mp4'].map(testMedia)],
      settings: { 'hls.port': hlsPort, vod_live_loop: 'true' },
    });
    hlsBase = `http://127.0.0.1:${hlsPort}`;
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  /** The HLS plays REST lists and `reelcast_viewers{protocol="hls"}`, once REST lists one
   * (polled, 20 s at most). */
  async function hlsViewersSeen() {
    for (let i = 0; i < 80; i += 1) {
      const res = await fetch(`${server.base}/rest-api/stream/find_all`, { method: 'POST' });
      const plays = res.status === 200 ? (await res.json()).filter((s) => s.protocol === 'hls') : [];
      if (plays.length > 0) {
        const metrics = await (await fetch(`${server.base}/metrics`)).text();
        const line = metrics.split('\n').find((l) => l.startsWith('reelcast_viewers{protocol="hls"} '));
        return { plays, viewers: Number(line?.split(' ')[1]) };
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return { plays: [], viewers: 0 };
  }

  /** hls.js plays the translation in a page of the HTTP port's origin; returns what it
   * saw, and with `watch`, what REST and /metrics said of HLS viewers while it played. */
  async function playWithHlsJs(lowLatencyMode, watch = false) {
    const url = `${hlsBase}/${NAME}/${NAME}.m3u8`;
    const playing = playHlsJs(browser, server.base, url, { lowLatencyMode });
    const whilePlaying = watch ? await hlsViewersSeen() : null;
    return { ...(await playing), whilePlaying };
  }

  test('hls.js plays a translation (regular mode): pictures shown, audio decoded, across origins', { timeout: 60000 }, async (t) => {
    const seen = await playWithHlsJs(false, true);
    {
      assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
      // The player is a viewer: REST lists it, /metrics counts it (docs/HLS.md).
      const { plays, viewers } = seen.whilePlaying;
      assert.ok(plays.length >= 1, 'REST find_all lists an HLS viewer while hls.js plays');
      assert.equal(plays[0].mediaType, 'play');
      assert.equal(plays[0].mediaProvider, 'HLS');
      assert.equal(plays[0].uri, 'vod-live://sample.mp4');
      assert.ok(viewers >= 1, `reelcast_viewers{protocol="hls"} is ${viewers}`);
      assert.ok(seen.pictures >= 60, `${seen.pictures} pictures shown`);
      assert.ok(seen.decoded >= 60, `${seen.decoded} pictures decoded`);
      assert.equal(seen.width, 640, 'the sample is 640 wide');
      assert.ok(seen.audioBytes > 0, 'audio decoded');
      assert.ok(seen.fragments > 0, 'whole segments loaded');
      t.diagnostic(`hls.js latency (regular mode): ${seen.latency?.toFixed(2)} s`);
    }
  });

  test('hls.js plays a translation in low-latency mode: partial segments through blocking reloads', { timeout: 60000 }, async (t) => {
    const seen = await playWithHlsJs(true);
    {
      assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
      assert.ok(seen.pictures >= 60, `${seen.pictures} pictures shown`);
      assert.ok(seen.audioBytes > 0, 'audio decoded');
      assert.ok(seen.parts > 0, `partial segments loaded (${seen.parts})`);
      // A figure, not a pass condition (the machine is shared): hls.js's own estimate.
      t.diagnostic(`hls.js latency (low-latency mode): ${seen.latency?.toFixed(2)} s`);
    }
  });

  // Audio a file does not carry as AAC (MP3, AC-3, FLAC are decoded and Opus is taken as
  // it is) reaches HLS re-encoded to AAC; AV1 video re-encoded to H.264.
  for (const [file, video] of [['tc_mp3.mp4', 'h264'], ['tc_ac3.mp4', 'h264'], ['opus.mp4', 'h264'], ['tc_av1.mp4', 'h264']]) {
    test(`HLS of a translation of ${file} carries AAC audio that hls.js decodes`, { timeout: 60000 }, async () => {
      const name = encodeURIComponent(`vod-live://${file}`);
      const url = `${hlsBase}/${name}/${name}.m3u8`;
      const seen = await playHlsJs(browser, server.base, url, { lowLatencyMode: false });
      assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
      assert.ok(seen.pictures >= 30, `${seen.pictures} pictures shown`);
      assert.ok(seen.audioBytes > 0, withServerLog(server, 'audio decoded'));
      const probe = await run('ffprobe', ['-hide_banner', '-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', url]);
      assert.equal(probe.code, 0, `ffprobe failed: ${probe.stderr}`);
      // (ffprobe lists a stream per program of the multivariant playlist: the kinds count.)
      const codecs = new Set(probe.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
      assert.deepEqual([...codecs].sort(), ['aac', video].sort());
    });
  }

  test('ffmpeg reads the playlist and its segments with no error', { timeout: 90000 }, async () => {
    const url = `${hlsBase}/${NAME}/${NAME}.m3u8`;
    // ffmpeg is part of the test install (scripts/test); missing, this fails.
    const result = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'warning', '-i', url, '-t', '6', '-f', 'null', '-']);
    assert.equal(result.code, 0, `ffmpeg failed: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /error/i, result.stderr);
    const probe = await run('ffprobe', ['-hide_banner', '-v', 'error', url]);
    assert.equal(probe.code, 0, `ffprobe failed: ${probe.stderr}`);
    assert.equal(probe.stderr.trim(), '', 'ffprobe reports nothing wrong');
    // The playlists obey what a validator checks (hls_shared.mjs); the sample's keyframes
    // are 2 s apart, so every segment starts INDEPENDENT.
    const { dependent } = await checkPlaylistsFor(url, 3000);
    assert.deepEqual(dependent, [], 'every segment starts with an INDEPENDENT part');
    await assertServerUp(server);
  });
});

describe('HLS over HTTPS (hls.https.port) with the configured certificate', { timeout: 120000 }, () => {
  let server, dir, hlsPort;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'reelcast-hls-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    // Throws (a failure, never a skip) when the openssl CLI is missing.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    hlsPort = await freeTcpPort();
    // HLS only over TLS here: no hls.port, so nothing can pass through a plain port.
    server = await startServer({
      settings: {
        'https.cert': cert, 'https.key': key, 'https.port': await freeTcpPort(),
        'wss.port': await freeTcpPort(), 'hls.https.port': hlsPort, vod_live_loop: 'true',
      },
    });
  }, { timeout: 60000 });
  after(async () => {
    if (server) await server.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ffmpeg reads the playlist and its segments over https with no error', { timeout: 90000 }, async () => {
    const url = `https://127.0.0.1:${hlsPort}/${NAME}/${NAME}.m3u8`;
    // ffmpeg does not check certificates unless told to (tls_verify): the self-signed one passes.
    const result = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'warning', '-i', url, '-t', '4', '-f', 'null', '-']);
    assert.equal(result.code, 0, `ffmpeg failed: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /error/i, result.stderr);
    const probe = await run('ffprobe', ['-hide_banner', '-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', url]);
    assert.equal(probe.code, 0, `ffprobe failed: ${probe.stderr}`);
    assert.equal(probe.stderr.trim(), '', 'ffprobe reports nothing wrong');
    assert.deepEqual([...new Set(probe.stdout.split('\n').filter(Boolean))].sort(), ['aac', 'h264'], 'H.264 and AAC over https');
    await assertServerUp(server);
  });
});

describe('HLS of a file whose keyframes are 10 s apart (hls_target_duration 2 s)', { timeout: 120000 }, () => {
  const LONG = encodeURIComponent('vod-live://long_gop.mp4');
  let server, browser, hlsBase;
  before(async () => {
    const hlsPort = await freeTcpPort();
    server = await startServer({ files: [SAMPLE, testMedia('long_gop.mp4')], settings: { 'hls.port': hlsPort } });
    hlsBase = `http://127.0.0.1:${hlsPort}`;
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('#EXT-X-TARGETDURATION never changes and no segment rounds above it', { timeout: 60000 }, async () => {
    const url = `${hlsBase}/${LONG}/${LONG}.m3u8`;
    const targets = new Set();
    const durations = [];
    // 14 s of playlists: past the first 10 s GOP and into the second.
    for (let i = 0; i < 14; i += 1) {
      const res = await fetch(url);
      assert.equal(res.status, 200, withServerLog(server, `playlist ${res.status}`));
      const text = await res.text();
      targets.add(Number(text.match(/^#EXT-X-TARGETDURATION:(\d+)$/m)[1]));
      for (const m of text.matchAll(/^#EXTINF:([\d.]+),/gm)) durations.push(Number(m[1]));
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.deepEqual([...targets], [2], 'one target duration, the setting');
    assert.ok(durations.length >= 5, `segments listed: ${durations.length}`);
    for (const d of durations) assert.ok(Math.round(d) <= 2, `a segment of ${d} s`);
  });

  // Four of each GOP's five segments start without a keyframe, so hls.js usually joins at
  // one of those (where it joined is printed); its first picture waits for the next keyframe.
  test('hls.js plays it: pictures shown, no fatal error', { timeout: 60000 }, async (t) => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.base}/api/files`);
      await page.addScriptTag({ path: HLS_JS });
      const seen = await page.evaluate(async (url) => {
        const video = document.createElement('video');
        video.muted = true;
        document.body.appendChild(video);
        let pictures = 0;
        const onFrame = () => { pictures += 1; video.requestVideoFrameCallback(onFrame); };
        video.requestVideoFrameCallback(onFrame);
        const hls = new window.Hls();
        const errors = [];
        let first = null;
        hls.on(window.Hls.Events.ERROR, (_e, d) => { if (d.fatal) errors.push(d.details); });
        hls.on(window.Hls.Events.FRAG_LOADED, (_e, d) => {
          if (!first) first = { sn: d.frag.sn, part: d.part?.index ?? null, independent: d.part ? d.part.independent : null };
        });
        hls.loadSource(url);
        hls.attachMedia(video);
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
        // A joiner's first picture waits for the next keyframe (up to 10 s here): 30 s at most.
        for (let i = 0; i < 120 && pictures < 30 && !errors.length; i += 1) await new Promise((r) => setTimeout(r, 250));
        hls.destroy();
        return { pictures, errors, first };
      }, `${hlsBase}/${LONG}/${LONG}.m3u8`);
      assert.deepEqual(seen.errors, [], 'no fatal hls.js error');
      assert.ok(seen.pictures >= 30, withServerLog(server, `pictures shown: ${seen.pictures}`));
      t.diagnostic(`hls.js first loaded ${JSON.stringify(seen.first)}`);
    } finally {
      await page.close();
    }
  });
});
