// Benchmark (not a test): memory per HLS stream.
//
//   cargo build --release -p reelcast
//   REELCAST_BIN=$CARGO_TARGET_DIR/release/reelcast node bench/hls_memory.mjs [N]
//
// For HLS off and on (hls.port), a fresh server runs 1 and N (default 20) looped
// translations of media/sample.mp4 (~800 kbit/s, 10 s) started over REST, with no viewer.
// With HLS on, each playlist is asked for once, then the server is left 20 s so every
// window is full (hls_list_size 8 segments of 2 s). Printed: VmRSS (/proc/PID/status,
// median of 10 samples), and the media bytes one window holds (its init segment and
// segments as served). Per HLS stream = (RSS with HLS − RSS without) / streams.

import { readFileSync } from 'node:fs';
import { freeTcpPort, startServer } from '../tests/e2e/helpers.mjs';

const N = Number(process.argv[2] || 20);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssKb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
  return Number(m[1]);
}

async function run(hls, count) {
  const hlsPort = hls ? await freeTcpPort() : null;
  const settings = { vod_live_loop: 'true', vod_stream_timeout: '600000' };
  if (hls) settings['hls.port'] = hlsPort;
  const server = await startServer({ settings });
  try {
    for (let i = 0; i < count; i += 1) {
      const res = await fetch(`${server.base}/rest-api/vod/startup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uri: 'vod-live://sample.mp4', localStreamName: `m${i}`, loop: true }),
      });
      if (res.status !== 200) throw new Error(`startup m${i}: ${res.status} ${await res.text()}`);
    }
    if (hls) {
      await Promise.all(Array.from({ length: count }, (_, i) => fetch(`http://127.0.0.1:${hlsPort}/m${i}/m${i}.m3u8`).then((r) => r.text())));
    }
    await sleep(20000);
    let windowBytes = null;
    if (hls) {
      const base = `http://127.0.0.1:${hlsPort}/m0`;
      const playlist = await (await fetch(`${base}/m0.m3u8`)).text();
      const uris = playlist.split('\n').filter((l) => l && !l.startsWith('#'));
      const init = playlist.match(/#EXT-X-MAP:URI="([^"]+)"/)[1];
      windowBytes = 0;
      for (const u of [init, ...uris]) windowBytes += (await (await fetch(`${base}/${u}`)).arrayBuffer()).byteLength;
    }
    const xs = [];
    for (let i = 0; i < 10; i += 1) { xs.push(rssKb(server.proc.pid)); await sleep(100); }
    xs.sort((a, b) => a - b);
    return { rss: xs[5], windowBytes };
  } finally {
    await server.stop();
  }
}

const rows = {};
for (const hls of [false, true]) {
  for (const count of [1, N]) {
    rows[`${hls}/${count}`] = await run(hls, count);
    const r = rows[`${hls}/${count}`];
    console.log(`HLS ${hls ? 'on ' : 'off'}, ${count} translations: VmRSS ${(r.rss / 1024).toFixed(1)} MB${r.windowBytes ? `, one full window ${(r.windowBytes / 1e6).toFixed(2)} MB` : ''}`);
  }
}
const perStream = (rows[`true/${N}`].rss - rows[`false/${N}`].rss) / N / 1024;
const marginal = (rows[`true/${N}`].rss - rows[`true/1`].rss) / (N - 1) / 1024;
console.log(`HLS cost per stream (RSS with − without, ${N} streams): ${perStream.toFixed(2)} MB; each stream beyond the first with HLS on: ${marginal.toFixed(2)} MB`);
