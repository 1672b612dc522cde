// Benchmark (not a test): time to first decoded video frame in headless Chromium,
// loopback only, for the WCS SDK (`stream.play()`) and for WHEP (POST /whep/...).
//
//   node bench/first_frame.mjs            # N=20 runs each
//   N=5 node bench/first_frame.mjs        # fewer runs
//
// Clock: performance.now() in the page. The first frame is taken from
// requestVideoFrameCallback() on the <video> element (its metadata.presentationTime, the
// time the frame was handed to the compositor); as a cross-check a 10 ms setInterval in
// the page polls getStats() for inbound-rtp framesDecoded > 0 (resolution ≈ 10 ms plus
// the getStats round trip). Both are reported; the median/p90 headline is rVFC.
//
// WCS SDK: one session (WebSocket) is connected once before the runs; t0 is taken just
// before stream.play(), so the figure covers the SDK's offer, the signalling round trip,
// ICE/DTLS on loopback, the server's first keyframe and the decode.
// WHEP: two starts are reported: t0 = new RTCPeerConnection() (whole client cost, ICE
// gathering included) and t0 = just before fetch(POST) (the server's share).
// Bounded: every run has a 10 s timeout; the whole program stays well under 3 min.
//
//   FILE=tests/media/tc_bframes.mp4 node bench/first_frame.mjs   # another file (a
//                                        # B-frame one: the transcoder's first frame)

import os from 'node:os';
import path from 'node:path';
import {
  SAMPLE, launchBrowser, openSdkPage, startServer, withServerLog,
} from '../tests/e2e/helpers.mjs';

const N = Number(process.env.N || 20);
const FILE = process.env.FILE ? path.resolve(process.env.FILE) : SAMPLE;
const STREAM = `vod://${path.basename(FILE)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

/** In-page helpers shared by both clients: watch a <video> and a pc for the first frame. */
function installWatchers() {
  window.__bench = {
    watchVideo(video, rec, t0) {
      if (video.__watched) return;
      video.__watched = true;
      const cb = (now, meta) => {
        if (rec.rvfc == null) {
          rec.rvfc = meta.presentationTime - t0;
          rec.rvfcNow = now - t0;
          rec.width = meta.width;
          rec.height = meta.height;
        }
      };
      if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(cb);
      else rec.noRvfc = true;
    },
    watchStats(getPc, rec, t0) {
      const iv = setInterval(async () => {
        const pc = getPc();
        if (!pc || rec.stats != null) return;
        const rep = await pc.getStats().catch(() => null);
        if (!rep || rec.stats != null) return;
        rep.forEach((s) => {
          if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video' && s.framesDecoded > 0 && rec.stats == null) {
            rec.stats = performance.now() - t0;
          }
        });
      }, 10);
      rec.stopStats = () => clearInterval(iv);
    },
  };
}

async function sdkRun(page, wsUrl, name) {
  return page.evaluate(async ([url, streamName]) => {
    const session = await window.__session(url);
    const div = document.createElement('div');
    div.style.width = '320px';
    div.style.height = '240px';
    document.getElementById('displays').appendChild(div);
    const S = Flashphoner.constants.STREAM_STATUS;
    const rec = {};
    const pcsBefore = window.__pcs.length;
    const stream = session.createStream({ name: streamName, display: div });
    const done = new Promise((resolve) => {
      stream.on(S.PLAYING, () => { rec.playing = performance.now() - t0; });
      stream.on(S.FAILED, () => { rec.failed = true; resolve(); });
      const iv = setInterval(() => {
        if (rec.failed || (rec.rvfc != null && rec.stats != null)) { clearInterval(iv); resolve(); }
      }, 5);
      setTimeout(() => { clearInterval(iv); rec.timeout = true; resolve(); }, 10000);
    });
    const mo = new MutationObserver(() => div.querySelectorAll('video').forEach((v) => window.__bench.watchVideo(v, rec, t0)));
    mo.observe(div, { childList: true, subtree: true });
    const t0 = performance.now();
    window.__bench.watchStats(() => window.__pcs[pcsBefore], rec, t0);
    stream.play();
    div.querySelectorAll('video').forEach((v) => window.__bench.watchVideo(v, rec, t0));
    await done;
    mo.disconnect();
    rec.stopStats();
    // Stop and wait for STOPPED (at most 2 s) so runs do not overlap.
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 2000);
      stream.on(S.STOPPED, () => { clearTimeout(t); resolve(); });
      try { stream.stop(); } catch { clearTimeout(t); resolve(); }
    });
    div.remove();
    delete rec.stopStats;
    return rec;
  }, [wsUrl, name]);
}

async function whepRun(page, name) {
  return page.evaluate(async (streamName) => {
    const rec = {};
    const tPc = performance.now();
    const pc = window.__whep.peer();
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    video.width = 320;
    document.body.appendChild(video);
    const recPc = {};
    pc.ontrack = (e) => {
      if (e.track.kind !== 'video') return;
      video.srcObject = new MediaStream([e.track]);
      video.play().catch(() => {});
    };
    await window.__whep.offer(pc);
    const t0 = performance.now();
    rec.gather = t0 - tPc;
    window.__bench.watchVideo(video, recPc, t0);
    window.__bench.watchStats(() => pc, recPc, t0);
    const res = await window.__whep.post(pc, streamName);
    rec.status = res.status;
    rec.post = performance.now() - t0;
    if (res.status === 201) {
      await window.__whep.answer(pc, res);
      await new Promise((resolve) => {
        const iv = setInterval(() => { if (recPc.rvfc != null && recPc.stats != null) { clearInterval(iv); resolve(); } }, 5);
        setTimeout(() => { clearInterval(iv); rec.timeout = true; resolve(); }, 10000);
      });
    }
    recPc.stopStats();
    Object.assign(rec, { rvfc: recPc.rvfc, rvfcNow: recPc.rvfcNow, stats: recPc.stats, width: recPc.width, height: recPc.height, noRvfc: recPc.noRvfc });
    rec.rvfcFromPc = rec.rvfc != null ? rec.rvfc + rec.gather : null;
    const loc = res.location;
    if (loc) await fetch(loc, { method: 'DELETE' }).catch(() => {});
    pc.close();
    video.remove();
    return rec;
  }, name);
}

function summarize(label, runs, keys) {
  const out = { label, n: runs.length, failures: runs.filter((r) => r.failed || r.timeout || (r.status && r.status !== 201)).length };
  for (const k of keys) {
    const xs = runs.map((r) => r[k]).filter((x) => typeof x === 'number' && Number.isFinite(x));
    out[k] = { median: median(xs), p90: pct(xs, 90), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
  }
  return out;
}

async function main() {
  const started = Date.now();
  const server = await startServer({ files: [FILE], settings: {} });
  const browser = await launchBrowser();
  const results = {};
  try {
    // --- WCS SDK ---
    const sdkPage = await openSdkPage(browser);
    await sdkPage.evaluate(installWatchers);
    await sdkPage.evaluate((u) => window.__session(u), server.wsUrl);
    await sdkRun(sdkPage, server.wsUrl, STREAM); // warm-up (not counted)
    const sdkRuns = [];
    for (let i = 0; i < N; i++) {
      const r = await sdkRun(sdkPage, server.wsUrl, STREAM);
      sdkRuns.push(r);
      process.stdout.write(`sdk  ${String(i + 1).padStart(2)}: rVFC ${fmt(r.rvfc)} ms  getStats ${fmt(r.stats)} ms  PLAYING ${fmt(r.playing)} ms${r.failed ? ' FAILED' : ''}${r.timeout ? ' TIMEOUT' : ''}\n`);
      await sleep(200);
    }
    results.sdk = summarize('WCS SDK stream.play()', sdkRuns, ['rvfc', 'stats', 'playing']);
    await sdkPage.close();

    // --- WHEP ---
    const whepPage = await browser.newPage();
    await whepPage.goto(`${server.base}/api/files`);
    await whepPage.evaluate(installWatchers);
    await whepRun(whepPage, STREAM); // warm-up
    const whepRuns = [];
    for (let i = 0; i < N; i++) {
      const r = await whepRun(whepPage, STREAM);
      whepRuns.push(r);
      process.stdout.write(`whep ${String(i + 1).padStart(2)}: rVFC ${fmt(r.rvfc)} ms  getStats ${fmt(r.stats)} ms  (from new RTCPeerConnection: ${fmt(r.rvfcFromPc)} ms; ICE gathering ${fmt(r.gather)} ms; POST answered in ${fmt(r.post)} ms)${r.timeout ? ' TIMEOUT' : ''}${r.status !== 201 ? ` HTTP ${r.status}` : ''}\n`);
      await sleep(200);
    }
    results.whep = summarize('WHEP POST', whepRuns, ['rvfc', 'stats', 'rvfcFromPc', 'gather', 'post']);
    if (whepRuns.some((r) => r.noRvfc) || sdkRuns.some((r) => r.noRvfc)) console.log('NOTE: requestVideoFrameCallback missing in some runs');
  } catch (e) {
    console.error(withServerLog(server, String(e && e.stack || e)));
    process.exitCode = 1;
  } finally {
    await browser.close();
    await server.stop();
  }

  console.log(`\nfirst decoded frame, N=${N} each, ${os.cpus().length} CPUs, ${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s total`);
  console.log('client | metric | median ms | p90 ms | min | max | n | failed runs');
  const names = { rvfc: 'rVFC presentationTime', stats: 'getStats framesDecoded>0 (10 ms poll)', playing: 'SDK PLAYING event', rvfcFromPc: 'rVFC from new RTCPeerConnection', gather: 'ICE gathering (client)', post: 'POST round trip' };
  for (const r of Object.values(results)) {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v !== 'object' || v === null || !('median' in v)) continue;
      console.log(`${r.label} | ${names[k]} | ${fmt(v.median)} | ${fmt(v.p90)} | ${fmt(v.min)} | ${fmt(v.max)} | ${v.n} | ${r.failures}`);
    }
  }
}

await main();
