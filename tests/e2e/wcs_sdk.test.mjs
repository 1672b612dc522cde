// The compatibility promise: the unmodified official WCS browser SDK
// (@flashphoner/websdk) in headless Chromium plays files from reelcast, and fails
// the way WCS fails. One server and one browser for the whole file.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SAMPLE, assertServerUp, launchBrowser, openSdkPage, readStats, requireFiles,
  sdkDisplay, sdkEvents, sdkPlay, sdkStopLast, startServer, testMedia, waitForFrames, waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';

const PLAYABLE = [
  // name, has video, has audio
  ['moov_end.mp4', true, true],
  ['fragmented.mp4', true, true],
  ['aac44_mono.mp4', true, true],
  ['aac_51.mp4', true, true],
  ['opus.mp4', true, true],
  ['video_only.mp4', true, false],
  ['audio_only.mp4', false, true],
  ['long_gop.mp4', true, true],
];
const BROKEN = ['truncated.mp4', 'cut_short.mp4', 'random.mp4', 'empty.mp4', 'absurd_box.mp4', 'not_mp4.mp4', 'tc_mjpeg.mp4'];

describe('official WCS SDK against reelcast', { timeout: 240000 }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    const files = [SAMPLE, ...PLAYABLE.map(([n]) => testMedia(n)), ...BROKEN.map(testMedia)];
    requireFiles(...files);
    server = await startServer({
      files,
      // A playable file right outside media_dir: vod://../secret.mp4 must not reach it.
      outside: { 'secret.mp4': SAMPLE },
    });
    browser = await launchBrowser();
    page = await openSdkPage(browser);
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  /** Plays `name` and waits for PLAYING (failing with the events and server log otherwise). */
  async function playToPlaying(name, timeoutMs = 10000) {
    const idx = await sdkPlay(page, server, name);
    const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], timeoutMs)
      .catch((e) => { throw new Error(withServerLog(server, `${name}: ${e.message}`)); });
    assert.equal(ev.status, 'PLAYING',
      withServerLog(server, `${name}: expected PLAYING, got ${JSON.stringify(await sdkEvents(page, idx))}`));
    return idx;
  }

  /** Plays `name` and waits for FAILED; returns its info. PLAYING first is a failure. */
  async function playToFailed(name, timeoutMs = 10000) {
    const idx = await sdkPlay(page, server, name);
    const ev = await waitForStatus(page, idx, ['FAILED', 'PLAYING', 'STOPPED'], timeoutMs)
      .catch((e) => { throw new Error(withServerLog(server, `${name}: ${e.message}`)); });
    assert.equal(ev.status, 'FAILED',
      withServerLog(server, `${name}: expected FAILED, got ${JSON.stringify(await sdkEvents(page, idx))}`));
    return ev.info;
  }

  test('vod://sample.mp4 plays: 640x360 frames, clean audio, STOPPED at end of file', { timeout: 40000 }, async () => {
    const idx = await playToPlaying('vod://sample.mp4');
    await waitForStats(page, (s) => s.video?.framesDecoded > 0 && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 8000, what: 'first decoded frame and audio samples' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });

    // 41 more frames (over 1.6 s of a 25 fps file), however long a loaded machine takes.
    const m = await waitForFrames(page, 41, { timeoutMs: 20000 })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    assert.equal(`${m.last.video.frameWidth}x${m.last.video.frameHeight}`, '640x360');
    assert.ok(m.samples > 0, `no audio samples received in ${m.ms} ms: ${JSON.stringify(m.last.audio)}`);
    assert.ok(m.concealed < 0.1 * m.samples,
      `audio concealed ${m.concealed} of ${m.samples} samples (>= 10%): ${JSON.stringify(m.last.audio)}`);

    // What the user sees: the SDK's own <video> shows both tracks and advances. (The SDK
    // attaches event.streams[0]: the answer must put audio and video in one a=msid stream.)
    const shown = await sdkDisplay(page, idx);
    assert.ok(shown.found, 'the SDK made no <video> in the display div');
    assert.deepEqual(shown.tracks, ['audio', 'video'], `the SDK's <video> got tracks ${JSON.stringify(shown.tracks)}`);
    assert.equal(`${shown.width}x${shown.height}`, '640x360', `the SDK's <video>: ${JSON.stringify(shown)}`);
    assert.ok(!shown.paused && shown.currentTime > 1, `the SDK's <video> is not playing: ${JSON.stringify(shown)}`);

    const stopped = await waitForStatus(page, idx, ['STOPPED', 'FAILED'], 16000)
      .catch((e) => { throw new Error(withServerLog(server, `no STOPPED at end of file: ${e.message}`)); });
    assert.equal(stopped.status, 'STOPPED', `ended with ${JSON.stringify(stopped)}`);
    const playing = (await sdkEvents(page, idx)).find((e) => e.status === 'PLAYING');
    const played = stopped.t - playing.t;
    assert.ok(played >= 8000 && played <= 16000,
      `STOPPED ${played} ms after PLAYING; the file is 10 s long`);
  });

  test('vod://no_such_file.mp4 fails with "File not found"; the server plays on', { timeout: 30000 }, async () => {
    const info = await playToFailed('vod://no_such_file.mp4');
    assert.equal(info, 'File not found');
    await assertServerUp(server);
    await playToPlaying('vod://sample.mp4');
    await waitForStats(page, (s) => s.video?.framesDecoded > 5, { timeoutMs: 8000, what: 'frames after a failed stream' });
    await sdkStopLast(page);
  });

  test('names escaping media_dir fail; the server plays on', { timeout: 60000 }, async () => {
    for (const name of ['vod://../etc/passwd', 'vod://../../../../../../../../etc/passwd',
      'vod://../secret.mp4', 'vod://..%2Fsecret.mp4', 'vod:///etc/passwd']) {
      const info = await playToFailed(name);
      assert.match(String(info), /^Restricted access: /, `${name}: info ${JSON.stringify(info)}`);
      await assertServerUp(server);
    }
    await playToPlaying('vod://sample.mp4');
    await sdkStopLast(page);
  });

  test('broken and unsupported files fail with a reason while another viewer plays on', { timeout: 90000 }, async () => {
    // Beside them, in a page of its own: a 30 s file that must keep its 25 fps meanwhile.
    const beside = await openSdkPage(browser);
    const besideIdx = await sdkPlay(beside, server, 'vod://long_gop.mp4');
    const ev = await waitForStatus(beside, besideIdx, ['PLAYING', 'FAILED', 'STOPPED'], 10000);
    assert.equal(ev.status, 'PLAYING', JSON.stringify(ev));
    await waitForStats(beside, (st) => st.video?.framesDecoded > 10, { timeoutMs: 8000, what: 'the viewer beside' });
    const besideBefore = await readStats(beside);
    const startedAt = Date.now();
    for (const file of BROKEN) {
      const info = await playToFailed(`vod://${file}`);
      assert.ok(typeof info === 'string' && info.trim().length > 0, `${file}: FAILED without info (${JSON.stringify(info)})`);
      assert.notEqual(info, 'File not found', `${file} exists, yet the info says "File not found"`);
      await assertServerUp(server);
    }
    const besideAfter = await readStats(beside);
    const seconds = (Date.now() - startedAt) / 1000;
    const frames = besideAfter.video.framesDecoded - besideBefore.video.framesDecoded;
    assert.ok(frames >= 0.8 * 25 * seconds,
      withServerLog(server, `the viewer beside decoded ${frames} frames in ${seconds.toFixed(1)} s of failures`));
    const besideStatuses = (await sdkEvents(beside, besideIdx)).map((e) => e.status);
    assert.ok(!besideStatuses.some((st) => st === 'STOPPED' || st === 'FAILED'),
      `the viewer beside ended: ${besideStatuses}`);
    await beside.close();
    await playToPlaying('vod://sample.mp4');
    await waitForStats(page, (s) => s.video?.framesDecoded > 5, { timeoutMs: 8000, what: 'frames after the broken files' });
    await sdkStopLast(page);
  });

  test('a file cut short after its moov fails at once, saying so, never PLAYING', { timeout: 30000 }, async () => {
    // The first 60 KB of a 1.2 MB faststart file: the moov is whole, the media is not.
    const info = await playToFailed('vod://cut_short.mp4');
    assert.match(info, /^File has wrong format: the file is cut short: it ends after 61440 bytes, but its tables describe \d+ more samples/);
    await assertServerUp(server);
    await playToPlaying('vod://sample.mp4');
    await waitForStats(page, (s) => s.video?.framesDecoded > 5, { timeoutMs: 8000, what: 'frames after the cut-short file' });
    await sdkStopLast(page);
  });

  test('every supported layout and codec mix plays', { timeout: 180000 }, async () => {
    const problems = [];
    const pcsBefore = (await readStats(page)).pcs;
    for (const [file, hasVideo, hasAudio] of PLAYABLE) {
      try {
        await playToPlaying(`vod://${file}`);
        const s = await waitForStats(page,
          (st) => (!hasVideo || st.video?.framesDecoded > 10) && (!hasAudio || st.audio?.totalSamplesReceived > 24000),
          { timeoutMs: 8000, intervalMs: 100, what: `${hasVideo ? '>10 frames ' : ''}${hasAudio ? '>0.5 s of audio' : ''}` });
        if (hasVideo) {
          assert.equal(`${s.video.frameWidth}x${s.video.frameHeight}`, '320x240', `${file}: frame size`);
        }
      } catch (e) {
        problems.push(`${file}: ${e.message.split('\n')[0]}`);
      } finally {
        await sdkStopLast(page);
        // Let the SDK release the stream before the next one.
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    assert.deepEqual(problems, [], withServerLog(server, `files that did not play:\n${problems.join('\n')}`));
    await assertServerUp(server);
    const pcs = (await readStats(page)).pcs - pcsBefore;
    assert.equal(pcs, PLAYABLE.length, 'the SDK made one peer connection per stream');
  });
});
