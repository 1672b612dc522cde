// HLS of a translation of an H.264 file with B-frames (tests/media/tc_bframes.mp4: High
// profile, -bf 3, 640x360, 30 fps, keyframe every 2 s, AAC): HLS carries the file's own
// pictures (HLS players reorder them), WebRTC viewers get the re-encode, and the
// re-encoder runs only while a WebRTC viewer watches (the server's own gauge,
// reelcast_video_transcoders_busy). Clients we did not write: hls.js in headless
// Chromium, ffprobe/ffmpeg, a WHEP viewer and the WCS SDK in Chromium.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  freeTcpPort, launchBrowser, openSdkPage, restPost, sdkPlay, startServer, testMedia, waitForStats,
  waitForStatus, withServerLog,
} from './helpers.mjs';
import { closeAllViewers, whepWatch } from './frames.mjs';
import { HLS_JS, run } from './hls_shared.mjs';

const FILE = 'tc_bframes.mp4';
const NAME = encodeURIComponent(`vod-live://${FILE}`);
const FPS = 30;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The value of an unlabelled gauge in the server's /metrics. */
async function gauge(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const m = text.match(new RegExp(`^reelcast_${name} (\\d+)$`, 'm'));
  assert.ok(m, `no reelcast_${name} in /metrics`);
  return Number(m[1]);
}

/** Polls the gauge until it is `want` (`ms` at most); returns the last value. */
async function gaugeBecomes(server, name, want, ms) {
  const deadline = Date.now() + ms;
  let v = await gauge(server, name);
  while (v !== want && Date.now() < deadline) {
    await sleep(250);
    v = await gauge(server, name);
  }
  return v;
}

/** ffprobe of the video stream HLS carries: profile, has_b_frames (reordering depth). */
async function probeVideo(url) {
  const probe = await run('ffprobe', ['-hide_banner', '-v', 'error', '-select_streams', 'v',
    '-show_entries', 'stream=codec_name,profile,has_b_frames,width,height', '-of', 'json', url]);
  assert.equal(probe.code, 0, `ffprobe failed: ${probe.stderr}`);
  assert.equal(probe.stderr.trim(), '', 'ffprobe reports nothing wrong');
  return JSON.parse(probe.stdout).streams[0];
}

/** Per-packet MD5s of `url`'s video as stored (length-prefixed NAL units), in order. */
async function packetHashes(url, seconds) {
  const r = await run('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-i', url, '-t', String(seconds),
    '-map', '0:v', '-c', 'copy', '-f', 'framemd5', '-']);
  assert.equal(r.code, 0, `ffmpeg failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(',').pop().trim());
}

/**
 * Fetches the playlist (starting the translation: hls_auto_start) until it lists
 * `segments` segments, so a player joining has the buffer a running stream gives it (a
 * stream just started has one segment, and any player stalls at its end).
 */
async function warmUp(url, segments = 3) {
  for (let i = 0; i < 60; i += 1) {
    const res = await fetch(url);
    if (res.status === 200 && ((await res.text()).match(/^#EXTINF/gm) || []).length >= segments) return;
    await sleep(500);
  }
  assert.fail(`${url} never listed ${segments} segments`);
}

/**
 * hls.js plays `url` until its first picture and sound, then for `ms`: pictures
 * presented (requestVideoFrameCallback), stalls (the <video>'s `waiting` events and
 * hls.js's buffer-stall errors) and decoded audio bytes in that time.
 */
async function playSmoothly(browser, origin, url, ms) {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/api/files`);
    await page.addScriptTag({ path: HLS_JS });
    return await page.evaluate(async ({ url, ms }) => {
      const sleep = (t) => new Promise((r) => setTimeout(r, t));
      const video = document.createElement('video');
      video.muted = true;
      document.body.appendChild(video);
      let pictures = 0;
      let waiting = 0;
      let stalls = 0;
      const errors = [];
      const onFrame = () => { pictures += 1; video.requestVideoFrameCallback(onFrame); };
      video.requestVideoFrameCallback(onFrame);
      video.addEventListener('waiting', () => { waiting += 1; });
      const hls = new window.Hls();
      hls.on(window.Hls.Events.ERROR, (_e, d) => {
        if (d.fatal) errors.push(`${d.type}: ${d.details}`);
        if (d.details === 'bufferStalledError') stalls += 1;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
      for (let i = 0; i < 80 && !(pictures > 0 && video.webkitAudioDecodedByteCount > 0) && !errors.length; i += 1) {
        await sleep(250);
      }
      const start = { pictures, waiting, stalls, audio: video.webkitAudioDecodedByteCount, t: performance.now() };
      if (!errors.length) await sleep(ms);
      const out = {
        errors,
        started: start.pictures > 0,
        pictures: pictures - start.pictures,
        waiting: waiting - start.waiting,
        stalls: stalls - start.stalls,
        audioBytes: video.webkitAudioDecodedByteCount - start.audio,
        seconds: (performance.now() - start.t) / 1000,
        width: video.videoWidth,
      };
      hls.destroy();
      return out;
    }, { url, ms });
  } finally {
    await page.close();
  }
}

describe('HLS of a B-frame H.264 translation: the file\'s own pictures, no re-encode for HLS', { timeout: 300000 }, () => {
  let server, browser, url, hlsPort;
  before(async () => {
    hlsPort = await freeTcpPort();
    server = await startServer({
      files: [testMedia(FILE)],
      settings: { 'hls.port': hlsPort, vod_live_loop: 'true' },
    });
    url = `http://127.0.0.1:${hlsPort}/${NAME}/${NAME}.m3u8`;
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('hls.js plays it smoothly at the file\'s rate with sound, and no transcoder runs', { timeout: 60000 }, async () => {
    await warmUp(url);
    const playing = playSmoothly(browser, server.base, url, 5000);
    // While hls.js is the only reader: no video transcoder.
    await sleep(3000);
    const busy = await gauge(server, 'video_transcoders_busy');
    const seen = await playing;
    assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
    assert.ok(seen.started, withServerLog(server, 'a first picture and sound'));
    assert.equal(busy, 0, 'an HLS-only translation of a B-frame file uses no transcoder');
    assert.equal(seen.width, 640);
    assert.ok(seen.pictures >= 0.9 * FPS * seen.seconds,
      `${seen.pictures} pictures in ${seen.seconds.toFixed(1)} s (the file has ${FPS} fps)`);
    assert.equal(seen.waiting + seen.stalls, 0, `stalls while playing: ${JSON.stringify(seen)}`);
    assert.ok(seen.audioBytes > 0, 'audio decoded while playing');
    assert.equal(await gauge(server, 'video_transcoders_busy'), 0, 'still none after');
  });

  test('ffprobe and ffmpeg read the file\'s own H.264 (High, B-frames), byte for byte', { timeout: 90000 }, async () => {
    const v = await probeVideo(url);
    assert.equal(v.codec_name, 'h264');
    assert.equal(v.profile, 'High', 'the file\'s profile, not the re-encode\'s Constrained Baseline');
    assert.ok(v.has_b_frames > 0, `has_b_frames ${v.has_b_frames}`);
    const result = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'warning', '-i', url, '-t', '10', '-f', 'null', '-']);
    assert.equal(result.code, 0, `ffmpeg failed: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /error/i, result.stderr);
    // Each picture's bytes are the file's: HLS's packets are a run of the file's (the
    // live window starts at one of its keyframes; looping, the run may wrap).
    const file = await packetHashes(testMedia(FILE), 10);
    const hls = await packetHashes(url, 3);
    assert.ok(hls.length >= 60, `${hls.length} HLS packets`);
    const at = file.indexOf(hls[0]);
    assert.ok(at >= 0, 'the first HLS picture is one of the file\'s');
    const twice = [...file, ...file];
    assert.deepEqual(hls, twice.slice(at, at + hls.length), 'the HLS pictures are the file\'s, in order');
    assert.equal(await gauge(server, 'video_transcoders_busy'), 0, 'no transcoder for ffmpeg either');
  });

  test('a WebRTC viewer joining gets the re-encode (one transcoder) while HLS stays the file\'s; it stops after the viewer leaves', { timeout: 90000 }, async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.base}/api/files`);
      await whepWatch(page, `vod-live://${FILE}`);
      assert.equal(await gaugeBecomes(server, 'video_transcoders_busy', 1, 5000), 1,
        withServerLog(server, 'a WebRTC viewer starts the re-encode'));
      await waitForStats(page, (s) => s.video?.framesDecoded > 2 * FPS && s.audio?.totalSamplesReceived > 0,
        { timeoutMs: 20000, what: 'two seconds of the re-encode over WebRTC' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      const a = await waitForStats(page, (s) => s.video?.framesDecoded > 0, { what: 'stats' });
      await sleep(3000);
      const b = await waitForStats(page, (s) => s.video?.framesDecoded > 0, { what: 'stats' });
      const rate = (b.video.framesDecoded - a.video.framesDecoded) / 3;
      assert.ok(rate >= 0.8 * FPS, `the WebRTC viewer decodes ${rate.toFixed(1)} fps`);
      const v = await probeVideo(url);
      assert.equal(v.profile, 'High', 'HLS still carries the file\'s pictures');
      assert.ok(v.has_b_frames > 0);
      assert.equal(await gauge(server, 'video_transcoders_busy'), 1, 'one transcoder for the WebRTC viewer');
    } finally {
      await closeAllViewers(page).catch(() => {});
      await page.close();
    }
    // After the encoder's linger (5 s), none again.
    assert.equal(await gaugeBecomes(server, 'video_transcoders_busy', 0, 15000), 0,
      withServerLog(server, 'the re-encode stops once no WebRTC viewer watches'));
  });
});

describe('B-frame translations and the transcoding settings', { timeout: 200000 }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); }, { timeout: 60000 });
  after(async () => { if (browser) await browser.close(); });

  test('a translation started for WebRTC (REST /vod/startup) re-encodes from its first picture; unwatched, it lets go after the linger', { timeout: 60000 }, async () => {
    const server = await startServer({ files: [testMedia(FILE)], settings: { vod_live_loop: 'true' } });
    try {
      const r = await restPost(server, '/vod/startup', { uri: `vod-live://${FILE}`, localStreamName: 'bf' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      // Before any viewer: its first WebRTC viewer finds the re-encode running.
      assert.equal(await gaugeBecomes(server, 'video_transcoders_busy', 1, 3000), 1,
        withServerLog(server, 'the re-encode runs from the start'));
      // Nobody came: released after the linger (5 s), the translation still running.
      assert.equal(await gaugeBecomes(server, 'video_transcoders_busy', 0, 12000), 0,
        withServerLog(server, 'the unwatched re-encode lets go'));
      const found = await restPost(server, '/vod/find', { localStreamName: 'bf' });
      assert.equal(found.status, 200, 'the translation goes on');
    } finally {
      await server.stop();
    }
  });

  test('h264_b_frames_force_transcoding=true: HLS carries the re-encode (no B-frames), as WCS does', { timeout: 90000 }, async () => {
    const hlsPort = await freeTcpPort();
    const server = await startServer({
      files: [testMedia(FILE)],
      settings: { 'hls.port': hlsPort, vod_live_loop: 'true', h264_b_frames_force_transcoding: 'true' },
    });
    try {
      const url = `http://127.0.0.1:${hlsPort}/${NAME}/${NAME}.m3u8`;
      const v = await probeVideo(url);
      assert.equal(v.codec_name, 'h264');
      assert.equal(v.profile, 'Constrained Baseline', 'the re-encode');
      assert.equal(v.has_b_frames, 0);
      assert.equal(await gauge(server, 'video_transcoders_busy'), 1, 'the re-encode runs for HLS alone');
      await warmUp(url);
      const seen = await playSmoothly(browser, server.base, url, 3000);
      assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
      assert.ok(seen.pictures >= 0.8 * FPS * seen.seconds, `${seen.pictures} pictures in ${seen.seconds.toFixed(1)} s`);
    } finally {
      await server.stop();
    }
  });

  test('transcoding_disabled=true: a WebRTC viewer is refused with WCS\'s words and the HLS URL, which plays', { timeout: 90000 }, async () => {
    const hlsPort = await freeTcpPort();
    const server = await startServer({
      files: [testMedia(FILE)],
      settings: { 'hls.port': hlsPort, vod_live_loop: 'true', transcoding_disabled: 'true' },
    });
    const page = await openSdkPage(browser);
    try {
      const idx = await sdkPlay(page, server, `vod-live://${FILE}`);
      const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], 10000);
      assert.equal(ev.status, 'FAILED', withServerLog(server, JSON.stringify(ev)));
      const url = `http://127.0.0.1:${hlsPort}/${NAME}/${NAME}.m3u8`;
      assert.equal(ev.info, `Transcoding required, but disabled: H.264 with B-frames plays over WebRTC only re-encoded; play it over HLS: ${url}`);
      const v = await probeVideo(ev.info.split(' ').pop());
      assert.equal(v.profile, 'High', 'the URL given plays the file\'s own pictures');
      assert.equal(await gauge(server, 'video_transcoders_busy'), 0);
    } finally {
      await page.close();
      await server.stop();
    }
  });
});
