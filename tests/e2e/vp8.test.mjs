// VP8 for a viewer whose browser offers no H.264 (issue 15; some Android and Firefox
// builds). Checked in Chromium with H.264 taken out of its WHEP offer
// (`setCodecPreferences` keeping VP8 alone): a vod-live translation and a vod:// file play
// as VP8 (getStats' codec of the inbound video) at the file's frame rate; an H.264 viewer
// of the same translation still gets H.264; the official SDK, its offer munged to VP8
// alone, plays as VP8; so does a published stream; with transcoding_disabled=true such an offer is refused in plain
// words.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  addSdkPublisher, FAKE_MEDIA_FLAGS, launchBrowser, makeH264File, openSdkPage, readStats, sdkPlay, startServer,
  waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FPS = 30;

/**
 * Plays `name` over WHEP in `page`; with `vp8Only`, the offer's video has VP8 alone.
 * Returns { status, body }.
 */
async function whepPlay(page, name, vp8Only) {
  return page.evaluate(async ([n, only]) => {
    const pc = new RTCPeerConnection();
    const video = pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    if (only) {
      const codecs = RTCRtpReceiver.getCapabilities('video').codecs
        .filter((c) => c.mimeType === 'video/VP8');
      video.setCodecPreferences(codecs);
    }
    const el = document.createElement('video');
    el.autoplay = true;
    el.muted = true;
    document.body.appendChild(el);
    pc.ontrack = (e) => { el.srcObject = e.streams[0]; el.play().catch(() => {}); };
    await window.__whep.offer(pc);
    const offer = pc.localDescription.sdp;
    const res = await fetch(`/whep/${encodeURIComponent(n)}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer,
    });
    const body = await res.text();
    if (res.status !== 201) { pc.close(); return { status: res.status, body, offer }; }
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    return { status: 201, body, offer };
  }, [name, vp8Only]);
}

/**
 * Makes every offer in `page` VP8-only by taking H.264 (and its retransmission formats)
 * out of the SDP the page's code gets from `createOffer`: how the SDK, which has no
 * codec option, is made to look like a browser without H.264.
 */
async function mungeOffersToVp8(page) {
  await page.evaluate(() => {
    const createOffer = RTCPeerConnection.prototype.createOffer;
    RTCPeerConnection.prototype.createOffer = async function (...args) {
      const offer = await createOffer.apply(this, args);
      const lines = offer.sdp.split('\r\n');
      const h264 = new Set(lines.map((l) => l.match(/^a=rtpmap:(\d+) H264\/90000/)?.[1]).filter(Boolean));
      for (const l of lines) {
        const m = l.match(/^a=fmtp:(\d+) apt=(\d+)/);
        if (m && h264.has(m[2])) h264.add(m[1]);
      }
      const out = lines.filter((l) => {
        const pt = l.match(/^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/)?.[1];
        return !(pt && h264.has(pt));
      }).map((l) => (l.startsWith('m=video ')
        ? l.split(' ').filter((w, i) => i < 3 || !h264.has(w)).join(' ')
        : l));
      return { type: offer.type, sdp: out.join('\r\n') };
    };
  });
}

/** The mime type of the newest peer connection's inbound video codec, per getStats. */
async function videoCodec(page) {
  return page.evaluate(async () => {
    const pc = window.__pcs[window.__pcs.length - 1];
    const stats = await pc.getStats();
    let codecId;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') codecId = s.codecId; });
    return codecId ? stats.get(codecId)?.mimeType : undefined;
  });
}

/** Pictures decoded at the file's rate (80 % of it) for 4 s, in `codec`. */
async function assertPlays(page, server, codec, what) {
  await waitForStats(page, (s) => s.video?.framesDecoded > 10, { timeoutMs: 20000, what: `${what}: pictures` })
    .catch((e) => { throw new Error(withServerLog(server, e.message)); });
  const first = await readStats(page);
  const t0 = Date.now();
  await sleep(4000);
  const last = await readStats(page);
  const seconds = (Date.now() - t0) / 1000;
  const frames = (last.video?.framesDecoded ?? 0) - first.video.framesDecoded;
  assert.ok(frames >= 0.8 * FPS * seconds,
    withServerLog(server, `${what}: ${frames} frames in ${seconds.toFixed(1)} s (source: ${FPS} fps)`));
  assert.equal(`${last.video.frameWidth}x${last.video.frameHeight}`, '640x360', what);
  assert.ok(last.audio?.totalSamplesReceived > 0, `${what}: no sound`);
  assert.equal(await videoCodec(page), codec, what);
}

describe('VP8 for browsers without H.264', { timeout: 300000 }, () => {
  let dir;
  let file;
  let browser;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'reelcast-vp8-'));
    file = makeH264File(dir, { name: 'v360.mp4', fps: FPS });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a VP8-only viewer of a translation gets VP8; an H.264 viewer of it still gets H.264; a vod:// file plays as VP8', { timeout: 120000 }, async () => {
    const server = await startServer({ files: [file], settings: { vod_live_loop: 'true' } });
    try {
      const open = async () => {
        const page = await browser.newPage();
        await page.goto(`${server.base}/api/files`);
        return page;
      };
      const vp8 = await open();
      const r = await whepPlay(vp8, 'vod-live://v360.mp4', true);
      assert.ok(!/H264/.test(r.offer), 'the offer still has H.264');
      assert.equal(r.status, 201, withServerLog(server, `VP8 viewer refused: ${r.body}`));
      assert.match(r.body, /VP8\/90000/);
      assert.doesNotMatch(r.body, /H264\/90000/);
      const h264 = await open();
      const h = await whepPlay(h264, 'vod-live://v360.mp4', false);
      assert.equal(h.status, 201, h.body);
      assert.match(h.body, /H264\/90000/);
      assert.doesNotMatch(h.body, /VP8\/90000/);
      await assertPlays(vp8, server, 'video/VP8', 'VP8 viewer of the translation');
      await assertPlays(h264, server, 'video/H264', 'H.264 viewer of the translation');
      await vp8.close();
      await h264.close();

      const file = await open();
      const f = await whepPlay(file, 'vod://v360.mp4', true);
      assert.equal(f.status, 201, withServerLog(server, `VP8 viewer of a file refused: ${f.body}`));
      await assertPlays(file, server, 'video/VP8', 'VP8 viewer of vod://');
      await file.close();
    } finally {
      await server.stop();
    }
  });

  test('the SDK with an offer munged to VP8 alone plays a translation as VP8', { timeout: 60000 }, async () => {
    const server = await startServer({ files: [file], settings: { vod_live_loop: 'true' } });
    try {
      const page = await openSdkPage(browser);
      await mungeOffersToVp8(page);
      const idx = await sdkPlay(page, server, 'vod-live://v360.mp4');
      const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000);
      assert.equal(ev.status, 'PLAYING', withServerLog(server, `SDK VP8 play: ${JSON.stringify(ev)}`));
      await assertPlays(page, server, 'video/VP8', 'SDK VP8 viewer');
      await page.close();
    } finally {
      await server.stop();
    }
  });

  test('a VP8-only viewer of a published stream gets VP8', { timeout: 90000 }, async () => {
    const server = await startServer({ files: [file] });
    const camera = await launchBrowser({ args: FAKE_MEDIA_FLAGS });
    try {
      const pub = await openSdkPage(camera);
      await addSdkPublisher(pub);
      const p = await pub.evaluate(([url]) => window.__publish(url, 'cam', false, { audio: true, video: { width: 640, height: 360 } }), [server.wsUrl]);
      const pev = await waitForStatus(pub, p, ['PUBLISHING', 'FAILED', 'UNPUBLISHED'], 20000);
      assert.equal(pev.status, 'PUBLISHING', withServerLog(server, JSON.stringify(pev)));
      const page = await browser.newPage();
      await page.goto(`${server.base}/api/files`);
      const r = await whepPlay(page, 'cam', true);
      assert.equal(r.status, 201, withServerLog(server, `VP8 viewer of a published stream refused: ${r.body}`));
      // The camera's rate drops under load: pictures keep coming, as VP8.
      const first = await waitForStats(page, (s) => s.video?.framesDecoded > 10, { timeoutMs: 15000, what: 'VP8 pictures of the published stream' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      await sleep(3000);
      const later = await readStats(page);
      assert.ok(later.video.framesDecoded - first.video.framesDecoded >= 30,
        withServerLog(server, `${later.video.framesDecoded - first.video.framesDecoded} pictures in 3 s`));
      assert.equal(await videoCodec(page), 'video/VP8');
      await page.close();
    } finally {
      await camera.close();
      await server.stop();
    }
  });

  test('transcoding_disabled=true refuses a VP8-only offer in plain words', { timeout: 60000 }, async () => {
    const server = await startServer({ files: [file], settings: { transcoding_disabled: 'true', vod_live_loop: 'true' } });
    try {
      const page = await browser.newPage();
      await page.goto(`${server.base}/api/files`);
      for (const name of ['vod-live://v360.mp4', 'vod://v360.mp4']) {
        const r = await whepPlay(page, name, true);
        assert.notEqual(r.status, 201, `${name}: a VP8-only offer was answered`);
        assert.match(r.body, /Transcoding required, but disabled/, `${name}: ${r.body}`);
      }
      await page.close();
    } finally {
      await server.stop();
    }
  });
});
