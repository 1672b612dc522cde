// Benchmark (not a test): a late joiner's time to first frame on a live translation of
// a file with a keyframe every 10 s, in headless Chromium on loopback (issue 3's figure).
//
//   node bench/late_join.mjs          # N=20 late joiners
//   N=5 node bench/late_join.mjs
//
// One WHEP viewer starts `vod-live://long_gop.mp4` (30 s, 25 fps, keyframe every 10 s,
// looped) and stays. Then N viewers join one after another, a few seconds apart, so they
// land at every point of the GOP; each is timed from just before its offer is made
// (new RTCPeerConnection) to its first displayed frame (requestVideoFrameCallback), then
// closed. Without the GOP cache a joiner would wait for the next keyframe: 5 s on
// average. Also reported: how far behind the first viewer each joiner shows the same
// frame (display time - stream time), after 2 s.

import os from 'node:os';
import { launchBrowser, requireFiles, startServer, testMedia } from '../tests/e2e/helpers.mjs';
import { closeAllViewers, record, waitFrames, whepWatch } from '../tests/e2e/frames.mjs';

const N = Number(process.env.N || 20);
const FILE = testMedia('long_gop.mp4');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => { const s = sorted(xs); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pct = (xs, p) => { const s = sorted(xs); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const lagOf = (rec, since) => median(rec.frames.filter(([t]) => t >= since).map(([t, rtp]) => t - rtp / 90));

requireFiles(FILE);
const server = await startServer({ files: [FILE], settings: { vod_live_loop: 'true' } });
const browser = await launchBrowser();
try {
  const anchorPage = await browser.newPage();
  await anchorPage.goto(`${server.base}/api/files`);
  const anchor = await whepWatch(anchorPage, 'vod-live://long_gop.mp4');
  await waitFrames(anchorPage, anchor, 5, 10000, server);

  const firstFrame = [];
  const behind = [];
  for (let i = 0; i < N; i++) {
    // Joins are ~3.3 s apart plus this, so over N joins they land all over the GOP.
    await sleep(137 * (i % 7));
    const page = await browser.newPage();
    await page.goto(`${server.base}/api/files`);
    const v = await whepWatch(page, 'vod-live://long_gop.mp4');
    const rec = await waitFrames(page, v, 50, 10000, server);
    firstFrame.push(rec.frames[0][0] - rec.startedAt);
    const since = Date.now() - 1000;
    const a = await record(anchorPage, anchor);
    behind.push(lagOf(await record(page, v), since) - lagOf(a, since));
    await closeAllViewers(page);
    await page.close();
  }
  const f = (x) => x.toFixed(0);
  console.log(`late joiner, 10 s GOP, N=${N} (${os.cpus().length} cores, ${os.cpus()[0].model})`);
  console.log(`  time to first frame: median ${f(median(firstFrame))} ms, p90 ${f(pct(firstFrame, 90))} ms, max ${f(Math.max(...firstFrame))} ms`);
  console.log(`  behind the first viewer (same frame shown later by): median ${f(median(behind))} ms, max ${f(Math.max(...behind.map(Math.abs)))} ms`);
} finally {
  await browser.close();
  await server.stop();
}
