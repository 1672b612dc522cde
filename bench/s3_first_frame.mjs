// Benchmark (not a test): S3 playback start. For a ~10 MB and a ~1 GB object, moov first
// and moov last: bytes fetched from the store before the first decoded frame, and the
// time from the SDK's stream.play() to that frame (headless Chromium, loopback). Then
// bytes fetched per byte played, for one object played to its end, and for a live
// translation of it with 20 viewers.
//
//   node bench/s3_first_frame.mjs            # makes the media (ffmpeg) in a temp dir,
//   N=3 node bench/s3_first_frame.mjs        # runs N times each (default 3), deletes it
//
// Stores: moto (the real S3 protocol, SigV4 and IAM on) for the 10 MB objects; moto
// copies the whole object in Python for every ranged GET, so 1 GB objects go to a
// plain range-serving HTTP server instead (reelcast's requests are the same ranged
// GETs; only the store differs). Every byte passes a counting TCP proxy.
// Time: t0 just before stream.play(); first frame = a 10 ms getStats() poll seeing
// framesDecoded > 0 (so each figure is up to ~10 ms late).

import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, openSdkPage, startServer } from '../tests/e2e/helpers.mjs';
import { startProxy, startStore } from '../tests/e2e/s3_store.mjs';

const N = Number(process.env.N || 3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function ff(args) {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed`);
}

/** moov size and offset, from the top-level boxes. */
function moovOf(file) {
  const r = spawnSync('AtomicParsley', [file, '-T', '1'], { encoding: 'utf8' });
  const m = /Atom moov @ (\d+) of size: (\d+)/.exec(r.stdout || '');
  return m ? { at: Number(m[1]), size: Number(m[2]) } : null;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'reelcast-s3-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const f = (n) => path.join(dir, n);

console.log(`making media in ${dir} ...`);
// 20 s of 640x360 noise at ~4 Mbit/s (noise defeats compression) + AAC: ~10 MB.
ff(['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=20,noise=alls=40:allf=t',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=20',
  '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-bf', '0', '-g', '50',
  '-b:v', '4M', '-maxrate', '4M', '-bufsize', '2M', '-c:a', 'aac', '-b:a', '64k', f('10m_end.mp4')]);
ff(['-i', f('10m_end.mp4'), '-c', 'copy', '-movflags', '+faststart', f('10m_first.mp4')]);
// The 10 MB file looped 100 times without re-encoding: ~1 GB, 33 minutes.
ff(['-stream_loop', '99', '-i', f('10m_end.mp4'), '-c', 'copy', f('1g_end.mp4')]);
ff(['-i', f('1g_end.mp4'), '-c', 'copy', '-movflags', '+faststart', f('1g_first.mp4')]);

const OBJECTS = ['10m_first.mp4', '10m_end.mp4', '1g_first.mp4', '1g_end.mp4'].map((name) => {
  const size = statSync(f(name)).size;
  const dur = Number(spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', f(name)], { encoding: 'utf8' }).stdout);
  return { name, size, dur, bps: size / dur, moov: moovOf(f(name)) };
});

/** A range-serving HTTP server for /BUCKET/KEY → file (GET with Range only; no auth). */
function rangeServer(files) {
  const srv = http.createServer((req, res) => {
    // The path only: presigned requests carry their signature in the query string.
    const file = files[decodeURIComponent(new URL(req.url, 'http://store').pathname.split('/').slice(2).join('/'))];
    if (!file) { res.writeHead(404, { 'content-type': 'application/xml' }); res.end('<Error><Code>NoSuchKey</Code></Error>'); return; }
    const size = statSync(file).size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
    if (!m) { res.writeHead(200, { 'content-length': size }); createReadStream(file).pipe(res); return; }
    const start = Number(m[1]);
    const end = Math.min(size - 1, m[2] ? Number(m[2]) : size - 1);
    if (start >= size) { res.writeHead(416); res.end(); return; }
    res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}` });
    createReadStream(file, { start, end }).pipe(res);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

console.log('starting moto (10 MB objects) and a range server (1 GB objects) ...');
const store = await startStore({
  buckets: ['bench'],
  objects: OBJECTS.filter((o) => o.name.startsWith('10m')).map((o) => ({ bucket: 'bench', key: o.name, file: f(o.name) })),
});
const ranges = await rangeServer(Object.fromEntries(OBJECTS.map((o) => [o.name, f(o.name)])));
const motoProxy = await startProxy(store.port);
const rangeProxy = await startProxy(ranges.address().port);
const server = await startServer({
  // The stores and proxies are full-URL names on 127.0.0.1: allowed explicitly.
  settings: { aws_s3_credentials: `us-east-1;${store.reader.key};${store.reader.secret}`, aws_s3_allowed_endpoints: '127.0.0.1' },
});
const browser = await launchBrowser();
const page = await openSdkPage(browser);
await page.evaluate(() => {
  window.__firstFrame = async (url, name) => {
    const pcsBefore = window.__pcs.length;
    const t0 = performance.now();
    const idx = await window.__play(url, name);
    return new Promise((resolve) => {
      const iv = setInterval(async () => {
        const ev = window.__events[idx];
        if (ev.some((e) => e.status === 'FAILED')) { clearInterval(iv); resolve({ failed: ev }); return; }
        const pc = window.__pcs[window.__pcs.length - 1];
        if (!pc || window.__pcs.length === pcsBefore) return;
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) {
            clearInterval(iv);
            resolve({ ms: performance.now() - t0 });
          }
        });
      }, 10);
      setTimeout(() => { clearInterval(iv); resolve({ timeout: true }); }, 20000);
    });
  };
});

const rows = [];
for (const o of OBJECTS) {
  const proxy = o.name.startsWith('10m') ? motoProxy : rangeProxy;
  const storeName = o.name.startsWith('10m') ? 'moto' : 'range server';
  const name = `vod://s3/${proxy.endpoint}/bench/${o.name}`;
  const bytes = [];
  const times = [];
  for (let i = 0; i < N; i++) {
    proxy.stats.bytes = 0;
    const r = await page.evaluate(([u, n]) => window.__firstFrame(u, n), [server.wsUrl, name]);
    const fetched = proxy.stats.bytes;
    if (r.ms == null) throw new Error(`${o.name}: ${JSON.stringify(r)}\n${server.stderr().slice(-3000)}`);
    bytes.push(fetched);
    times.push(r.ms);
    await page.evaluate(() => window.__lastStream.stop());
    await sleep(500);
  }
  const b = median(bytes);
  const media = Math.max(0, b - o.moov.size);
  rows.push({
    object: `${o.name} (${(o.size / 1e6).toFixed(1)} MB, ${Math.round(o.dur)} s, moov ${(o.moov.size / 1e3).toFixed(0)} kB at ${o.moov.at === 32 || o.moov.at < 100 ? 'start' : 'end'})`,
    store: storeName,
    'bytes before 1st frame': `${(b / 1e3).toFixed(0)} kB`,
    'of which media (s)': (media / o.bps).toFixed(2),
    'time to 1st frame ms (median, min-max)': `${median(times).toFixed(0)} (${Math.min(...times).toFixed(0)}-${Math.max(...times).toFixed(0)})`,
  });
  console.log(rows[rows.length - 1]);
}

// The server's count of one object's bytes, from its "S3 object closed" line (only
// lines of 10m_end.mp4: a stream stopped earlier may log its own line late).
const CLOSED = /S3 object closed: (\d+) bytes fetched for (\d+) bytes read[^\n]*\/bench\/10m_end\.mp4/;
async function closedLine(from) {
  const deadline = Date.now() + 60000;
  let m;
  while (Date.now() < deadline && !(m = CLOSED.exec(server.stderr().slice(from)))) await sleep(500);
  return m;
}

// Bytes fetched per byte played: the 10 MB moov-last object played to its end. The
// proxy's count is taken when the server's line appears (the next play reuses the proxy).
const before = server.stderr().length;
const full = `vod://s3/${motoProxy.endpoint}/bench/10m_end.mp4`;
motoProxy.stats.bytes = 0;
await page.evaluate(([u, n]) => window.__play(u, n), [server.wsUrl, full]);
const closed = await closedLine(before);
const proxyFull = motoProxy.stats.bytes;
const size10 = OBJECTS.find((o) => o.name === '10m_end.mp4').size;

// The same object as a live translation with 20 viewers (WCS SDK plays in one page):
// demux runs once per translation, so it must be fetched once, not 20 times.
const VIEWERS = 20;
const beforeLive = server.stderr().length;
const live = `vod-live://s3/${motoProxy.endpoint}/bench/10m_end.mp4`;
motoProxy.stats.bytes = 0;
for (let i = 0; i < VIEWERS; i++) await page.evaluate(([u, n]) => window.__play(u, n), [server.wsUrl, live]);
const liveClosed = await closedLine(beforeLive);
const proxyLive = motoProxy.stats.bytes;
const liveTranslations = (server.stderr().slice(beforeLive).match(/translation started/g) || []).length;
console.log('\n| object | store | bytes before 1st frame | of which media (s) | time to 1st frame, ms: median (min-max) |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(`| ${Object.values(r).join(' | ')} |`);
if (closed) {
  console.log(`\nplayed to the end: ${closed[1]} bytes fetched (proxy, with HTTP headers: ${proxyFull}) for ${closed[2]} bytes read by the demuxer; object ${size10} bytes; `
    + `fetched per byte read ${(Number(closed[1]) / Number(closed[2])).toFixed(3)}, per byte of object ${(Number(closed[1]) / size10).toFixed(3)}`);
} else {
  console.log('\nplayed to the end: no "S3 object closed" line within 60 s');
}
if (liveClosed) {
  console.log(`live translation, ${VIEWERS} viewers, ${liveTranslations} translation(s): ${liveClosed[1]} bytes fetched (proxy: ${proxyLive}) for an object of ${size10} bytes: `
    + `fetched per byte of object ${(Number(liveClosed[1]) / size10).toFixed(3)}`);
} else {
  console.log(`\nlive translation, ${VIEWERS} viewers: no "S3 object closed" line within 60 s`);
}
await browser.close();
await server.stop();
await motoProxy.close();
await rangeProxy.close();
ranges.close();
await store.stop();
