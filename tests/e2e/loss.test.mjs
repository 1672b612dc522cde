// A lossy link between reelcast and the browser: lost video packets are asked for again
// (NACK) and re-sent (RTX) from the server's resend cache, so the picture keeps moving.
//
// The server announces 127.0.0.2 in its ICE candidate and listens on 127.0.0.1; a UDP
// relay in this file listens on 127.0.0.2 with the same port and passes everything on,
// except every 25th large RTP packet from the server (video; audio packets are small).
// Without working retransmission each loss breaks a picture, and a file server can only
// answer the browser's picture-loss request with a keyframe and a still picture until the
// next real one: the frame rate would collapse.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import {
  SAMPLE, launchBrowser, measure, startServer, testMedia, waitForStats, withServerLog,
} from './helpers.mjs';

const LONG_GOP = testMedia('long_gop.mp4'); // 30 s, 25 fps, a keyframe every 10 s

/** The relay's address as the browser sees it (the server's announced `ip`). */
const FRONT_IP = '127.0.0.2';
const DROP_EVERY = 25;

function bind(socket, port, address) {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => { socket.off('error', reject); resolve(); });
  });
}

/** RTP (not RTCP, not STUN or DTLS) and larger than any Opus packet of the test file. */
function isLargeRtp(msg) {
  const pt = msg.length > 1 ? msg[1] & 0x7f : 0;
  return msg.length > 300 && msg[0] >= 0x80 && msg[0] < 0xc0 && !(pt >= 64 && pt <= 95);
}

/** A UDP relay on FRONT_IP:port to the server on 127.0.0.1:port that drops some video. */
async function lossyRelay(port) {
  const front = dgram.createSocket('udp4');
  await bind(front, port, FRONT_IP);
  // bySsrc: large RTP packets passed on per SSRC (clear in the SRTP header): the video
  // stream's and the RTX stream's, whose packets prove a re-send.
  const stats = { large: 0, dropped: 0, bySsrc: {} };
  const upstreams = new Map();
  front.on('message', async (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let up = upstreams.get(key);
    if (!up) {
      up = dgram.createSocket('udp4');
      upstreams.set(key, up);
      up.on('message', (back) => {
        if (isLargeRtp(back)) {
          if (++stats.large % DROP_EVERY === 0) {
            stats.dropped++;
            return;
          }
          const ssrc = back.readUInt32BE(8);
          stats.bySsrc[ssrc] = (stats.bySsrc[ssrc] || 0) + 1;
        }
        front.send(back, from.port, from.address);
      });
      await bind(up, 0, FRONT_IP);
    }
    up.send(msg, port, '127.0.0.1');
  });
  return {
    stats,
    close() {
      for (const up of upstreams.values()) up.close();
      front.close();
    },
  };
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
    const m = await measure(page, 5000);
    const v = m.last.video;
    const detail = `relay ${JSON.stringify(relay.stats)}, video ${JSON.stringify(v)}, ${m.frames} frames in 5 s`;
    t.diagnostic(detail);
    assert.ok(relay.stats.dropped >= 10, `the relay dropped too little to test anything: ${detail}`);
    assert.ok(v.nackCount > 0, `the browser never asked for a lost packet: ${detail}`);
    // The video SSRC carries most large packets; re-sends come on the RTX SSRC.
    const counts = Object.values(relay.stats.bySsrc).sort((a, b) => b - a);
    const resent = counts.slice(1).reduce((a, b) => a + b, 0);
    assert.ok(resent >= relay.stats.dropped / 2, `${resent} packets re-sent on RTX for ${relay.stats.dropped} lost: ${detail}`);
    // 25 fps: at least 90 % of the frames decode, with losses repaired in time.
    assert.ok(m.frames >= 0.9 * 25 * 5, withServerLog(server, `the picture stalled: ${detail}`));
  });

  test('a late joiner on a 10 s GOP: its catch-up burst is repaired too, and the picture goes on past the next keyframe', { timeout: 100000 }, async (t) => {
    const name = 'vod-live://long_gop.mp4';
    assert.equal(await whepPlay(page, name), 201);
    await waitForStats(page, (s) => s.video?.framesDecoded > 0, { timeoutMs: 10000, what: 'the first viewer\'s picture' });
    // Mid-GOP: the joiner's first picture needs the GOP so far, sent at once through the loss.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    // A known weakness (docs: issue 11's note): when the catch-up burst's repair comes too
    // late, the browser asks for a keyframe, and a file can only re-send the GOP's first
    // one, so the picture may stay broken until the next real keyframe. It happens in a
    // few runs of ten on a loaded machine; a second joiner gets one more try, and the
    // first try's figures are reported. Two broken joins fail the test.
    let last;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const joined = Date.now();
      assert.equal(await whepPlay(page, name), 201);
      await waitForStats(page, (s) => s.video?.framesDecoded > 0, { timeoutMs: 5000, what: 'the late joiner\'s first frame' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
      const firstFrameMs = Date.now() - joined;
      // 12 s: across the next keyframe, where the joiner's resend cache is made anew.
      const m = await measure(page, 12000);
      const v = m.last.video;
      const detail = `attempt ${attempt}: first frame after ${firstFrameMs} ms; relay ${JSON.stringify(relay.stats)}, ` +
        `video ${JSON.stringify(v)}, ${m.frames} frames in 12 s`;
      t.diagnostic(detail);
      last = { v, m, detail };
      if (v.nackCount > 0 && v.keyFramesDecoded >= 2 && m.frames >= 0.9 * 25 * 12) break;
    }
    const { v, m, detail } = last;
    assert.ok(v.nackCount > 0, `no loss reached the joiner: ${detail}`);
    assert.ok(v.keyFramesDecoded >= 2, `the next keyframe was not decoded: ${detail}`);
    assert.ok(m.frames >= 0.9 * 25 * 12, withServerLog(server, `the joiner's picture stalled: ${detail}`));
  });
});
