// Recordings played back by name: `vod://NAME` from record_dir (media_dir has no such
// file), through the official WCS SDK and through WHEP, finished or still being written.
// A recording being written is what the recorder leaves: a fragmented MP4 at its name,
// appended fragment by fragment, and a sidecar `.NAME.recording` beside it until the
// finished file is renamed over the name. The test plays that role with ffmpeg's output,
// appending fragments (each in two writes) on a timer.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CI, SAMPLE, launchBrowser, openSdkPage, readStats, requireFiles, sdkPlay, startServer, waitForFrames,
  waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** ffmpeg with these arguments (the test fails without ffmpeg under CI=true). */
function ffmpeg(args) {
  try {
    execFileSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch (e) {
    if (e.code === 'ENOENT' && !CI) return false;
    throw e;
  }
}

/** The file cut where a recorder appends: [head (ftyp, moov), one piece per moof...]. */
function pieces(file) {
  const starts = [];
  for (let pos = 0; pos + 8 <= file.length;) {
    const size = file.readUInt32BE(pos);
    if (file.toString('latin1', pos + 4, pos + 8) === 'moof') starts.push(pos);
    assert.ok(size >= 8, 'plain 32-bit box sizes');
    pos += size;
  }
  const cuts = [0, ...starts, file.length];
  return cuts.slice(1).map((end, i) => file.subarray(cuts[i], end));
}

/**
 * Starts writing `name` in `dir` as a recorder does: the head and `first` fragments now,
 * with the sidecar; then a fragment every `everyMs` (in two writes); then the finished
 * file renamed over the name and the sidecar removed. Resolves when it is finished.
 */
function startRecording(dir, name, frag, { first = 2, everyMs = 700 } = {}) {
  const parts = pieces(frag);
  const file = path.join(dir, name);
  const sidecar = path.join(dir, `.${name}.recording`);
  writeFileSync(file, Buffer.concat(parts.slice(0, 1 + first)));
  writeFileSync(sidecar, '');
  const done = (async () => {
    for (const part of parts.slice(1 + first)) {
      await sleep(everyMs);
      const half = Math.floor(part.length / 2);
      appendFileSync(file, part.subarray(0, half));
      await sleep(100);
      appendFileSync(file, part.subarray(half));
    }
    await sleep(300);
    writeFileSync(path.join(dir, `.${name}.final`), frag);
    renameSync(path.join(dir, `.${name}.final`), file);
    unlinkSync(sidecar);
  })();
  return { done, initialFragments: first, fragments: parts.length - 1 };
}

/** In a same-origin page: a WHEP viewer of `name` in a <video>; the POST's status. */
function whepPlay(page, name) {
  return page.evaluate(async (streamName) => {
    const pc = window.__whep.peer();
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    document.body.appendChild(video);
    pc.ontrack = (e) => { video.srcObject = e.streams[0]; video.play().catch(() => {}); };
    await window.__whep.offer(pc);
    const r = await window.__whep.post(pc, streamName);
    if (r.status === 201) await window.__whep.answer(pc, r);
    return { status: r.status, body: r.body };
  }, name);
}

describe('recordings played back by name', { timeout: 180000 }, () => {
  let server;
  let browser;
  let sdkPage;
  let whepPage;
  let recordDir;
  let frag;
  let skip = false;

  before(async () => {
    requireFiles(SAMPLE);
    recordDir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-records-'));
    // A finished recording (faststart) and the fragments of one being written (≤ 1 s
    // each, as the recorder writes them), both from the 10 s sample.
    const finished = path.join(recordDir, 'done.mp4');
    const fragPath = path.join(recordDir, '.made.tmp');
    if (!ffmpeg(['-i', SAMPLE, '-t', '6', '-c', 'copy', '-movflags', '+faststart', finished])) {
      skip = true;
      return;
    }
    ffmpeg(['-i', SAMPLE, '-c', 'copy', '-movflags', 'frag_keyframe+empty_moov+default_base_moof',
      '-frag_duration', '1000000', '-f', 'mp4', fragPath]);
    frag = readFileSync(fragPath);
    rmSync(fragPath);
    server = await startServer({ files: [], settings: { record_dir: recordDir } });
    browser = await launchBrowser();
    sdkPage = await openSdkPage(browser);
    whepPage = await browser.newPage();
    await whepPage.goto(`${server.base}/api/files`);
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (recordDir) rmSync(recordDir, { recursive: true, force: true });
  });

  test('a finished recording in record_dir plays through the WCS SDK', { timeout: 40000 }, async (t) => {
    if (skip) return t.skip('ffmpeg is not installed');
    const idx = await sdkPlay(sdkPage, server, 'vod://done.mp4');
    const ev = await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED'], 15000);
    assert.equal(ev.status, 'PLAYING', withServerLog(server, `got ${JSON.stringify(ev)}`));
    await waitForStats(sdkPage, (s) => s.video?.framesDecoded > 0 && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 15000, what: 'decoded frames and audio' });
    const m = await waitForFrames(sdkPage, 25, { timeoutMs: 20000 });
    assert.ok(m.samples > 0, 'audio keeps coming');
    const stopped = await waitForStatus(sdkPage, idx, ['STOPPED', 'FAILED'], 20000);
    assert.equal(stopped.status, 'STOPPED', 'the end of the recording is STOPPED');
  });

  test('a finished recording in record_dir plays through WHEP', { timeout: 40000 }, async (t) => {
    if (skip) return t.skip('ffmpeg is not installed');
    const r = await whepPlay(whepPage, 'vod://done.mp4');
    assert.equal(r.status, 201, withServerLog(server, `WHEP answered ${r.status}: ${r.body}`));
    await waitForStats(whepPage, (s) => s.video?.framesDecoded > 25 && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 20000, what: '25 decoded frames and audio' });
  });

  test('a sidecar is never played', { timeout: 30000 }, async (t) => {
    if (skip) return t.skip('ffmpeg is not installed');
    writeFileSync(path.join(recordDir, '.done.mp4.recording'), '');
    const idx = await sdkPlay(sdkPage, server, 'vod://.done.mp4.recording');
    const ev = await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED'], 15000);
    assert.equal(ev.status, 'FAILED');
    assert.equal(ev.info, 'Restricted access: hidden files are not played');
    unlinkSync(path.join(recordDir, '.done.mp4.recording'));
  });

  test('a recording being written plays past its size at open and ends STOPPED (WCS SDK)',
    { timeout: 60000 }, async (t) => {
      if (skip) return t.skip('ffmpeg is not installed');
      const rec = startRecording(recordDir, 'growing-sdk.mp4', frag);
      t.after(() => rec.done.catch(() => {}));
      const idx = await sdkPlay(sdkPage, server, 'vod://growing-sdk.mp4');
      const ev = await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED'], 15000);
      assert.equal(ev.status, 'PLAYING', withServerLog(server, `got ${JSON.stringify(ev)}`));
      // 25 fps: the two fragments there at the open are 50 pictures. Pictures keep
      // coming well past them, with sound.
      const s = await waitForStats(sdkPage, (x) => x.video?.framesDecoded > 150 && x.audio?.totalSamplesReceived > 0,
        { timeoutMs: 30000, what: '150 decoded frames (the open saw 50)' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      assert.ok(s.video.frameWidth > 0);
      await rec.done;
      const end = await waitForStatus(sdkPage, idx, ['STOPPED', 'FAILED'], 20000);
      assert.equal(end.status, 'STOPPED', withServerLog(server, `ended ${JSON.stringify(end)}`));
    });

  test('a recording being written plays past its size at open (WHEP)', { timeout: 60000 }, async (t) => {
    if (skip) return t.skip('ffmpeg is not installed');
    const rec = startRecording(recordDir, 'growing-whep.mp4', frag);
    t.after(() => rec.done.catch(() => {}));
    const r = await whepPlay(whepPage, 'vod://growing-whep.mp4');
    assert.equal(r.status, 201, withServerLog(server, `WHEP answered ${r.status}: ${r.body}`));
    // This page's newest connection is this viewer's.
    await waitForStats(whepPage, (x) => x.video?.framesDecoded > 150 && x.audio?.totalSamplesReceived > 0,
      { timeoutMs: 30000, what: '150 decoded frames (the open saw 50)' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    await rec.done;
    const last = await readStats(whepPage);
    assert.ok(last.video.framesDecoded > 150);
  });
});
