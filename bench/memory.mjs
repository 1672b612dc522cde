// Benchmark (not a test): reelcast server memory (VmRSS from /proc/PID/status) idle and
// with 1, 10 and 50 concurrent personal VOD viewers, and 1 viewer of a 2-hour file
// against 1 viewer of the 10-second media/sample.mp4.
//
//   node bench/memory.mjs
//
// Every scenario gets a FRESH server (target/release/reelcast, started here on
// 127.0.0.1 free ports via tests/e2e/helpers.mjs) whose media dir holds sample.mp4 and
// long_2h.mp4, so scenarios do not inherit each other's heap. The viewers are WHEP
// clients: N RTCPeerConnections (recvonly video+audio) in ONE page of ONE headless
// Chromium, started together. RSS is sampled 5 s after the last POST answered (10
// samples 100 ms apart; the table shows the last and the max of those, and VmHWM).
// The 2-hour file (720 x sample.mp4, ffmpeg concat demuxer, -c copy, ~715 MB) is made
// once in $BENCH_DIR (default /tmp/reelcast-bench) and hard-linked into each media dir.
// The 2 h / 10 s pair is run 3 times, interleaved, and the medians are compared.
// Bounded: ~1.5 min (plus ~5 s the first time for ffmpeg); servers are stopped at the end.

import { execFileSync } from 'node:child_process';
import { copyFile, link, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPLE, launchBrowser, startServer, withServerLog } from '../tests/e2e/helpers.mjs';

const BENCH_DIR = process.env.BENCH_DIR || '/tmp/reelcast-bench';
const LONG = path.join(BENCH_DIR, 'long_2h.mp4');
const SETTLE_MS = 5000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function makeLongFile() {
  if (existsSync(LONG)) return;
  await mkdir(BENCH_DIR, { recursive: true });
  const list = path.join(BENCH_DIR, 'list.txt');
  await writeFile(list, Array.from({ length: 720 }, () => `file '${SAMPLE.replace(/'/g, "'\\''")}'\n`).join(''));
  const tmp = path.join(BENCH_DIR, 'long_2h.tmp.mp4');
  console.log(`making ${LONG} (ffmpeg concat, -c copy) ...`);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-movflags', '+faststart', tmp], { stdio: 'inherit', timeout: 120000 });
  renameSync(tmp, LONG);
}

async function status(pid) {
  const txt = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((txt.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1]);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), threads: Number((txt.match(/^Threads:\s+(\d+)/m) || [])[1]) };
}

async function sampleRss(pid) {
  const xs = [];
  let last;
  for (let i = 0; i < 10; i++) { last = await status(pid); xs.push(last.rss); await sleep(100); }
  return { rss: last.rss, rssMax: Math.max(...xs), hwm: last.hwm, threads: last.threads };
}

/** In the page: start n WHEP viewers of `name` at once; returns their POST statuses. */
function startViewers(page, n, name) {
  return page.evaluate(async ([count, streamName]) => {
    window.__viewers = window.__viewers || [];
    const one = async () => {
      const { pc, status, location } = await window.__whep.start(streamName);
      window.__viewers.push({ pc, location });
      return status;
    };
    return Promise.all(Array.from({ length: count }, one));
  }, [n, name]);
}

/** In the page: how many viewers are connected and decoding, and their frame totals. */
function viewerStats(page) {
  return page.evaluate(async () => {
    let connected = 0; let decoding = 0; let frames = 0; let bytes = 0;
    for (const { pc } of window.__viewers || []) {
      if (pc.connectionState === 'connected') connected++;
      const rep = await pc.getStats();
      let f = 0;
      rep.forEach((s) => { if (s.type === 'inbound-rtp') { bytes += s.bytesReceived || 0; if ((s.kind || s.mediaType) === 'video') f = s.framesDecoded || 0; } });
      frames += f; if (f > 0) decoding++;
    }
    return { viewers: (window.__viewers || []).length, connected, decoding, frames, bytes };
  });
}

async function stopViewers(page) {
  await page.evaluate(async () => {
    for (const v of window.__viewers || []) {
      if (v.location) await fetch(v.location, { method: 'DELETE' }).catch(() => {});
      v.pc.close();
    }
    window.__viewers = [];
  }).catch(() => {});
}

async function scenario(browser, label, viewers, file) {
  const server = await startServer({ files: [SAMPLE] });
  try {
    const dst = path.join(server.mediaDir, path.basename(LONG));
    await link(LONG, dst).catch(() => copyFile(LONG, dst));
    const pid = server.proc.pid;
    await sleep(500);
    const idle = await sampleRss(pid);
    let row = { label, viewers, file, idle: idle.rss };
    if (viewers === 0) {
      await sleep(SETTLE_MS - 1000);
      const s = await sampleRss(pid);
      return { ...row, ...s, stats: null };
    }
    const page = await browser.newPage();
    await page.goto(`${server.base}/api/files`);
    const t = Date.now();
    const statuses = await startViewers(page, viewers, `vod://${file}`);
    const setupMs = Date.now() - t;
    const bad = statuses.filter((s) => s !== 201);
    if (bad.length) throw new Error(withServerLog(server, `${bad.length} POSTs failed: ${bad.join(',')}`));
    await sleep(SETTLE_MS);
    const s = await sampleRss(pid);
    const stats = await viewerStats(page);
    row = { ...row, ...s, stats, setupMs };
    await stopViewers(page);
    await page.close();
    return row;
  } finally {
    await server.stop();
  }
}

const mb = (kb) => (kb / 1024).toFixed(1);

async function main() {
  const started = Date.now();
  await makeLongFile();
  const browser = await launchBrowser();
  const rows = [];
  try {
    for (const [label, n, file] of [['idle', 0, ''], ['1 viewer', 1, 'sample.mp4'], ['10 viewers', 10, 'sample.mp4'], ['50 viewers', 50, 'sample.mp4']]) {
      const r = await scenario(browser, label, n, file);
      rows.push(r);
      console.log(`${label}: RSS ${mb(r.rss)} MB (max ${mb(r.rssMax)}, HWM ${mb(r.hwm)}, idle before ${mb(r.idle)}), threads ${r.threads}${r.stats ? `, ${r.stats.connected}/${r.stats.viewers} connected, ${r.stats.decoding} decoding, ${r.stats.frames} frames, setup ${r.setupMs} ms` : ''}`);
    }
    const pair = { short: [], long: [] };
    for (let i = 0; i < 3; i++) {
      for (const [k, file] of [['long', path.basename(LONG)], ['short', 'sample.mp4']]) {
        const r = await scenario(browser, `1 viewer ${k}`, 1, file);
        pair[k].push(r);
        console.log(`1 viewer of ${file} (#${i + 1}): RSS ${mb(r.rss)} MB (max ${mb(r.rssMax)}, HWM ${mb(r.hwm)}, idle before ${mb(r.idle)}), ${r.stats.decoding}/1 decoding, ${r.stats.frames} frames`);
      }
    }
    const L = median(pair.long.map((r) => r.rss));
    const S = median(pair.short.map((r) => r.rss));
    const Lh = median(pair.long.map((r) => r.hwm));
    const Sh = median(pair.short.map((r) => r.hwm));

    console.log(`\nserver memory, ${os.cpus().length} CPUs, ${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s total`);
    console.log('| scenario | VmRSS MB (after 5 s) | max of 10 samples | VmHWM MB | idle RSS of that server | viewers connected / decoding |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.label}${r.file ? ` (${r.file})` : ''} | ${mb(r.rss)} | ${mb(r.rssMax)} | ${mb(r.hwm)} | ${mb(r.idle)} | ${r.stats ? `${r.stats.connected} / ${r.stats.decoding}` : '-'} |`);
    console.log(`| 1 viewer of long_2h.mp4 (median of 3) | ${mb(L)} | | ${mb(Lh)} | | |`);
    console.log(`| 1 viewer of sample.mp4 (median of 3) | ${mb(S)} | | ${mb(Sh)} | | |`);
    console.log(`\n2 h / 10 s RSS ratio: ${(L / S).toFixed(3)} (VmHWM ratio ${(Lh / Sh).toFixed(3)}); runs long: ${pair.long.map((r) => mb(r.rss)).join(', ')} MB; short: ${pair.short.map((r) => mb(r.rss)).join(', ')} MB`);
  } catch (e) {
    console.error(String(e && e.stack || e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

await main();
