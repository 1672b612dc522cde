// Lip sync: the sound of the probe file (a white flash and a 1 kHz beep at every whole
// second) is heard as long after its flash through reelcast as through Chromium's own
// WebRTC: an in-page RTCPeerConnection pair sending the same file (captureStream of a
// <video>). Within ±30 ms, as medians over the same 9 seconds of each playback (the
// pair's: of three runs), for a personal VOD, a live translation and a late joiner of it.
//
// The measuring is lipsync_probe.mjs (in-page probe: avsync.mjs), run inside a network
// namespace of this test's own that has only a loopback interface: the in-page pair
// needs host candidates, and there the only ones are 127.0.0.1, so no test traffic can
// reach any other address. Needs root and `ip` (iproute2).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, CHROMIUM, CI, requireFiles, testMedia } from './helpers.mjs';
import { median } from './avsync.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROBE = path.join(here, 'lipsync_probe.mjs');
const TOLERANCE_MS = 30;
const NS = `reelcast-lipsync-${process.pid}`;

/** Runs the probe in MODE inside the namespace; resolves to its viewers' results. */
function probe(mode) {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', NS, process.execPath, PROBE, mode], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REELCAST_BIN: BIN },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; if (err.length > 100000) err = err.slice(-50000); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) || '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`lip-sync probe "${mode}" failed (${code ?? signal}):\n${err.slice(-6000)}`));
        return;
      }
      resolve(JSON.parse(line).viewers);
    });
  });
}

/** Asserts a viewer's result has enough seconds to compare. */
function measured(who, r) {
  assert.ok(r && r.offsets.length >= 7,
    `${who}: only ${r ? r.offsets.length : 0} flash/beep pairs measured (flashes ${r?.flashes}, beeps ${r?.beeps}, frames ${r?.frames})`);
  return r.median;
}

describe('lip sync: reelcast against Chromium\'s own WebRTC on the same file', { timeout: 700000 }, () => {
  let ready = false;
  let reference;

  before(async () => {
    requireFiles(BIN, CHROMIUM, testMedia('lipsync.mp4'));
    try {
      execFileSync('ip', ['netns', 'add', NS], { stdio: 'pipe' });
      execFileSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
      ready = true;
    } catch (e) {
      const why = `cannot make a network namespace (needs root and iproute2): ${String(e.stderr || e.message).trim()}`;
      if (CI) throw new Error(why);
      console.log(`# SKIP lip sync: ${why}`);
      return;
    }
    // Three runs, pooled: the pair's pictures are captured on the page's ~30 Hz frame
    // clock and encoded in the page, so its per-second offsets jump by a frame (33 ms)
    // and, on a loaded machine, a run can sit 60-100 ms off the others.
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push((await probe('reference')).reference);
    runs.forEach((r, i) => measured(`in-page pair, run ${i + 1}`, r));
    const pooled = runs.flatMap((r) => r.offsets);
    reference = median(pooled);
    console.log(`# reference (Chromium pair): median ${reference} ms, offsets ${JSON.stringify(pooled)}`);
  }, { timeout: 360000 });

  after(() => {
    if (ready) execFileSync('ip', ['netns', 'del', NS], { stdio: 'pipe' });
  });

  const close = (who, r) => {
    const median = measured(who, r);
    console.log(`# ${who}: median ${median} ms, offsets ${JSON.stringify(r.offsets)}`);
    // Within the tolerance of Chromium's own pair, or of exact sync: the pair's median
    // itself swings from ~10 to ~60 ms between runs here (its capture, not reelcast), and
    // being closer to exact sync than the pair is no fault. Main before the fix (~120 ms)
    // fails both.
    const nearReference = Math.abs(median - reference) <= TOLERANCE_MS;
    const nearSync = Math.abs(median) <= TOLERANCE_MS;
    assert.ok(nearReference || nearSync,
      `${who}: audio ${median} ms after its picture; Chromium's own pair ${reference} ms `
      + `(allowed ±${TOLERANCE_MS} of it, or of 0); per second: ${JSON.stringify(r.offsets)}`);
  };

  test('personal VOD (WCS SDK)', { timeout: 150000 }, async (t) => {
    if (!ready) return t.skip('no network namespace');
    const r = await probe('vod');
    close('personal VOD', r.vod);
  });

  test('live translation (WHEP from the start) and its late joiner (WCS SDK, 8 s later)', { timeout: 150000 }, async (t) => {
    if (!ready) return t.skip('no network namespace');
    const r = await probe('live');
    close('translation', r.translation);
    close('late joiner', r.late_joiner);
  });
});
