// Benchmark (not a test): time from a viewer's link dropping to its first frame of a lower
// rendition (issue 15's figure, target ≤ 2 s), in headless Chromium through the WCS SDK.
//
//   node bench/rendition_switch.mjs        # N=5 runs
//   N=9 node bench/rendition_switch.mjs
//
// One server plays a vod-live translation of a 720p30 ~1.9 Mbit/s H.264 file (made here
// with ffmpeg: testsrc2 with noise, a keyframe a second, no B-frames). Each run: a new page
// plays it through the link relay (tests/e2e/link_relay.mjs) and decodes 1280x720 for 3 s;
// then its link is narrowed to 400 kbit/s and the time is taken until the browser's
// inbound-rtp frameWidth is below 1280 (getStats polled every 20 ms); the page is closed
// and the rendition left to end before the next run, so every run starts its rendition.

import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  launchBrowser, openSdkPage, sdkPlay, startServer, waitForStats, waitForStatus,
} from '../tests/e2e/helpers.mjs';
import { FRONT_IP, linkRelay, make720 } from '../tests/e2e/link_relay.mjs';

const N = Number(process.env.N || 5);
const LINK_BPS = 400_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const dir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-switch-bench-'));
const file = make720(dir);

const server = await startServer({
  files: [file],
  settings: { ip: FRONT_IP, ip_local: '127.0.0.1', vod_live_loop: 'true' },
});
const relay = await linkRelay(server.media);
const browser = await launchBrowser();
const times = [];
try {
  relay.controlNew();
  for (let i = 0; i < N; i++) {
    relay.setLink(null);
    const page = await openSdkPage(browser);
    const idx = await sdkPlay(page, server, 'vod-live://switch720.mp4');
    await waitForStatus(page, idx, 'PLAYING', 20000);
    await waitForStats(page, (s) => s.video?.frameWidth === 1280 && s.video.framesDecoded > 30,
      { timeoutMs: 20000, what: '1280x720' });
    await sleep(3000);
    relay.setLink(LINK_BPS);
    const t0 = Date.now();
    const down = await waitForStats(page, (s) => s.video && s.video.frameWidth > 0 && s.video.frameWidth < 1280,
      { timeoutMs: 20000, intervalMs: 20, what: 'a lower rendition' });
    const ms = Date.now() - t0;
    times.push(ms);
    console.log(`run ${i + 1}: ${ms} ms to ${down.video.frameWidth}x${down.video.frameHeight}`);
    await page.close();
    relay.setLink(null);
    // The rendition ends with its last viewer; the next run starts its own.
    await sleep(3000);
  }
  const s = [...times].sort((a, b) => a - b);
  console.log(`median ${median(times)} ms over ${N} runs (min ${s[0]}, max ${s[s.length - 1]})`);
} finally {
  await browser.close();
  relay.close();
  await server.stop();
}
