// Benchmark (not a test): server CPU of a personal VOD played from the transcode cache
// against a plain H.264 file's (issue 15: "within 10 %").
//
//   REELCAST_BIN=… node bench/transcode_cache.mjs      # VIEWERS=4 plays at once, SECONDS=8
//
// The server gets tests/media/tc_bframes.mp4 (640x360, 30 fps, 10 s, B-frames + AAC) and a
// plain H.264 copy of it made here with ffmpeg (no B-frames, the audio copied: the kind
// of file that plays with no video transcode), and that copy with Opus sound (the audio
// the cache entry has, so the two differ only in where the H.264 came from). The B-frame file is played once and its
// cache job awaited (reelcast_transcode_cache_bytes > 0). Then, for each of the cached
// file and the plain one: VIEWERS WHEP plays at once in headless Chromium, and the
// server's CPU time (utime + stime from /proc/PID/stat) over SECONDS from the first
// frame of every play. The cached plays must be hits with no video transcoder busy
// (checked from /metrics, else the run fails).

import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  launchBrowser, startServer, testMedia, waitForStats, withServerLog,
} from '../tests/e2e/helpers.mjs';
import { closeAllViewers, whepWatch } from '../tests/e2e/frames.mjs';

const VIEWERS = Number(process.env.VIEWERS || 4);
const SECONDS = Number(process.env.SECONDS || 8);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

async function cpuSeconds(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime, stime
}

async function metric(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const m = text.match(new RegExp(`^reelcast_${name} (\\d+)$`, 'm'));
  if (!m) throw new Error(`no reelcast_${name}`);
  return Number(m[1]);
}

async function until(what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** VIEWERS plays of `name` at once; the server's CPU seconds over SECONDS once all show frames. */
async function measure(browser, server, name, during = async () => {}) {
  const pages = await Promise.all([...Array(VIEWERS)].map(() => browser.newPage()));
  try {
    for (const p of pages) await p.goto(`${server.base}/api/files`);
    await Promise.all(pages.map((p) => whepWatch(p, `vod://${name}`)));
    await Promise.all(pages.map((p) => waitForStats(p, (s) => s.video?.framesDecoded > 0,
      { timeoutMs: 15000, what: `${name}: first frame` })));
    const c0 = await cpuSeconds(server.proc.pid);
    const t0 = Date.now();
    await during();
    await sleep(Math.max(0, SECONDS * 1000 - (Date.now() - t0)));
    const cpu = await cpuSeconds(server.proc.pid) - c0;
    return cpu / ((Date.now() - t0) / 1000);
  } finally {
    for (const p of pages) {
      await closeAllViewers(p).catch(() => {});
      await p.close();
    }
  }
}

const server = await startServer({ files: [testMedia('tc_bframes.mp4')] });
const browser = await launchBrowser();
try {
  const plain = path.join(server.mediaDir, 'plain.mp4');
  // At the rate the server's transcoder gives 640x360x30 by default (what the cache entry
  // holds), so both carry as many bytes and packets.
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', testMedia('tc_bframes.mp4'),
    '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-g', '60',
    '-b:v', '1037k', '-maxrate', '1037k', '-bufsize', '1037k', '-c:a', 'copy',
    '-movflags', '+faststart', plain]);
  // The same with Opus sound, as the cache entry has it: like for like.
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', plain, '-c:v', 'copy', '-c:a', 'libopus',
    '-b:a', '96k', '-movflags', '+faststart', path.join(server.mediaDir, 'plain_opus.mp4')]);

  // Fill the cache: one play, its job awaited.
  const page = await browser.newPage();
  await page.goto(`${server.base}/api/files`);
  await whepWatch(page, 'vod://tc_bframes.mp4');
  await until('the cache entry', async () => (await metric(server, 'transcode_cache_bytes')) > 0);
  await closeAllViewers(page);
  await page.close();
  await until('no transcoder busy', async () => (await metric(server, 'video_transcoders_busy')) === 0);

  const hits0 = await metric(server, 'transcode_cache_hits_total');
  const cached = await measure(browser, server, 'tc_bframes.mp4', async () => {
    if ((await metric(server, 'video_transcoders_busy')) !== 0) throw new Error('a cached play transcodes');
  });
  const hits = await metric(server, 'transcode_cache_hits_total') - hits0;
  if (hits !== VIEWERS) throw new Error(withServerLog(server, `${hits} hits of ${VIEWERS} plays`));
  await sleep(1000);
  const plainCpu = await measure(browser, server, 'plain.mp4');
  await sleep(1000);
  const plainOpus = await measure(browser, server, 'plain_opus.mp4');

  const pct = (x) => `${(100 * x).toFixed(1)} %`;
  console.log(`transcode cache: server CPU over ${SECONDS} s of ${VIEWERS} personal VODs at once, `
    + `${os.cpus().length} CPUs, ${new Date().toISOString()}`);
  console.log(`  cached B-frame file (H.264 + Opus, no transcoder): ${pct(cached)} of a core`);
  console.log(`  plain H.264 file (+ AAC -> Opus):                   ${pct(plainCpu)} of a core`);
  console.log(`  plain H.264 file (+ Opus, as the entry):             ${pct(plainOpus)} of a core`);
  console.log(`  cached / plain: ${(cached / plainCpu).toFixed(2)}; cached / plain with Opus: ${(cached / plainOpus).toFixed(2)}`);
} finally {
  await browser.close();
  await server.stop();
}
