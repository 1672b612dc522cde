// Files that browsers cannot take as they are play over WebRTC through the transcoder:
// H.264 with B-frames, HEVC, VP9, AV1, MPEG-4 Part 2 video (re-encoded to H.264), MP3,
// AC-3 and FLAC audio (decoded, then Opus). Each plays in Chromium through the official
// WCS SDK and through WHEP at the file's frame rate with sound; a translation's
// transcode is shared by its viewers (the server's own gauge says one); a codec nothing
// decodes fails with WCS's words, and so do the transcoding settings.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, metricValue, openSdkPage, readStats, requireFiles, restPost, sdkPlay, startServer, testMedia,
  waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';
import { closeAllViewers, whepWatch } from './frames.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// name, what it carries (all 640x360, 30 fps, 10 s, keyframe every 2 s; made by
// scripts/make-test-media)
const FILES = [
  ['tc_bframes.mp4', 'H.264 with B-frames + AAC'],
  ['tc_hevc.mp4', 'HEVC + AAC'],
  ['tc_vp9.mp4', 'VP9 + Opus'],
  ['tc_av1.mp4', 'AV1 + FLAC'],
  ['tc_mpeg4.mp4', 'MPEG-4 Part 2 + MP3'],
  ['tc_mp3.mp4', 'H.264 + MP3'],
  ['tc_ac3.mp4', 'H.264 + AC-3'],
];
const FPS = 30;
const MEASURE_MS = 5000;

/**
 * Waits for the first picture and sound in `page`, then measures for MEASURE_MS: the
 * frames decoded must keep the file's rate (80 % of it, for a loaded machine), at most
 * one freeze, the picture 640x360, sound received and mostly not concealed.
 */
async function assertPlaysSmoothly(page, server, what) {
  await waitForStats(page, (s) => s.video?.framesDecoded > 0 && s.audio?.totalSamplesReceived > 0,
    { timeoutMs: 10000, what: `${what}: first frame and sound` })
    .catch((e) => { throw new Error(withServerLog(server, e.message)); });
  const first = await readStats(page);
  const t0 = Date.now();
  await sleep(MEASURE_MS);
  const last = await readStats(page);
  const seconds = (Date.now() - t0) / 1000;
  const frames = last.video.framesDecoded - first.video.framesDecoded;
  const freezes = last.video.freezeCount - first.video.freezeCount;
  const samples = last.audio.totalSamplesReceived - first.audio.totalSamplesReceived;
  const concealed = last.audio.concealedSamples - first.audio.concealedSamples;
  assert.ok(frames >= 0.8 * FPS * seconds,
    withServerLog(server, `${what}: ${frames} frames decoded in ${seconds.toFixed(1)} s (the file has ${FPS} fps): ${JSON.stringify(last.video)}`));
  assert.ok(freezes <= 1, `${what}: ${freezes} freezes in ${seconds.toFixed(1)} s`);
  assert.equal(`${last.video.frameWidth}x${last.video.frameHeight}`, '640x360', what);
  assert.ok(samples > 0.5 * 48000 * seconds, `${what}: ${samples} audio samples in ${seconds.toFixed(1)} s`);
  assert.ok(concealed < 0.1 * samples, `${what}: ${concealed} of ${samples} audio samples concealed`);
}

describe('transcoding: files browsers cannot take as they are', { timeout: 400000 }, () => {
  let server;
  let browser;

  before(async () => {
    const files = [...FILES.map(([n]) => testMedia(n)), testMedia('tc_mjpeg.mp4')];
    requireFiles(...files);
    server = await startServer({ files });
    browser = await launchBrowser();
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  for (const [file, what] of FILES) {
    test(`${file} (${what}) plays smoothly with sound, through the WCS SDK and WHEP`, { timeout: 60000 }, async () => {
      const sdkPage = await openSdkPage(browser);
      const whepPage = await browser.newPage();
      try {
        await whepPage.goto(`${server.base}/api/files`);
        const idx = await sdkPlay(sdkPage, server, `vod://${file}`);
        const ev = await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED', 'STOPPED'], 10000);
        assert.equal(ev.status, 'PLAYING', withServerLog(server, `${file}: ${JSON.stringify(ev)}`));
        await whepWatch(whepPage, `vod://${file}`);
        await Promise.all([
          assertPlaysSmoothly(sdkPage, server, `${file} (SDK)`),
          assertPlaysSmoothly(whepPage, server, `${file} (WHEP)`),
        ]);
      } finally {
        await closeAllViewers(whepPage).catch(() => {});
        await whepPage.close();
        await sdkPage.close();
      }
    });
  }

  test('a translation of a B-frame file: two viewers, one transcode', { timeout: 60000 }, async () => {
    const name = 'vod-live://tc_bframes.mp4';
    // The personal VODs of the tests before end as their viewers leave.
    const deadline = Date.now() + 10000;
    while (await metricValue(server, 'video_transcoders_busy') !== 0) {
      assert.ok(Date.now() < deadline, 'a transcode of an earlier test still runs');
      await sleep(200);
    }
    const sdkPage = await openSdkPage(browser);
    const whepPage = await browser.newPage();
    try {
      await whepPage.goto(`${server.base}/api/files`);
      const idx = await sdkPlay(sdkPage, server, name);
      const ev = await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED', 'STOPPED'], 10000);
      assert.equal(ev.status, 'PLAYING', withServerLog(server, JSON.stringify(ev)));
      await whepWatch(whepPage, name);
      for (const page of [sdkPage, whepPage]) {
        await waitForStats(page, (s) => s.video?.framesDecoded > 30 && s.audio?.totalSamplesReceived > 0,
          { timeoutMs: 10000, what: 'a second of the translation' })
          .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      }
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 1,
        'two viewers of one translation: one video transcode');
      // REST tells how fast the transcode runs (media seconds per second of work, judged
      // over 5 s of media), on the translation and on its viewers' plays.
      let objects = [];
      for (let i = 0; i < 60 && !objects.some((o) => o.transcodeSpeed !== undefined); i += 1) {
        await sleep(250);
        const r = await restPost(server, '/stream/find_all');
        objects = r.status === 200 ? r.body.filter((o) => o.uri === name) : [];
      }
      const translation = objects.find((o) => o.published);
      assert.ok(translation, `the translation is listed: ${JSON.stringify(objects)}`);
      assert.equal(typeof translation.transcodeSpeed, 'number', JSON.stringify(translation));
      assert.ok(translation.transcodeSpeed > 1, `a 640x360 transcode keeps up: ${translation.transcodeSpeed}`);
      const plays = objects.filter((o) => !o.published);
      assert.equal(plays.length, 2, JSON.stringify(objects));
      for (const p of plays) assert.equal(typeof p.transcodeSpeed, 'number', JSON.stringify(p));
    } finally {
      await closeAllViewers(whepPage).catch(() => {});
      await whepPage.close();
      await sdkPage.close();
    }
  });

  test('a codec nothing decodes fails with "<codec> is not supported"', { timeout: 30000 }, async () => {
    const page = await openSdkPage(browser);
    try {
      const idx = await sdkPlay(page, server, 'vod://tc_mjpeg.mp4');
      const ev = await waitForStatus(page, idx, ['FAILED', 'PLAYING', 'STOPPED'], 10000);
      assert.equal(ev.status, 'FAILED', JSON.stringify(ev));
      assert.equal(ev.info, 'File has wrong format: mp4v is not supported');
    } finally {
      await page.close();
    }
  });
});

describe('transcoding settings', { timeout: 120000 }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); }, { timeout: 60000 });
  after(async () => { if (browser) await browser.close(); });

  /** Plays `name` in a new SDK page; returns the first end status and the page. */
  async function play(server, name) {
    const page = await openSdkPage(browser);
    const idx = await sdkPlay(page, server, name);
    return { page, ev: await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], 10000) };
  }

  test('transcoding_disabled=true: a file that needs it fails with WCS\'s words; others play', { timeout: 60000 }, async () => {
    const server = await startServer({
      files: [testMedia('tc_hevc.mp4'), testMedia('moov_end.mp4')],
      settings: { transcoding_disabled: 'true' },
    });
    try {
      const a = await play(server, 'vod://tc_hevc.mp4');
      assert.equal(a.ev.status, 'FAILED', JSON.stringify(a.ev));
      assert.equal(a.ev.info, 'Transcoding required, but disabled');
      const b = await play(server, 'vod://moov_end.mp4');
      assert.equal(b.ev.status, 'PLAYING', JSON.stringify(b.ev));
      await a.page.close();
      await b.page.close();
    } finally {
      await server.stop();
    }
  });

  test('a looping translation of a B-frame file goes on past its end (a fresh transcode each pass)', { timeout: 60000 }, async () => {
    const server = await startServer({ files: [testMedia('tc_bframes.mp4')], settings: { vod_live_loop: 'true' } });
    const page = await browser.newPage();
    try {
      await page.goto(`${server.base}/api/files`);
      await whepWatch(page, 'vod-live://tc_bframes.mp4');
      // From 8 s to 14 s of pictures (the seam at 10 s between): at the file's rate, as
      // in the first pass; a pass without a fresh transcode stalls at the seam.
      const wait = (n) => waitForStats(page, (x) => x.video?.framesDecoded >= n, { timeoutMs: 25000, what: `${n} pictures` })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      await wait(240);
      const t0 = Date.now();
      const s = await wait(420);
      const seconds = (Date.now() - t0) / 1000;
      assert.ok(seconds <= 7.2, withServerLog(server, `6 s of pictures across the loop's seam took ${seconds.toFixed(1)} s`));
      assert.ok(s.video.freezeCount <= 1, `${s.video.freezeCount} freezes across the seam`);
      assert.equal(await metricValue(server, 'video_transcoders_busy'), 1, 'one transcode after the rewind');
    } finally {
      await closeAllViewers(page).catch(() => {});
      await page.close();
      await server.stop();
    }
  });

  test('video_transcoders_max=1: a second transcode fails with "No available transcoders"', { timeout: 60000 }, async () => {
    const server = await startServer({
      files: [testMedia('tc_hevc.mp4'), testMedia('tc_vp9.mp4')],
      settings: { video_transcoders_max: '1' },
    });
    try {
      const a = await play(server, 'vod://tc_hevc.mp4');
      assert.equal(a.ev.status, 'PLAYING', JSON.stringify(a.ev));
      const b = await play(server, 'vod://tc_vp9.mp4');
      assert.equal(b.ev.status, 'FAILED', JSON.stringify(b.ev));
      assert.equal(b.ev.info, 'No available transcoders');
      // The first goes on.
      await waitForStats(a.page, (s) => s.video?.framesDecoded > 30, { timeoutMs: 10000, what: 'the first transcode' });
      await a.page.close();
      await b.page.close();
    } finally {
      await server.stop();
    }
  });
});
