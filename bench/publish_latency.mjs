// Benchmark (not a test): a browser publishes, another browser watches it live, on
// loopback. Two figures (issue 13, targets ≤ 150 ms median each):
//   - publish → first frame: from just before the publisher's offer goes to the server to
//     the viewer's first video frame (requestVideoFrameCallback);
//   - end-to-end delay: the wall-clock time drawn into each published picture against
//     the viewer's wall clock when that picture is shown.
//
//   REELCAST_BIN=/path/to/reelcast node bench/publish_latency.mjs
//   N=5 RUN_SECONDS=5 REF_RUNS=1 node bench/publish_latency.mjs   # fewer / shorter runs
//   SIZE=640x360 ...       # publish a smaller canvas
//   START_KBPS=1500 ...    # the WHIP publisher adds x-google-start-bitrate to the answer
//   SERVER_LOG=/tmp/x.log RUST_LOG=info,reelcast=debug ...  # keep the server's log (a trace
//                          of each handshake's steps, timestamped to the µs)
//   ONLY=sdk ...           # one path only (whip or sdk)
//   SET=key=value,key=value ...  # server settings (e.g. SET=publisher_start_bitrate=2500)
//   AB=/path/to/a,/path/to/b ...  # A/B: two servers (two builds) side by side, each run
//                          # pair on both, the order alternating (A B, B A, ...); N pairs;
//                          # a table per build. SERVER_LOG gets .A and .B.
//   TRACE=1 ...            # print each run's browser-side steps (WebSocket messages, the
//                          # pcs' offer/answer and states), ms from t0
//
// Needs tests/e2e/node_modules (playwright-core, @flashphoner/websdk) and Debian's
// chromium. Two headless Chromiums on this machine (one system clock), one page each,
// both with the WCS SDK loaded (WHIP/WHEP are cross-origin fetches: the server allows any
// origin for them by default). Two browsers, not two pages of one: in this headless
// Chromium a second page that draws makes the first one's animation frames (so its canvas
// capture or its video frames) drop to a few a second.
//   - the source (in the publisher's page): a 1280x720 canvas (not in the document)
//     redrawn on every animation frame with the wall-clock time (ms, low 32 bits) as a
//     block code, captured with canvas.captureStream(30), plus a 440 Hz tone (oscillator
//     → MediaStreamDestination);
//   - the publisher: WHIP (POST /whip/{name} from a plain RTCPeerConnection, H.264
//     preferred) or the WCS SDK (createStream({constraints: {customStream}}).publish());
//   - the viewer: WHEP (POST /whep/{name}) or the WCS SDK (createStream().play()); on each
//     requestVideoFrameCallback it draws the frame to a canvas, reads the code and takes
//     delay = when the frame is shown − the time in the picture. "Shown": the callback's
//     expectedDisplayTime, but not before the callback runs (headless, that time can be the
//     rendering step's start, before a frame that came in late).
// Wall clock: Date.now() has whole ms only, so both pages use performance.now() plus an
// offset taken at the instant Date.now() ticks (again every 2 s): ±0.5 ms for the value
// in the picture (rounded), ~0.1 ms for the offsets (performance.now() is coarsened).
// The block code: a 10x6 grid of 40 px cells (in 1280x720 units) at (40,40): a fixed
// 10-cell marker, 32 bits of time, a CRC-16 of them, 2 fixed cells. The reader samples
// each cell's middle, takes its threshold from the fixed cells and rejects a frame with
// nothing drawn yet ("blank"), low contrast, an ambiguous cell, a wrong fixed cell or CRC,
// or a delay that is negative or over 60 s. Checked before the runs (printed): clean and
// 4x-downscaled round trips, every single wrong cell, random grids.
//
// Publish → first frame, per run: the publisher's stream is running and its
// RTCPeerConnection has its offer and ICE candidates (WHIP), the viewer's too (WHEP);
// t0 = just before the WHIP POST; when its answer is in, the publisher's page tells the
// viewer's (a long poll on a relay in this process, ~5-15 ms between the browsers here),
// which POSTs its WHEP offer at once; t1 = when the viewer's first frame is shown. With
// the SDK, t0 = just before stream.publish() (the SDK's own offer and ICE gathering are
// inside) and the viewer calls play() on PUBLISHING. Each run goes on for RUN_SECONDS
// (default 10) of frames, the delay samples, then both sides stop. Runs alternate
// WHIP/WHEP and SDK/SDK, N each (default 10) after one warm-up each. Then REF_RUNS
// (default 3) of a reference with no server: the same source into a browser-to-browser
// RTCPeerConnection pair (H.264) in the viewer's page: Chromium's own start-up and its
// encode → jitter buffer → decode → display.
//
// Bounded: every wait has a timeout (20 s); the whole program is ~5 min with defaults.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import {
  launchBrowser, openSdkPage, startServer, withServerLog,
} from '../tests/e2e/helpers.mjs';

const N = Number(process.env.N || 10);
const SECONDS = Number(process.env.RUN_SECONDS || 10);
const REF_RUNS = Number(process.env.REF_RUNS || 3);
// Experiments: SIZE=640x360 (the published canvas); START_KBPS=1500 (the WHIP publisher
// adds x-google-start-bitrate to the server's answer: Chromium's encoder starts there).
const [SW, SH] = (process.env.SIZE || '1280x720').split('x').map(Number);
const SOURCE = { width: SW, height: SH };
const START_KBPS = Number(process.env.START_KBPS || 0);
const SERVER_LOG = process.env.SERVER_LOG || '';
const ONLY = process.env.ONLY || '';
const TRACE = Boolean(process.env.TRACE);
const AB = (process.env.AB || '').split(',').filter(Boolean);
const SETTINGS = Object.fromEntries((process.env.SET || '').split(',').filter(Boolean).map((kv) => kv.split('=')));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

/**
 * TRACE=1, in every page before its scripts: window.__trace gets [wall ms, what] for each
 * WebSocket message (`ws> name` sent, `ws< name STATUS` received), each pc's
 * createOffer / setLocalDescription / setRemoteDescription done, and its ICE, DTLS and
 * connection states.
 */
function traceSignals() {
  const trace = [];
  window.__trace = trace;
  const now = () => performance.timeOrigin + performance.now();
  const T = (what) => trace.push([now(), what]);
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (e) => {
        try {
          const m = JSON.parse(e.data);
          const d = m.data && m.data[0];
          T(`ws< ${m.message}${d && d.status ? ` ${d.status}` : ''}`);
        } catch { /* not JSON */ }
      });
    }

    send(data) {
      try { T(`ws> ${JSON.parse(data).message}`); } catch { /* not JSON */ }
      super.send(data);
    }
  };
  const states = { iceconnectionstatechange: 'iceConnectionState', connectionstatechange: 'connectionState', icegatheringstatechange: 'iceGatheringState' };
  let n = 0;
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Orig {
    constructor(...a) {
      super(...a);
      this.__tid = n;
      n += 1;
      T(`pc${this.__tid} new`);
      for (const [ev, key] of Object.entries(states)) {
        this.addEventListener(ev, () => T(`pc${this.__tid} ${key} ${this[key]}`));
      }
      this.addEventListener('track', (e) => T(`pc${this.__tid} track ${e.track.kind}`));
      // Video's first steps from the stats, polled every 5 ms for 1 s once ICE checks.
      let polling = false;
      this.addEventListener('iceconnectionstatechange', () => {
        if (polling || this.iceConnectionState !== 'checking') return;
        polling = true;
        const seen = new Set();
        const end = performance.now() + 1000;
        const note = (key, what) => { if (!seen.has(key)) { seen.add(key); T(`pc${this.__tid} ${what}`); } };
        const poll = async () => {
          const stats = await this.getStats().catch(() => null);
          if (stats) {
            stats.forEach((r) => {
              if (r.kind !== 'video') return;
              if (r.type === 'outbound-rtp') {
                if (r.framesEncoded > 0) note('enc', `video first frame encoded ${r.frameWidth}x${r.frameHeight}`);
                if (r.packetsSent > 0) note('sent', 'video first packet sent');
                if (r.framesSent > 0) note('fsent', 'video first frame sent');
              } else if (r.type === 'inbound-rtp') {
                if (r.packetsReceived > 0) note('recv', 'video first packet received');
                if (r.framesReceived > 0) note('frecv', 'video first frame received');
                if (r.framesDecoded > 0) note('dec', 'video first frame decoded');
              }
            });
          }
          if (performance.now() < end && seen.size < 3) setTimeout(poll, 5);
        };
        poll();
      });
    }
  };
  const P = Orig.prototype;
  for (const m of ['createOffer', 'createAnswer', 'setLocalDescription', 'setRemoteDescription']) {
    const orig = P[m];
    P[m] = function traced(...a) {
      const pc = this;
      const r = orig.apply(pc, a);
      if (r && r.then) {
        r.then(() => {
          T(`pc${pc.__tid} ${m} done`);
          if (m !== 'setRemoteDescription') return;
          const dtls = pc.getTransceivers().map((t) => t.sender.transport).find(Boolean);
          if (dtls && !dtls.__traced) {
            dtls.__traced = true;
            dtls.addEventListener('statechange', () => T(`pc${pc.__tid} dtls ${dtls.state}`));
          }
        }, () => {});
      }
      return r;
    };
  }
}

/**
 * Runs in every page before its scripts (`width`x`height`: the source canvas):
 * window.__code (the wall clock; draw and read the block code; its self-test),
 * window.__source() (the canvas + tone MediaStream), window.__sendPc(stream) (a sendonly
 * pc, H.264 first) and window.__collect(video, rec) (reads every frame the <video> shows).
 */
function inPage({ width, height }) {
  const COLS = 10;
  const ROWS = 6;
  const CELL = 40;
  const X0 = 40;
  const Y0 = 40;
  const W = 1280;
  const H = 720;
  const MARKER = [1, 0, 1, 1, 0, 0, 1, 1, 1, 0];
  const TAIL = [1, 0]; // the last two cells, fixed too
  const TWO32 = 4294967296;

  /** CRC-16/CCITT-FALSE of the value's 4 bytes (big-endian). */
  function crc16(v) {
    let c = 0xffff;
    for (let i = 3; i >= 0; i -= 1) {
      c ^= (Math.floor(v / 2 ** (8 * i)) & 0xff) << 8;
      for (let b = 0; b < 8; b += 1) c = (c & 0x8000) ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    }
    return c;
  }
  /** The 60 cells (row-major) for a 32-bit value: marker, 32 value bits (MSB first), 16 CRC bits, tail. */
  function bits(v) {
    const out = [...MARKER];
    for (let i = 31; i >= 0; i -= 1) out.push(Math.floor(v / 2 ** i) & 1);
    const c = crc16(v);
    for (let i = 15; i >= 0; i -= 1) out.push((c >> i) & 1);
    return [...out, ...TAIL];
  }
  function drawCells(ctx, cells) {
    ctx.fillStyle = '#000';
    ctx.fillRect(X0 - CELL, Y0 - CELL, (COLS + 2) * CELL, (ROWS + 2) * CELL);
    ctx.fillStyle = '#fff';
    cells.forEach((b, i) => { if (b) ctx.fillRect(X0 + (i % COLS) * CELL, Y0 + Math.floor(i / COLS) * CELL, CELL, CELL); });
  }
  /** Reads the code from an image of any size (the picture may have been scaled). */
  function read(ctx, w, h) {
    const sx = w / W;
    const sy = h / H;
    const img = ctx.getImageData(0, 0, Math.ceil((X0 + COLS * CELL) * sx) + 1, Math.ceil((Y0 + ROWS * CELL) * sy) + 1);
    const levels = [];
    for (let i = 0; i < COLS * ROWS; i += 1) {
      // The middle half of the cell, away from the ringing at its edges.
      const cx0 = Math.round((X0 + (i % COLS) * CELL + CELL / 4) * sx);
      const cx1 = Math.max(cx0 + 1, Math.round((X0 + (i % COLS) * CELL + (3 * CELL) / 4) * sx));
      const cy0 = Math.round((Y0 + Math.floor(i / COLS) * CELL + CELL / 4) * sy);
      const cy1 = Math.max(cy0 + 1, Math.round((Y0 + Math.floor(i / COLS) * CELL + (3 * CELL) / 4) * sy));
      let sum = 0;
      let n = 0;
      for (let y = cy0; y < cy1; y += 1) {
        for (let x = cx0; x < cx1; x += 1) {
          const p = (y * img.width + x) * 4;
          sum += 0.299 * img.data[p] + 0.587 * img.data[p + 1] + 0.114 * img.data[p + 2];
          n += 1;
        }
      }
      levels.push(sum / n);
    }
    const fixed = [...MARKER.map((b, i) => [i, b]), ...TAIL.map((b, i) => [58 + i, b])];
    const white = fixed.filter(([, b]) => b).map(([i]) => levels[i]);
    const black = fixed.filter(([, b]) => !b).map(([i]) => levels[i]);
    const hi = white.reduce((a, b) => a + b, 0) / white.length;
    const lo = black.reduce((a, b) => a + b, 0) / black.length;
    if (hi === 0 && lo === 0) return { ok: false, reason: 'blank' }; // drawImage drew nothing yet
    if (hi - lo < 80) return { ok: false, reason: 'contrast', hi, lo };
    const thr = (hi + lo) / 2;
    const margin = (hi - lo) / 4;
    if (levels.some((l) => Math.abs(l - thr) < margin)) return { ok: false, reason: 'ambiguous' };
    const got = levels.map((l) => (l > thr ? 1 : 0));
    if (fixed.some(([i, b]) => got[i] !== b)) return { ok: false, reason: 'marker' };
    let v = 0;
    for (let i = 0; i < 32; i += 1) v = v * 2 + got[10 + i];
    let c = 0;
    for (let i = 0; i < 16; i += 1) c = (c << 1) | got[42 + i];
    if (crc16(v) !== c) return { ok: false, reason: 'crc' };
    return { ok: true, value: v };
  }
  /** Delay (ms) from a code value to the wall-clock time `wall`, or null when implausible. */
  function delay(value, wall) {
    let d = (Math.floor(wall) % TWO32) - value + (wall - Math.floor(wall));
    // (value is the picture's time rounded to the ms: ±0.5 ms)
    if (d > TWO32 / 2) d -= TWO32;
    if (d < -TWO32 / 2) d += TWO32;
    return d;
  }
  // The wall clock to a fraction of a ms: Date.now() only has whole ms, so the offset to
  // performance.now() is taken at the instant Date.now() ticks (a busy wait of ≤ 1 ms),
  // again every 2 s (the wall clock may be slewed).
  let offset = null;
  let calibrated = -Infinity;
  function wallNow() {
    const p = performance.now();
    if (offset == null || p - calibrated > 2000) {
      const d0 = Date.now();
      let d;
      let q;
      do { q = performance.now(); d = Date.now(); } while (d === d0);
      offset = d - q;
      calibrated = q;
    }
    return offset + performance.now();
  }
  const wallAt = (perf) => { wallNow(); return offset + perf; };
  window.__code = {
    wallNow, wallAt,
    W, H, bits, drawCells, read, delay, crc16,
    draw(ctx, ms) { drawCells(ctx, bits(ms % TWO32)); },
    /** Self-test: clean and scaled round trips, every single-bit flip, garbage grids. */
    selfTest() {
      const c = document.createElement('canvas');
      c.width = W; c.height = H;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      const small = document.createElement('canvas');
      small.width = 320; small.height = 180;
      const sctx = small.getContext('2d', { willReadFrequently: true });
      const r = { roundTrips: 0, roundTripFailures: 0, flips: 0, flipsAccepted: 0, garbage: 0, garbageAccepted: 0 };
      for (let k = 0; k < 50; k += 1) {
        const v = k === 0 ? 0 : k === 1 ? TWO32 - 1 : Math.floor(Math.random() * TWO32);
        ctx.fillStyle = '#888'; ctx.fillRect(0, 0, W, H);
        drawCells(ctx, bits(v));
        const a = read(ctx, W, H);
        sctx.drawImage(c, 0, 0, 320, 180);
        const b = read(sctx, 320, 180);
        r.roundTrips += 2;
        if (!(a.ok && a.value === v)) r.roundTripFailures += 1;
        if (!(b.ok && b.value === v)) r.roundTripFailures += 1;
        // One wrong cell anywhere must be rejected.
        for (let i = 0; i < COLS * ROWS; i += 1) {
          const cells = bits(v);
          cells[i] ^= 1;
          drawCells(ctx, cells);
          const f = read(ctx, W, H);
          r.flips += 1;
          if (f.ok) r.flipsAccepted += 1;
        }
      }
      for (let k = 0; k < 4000; k += 1) {
        const cells = Array.from({ length: COLS * ROWS }, () => (Math.random() < 0.5 ? 1 : 0));
        if (k % 2) { // half of them with valid fixed cells: only the CRC can reject those
          MARKER.forEach((b, i) => { cells[i] = b; });
          TAIL.forEach((b, i) => { cells[58 + i] = b; });
        }
        drawCells(ctx, cells);
        r.garbage += 1;
        if (read(ctx, W, H).ok) r.garbageAccepted += 1;
      }
      ctx.fillStyle = '#000'; ctx.fillRect(0, 0, W, H);
      r.blackRejected = !read(ctx, W, H).ok;
      return r;
    },
  };

  /** The published picture and sound: a canvas redrawn each animation frame, and a tone. */
  window.__source = () => {
    if (window.__src) return window.__src;
    const canvas = document.createElement('canvas');
    // Drawn in 1280x720 units whatever the canvas size (the reader scales too).
    canvas.width = width; canvas.height = height;
    // Not in the document: a 1280x720 canvas on screen slows this headless Chromium's
    // animation frames in every page to a few a second once a second page is open.
    const ctx = canvas.getContext('2d');
    ctx.setTransform(width / W, 0, 0, height / H, 0, 0);
    const stat = { draws: 0 };
    const draw = () => {
      const now = Math.round(wallNow());
      ctx.fillStyle = '#667';
      ctx.fillRect(0, 0, W, H);
      // Something that moves besides the code, as in a real picture.
      const x = (now / 4) % W;
      ctx.fillStyle = '#c84';
      ctx.fillRect(x, 400, 200, 200);
      ctx.fillStyle = '#fff';
      ctx.font = '48px sans-serif';
      ctx.fillText(new Date(now).toISOString(), 560, 120);
      window.__code.draw(ctx, now);
      stat.draws += 1;
    };
    draw();
    const tick = () => { draw(); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    const stream = canvas.captureStream(30);
    const ac = new AudioContext();
    const osc = ac.createOscillator();
    osc.frequency.value = 440;
    const gain = ac.createGain();
    gain.gain.value = 0.2;
    const dest = ac.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    ac.resume().catch(() => {});
    stream.addTrack(dest.stream.getAudioTracks()[0]);
    window.__src = { stream, stat, canvas, ac };
    return window.__src;
  };

  /** A sendonly pc with the source's tracks, H.264 first. */
  window.__sendPc = (stream) => {
    const pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      if (track.kind === 'video') {
        const codecs = RTCRtpSender.getCapabilities('video').codecs;
        t.setCodecPreferences([...codecs.filter((c) => c.mimeType === 'video/H264'), ...codecs.filter((c) => c.mimeType !== 'video/H264')]);
      }
    }
    return pc;
  };

  /**
   * Decodes every frame `video` shows until stop(): rec.frames gets {wall, value|null,
   * reason} with wall the frame's expected display time on the wall clock; rec.first the
   * wall-clock time of the first frame.
   */
  window.__collect = (video, rec) => {
    const c = document.createElement('canvas');
    const ctx = c.getContext('2d', { willReadFrequently: true });
    rec.frames = [];
    let stopped = false;
    const cb = (now, meta) => {
      if (stopped) return;
      // When the frame is shown: its expected display time, but not before this callback
      // runs (headless, the expected time can be the rendering step's start, before a frame
      // that came in late; the picture drawImage reads below is in hand now).
      const wall = Math.max(window.__code.wallNow(), window.__code.wallAt(meta.expectedDisplayTime));
      if (rec.first == null) {
        rec.first = wall;
        rec.firstSize = [meta.width, meta.height];
      }
      const w = video.videoWidth;
      const h = video.videoHeight;
      let f = { wall, w, h };
      if (w && h) {
        if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
        ctx.drawImage(video, 0, 0, w, h);
        const r = window.__code.read(ctx, w, h);
        if (r.ok) {
          const d = window.__code.delay(r.value, wall);
          f = d >= 0 && d < 60000 ? { wall, value: r.value, delay: d, w, h } : { wall, reason: d < 0 ? 'negative' : 'implausible', w, h, d };
        } else Object.assign(f, r);
      } else f.reason = 'no size';
      rec.frames.push(f);
      video.requestVideoFrameCallback(cb);
    };
    video.requestVideoFrameCallback(cb);
    return () => { stopped = true; };
  };
}

/** Waits in the page for `cond()` (a function source) to be true, at most ms. */
const untilInPage = `async (cond, ms) => {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
}`;

/**
 * The "go" signal from the publisher's browser to the viewer's: GET /wait/{key} is held
 * until GET /go/{key} (both answered with CORS *). A long poll on loopback: ~1 ms.
 */
async function startRelay() {
  const waiting = new Map();
  const early = new Set();
  const srv = http.createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Cache-Control', 'no-store');
    const [, verb, key] = req.url.split('/');
    if (verb === 'wait') {
      if (early.delete(key)) { res.end('go'); return; }
      waiting.set(key, res);
    } else if (verb === 'go') {
      const w = waiting.get(key);
      if (w) { waiting.delete(key); w.end('go'); } else early.add(key);
      res.end('ok');
    } else { res.statusCode = 404; res.end(); }
  });
  srv.keepAliveTimeout = 60000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, close: () => { for (const w of waiting.values()) w.end(); srv.closeAllConnections(); srv.close(); } };
}

/** Outbound video stats of a publishing pc: {framesEncoded, frameWidth, frameHeight, limitation}. */
const outboundVideo = `async (pc) => {
  let out = null;
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out = { framesEncoded: s.framesEncoded, frameWidth: s.frameWidth, frameHeight: s.frameHeight, limitation: s.qualityLimitationReason };
  });
  return out;
}`;

/** Waits for the first frame (20 s at most), then collects `seconds` of frames; returns the record. */
async function collectFor(view, seconds) {
  const got = await view.evaluate(`(${untilInPage})(() => window.__rec.first != null || window.__rec.error != null, 20000)`);
  if (got && !(await view.evaluate(() => window.__rec.error))) await sleep(seconds * 1000);
  return view.evaluate(() => { window.__stopCollect(); return window.__rec; });
}

/**
 * One WHIP → WHEP run: the viewer's WHEP pc has its offer ready and waits on the relay;
 * the publisher POSTs its WHIP offer (t0 just before) and sends "go" when answered.
 */
async function whipWhepRun(pub, view, base, relay, name, seconds) {
  await view.evaluate(([b, n, go]) => {
    const rec = {};
    window.__rec = rec;
    const pc = window.__whep.peer();
    window.__viewPc = pc;
    const video = document.createElement('video');
    video.autoplay = true; video.muted = true; video.playsInline = true;
    document.body.appendChild(video);
    window.__video = video;
    pc.ontrack = (e) => {
      if (e.track.kind !== 'video') return;
      video.srcObject = new MediaStream([e.track]);
      video.play().catch(() => {});
    };
    window.__stopCollect = window.__collect(video, rec);
    pc.addEventListener('connectionstatechange', () => { if (pc.connectionState === 'connected') rec.viewConnected = Date.now(); });
    return window.__whep.offer(pc).then(() => {
      fetch(go).then(async () => {
        rec.whepPosted = Date.now();
        const res = await fetch(`${b}/whep/${encodeURIComponent(n)}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
        const body = await res.text();
        rec.whepAnswered = Date.now();
        rec.location = res.headers.get('location');
        if (res.status !== 201) { rec.error = `WHEP ${res.status} ${body}`; return; }
        await pc.setRemoteDescription({ type: 'answer', sdp: body });
      }).catch((e) => { rec.error = String(e); });
    });
  }, [base, name, `${relay.url}/wait/${name}`]);
  const pubRec = await pub.evaluate(async ([b, n, go, kbps]) => {
    const { stream } = window.__source();
    const pc = window.__sendPc(stream);
    window.__pubPc = pc;
    await window.__whep.offer(pc);
    const rec = {};
    window.__pubRec = rec;
    pc.addEventListener('connectionstatechange', () => { if (pc.connectionState === 'connected') rec.pubConnected = Date.now(); });
    rec.t0 = Date.now();
    const res = await fetch(`${b}/whip/${encodeURIComponent(n)}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const body = await res.text();
    rec.whipAnswered = Date.now();
    rec.status = res.status;
    rec.location = res.headers.get('location');
    if (res.status === 201) {
      fetch(go);
      const sdp = kbps ? body.replace(/^(a=fmtp:\d+ .*packetization-mode.*)$/gm, `$1;x-google-start-bitrate=${kbps}`) : body;
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } else rec.error = body;
    return rec;
  }, [base, name, `${relay.url}/go/${name}`, START_KBPS]);
  if (pubRec.status !== 201) throw new Error(`WHIP POST of ${name}: ${pubRec.status} ${pubRec.error}`);
  const rec = await collectFor(view, seconds);
  await view.evaluate(async (b) => {
    window.__viewPc.close();
    if (window.__rec.location) await fetch(new URL(window.__rec.location, b), { method: 'DELETE' }).catch(() => {});
    window.__video.remove();
  }, base);
  const pubStats = await pub.evaluate(async ([b, loc, stats]) => {
    // eslint-disable-next-line no-eval
    const out = await (0, eval)(stats)(window.__pubPc);
    window.__pubPc.close();
    if (loc) await fetch(new URL(loc, b), { method: 'DELETE' }).catch(() => {});
    return { ...out, pubConnected: window.__pubRec.pubConnected };
  }, [base, pubRec.location, outboundVideo]);
  return { ...pubRec, ...rec, pubConnected: pubStats.pubConnected, pubStats };
}

/** One SDK → SDK run: t0 just before publish(); the viewer plays on PUBLISHING (via the relay). */
async function sdkRun(pub, view, wsUrl, relay, name, seconds) {
  await view.evaluate(async ([url, n, go]) => {
    const session = await window.__session(url);
    const rec = {};
    window.__rec = rec;
    const div = document.createElement('div');
    div.style.width = '320px'; div.style.height = '180px';
    document.getElementById('displays').appendChild(div);
    window.__div = div;
    const S = Flashphoner.constants.STREAM_STATUS;
    let bound = false;
    window.__stopCollect = () => {};
    const mo = new MutationObserver(() => {
      const v = div.querySelector('video');
      if (v && !bound) {
        bound = true;
        window.__stopCollect = window.__collect(v, rec);
        mo.disconnect();
      }
    });
    mo.observe(div, { childList: true, subtree: true });
    fetch(go).then(() => {
      rec.whepPosted = Date.now();
      const stream = session.createStream({ name: n, display: div });
      window.__viewStream = stream;
      stream.on(S.PLAYING, () => { rec.viewConnected = Date.now(); });
      stream.on(S.FAILED, (s) => { rec.error = `FAILED ${(s.getInfo && s.getInfo()) || ''}`; });
      stream.play();
    }).catch((e) => { rec.error = String(e); });
  }, [wsUrl, name, `${relay.url}/wait/${name}`]);
  const pubRec = await pub.evaluate(async ([url, n, go]) => {
    const session = await window.__session(url);
    const { stream: media } = window.__source();
    // Clones: the SDK stops the tracks it published when the stream stops.
    const custom = new MediaStream(media.getTracks().map((t) => t.clone()));
    const div = document.createElement('div');
    div.style.display = 'none'; // the SDK's local preview: not drawn (nobody looks at it here)
    document.getElementById('displays').appendChild(div);
    const S = Flashphoner.constants.STREAM_STATUS;
    const rec = {};
    const stream = session.createStream({ name: n, display: div, constraints: { audio: false, video: false, customStream: custom } });
    window.__pubStream = stream;
    window.__pubDiv = div;
    const done = new Promise((resolve) => {
      stream.on(S.PUBLISHING, () => { rec.whipAnswered = Date.now(); rec.pubConnected = rec.whipAnswered; fetch(go); resolve(); });
      stream.on(S.FAILED, (s) => { rec.error = (s.getInfo && s.getInfo()) || 'FAILED'; resolve(); });
      setTimeout(() => { rec.error = 'no PUBLISHING within 20 s'; resolve(); }, 20000);
    });
    const before = window.__pcs.length;
    rec.t0 = Date.now();
    stream.publish();
    await done;
    window.__pubPc = window.__pcs[before];
    return rec;
  }, [wsUrl, name, `${relay.url}/go/${name}`]);
  if (pubRec.error) throw new Error(`SDK publish of ${name}: ${pubRec.error}`);
  const rec = await collectFor(view, seconds);
  await view.evaluate(async () => {
    const S = Flashphoner.constants.STREAM_STATUS;
    const s = window.__viewStream;
    if (s) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 2000);
        s.on(S.STOPPED, () => { clearTimeout(t); resolve(); });
        try { s.stop(); } catch { clearTimeout(t); resolve(); }
      });
    }
    window.__div.remove();
  });
  const pubStats = await pub.evaluate(async (stats) => {
    // eslint-disable-next-line no-eval
    const out = await (0, eval)(stats)(window.__pubPc);
    const S = Flashphoner.constants.STREAM_STATUS;
    const s = window.__pubStream;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 2000);
      s.on(S.UNPUBLISHED, () => { clearTimeout(t); resolve(); });
      try { s.stop(); } catch { clearTimeout(t); resolve(); }
    });
    window.__pubDiv.remove();
    return out;
  }, outboundVideo);
  return { ...pubRec, ...rec, pubStats };
}

/** The reference: the same source, pc → pc inside one page, no server. */
async function referenceRun(page, seconds) {
  await page.evaluate(async () => {
    const rec = {};
    window.__rec = rec;
    const { stream } = window.__source();
    const a = window.__sendPc(stream);
    const b = new RTCPeerConnection();
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    const video = document.createElement('video');
    video.autoplay = true; video.muted = true;
    document.body.appendChild(video);
    b.ontrack = (e) => {
      if (e.track.kind !== 'video') return;
      video.srcObject = new MediaStream([e.track]);
      video.play().catch(() => {});
    };
    window.__stopCollect = window.__collect(video, rec);
    a.addEventListener('connectionstatechange', () => { if (a.connectionState === 'connected') rec.pubConnected = Date.now(); });
    b.addEventListener('connectionstatechange', () => { if (b.connectionState === 'connected') rec.viewConnected = Date.now(); });
    rec.t0 = Date.now();
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    window.__ref = { a, b, video };
  });
  const rec = await collectFor(page, seconds);
  const pubStats = await page.evaluate(async (stats) => {
    // eslint-disable-next-line no-eval
    const out = await (0, eval)(stats)(window.__ref.a);
    window.__ref.a.close(); window.__ref.b.close(); window.__ref.video.remove();
    return out;
  }, outboundVideo);
  return { ...rec, pubStats };
}

/** Summary of one run's frames: delays of the decoded ones, counts of the rest. */
function frameSummary(r) {
  const frames = r.frames || [];
  const good = frames.filter((f) => typeof f.delay === 'number');
  const reasons = {};
  for (const f of frames) if (f.reason) reasons[f.reason] = (reasons[f.reason] || 0) + 1;
  let backwards = 0;
  for (let i = 1; i < good.length; i += 1) if (good[i].value < good[i - 1].value) backwards += 1;
  const steady = good.filter((f) => f.wall - r.first >= 2000);
  const span = frames.length > 1 ? (frames[frames.length - 1].wall - frames[0].wall) / 1000 : 0;
  const sizes = [...new Set(frames.map((f) => `${f.w}x${f.h}`))];
  return {
    frames: frames.length, decoded: good.length, reasons, backwards,
    fps: span > 0 ? (frames.length - 1) / span : NaN,
    delays: good.map((f) => f.delay), steady: steady.map((f) => f.delay),
    // The first picture read (the very first one drawImage may not have in hand yet).
    firstAge: good.length && good[0].wall - r.first < 100 ? good[0].delay : null,
    sizes,
  };
}

function line(label, xs, unit = 'ms') {
  return `| ${label} | ${fmt(median(xs))} | ${fmt(pct(xs, 90))} | ${fmt(Math.min(...xs))} | ${fmt(Math.max(...xs))} | ${xs.length} |${unit === 'ms' ? '' : ` ${unit}`}`;
}

async function main() {
  const started = Date.now();
  if (AB.length && AB.length !== 2) throw new Error('AB takes two binaries: AB=/path/a,/path/b');
  // One server, or A and B side by side (an idle one costs the other nothing).
  const labels = AB.length ? ['A', 'B'] : [''];
  const servers = await Promise.all(labels.map((_, i) => startServer({ settings: SETTINGS, ...(AB.length ? { bin: AB[i] } : {}) })));
  const relay = await startRelay();
  // Two browsers, one page each (the publisher's, the viewer's): in this headless Chromium
  // a second page that draws makes the first one's animation frames (and so its canvas
  // capture or its video frames) drop to a few a second; browsers apart do not.
  const pubBrowser = await launchBrowser();
  const viewBrowser = await launchBrowser();
  const runsBy = labels.map(() => ({ whip: [], sdk: [], ref: [] }));
  try {
    if (TRACE) {
      await pubBrowser.context.addInitScript(traceSignals);
      await viewBrowser.context.addInitScript(traceSignals);
    }
    await pubBrowser.context.addInitScript(inPage, SOURCE);
    await viewBrowser.context.addInitScript(inPage, SOURCE);
    // Both on the helper's app origin with the SDK loaded; WHIP/WHEP are cross-origin
    // fetches (the server allows any origin for them by default).
    const pub = await openSdkPage(pubBrowser);
    const view = await openSdkPage(viewBrowser);
    const selfTest = await view.evaluate(() => window.__code.selfTest());
    console.log(`decoder self-test: ${JSON.stringify(selfTest)}`);
    // A random grid with valid fixed cells passes the CRC-16 1 time in 65,536: 2,000 of them
    // may let one through, not four.
    if (selfTest.roundTripFailures || selfTest.flipsAccepted || selfTest.garbageAccepted > 3 || !selfTest.blackRejected) throw new Error('the block-code decoder failed its self-test');
    for (const server of servers) {
      await pub.evaluate((u) => window.__session(u), server.wsUrl);
      await view.evaluate((u) => window.__session(u), server.wsUrl);
    }

    const report = (kind, i, r) => {
      const s = frameSummary(r);
      const ff = r.first != null ? r.first - r.t0 : NaN;
      const ps = r.pubStats;
      process.stdout.write(`${kind} ${String(i).padStart(2)}: first frame ${fmt(ff)} ms (publisher answered ${fmt(r.whipAnswered - r.t0)}, viewer asked ${fmt(r.whepPosted - r.t0)}, publisher connected ${fmt(r.pubConnected - r.t0)}, viewer connected ${fmt(r.viewConnected - r.t0)}, first picture's age ${fmt(s.firstAge)}), `
        + `delay median ${fmt(median(s.delays))} p90 ${fmt(pct(s.delays, 90))} (after 2 s: ${fmt(median(s.steady))}), ${s.decoded}/${s.frames} frames decoded ${JSON.stringify(s.reasons)}, `
        + `${fmt(s.fps)} fps ${s.sizes.join(',')}, sent ${ps ? `${ps.framesEncoded} frames, last ${ps.frameWidth}x${ps.frameHeight} (${ps.limitation})` : 'n/a'}${s.backwards ? `, ${s.backwards} BACKWARDS` : ''}${r.error ? ` ERROR ${r.error}` : ''}${SERVER_LOG && r.t0 ? ` t0 ${new Date(r.t0).toISOString()}` : ''}\n`);
    };
    // TRACE=1: both pages' steps of the run just done, merged, ms from its t0 (then cleared).
    const printTrace = async (r) => {
      if (!TRACE) return;
      const take = (page) => page.evaluate(() => window.__trace.splice(0));
      const steps = [
        ...(await take(pub)).map(([t, w]) => [t, `pub  ${w}`]),
        ...(await take(view)).map(([t, w]) => [t, `view ${w}`]),
        ...(r.first != null ? [[r.first, 'view first frame shown']] : []),
      ].filter(([t]) => t >= r.t0 - 1 && (r.first == null || t <= r.first + 1)).sort((a, b) => a[0] - b[0]);
      for (const [t, w] of steps) console.log(`    +${(t - r.t0).toFixed(1).padStart(6)}  ${w}`);
    };
    // Warm-ups (not counted): a browser's first encoder and decoder cost more.
    for (const server of servers) {
      await whipWhepRun(pub, view, server.base, relay, 'warm-whip', 2);
      await sdkRun(pub, view, server.wsUrl, relay, 'warm-sdk', 2);
    }
    for (let i = 1; i <= N; i += 1) {
      // A/B: A then B on odd rounds, B then A on even ones.
      const order = labels.map((_, j) => j);
      if (i % 2 === 0) order.reverse();
      for (const j of order) {
        const [server, runs, tag] = [servers[j], runsBy[j], labels[j] ? ` ${labels[j]}` : ''];
        if (ONLY !== 'sdk') {
          const w = await whipWhepRun(pub, view, server.base, relay, `whip-${i}${labels[j]}`, SECONDS);
          runs.whip.push(w);
          report(`whip→whep${tag}`, i, w);
          await printTrace(w);
          await sleep(300);
        }
        if (ONLY !== 'whip') {
          const s = await sdkRun(pub, view, server.wsUrl, relay, `sdk-${i}${labels[j]}`, SECONDS);
          runs.sdk.push(s);
          report(`sdk→sdk${tag}  `, i, s);
          await printTrace(s);
          await sleep(300);
        }
      }
    }
    for (let i = 1; i <= REF_RUNS; i += 1) {
      const r = await referenceRun(view, SECONDS);
      runsBy[0].ref.push(r);
      report('pc→pc ref', i, r);
    }
  } catch (e) {
    console.error(withServerLog(servers[0], String((e && e.stack) || e)));
    process.exitCode = 1;
  } finally {
    await pubBrowser.close();
    await viewBrowser.close();
    relay.close();
    for (const [j, server] of servers.entries()) {
      await server.stop();
      if (SERVER_LOG) fs.writeFileSync(`${SERVER_LOG}${labels[j] ? `.${labels[j]}` : ''}`, server.stderr());
    }
  }

  const all = (rs) => {
    const sums = rs.map(frameSummary);
    return {
      first: rs.map((r) => r.first - r.t0).filter(Number.isFinite),
      answered: rs.map((r) => r.whipAnswered - r.t0).filter(Number.isFinite),
      asked: rs.map((r) => r.whepPosted - r.t0).filter(Number.isFinite),
      pubConnected: rs.map((r) => r.pubConnected - r.t0).filter(Number.isFinite),
      viewConnected: rs.map((r) => r.viewConnected - r.t0).filter(Number.isFinite),
      afterAsk: rs.map((r) => r.first - r.whepPosted).filter(Number.isFinite),
      firstAge: sums.map((s) => s.firstAge).filter(Number.isFinite),
      delays: sums.flatMap((s) => s.delays),
      steady: sums.flatMap((s) => s.steady),
      runMedians: sums.map((s) => median(s.delays)).filter(Number.isFinite),
      frames: sums.reduce((a, s) => a + s.frames, 0),
      decoded: sums.reduce((a, s) => a + s.decoded, 0),
      reasons: sums.reduce((a, s) => { for (const [k2, v] of Object.entries(s.reasons)) a[k2] = (a[k2] || 0) + v; return a; }, {}),
      backwards: sums.reduce((a, s) => a + s.backwards, 0),
      fps: median(sums.map((s) => s.fps)),
      failed: rs.filter((r) => r.first == null).length,
    };
  };
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`\npublish → first frame and end-to-end delay${AB.length ? ` (A/B: A=${AB[0]}, B=${AB[1]}, N run pairs, order alternating)` : ''}, N=${N} runs of ${SECONDS} s each way, source ${SW}x${SH}${START_KBPS ? `, WHIP answer with x-google-start-bitrate=${START_KBPS}` : ''}, ${os.cpus().length} CPUs, load ${load}, ${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s total`);
  console.log('| path | metric | median ms | p90 ms | min | max | n |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  const names = { whip: 'WHIP → WHEP', sdk: 'WCS SDK → WCS SDK', ref: 'reference: pc → pc, no server' };
  for (const [j, label] of labels.entries()) for (const k of ['whip', 'sdk', 'ref']) {
    const runs = runsBy[j];
    if (!runs[k].length) continue;
    const a = all(runs[k]);
    const p = `${names[k]}${label ? ` [${label}]` : ''}`;
    if (k === 'whip') {
      console.log(line(`${p} | t0 (WHIP POST) → first frame`, a.first));
      console.log(line(`${p} | t0 → WHIP answer`, a.answered));
      console.log(line(`${p} | t0 → WHEP POST (after the relay)`, a.asked));
      console.log(line(`${p} | t0 → publisher's pc connected`, a.pubConnected));
      console.log(line(`${p} | t0 → viewer's pc connected`, a.viewConnected));
      console.log(line(`${p} | WHEP POST → first frame`, a.afterAsk));
    } else if (k === 'sdk') {
      console.log(line(`${p} | t0 (publish()) → first frame`, a.first));
      console.log(line(`${p} | t0 → PUBLISHING`, a.answered));
      console.log(line(`${p} | t0 → play() (after the relay)`, a.asked));
      console.log(line(`${p} | t0 → PLAYING`, a.viewConnected));
      console.log(line(`${p} | play() → first frame`, a.afterAsk));
    } else {
      console.log(line(`${p} | t0 (setLocalDescription) → first frame`, a.first));
      console.log(line(`${p} | t0 → sender's pc connected`, a.pubConnected));
      console.log(line(`${p} | t0 → receiver's pc connected`, a.viewConnected));
    }
    console.log(line(`${p} | age of the first picture shown`, a.firstAge));
    console.log(line(`${p} | end-to-end delay, all frames`, a.delays));
    console.log(line(`${p} | end-to-end delay, ≥ 2 s after the first frame`, a.steady));
    console.log(line(`${p} | end-to-end delay, median of each run`, a.runMedians));
    console.log(`| ${p} | frames shown / decoded / rejected (reasons) / going backwards | ${a.frames} / ${a.decoded} / ${a.frames - a.decoded} ${JSON.stringify(a.reasons)} / ${a.backwards} | | | | ${runs[k].length} runs, ${a.failed} without a frame, ${fmt(a.fps)} fps |`);
  }
}

await main();
