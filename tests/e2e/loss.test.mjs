// A lossy link between reelcast and the browser: lost video packets are asked for again
// (NACK) and re-sent (RTX) from the server's resend cache, so the picture keeps moving.
//
// The server announces 127.0.0.2 in its ICE candidate and listens on 127.0.0.1; a UDP
// relay (relay.mjs) listens on 127.0.0.2 with the same port and passes everything on,
// except every 25th large RTP packet from the server (video; audio packets are small).
// Without working retransmission each loss breaks a picture, and a file server can only
// answer the browser's picture-loss request with a keyframe and a still picture until the
// next real one: the frame rate would collapse.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SAMPLE, launchBrowser, readStats, startServer, testMedia, waitForStats, withServerLog,
} from './helpers.mjs';
import { FRONT_IP, udpRelay } from './relay.mjs';

const LONG_GOP = testMedia('long_gop.mp4'); // 30 s, 25 fps, a keyframe every 10 s

const DROP_EVERY = 25;

/** RTP (not RTCP, not STUN or DTLS) and larger than any Opus packet of the test file. */
function isLargeRtp(msg) {
  const pt = msg.length > 1 ? msg[1] & 0x7f : 0;
  return msg.length > 300 && msg[0] >= 0x80 && msg[0] < 0xc0 && !(pt >= 64 && pt <= 95);
}

/**
 * A UDP relay on FRONT_IP:port to the server on 127.0.0.1:port that drops every
 * `dropEvery`th large RTP packet (0: none), and on request one picture that cannot be
 * repaired (`breakPicture`).
 */
async function lossyRelay(port, { dropEvery = DROP_EVERY } = {}) {
  // bySsrc: large RTP packets passed on per SSRC (clear in the SRTP header): the video
  // stream's and the RTX stream's, whose packets prove a re-send.
  const stats = { large: 0, dropped: 0, bySsrc: {} };
  // Per browser address, per SSRC: the video's RTP time (90 kHz) advanced so far, from the
  // clear RTP header, counted before any drop: how much video the server sent that viewer.
  const mediaTime = new Map();
  // breakPicture(): the newest viewer's next video packet is dropped, and so is every
  // re-send to it (its other SSRCs) until `repairsBlockedUntil`.
  let breaking = null;
  function unrepairable(key, rtp) {
    if (!breaking || breaking.key !== key) return false;
    const ssrc = rtp.readUInt32BE(8);
    if (ssrc === breaking.video) {
      if (breaking.dropped) return false;
      breaking.dropped = true;
      return true;
    }
    return Date.now() < breaking.repairsBlockedUntil;
  }
  const relay = await udpRelay(port, (key) => (back) => {
    if (!isLargeRtp(back)) return true;
    noteTime(key, back);
    if (unrepairable(key, back)) {
      stats.unrepaired = (stats.unrepaired || 0) + 1;
      return false;
    }
    if (dropEvery && ++stats.large % dropEvery === 0) {
      stats.dropped++;
      return false;
    }
    const ssrc = back.readUInt32BE(8);
    stats.bySsrc[ssrc] = (stats.bySsrc[ssrc] || 0) + 1;
    return true;
  });
  function noteTime(key, rtp) {
    const ssrc = rtp.readUInt32BE(8);
    const ts = rtp.readUInt32BE(4);
    const byViewer = mediaTime.get(key) || new Map();
    mediaTime.set(key, byViewer);
    const t = byViewer.get(ssrc);
    if (!t) { byViewer.set(ssrc, { packets: 1, last: ts, ticks: 0 }); return; }
    t.packets++;
    const step = (ts - t.last) | 0; // signed 32-bit: across a wrap too
    if (step > 0) { t.ticks += step; t.last = ts; }
  }
  /** The newest viewer's key and its video's record (the SSRC with most packets). */
  function newestVideo() {
    const [key, byViewer] = [...mediaTime.entries()].pop() || [];
    if (!byViewer) return {};
    const [ssrc, t] = [...byViewer.entries()].sort((a, b) => b[1].packets - a[1].packets)[0];
    return { key, ssrc, t };
  }
  return {
    stats,
    /** Loses the newest viewer's next video packet for good (re-sends blocked for `ms`). */
    breakPicture(ms) {
      const { key, ssrc } = newestVideo();
      breaking = { key, video: ssrc, dropped: false, repairsBlockedUntil: Date.now() + ms };
    },
    /** Seconds of video sent to the newest viewer so far (its video SSRC: the one with most packets). */
    newestViewerVideoSeconds() {
      const { t } = newestVideo();
      return t ? t.ticks / 90000 : 0;
    },
    close: () => relay.close(),
  };
}

/**
 * Whether the newest viewer's picture keeps its frame rate, whatever the machine's pace:
 * waits until the server has sent it `seconds` more of video (by RTP time, through the
 * relay), then until the browser has decoded at least `share` of the frames in that much
 * video (25 fps). A picture broken by loss, or held still until the next keyframe, decodes
 * far fewer than the video that passed, and fails at the deadline with the counts.
 */
async function keepsFrameRate(page, relay, seconds, { share = 0.9, timeoutMs = 45000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  const first = await readStats(page);
  const s0 = relay.newestViewerVideoSeconds();
  const decoded = (s) => (s.video?.framesDecoded ?? 0) - (first.video?.framesDecoded ?? 0);
  while (relay.newestViewerVideoSeconds() - s0 < seconds) {
    if (Date.now() > deadline) {
      throw new Error(`only ${(relay.newestViewerVideoSeconds() - s0).toFixed(1)} s of video sent in ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const sent = relay.newestViewerVideoSeconds() - s0;
  const wanted = Math.floor(share * 25 * sent);
  const last = await waitForStats(page, (s) => decoded(s) >= wanted,
    { timeoutMs: left(), what: `${wanted} frames decoded of ${sent.toFixed(1)} s of video sent (25 fps)` });
  return { first, last, sent, frames: decoded(last) };
}

/** In the page: a WHEP viewer of `name` in a new muted <video>; the POST's status. */
function whepPlay(page, name) {
  return page.evaluate(async (streamName) => {
    const pc = window.__whep.peer();
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    document.body.appendChild(video);
    pc.ontrack = (e) => { video.srcObject = e.streams[0]; video.play().catch(() => {}); };
    await window.__whep.offer(pc);
    const res = await window.__whep.post(pc, streamName);
    await window.__whep.answer(pc, res);
    return res.status;
  }, name);
}

describe('a lossy link (4 % of video packets lost)', { timeout: 150000 }, () => {
  let server;
  let relay;
  let browser;
  let page;

  before(async () => {
    server = await startServer({
      files: [SAMPLE, LONG_GOP],
      settings: { ip: FRONT_IP, ip_local: '127.0.0.1', vod_live_loop: 'true' },
    });
    relay = await lossyRelay(server.media);
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.goto(`${server.base}/api/files`);
  }, { timeout: 60000 });

  after(async () => {
    await browser?.close();
    relay?.close();
    await server?.stop();
  });

  test('lost video packets are re-sent on NACK: the picture keeps its frame rate', { timeout: 40000 }, async (t) => {
    const r = await whepPlay(page, 'vod://sample.mp4');
    assert.equal(r, 201, withServerLog(server, `POST /whep answered ${r}`));
    await waitForStats(page, (s) => s.video?.framesDecoded > 0, { timeoutMs: 10000, what: 'a first frame through the relay' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    // 5 s of video through the relay: the picture keeps its frame rate when losses are
    // repaired in time.
    let m;
    try {
      m = await keepsFrameRate(page, relay, 5);
    } catch (e) {
      throw new Error(withServerLog(server, `the picture stalled: ${e.message}; relay ${JSON.stringify(relay.stats)}`));
    }
    const v = m.last.video;
    const detail = `relay ${JSON.stringify(relay.stats)}, video ${JSON.stringify(v)}, ${m.frames} frames decoded in ${m.sent.toFixed(1)} s of video`;
    t.diagnostic(detail);
    assert.ok(relay.stats.dropped >= 10, `the relay dropped too little to test anything: ${detail}`);
    assert.ok(v.nackCount > 0, `the browser never asked for a lost packet: ${detail}`);
    // The video SSRC carries most large packets; re-sends come on the RTX SSRC.
    const counts = Object.values(relay.stats.bySsrc).sort((a, b) => b - a);
    const resent = counts.slice(1).reduce((a, b) => a + b, 0);
    assert.ok(resent >= relay.stats.dropped / 2, `${resent} packets re-sent on RTX for ${relay.stats.dropped} lost: ${detail}`);
  });

  test('a late joiner on a 10 s GOP: its catch-up burst is repaired too, and the picture goes on past the next keyframe', { timeout: 100000 }, async (t) => {
    const name = 'vod-live://long_gop.mp4';
    assert.equal(await whepPlay(page, name), 201);
    await waitForStats(page, (s) => s.video?.framesDecoded > 0, { timeoutMs: 10000, what: 'the first viewer\'s picture' });
    // Mid-GOP: the joiner's first picture needs the GOP so far, sent at once through the loss.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const joined = Date.now();
    assert.equal(await whepPlay(page, name), 201);
    await waitForStats(page, (s) => s.video?.framesDecoded > 0, { timeoutMs: 10000, what: 'the late joiner\'s first frame' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    const firstFrameMs = Date.now() - joined;
    // 12 s of video (300 frames): across the next keyframe, where the joiner's resend
    // cache is made anew. When a repair comes too late the browser asks for a picture,
    // and the server re-sends the GOP so far: the picture goes on (with the keyframe alone
    // re-sent, the picture stood still until the next real keyframe).
    let m;
    try {
      m = await keepsFrameRate(page, relay, 12);
    } catch (e) {
      throw new Error(withServerLog(server, `the joiner's picture stalled: ${e.message}; relay ${JSON.stringify(relay.stats)}`));
    }
    const v = m.last.video;
    const detail = `first frame after ${firstFrameMs} ms; relay ${JSON.stringify(relay.stats)}, ` +
      `video ${JSON.stringify(v)}, ${m.frames} frames decoded in ${m.sent.toFixed(1)} s of video`;
    t.diagnostic(detail);
    assert.ok(v.nackCount > 0, `no loss reached the joiner: ${detail}`);
    assert.ok(v.keyFramesDecoded >= 2, `the next keyframe was not decoded: ${detail}`);
  });
});

describe('a picture lost for good on a 10 s GOP', { timeout: 90000 }, () => {
  let server;
  let relay;
  let browser;
  let page;

  before(async () => {
    server = await startServer({
      files: [LONG_GOP],
      settings: { ip: FRONT_IP, ip_local: '127.0.0.1' },
    });
    relay = await lossyRelay(server.media, { dropEvery: 0 });
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.goto(`${server.base}/api/files`);
  }, { timeout: 60000 });

  after(async () => {
    await browser?.close();
    relay?.close();
    await server?.stop();
  });

  test('the browser\'s picture-loss request gets the GOP so far: the picture goes on long before the next keyframe', { timeout: 80000 }, async (t) => {
    // The viewer starts the translation: its first keyframe is the file's at 0 s, the next
    // at 10 s.
    assert.equal(await whepPlay(page, 'vod-live://long_gop.mp4'), 201);
    const first = await waitForStats(page, (s) => s.video?.framesDecoded >= 25, { timeoutMs: 15000, what: '25 frames' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    // One packet lost and its re-sends too: the picture it belongs to never completes,
    // nor any after it, until the browser asks for a picture (PLI) and gets one.
    relay.breakPicture(4000);
    const brokenAt = relay.newestViewerVideoSeconds();
    const wanted = first.video.framesDecoded + 100;
    // By the video's own time (RTP time through the relay), not the wall clock: the picture
    // must come back before the file's next keyframe at 10 s (9 s of video by the relay's
    // count, which starts a little after the file's 0). The keyframe alone would leave it
    // still until then.
    let last = first;
    const deadline = Date.now() + 40000; // only for a server that stops sending altogether
    while (last.video.framesDecoded < wanted) {
      const sent = relay.newestViewerVideoSeconds();
      assert.ok(Date.now() < deadline, `no video for 40 s: sent up to ${sent.toFixed(1)} s; ${JSON.stringify(last.video)}`);
      if (sent >= 9) {
        assert.fail(withServerLog(server, `the picture did not come back before the next keyframe: ${last.video.framesDecoded - first.video.framesDecoded} `
          + `frames decoded after ${first.video.framesDecoded}, video sent up to ${sent.toFixed(1)} s (broken at ${brokenAt.toFixed(1)} s); `
          + `relay ${JSON.stringify(relay.stats)}; video ${JSON.stringify(last.video)}`));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      last = await readStats(page);
    }
    const detail = `broken at ${brokenAt.toFixed(1)} s; relay ${JSON.stringify(relay.stats)}; video ${JSON.stringify(last.video)}; `
      + `video sent up to ${relay.newestViewerVideoSeconds().toFixed(1)} s`;
    t.diagnostic(detail);
    assert.ok(relay.stats.unrepaired >= 1, `nothing was lost: ${detail}`);
    assert.ok(last.video.pliCount >= 1, `the browser never asked for a picture: ${detail}`);
  });
});
