// Measures lip sync: how long after each flash of the probe file its beep is heard, in
// headless Chromium, for one of these ways of playing it:
//
//   reference  the file in a <video>, captured (captureStream) and sent through an
//              in-page RTCPeerConnection pair: what Chromium's own WebRTC does with it
//   file       the file in a <video>, no WebRTC: the probe's own bias
//   vod        reelcast, personal VOD (vod://) played with the WCS SDK
//   live       reelcast, a live translation (vod-live://): a WHEP viewer from the start
//              and a WCS SDK viewer joining LATE_JOIN_MS later
//
// Usage: node tests/e2e/lipsync_probe.mjs MODE   → one JSON line on stdout:
//   { mode, viewers: { NAME: { offsets: [ms...], median, flashes, beeps, frames } } }
// tests/e2e/lipsync.test.mjs runs it inside a network namespace that has only a loopback
// interface (so the in-page pair and the browser can only talk over loopback); run by
// hand the same way:
//   ip netns add ls && ip netns exec ls ip link set lo up
//   ip netns exec ls node tests/e2e/lipsync_probe.mjs vod; ip netns del ls
// LIPSYNC_RAW=1 adds each flash and beep time and, per second, the receiver's own audio
// and video jitter-buffer delays and targets (getStats): what found the causes.

import { readFileSync } from 'node:fs';
import {
  launchBrowser, openSdkPage, requireFiles, sdkPlay, startServer, testMedia, waitForStatus,
} from './helpers.mjs';
import { avOffsets, installAvProbe, median, readAv } from './avsync.mjs';

export const PROBE_FILE = testMedia('lipsync.mp4'); // 24 s: flash + 1 kHz beep at every whole second
const PLAY_MS = 23000;
/** The late joiner of a translation comes this long after the first viewer. */
const LATE_JOIN_MS = 8000;
/** Offsets are taken over SPAN_MS from SETTLE_MS after a viewer's first flash: the same
 * window of every viewer's playback. Chromium's A/V sync needs two sender reports before
 * it acts, then moves its delays by about an eighth of the error a second (for the
 * in-page pair too: its offset keeps drifting for 20 s), so a window later in playback
 * would compare different states of it. */
const SETTLE_MS = 4000;
const SPAN_MS = 9000;

/** Inside the test's namespace loopback is the only interface: let WebRTC use it, and
 * give plain addresses (no mDNS names: nothing there could resolve them). */
const BROWSER_ARGS = [
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
];

/**
 * Chromium offers loopback candidates only to a page that was granted media access
 * (--allow-loopback-in-peer-connection alone is not enough): a getUserMedia call does it.
 */
async function allowLoopbackCandidates(page) {
  await page.evaluate(async () => {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true });
    s.getTracks().forEach((t) => t.stop());
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function summary(rec) {
  const offsets = avOffsets(rec, { skipMs: SETTLE_MS, spanMs: SPAN_MS }).map((x) => Math.round(x * 10) / 10);
  return {
    offsets, median: median(offsets), flashes: rec.flashes.length, beeps: rec.beeps.length,
    frames: rec.frames, audioAlive: rec.audioAlive,
    ...(process.env.LIPSYNC_RAW ? { rawFlashes: rec.flashes.map(Math.round), rawBeeps: rec.beeps.map(Math.round), stats: rec.stats } : {}),
  };
}

/** Watches the <video> of SDK play `idx`; returns the probe record index. */
async function watchSdk(page, idx) {
  await installAvProbe(page);
  return page.evaluate(async (i) => {
    const deadline = Date.now() + 10000;
    for (;;) {
      const video = document.querySelector(`[data-play="${i}"] video`);
      if (video) return window.__av.watch(video);
      if (Date.now() > deadline) throw new Error('the SDK made no <video>');
      await new Promise((r) => setTimeout(r, 20));
    }
  }, idx);
}

/** A page on a made-up origin that serves the probe file, with the probe installed. */
async function probeFilePage(browser) {
  const page = await browser.newPage();
  const file = readFileSync(PROBE_FILE);
  // A made-up origin served by the test itself (127.0.0.1 is a secure context, which
  // AudioWorklet needs); nothing goes on the network.
  await page.route('http://127.0.0.1:9/**', (route) => route.request().url().endsWith('.mp4')
    ? route.fulfill({ body: file, contentType: 'video/mp4' })
    : route.fulfill({ body: '<!doctype html><title>lip sync reference</title>', contentType: 'text/html' }));
  await page.goto('http://127.0.0.1:9/');
  await allowLoopbackCandidates(page);
  await installAvProbe(page);
  return page;
}

async function reference(browser) {
  const page = await probeFilePage(browser);
  const idx = await page.evaluate(async () => {
    const src = document.createElement('video');
    src.src = '/lipsync.mp4';
    document.body.appendChild(src);
    await src.play();
    const captured = src.captureStream();
    for (let i = 0; captured.getTracks().length < 2 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    const pc1 = new RTCPeerConnection();
    const pc2 = new RTCPeerConnection();
    pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
    pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
    const out = document.createElement('video');
    out.autoplay = true;
    document.body.appendChild(out);
    // Each track in a stream of its own, so the receiver does not A/V-sync them: the
    // captured tracks carry capture times that differ by the element's audio output
    // delay, and synced by them the pair's offset drifts by ~8 ms a second for 20 s
    // (from +70 to -120 ms, measured). Unsynced it shows Chromium's transport as is.
    const shown = new MediaStream();
    out.srcObject = shown;
    pc2.ontrack = (e) => { shown.addTrack(e.track); out.play().catch(() => {}); };
    for (const t of captured.getTracks()) pc1.addTrack(t, new MediaStream([t]));
    await pc1.setLocalDescription(await pc1.createOffer());
    await pc2.setRemoteDescription(pc1.localDescription);
    await pc2.setLocalDescription(await pc2.createAnswer());
    await pc1.setRemoteDescription(pc2.localDescription);
    window.__refPcs = [pc1, pc2];
    window.__statsPc = pc2;
    return window.__av.watch(out);
  });
  await sleep(PLAY_MS - 2000);
  return { reference: summary(await readAv(page, idx)) };
}

/** The file itself in a <video>: what the probe measures with no WebRTC at all. */
async function file(browser) {
  const page = await probeFilePage(browser);
  const idx = await page.evaluate(async () => {
    const v = document.createElement('video');
    v.src = '/lipsync.mp4';
    document.body.appendChild(v);
    await v.play();
    return window.__av.watch(v);
  });
  await sleep(PLAY_MS - 2000);
  return { file: summary(await readAv(page, idx)) };
}

async function vod(browser, server) {
  const page = await openSdkPage(browser);
  await allowLoopbackCandidates(page);
  const play = await sdkPlay(page, server, 'vod://lipsync.mp4');
  const idx = await watchSdk(page, play);
  await waitForStatus(page, play, 'PLAYING', 15000);
  await sleep(PLAY_MS);
  return { vod: summary(await readAv(page, idx)) };
}

async function live(browser, server) {
  const name = 'vod-live://lipsync.mp4';
  const whepPage = await browser.newPage();
  await whepPage.goto(`${server.base}/api/files`);
  await allowLoopbackCandidates(whepPage);
  await installAvProbe(whepPage);
  const first = await whepPage.evaluate(async (streamName) => {
    const pc = window.__whep.peer();
    const video = document.createElement('video');
    video.autoplay = true;
    document.body.appendChild(video);
    pc.ontrack = (e) => { if (video.srcObject !== e.streams[0]) { video.srcObject = e.streams[0]; video.play().catch(() => {}); } };
    const index = window.__av.watch(video);
    await window.__whep.offer(pc);
    const r = await window.__whep.post(pc, streamName);
    if (r.status !== 201) throw new Error(`WHEP POST answered ${r.status}: ${r.body}`);
    await window.__whep.answer(pc, r);
    return index;
  }, name);
  await sleep(LATE_JOIN_MS);
  const sdkPage = await openSdkPage(browser);
  await allowLoopbackCandidates(sdkPage);
  const play = await sdkPlay(sdkPage, server, name);
  const late = await watchSdk(sdkPage, play);
  await waitForStatus(sdkPage, play, 'PLAYING', 15000);
  await sleep(PLAY_MS - LATE_JOIN_MS - 1000);
  return {
    translation: summary(await readAv(whepPage, first)),
    late_joiner: summary(await readAv(sdkPage, late)),
  };
}

async function main(mode) {
  requireFiles(PROBE_FILE);
  const modes = { file, reference, vod, live };
  if (!modes[mode]) throw new Error(`mode must be one of ${Object.keys(modes).join(', ')}`);
  const server = ['file', 'reference'].includes(mode) ? null : await startServer({ files: [PROBE_FILE] });
  const browser = await launchBrowser({ args: BROWSER_ARGS });
  try {
    const viewers = await modes[mode](browser, server);
    process.stdout.write(`${JSON.stringify({ mode, viewers })}\n`);
  } catch (e) {
    if (server) e.message += `\n--- reelcast output (tail) ---\n${server.stderr().split('\n').slice(-40).join('\n')}`;
    throw e;
  } finally {
    await browser.close();
    if (server) await server.stop();
  }
}

main(process.argv[2]).catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
