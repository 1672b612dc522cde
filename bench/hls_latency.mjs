// Benchmark (not a test): HLS and LL-HLS latency as a viewer sees it, on loopback.
//
//   cargo build --release -p reelcast
//   REELCAST_BIN=$CARGO_TARGET_DIR/release/reelcast node bench/hls_latency.mjs [seconds]
//
// Needs tests/e2e/node_modules (playwright-core, hls.js) and Debian's chromium. A looped
// translation of media/sample.mp4 (hls_target_duration 2 s, ll_hls_part_target 0.5 s) is
// played by hls.js in headless Chromium, first in low-latency mode, then in regular mode,
// each in a fresh page. Once pictures move, the latency is sampled every 250 ms for
// `seconds` (default 20): wall clock now − hls.playingDate, the program date-time of the
// frame on screen. Our #EXT-X-PROGRAM-DATE-TIME is the wall-clock time the segment's first
// frame left the stream's pacer (the stream's epoch + its decode time: hls/sink.rs,
// window.rs), the moment a WebRTC viewer is sent it, so this is the delay HLS adds over
// the live edge. Browser and server share this machine's clock. Prints median and p90.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  freeTcpPort, launchBrowser, startServer,
} from '../tests/e2e/helpers.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HLS_JS = path.join(REPO, 'tests', 'e2e', 'node_modules', 'hls.js', 'dist', 'hls.min.js');
const SECONDS = Number(process.argv[2] || 20);
const NAME = encodeURIComponent('vod-live://sample.mp4');

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function sample(browser, base, url, lowLatencyMode) {
  const page = await browser.newPage();
  try {
    await page.goto(`${base}/api/files`);
    await page.addScriptTag({ path: HLS_JS });
    return await page.evaluate(async ({ url, lowLatencyMode, seconds }) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const video = document.createElement('video');
      video.muted = true;
      document.body.appendChild(video);
      const hls = new window.Hls({ lowLatencyMode });
      let parts = 0;
      hls.on(window.Hls.Events.FRAG_LOADED, (_e, d) => { if (d.part) parts += 1; });
      hls.loadSource(url);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
      // Up to 30 s to start moving.
      for (let i = 0; i < 120 && !(video.currentTime > 0.5 && hls.playingDate); i += 1) await sleep(250);
      const latencies = [];
      const estimates = [];
      for (let i = 0; i < seconds * 4; i += 1) {
        await sleep(250);
        if (hls.playingDate && !video.paused) {
          latencies.push((Date.now() - hls.playingDate.getTime()) / 1000);
          estimates.push(hls.latency);
        }
      }
      const stalls = video.getVideoPlaybackQuality();
      hls.destroy();
      return { latencies, estimates, parts, dropped: stalls.droppedVideoFrames, shown: stalls.totalVideoFrames };
    }, { url, lowLatencyMode, seconds: SECONDS });
  } finally {
    await page.close();
  }
}

const hlsPort = await freeTcpPort();
const server = await startServer({ settings: { 'hls.port': hlsPort, vod_live_loop: 'true' } });
const browser = await launchBrowser();
try {
  const url = `http://127.0.0.1:${hlsPort}/${NAME}/${NAME}.m3u8`;
  console.log(`| mode | samples | median s | p90 s | hls.js's own estimate, median s | parts loaded |`);
  console.log('|---|---|---|---|---|---|');
  for (const lowLatencyMode of [true, false]) {
    const r = await sample(browser, server.base, url, lowLatencyMode);
    if (r.latencies.length === 0) throw new Error(`no samples (${lowLatencyMode ? 'LL-HLS' : 'regular'}): did it play?`);
    const sorted = [...r.latencies].sort((a, b) => a - b);
    const est = [...r.estimates].sort((a, b) => a - b);
    console.log(`| ${lowLatencyMode ? 'LL-HLS (lowLatencyMode)' : 'regular HLS'} | ${sorted.length} | ${quantile(sorted, 0.5).toFixed(2)} | ${quantile(sorted, 0.9).toFixed(2)} | ${quantile(est, 0.5).toFixed(2)} | ${r.parts} |`);
  }
} finally {
  await browser.close();
  await server.stop();
}
