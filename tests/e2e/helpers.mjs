// Shared pieces of the end-to-end tests: the real reelcast binary on free ports,
// headless Debian Chromium driven by playwright-core, and getStats() polling.
//
// Nothing here is mocked: the server is target/release/reelcast, the browser is
// /usr/bin/chromium, the WCS client is the unmodified @flashphoner/websdk bundle.
// Under CI=true anything missing is a hard failure (never a skip).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import dgram from 'node:dgram';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const BIN = process.env.REELCAST_BIN || path.join(REPO, 'target', 'release', 'reelcast');
export const SAMPLE = path.join(REPO, 'media', 'sample.mp4');
export const TEST_MEDIA = path.join(REPO, 'tests', 'media');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CI = process.env.CI === 'true' || process.env.CI === '1';

/** The flags docs/testing.md lists for root, headless, closed network (+ autoplay). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * Throws (a failure, never a skip) when a file the tests need is absent, with the
 * command that makes it. Every test calls this first.
 */
export function requireFiles(...files) {
  const hints = {
    [BIN]: 'cargo build --release',
    [CHROMIUM]: 'apt-get install -y chromium',
    [SAMPLE]: 'scripts/make-sample',
  };
  for (const f of files) {
    if (!existsSync(f)) {
      const hint = hints[f] || (f.startsWith(TEST_MEDIA) ? 'scripts/make-test-media tests/media' : 'scripts/test');
      throw new Error(`missing ${f} (make it with: ${hint})`);
    }
  }
}

export const testMedia = (name) => path.join(TEST_MEDIA, name);

/** A TCP port nobody listens on right now (the OS picks it). */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A UDP port nobody uses right now (the OS picks it). */
function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.bind(0, '0.0.0.0', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** Three distinct free ports: HTTP, WebSocket, media (UDP). */
async function freePorts() {
  for (;;) {
    const http = await freeTcpPort();
    const ws = await freeTcpPort();
    const media = await freeUdpPort();
    if (new Set([http, ws, media]).size === 3) return { http, ws, media };
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts target/release/reelcast with a fresh media dir holding copies of `files`
 * (absolute paths; copied under their base names), on free random ports.
 * Resolves once GET /api/files answers 200 (20 s at most, else rejects with the
 * server's stderr). `extraFiles` maps a path relative to the temp root (outside the
 * media dir) to a source file, for path-traversal tests. `env` adds to (or replaces)
 * the server's environment. `bin` runs another build (benchmarks comparing two).
 *
 * Recordings go to `root`/records unless `settings.record_dir` says otherwise.
 *
 * Returns { http, ws, media, base, wsUrl, mediaDir, root, stderr(), stop(), alive() }.
 */
export async function startServer({ files = [SAMPLE], outside = {}, settings = {}, env = {}, readyTimeoutMs = 20000, netns = null, bin = BIN } = {}) {
  requireFiles(bin, ...files, ...Object.values(outside));
  const root = await mkdtemp(path.join(os.tmpdir(), 'reelcast-e2e-'));
  const mediaDir = path.join(root, 'media');
  await mkdir(mediaDir);
  for (const f of files) await copyFile(f, path.join(mediaDir, path.basename(f)));
  for (const [rel, src] of Object.entries(outside)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await copyFile(src, path.join(root, rel));
  }

  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    // In a network namespace of its own every port is free; it is reached at netns.ip.
    const ports = netns ? { http: 8081, ws: 8080, media: 31001 } : await freePorts();
    const args = ['serve', '--media-dir', mediaDir,
      '--http-port', String(ports.http), '--ws-port', String(ports.ws), '--media-port', String(ports.media)];
    // On this machine's own network the server announces loopback only: unset, it would
    // announce every interface address, and clients would send to the real eth0 ones.
    const own = netns || 'ip' in settings ? settings : { ip: '127.0.0.1', ...settings };
    // Recordings go to the temp root too (the default ./records is the caller's folder).
    const all = { record_dir: path.join(root, 'records'), ...own };
    for (const [k, v] of Object.entries(all)) args.push('--set', `${k}=${v}`);
    const [cmd, cmdArgs] = netns ? ['ip', ['netns', 'exec', netns.name, bin, ...args]] : [bin, args];
    const proc = spawn(cmd, cmdArgs, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', RUST_BACKTRACE: '1', RUST_LOG: process.env.RUST_LOG || 'info', ...env },
    });
    let log = '';
    const keep = (chunk) => { log += chunk; if (log.length > 400000) log = log.slice(-200000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    let exited = null;
    const exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));

    const host = netns ? (netns.ip.includes(':') ? `[${netns.ip}]` : netns.ip) : '127.0.0.1';
    const base = `http://${host}:${ports.http}`;
    const server = {
      ...ports, base, wsUrl: `ws://${host}:${ports.ws}`, mediaDir, root, proc,
      stderr: () => log,
      alive: () => exited === null,
      async stop() {
        if (exited === null) {
          proc.kill('SIGTERM');
          const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
          await exitPromise;
          clearTimeout(t);
        }
        await rm(root, { recursive: true, force: true });
        return exited;
      },
    };

    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline && exited === null) {
      // Inside a namespace this process cannot reach it: its log says when it listens.
      if (netns) {
        if (/reelcast listening/.test(log)) return server;
        await sleep(100);
        continue;
      }
      try {
        const res = await fetch(`${base}/api/files`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return server;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    if (exited === null) {
      proc.kill('SIGKILL');
      await exitPromise;
      lastErr = new Error(`reelcast not ready within ${readyTimeoutMs} ms on ${base}; its output:\n${log}`);
      break;
    }
    // Exited early: maybe a port was taken between probing and binding; retry on new ports.
    lastErr = new Error(`reelcast exited (${JSON.stringify(exited)}) before it was ready; its output:\n${log}`);
    if (!/in use|AddrInUse/i.test(log)) break;
  }
  await rm(root, { recursive: true, force: true });
  throw lastErr;
}

/** Asserts the server process is still running and still answers /api/files. */
export async function assertServerUp(server) {
  if (!server.alive()) throw new Error(`reelcast died; its output:\n${server.stderr()}`);
  const res = await fetch(`${server.base}/api/files`, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`GET /api/files answered ${res.status}`);
}

/**
 * Headless Chromium with a fresh profile (--user-data-dir from mkdtemp).
 * Returns { context, newPage(), close() }; every page records each RTCPeerConnection
 * it creates in window.__pcs (so getStats() works on the SDK's internal pc too).
 * `args` adds Chromium flags (e.g. --ignore-certificate-errors for a self-signed wss).
 */
export async function launchBrowser({ args = [], executablePath = CHROMIUM } = {}) {
  requireFiles(CHROMIUM);
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-chromium-'));
  // launchPersistentContext is playwright's way to pass --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...args],
    timeout: 30000,
  });
  await context.addInitScript(recordPeerConnections);
  await context.addInitScript(defineWhepClient);
  const consoleLines = [];
  context.on('console', (msg) => { consoleLines.push(`[${msg.type()}] ${msg.text()}`); if (consoleLines.length > 500) consoleLines.shift(); });
  context.on('weberror', (err) => consoleLines.push(`[pageerror] ${err.error()}`));
  return {
    context,
    consoleLines,
    async newPage() {
      const pages = context.pages();
      // A persistent context opens with one blank tab: use it first.
      const blank = pages.find((p) => p.url() === 'about:blank' && !p.__used);
      const page = blank || (await context.newPage());
      page.__used = true;
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * Runs in every page before any script: `window.__whep`, the one in-page WHEP client of
 * the tests and benchmarks (a plain browser, no SDK). Steps are separate so a benchmark
 * can time each; `start` does them all.
 */
function defineWhepClient() {
  window.__whep = {
    /** A new RTCPeerConnection with recvonly video and audio transceivers. */
    peer() {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      return pc;
    },
    /** Sets the local offer and waits for ICE gathering (at most maxMs: the server is ICE-lite). */
    async offer(pc, maxMs = 2000) {
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        const t = setTimeout(resolve, maxMs);
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
        });
      });
    },
    /** POST /whep/{name} with the offer: {status, location, body, contentType}. */
    async post(pc, name) {
      const res = await fetch(`/whep/${encodeURIComponent(name)}`, {
        method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
      });
      const body = await res.text();
      return { status: res.status, location: res.headers.get('location'), body, contentType: res.headers.get('content-type') };
    },
    /** Applies a 201's answer; closes the pc on any other status. */
    async answer(pc, r) {
      if (r.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: r.body });
      else pc.close();
    },
    /** peer, offer, post, answer: {pc, status, location, body, contentType}. */
    async start(name) {
      const pc = this.peer();
      await this.offer(pc);
      const r = await this.post(pc, name);
      await this.answer(pc, r);
      return { pc, ...r };
    },
  };
}

/**
 * A server with `files` and a browser page on a same-origin document (so in-page fetches
 * need no CORS). Returns { server, browser, page, close() }.
 */
export async function serverAndPage({ files = [SAMPLE], sameOrigin = true } = {}) {
  const server = await startServer({ files });
  const browser = await launchBrowser();
  const page = await browser.newPage();
  if (sameOrigin) await page.goto(`${server.base}/api/files`);
  return {
    server,
    browser,
    page,
    async close() {
      await browser.close();
      await server.stop();
    },
  };
}

/** Runs in every page before any script: wraps RTCPeerConnection to record instances. */
function recordPeerConnections() {
  const Orig = window.RTCPeerConnection;
  if (!Orig || Orig.__reelcastWrapped) return;
  window.__pcs = [];
  class RecordedPeerConnection extends Orig {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  }
  RecordedPeerConnection.__reelcastWrapped = true;
  window.RTCPeerConnection = RecordedPeerConnection;
  if (window.webkitRTCPeerConnection) window.webkitRTCPeerConnection = RecordedPeerConnection;
}

/**
 * Inbound RTP stats of the newest RTCPeerConnection in the page, as plain numbers:
 * { pcs, connectionState, video: {framesDecoded, frameWidth, frameHeight, framesPerSecond,
 *   bytesReceived, packetsLost} | null, audio: {totalSamplesReceived, concealedSamples,
 *   bytesReceived, packetsLost} | null }.
 */
export async function readStats(page) {
  return page.evaluate(async () => {
    const pcs = window.__pcs || [];
    const pc = pcs[pcs.length - 1];
    if (!pc) return { pcs: 0, connectionState: null, video: null, audio: null };
    const out = { pcs: pcs.length, connectionState: pc.connectionState, video: null, audio: null };
    if (pc.connectionState === 'closed') return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const kind = s.kind || s.mediaType;
      if (kind === 'video') {
        out.video = {
          framesDecoded: s.framesDecoded || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          framesPerSecond: s.framesPerSecond || 0,
          bytesReceived: s.bytesReceived || 0,
          packetsLost: s.packetsLost || 0,
          keyFramesDecoded: s.keyFramesDecoded || 0,
          freezeCount: s.freezeCount || 0,
          nackCount: s.nackCount || 0,
          pliCount: s.pliCount || 0,
          retransmittedPacketsReceived: s.retransmittedPacketsReceived,
        };
      } else if (kind === 'audio') {
        out.audio = {
          totalSamplesReceived: s.totalSamplesReceived || 0,
          concealedSamples: s.concealedSamples || 0,
          bytesReceived: s.bytesReceived || 0,
          packetsLost: s.packetsLost || 0,
        };
      }
    });
    return out;
  });
}

/** Polls readStats until `pred(stats)` is true; rejects after timeoutMs with the last stats. */
export async function waitForStats(page, pred, { timeoutMs = 10000, intervalMs = 200, what = 'stats condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await readStats(page);
    if (pred(last)) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last stats: ${JSON.stringify(last)}`);
}

/**
 * Stats now and `ms` later, and the growth between them:
 * { first, last, frames, samples, concealed }.
 */
export async function measure(page, ms) {
  const first = await readStats(page);
  await sleep(ms);
  const last = await readStats(page);
  const d = (k, f) => ((last[k]?.[f] ?? 0) - (first[k]?.[f] ?? 0));
  return {
    first, last,
    frames: d('video', 'framesDecoded'),
    samples: d('audio', 'totalSamplesReceived'),
    concealed: d('audio', 'concealedSamples'),
  };
}

/**
 * Waits until the page's video has decoded `frames` more frames than now (a slow machine
 * gets there late, a broken server never): resolves like `measure`, with `ms` the time
 * it took; rejects at `timeoutMs` with what was seen.
 */
export async function waitForFrames(page, frames, { timeoutMs = 20000, what = `${frames} more decoded frames` } = {}) {
  const first = await readStats(page);
  const base = first.video?.framesDecoded ?? 0;
  const t0 = Date.now();
  let last;
  try {
    last = await waitForStats(page, (s) => (s.video?.framesDecoded ?? 0) - base >= frames, { timeoutMs, what });
  } catch (e) {
    throw new Error(`${e.message} (from ${base} decoded frames)`);
  }
  const d = (k, f) => ((last[k]?.[f] ?? 0) - (first[k]?.[f] ?? 0));
  return {
    first, last, ms: Date.now() - t0,
    frames: d('video', 'framesDecoded'),
    samples: d('audio', 'totalSamplesReceived'),
    concealed: d('audio', 'concealedSamples'),
  };
}

/** Path of the official SDK's prebuilt browser bundle (UMD, sets window.Flashphoner). */
export function sdkBundlePath() {
  const dir = path.join(here, 'node_modules', '@flashphoner', 'websdk');
  if (!existsSync(path.join(dir, 'package.json'))) {
    throw new Error(`@flashphoner/websdk is not installed in ${here} (run: npm ci in tests/e2e)`);
  }
  // flashphoner.js is the bundle the WCS examples load; the WebRTC-only one is the fallback.
  for (const name of ['flashphoner.js', 'flashphoner-webrtc-only.js']) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  const found = readdirSync(dir).filter((n) => /^flashphoner.*\.js$/.test(n));
  throw new Error(`no flashphoner.js bundle in ${dir} (has: ${found.join(', ')})`);
}

export function sdkVersion() {
  const dir = path.join(here, 'node_modules', '@flashphoner', 'websdk');
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}

let pageOrigin;
/**
 * The origin of "the customer's web app": a tiny HTTP server on 127.0.0.1 serving an
 * empty page. The SDK needs a secure context (http://127.0.0.1 is one, about:blank is
 * not: no navigator.getUserMedia there, so the SDK would not offer WebRTC).
 */
async function appOrigin() {
  if (!pageOrigin) {
    pageOrigin = new Promise((resolve, reject) => {
      const srv = http.createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end('<!doctype html><meta charset="utf-8"><title>sdk test page</title><div id="displays"></div>');
      });
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${srv.address().port}`));
    });
  }
  return pageOrigin;
}

/**
 * A page (served from 127.0.0.1, a secure context) with the official SDK loaded and initialised, plus window.__play(url, name):
 * connects a session, plays `name` into a fresh display div and records every stream
 * status in window.__events (objects {status, info, t}). Resolves to the page.
 */
export async function openSdkPage(browser) {
  const page = await browser.newPage();
  await page.goto(`${await appOrigin()}/`);
  await page.addScriptTag({ path: sdkBundlePath() });
  await page.evaluate(async () => {
    if (!window.Flashphoner) throw new Error('the SDK bundle did not define window.Flashphoner');
    await Flashphoner.init({});
    const providers = Flashphoner.getMediaProviders();
    if (!providers.includes('WebRTC')) throw new Error(`the SDK offers no WebRTC here (providers: ${providers})`);
    window.__events = [];
    window.__sessions = {};
    window.__session = (url) => {
      if (window.__sessions[url]) return window.__sessions[url];
      const S = Flashphoner.constants.SESSION_STATUS;
      const p = new Promise((resolve, reject) => {
        Flashphoner.createSession({ urlServer: url })
          .on(S.ESTABLISHED, (s) => resolve(s))
          .on(S.FAILED, () => reject(new Error('session FAILED')))
          .on(S.DISCONNECTED, () => { delete window.__sessions[url]; reject(new Error('session DISCONNECTED')); });
      });
      window.__sessions[url] = p;
      return p;
    };
    window.__play = async (url, name) => {
      const session = await window.__session(url);
      const div = document.createElement('div');
      div.style.width = '320px';
      div.style.height = '240px';
      document.getElementById('displays').appendChild(div);
      const S = Flashphoner.constants.STREAM_STATUS;
      const t0 = performance.now();
      const events = [];
      window.__events.push(events);
      div.dataset.play = String(window.__events.length - 1);
      const stream = session.createStream({ name, display: div });
      for (const st of [S.PENDING, S.PLAYING, S.STOPPED, S.FAILED, S.PLAYBACK_PROBLEM, S.NOT_ENOUGH_BANDWIDTH]) {
        // t: ms since this play started; at: the page's clock, to compare plays with each other.
        stream.on(st, (s) => events.push({
          status: st, info: s.getInfo ? s.getInfo() : undefined,
          t: Math.round(performance.now() - t0), at: Math.round(performance.now()),
        }));
      }
      window.__lastStream = stream;
      stream.play();
      return window.__events.length - 1;
    };
  });
  return page;
}

/** Plays `name` through the SDK in `page`; returns the index of its event list. */
export async function sdkPlay(page, server, name) {
  return page.evaluate(([url, n]) => window.__play(url, n), [server.wsUrl, name]);
}

/** The status events recorded so far for play number `idx`. */
export async function sdkEvents(page, idx) {
  return page.evaluate((i) => window.__events[i], idx);
}

/** Waits until play `idx` has an event with one of `statuses`; returns that event. */
export async function waitForStatus(page, idx, statuses, timeoutMs = 10000) {
  const want = [].concat(statuses);
  const deadline = Date.now() + timeoutMs;
  let events = [];
  while (Date.now() < deadline) {
    events = await sdkEvents(page, idx);
    const hit = events.find((e) => want.includes(e.status));
    if (hit) return hit;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${want.join('/')}; events so far: ${JSON.stringify(events)}`);
}

/**
 * What the user sees: the <video> the SDK made inside the display div of play `idx`:
 * { found, width, height, currentTime, paused, muted, tracks: ['video','audio'...] }.
 */
export async function sdkDisplay(page, idx) {
  return page.evaluate((i) => {
    const v = document.querySelector(`#displays div[data-play="${i}"] video`);
    if (!v) return { found: false };
    const src = v.srcObject;
    return {
      found: true, width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime,
      paused: v.paused, muted: v.muted,
      tracks: src && src.getTracks ? src.getTracks().map((t) => t.kind).sort() : [],
    };
  }, idx);
}

/** Stops the SDK's last stream (ignoring errors if it already ended). */
export async function sdkStopLast(page) {
  await page.evaluate(() => { try { window.__lastStream && window.__lastStream.stop(); } catch (e) { /* released */ } });
}

/** A readable failure message: what happened plus the tail of the server log. */
export function withServerLog(server, msg) {
  // eslint-disable-next-line no-control-regex
  const tail = server.stderr().replace(/\x1b\[[0-9;]*m/g, '').split('\n').slice(-60).join('\n');
  return `${msg}\n--- reelcast output (tail) ---\n${tail}`;
}

/** Chromium's fake capture devices (camera and microphone), granted without a prompt. */
export const FAKE_MEDIA_FLAGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

/**
 * Adds window.__publish(url, name, record, constraints) to an SDK page (openSdkPage):
 * publishes the page's camera and microphone as `name` through the SDK (`constraints`:
 * the SDK's, e.g. {audio: true, video: {width: 640, height: 360}}; the SDK's own
 * default is 320x240), records each status in
 * window.__events like __play (with the SDK's getRecordInfo() and `at`, the page's
 * clock), and returns the index of its event list. window.__unpublish(i) stops it and
 * returns the page's clock when it was asked to.
 */
export async function addSdkPublisher(page) {
  await page.evaluate(() => {
    window.__publishers = [];
    window.__publish = async (url, name, record, constraints) => {
      const session = await window.__session(url);
      const div = document.createElement('div');
      document.getElementById('displays').appendChild(div);
      const S = Flashphoner.constants.STREAM_STATUS;
      const t0 = performance.now();
      const events = [];
      window.__events.push(events);
      const stream = session.createStream({ name, display: div, record, ...(constraints ? { constraints } : {}) });
      for (const st of [S.PENDING, S.PUBLISHING, S.UNPUBLISHED, S.FAILED]) {
        stream.on(st, (s) => events.push({
          status: st, info: s.getInfo ? s.getInfo() : undefined,
          recordInfo: s.getRecordInfo ? s.getRecordInfo() : undefined,
          t: Math.round(performance.now() - t0), at: performance.now(),
        }));
      }
      window.__publishers.push(stream);
      stream.publish();
      return window.__events.length - 1;
    };
    window.__unpublish = (i) => {
      const at = performance.now();
      window.__publishers[i].stop();
      return at;
    };
  });
}

/** POST `${server.base}/rest-api${path}` with a JSON body: { status, body (parsed or null) }. */
export async function restPost(server, path, body) {
  const res = await fetch(`${server.base}/rest-api${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/**
 * A metric's value in the server's /metrics: an unlabelled gauge, or a counter by its full
 * name (`…_total`); `name` without the `reelcast_` prefix. Fails if the line is absent.
 */
export async function metricValue(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const escaped = name.replace(/[{}"=,]/g, (c) => `\\${c}`);
  const m = text.match(new RegExp(`^reelcast_${escaped} (\\d+(?:\\.\\d+)?)$`, 'm'));
  if (!m) throw new Error(`no reelcast_${name} in /metrics`);
  return Number(m[1]);
}

/** Waits until `metricValue(server, name)` is `value`; fails after `timeoutMs` saying `what`. */
export async function metricBecomes(server, name, value, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let now;
  while ((now = await metricValue(server, name)) !== value) {
    if (Date.now() >= deadline) {
      throw new Error(withServerLog(server, `${what}: reelcast_${name} is ${now}, not ${value}`));
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Makes `dir/name`: `seconds` of WIDTHxHEIGHT testsrc2 at `fps` as H.264 without B-frames
 * (a keyframe each second) and a 440 Hz tone as AAC, moov first. Returns its path.
 */
export function makeH264File(dir, { name = 'test.mp4', width = 640, height = 360, fps = 30, seconds = 20 } = {}) {
  const file = path.join(dir, name);
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-g', String(fps),
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k', '-movflags', '+faststart', file]);
  return file;
}
