// WHEP (RFC 9725) playback: a plain browser client, no SDK: RTCPeerConnection with
// recvonly video+audio transceivers, POST the offer, apply the answer.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SAMPLE, assertServerUp, measure, requireFiles, serverAndPage, testMedia, waitForFrames, waitForStats, withServerLog,
} from './helpers.mjs';

/** In the page: start a WHEP session for `name` showing in #whep-video; returns {status, location, body, contentType}. */
function whepStart(page, name) {
  return page.evaluate(async (streamName) => {
    const pc = window.__whep.peer();
    window.__whepPc = pc;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.id = 'whep-video';
    document.body.appendChild(video);
    pc.ontrack = (e) => {
      video.srcObject = e.streams[0] || new MediaStream([e.track, ...(video.srcObject?.getTracks() || [])]);
      video.play().catch(() => {});
    };
    await window.__whep.offer(pc);
    const r = await window.__whep.post(pc, streamName);
    await window.__whep.answer(pc, r);
    return r;
  }, name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The streams REST lists (`/rest-api/stream/find_all`; its 404 means none). */
async function streamsListed(server) {
  const r = await fetch(`${server.base}/rest-api/stream/find_all`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
  });
  if (r.status === 404) return [];
  assert.equal(r.status, 200, `find_all answered ${r.status}`);
  return r.json();
}

describe('WHEP playback', { timeout: 120000 }, () => {
  let env;
  let server;
  let browser;
  let page;

  before(async () => {
    const files = [SAMPLE, testMedia('cut_short.mp4')];
    requireFiles(...files);
    env = await serverAndPage({ files });
    ({ server, browser, page } = env);
  }, { timeout: 60000 });

  after(async () => {
    if (env) await env.close();
  });

  test('plays vod://sample.mp4; DELETE ends the session', { timeout: 40000 }, async () => {
    const r = await whepStart(page, 'vod://sample.mp4');
    assert.equal(r.status, 201, withServerLog(server, `POST /whep answered ${r.status}: ${r.body}`));
    assert.match(r.body, /^v=0/m, 'the 201 body is an SDP answer');
    assert.ok(r.location, 'the 201 carries a Location header');
    assert.match(r.location, /\/whep\/resource\/[^/]+$/, `Location: ${r.location}`);

    await waitForStats(page, (s) => s.video?.framesDecoded > 0 && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 10000, what: 'first decoded frame and audio samples' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    // 41 more frames (over 1.6 s of a 25 fps file), however long a loaded machine takes.
    const m = await waitForFrames(page, 41, { timeoutMs: 20000 })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    assert.equal(`${m.last.video.frameWidth}x${m.last.video.frameHeight}`, '640x360');
    assert.ok(m.samples > 0, `no audio samples in ${m.ms} ms: ${JSON.stringify(m.last.audio)}`);
    assert.ok(m.concealed < 0.1 * m.samples, `audio concealed ${m.concealed} of ${m.samples} samples`);
    const size = await page.evaluate(() => {
      const v = document.getElementById('whep-video');
      return `${v.videoWidth}x${v.videoHeight}`;
    });
    assert.equal(size, '640x360', 'the <video> element shows the picture');

    assert.equal((await streamsListed(server)).length, 1, 'REST lists the playing WHEP viewer');
    const del = await fetch(new URL(r.location, server.base), { method: 'DELETE' });
    assert.equal(del.status, 200, `DELETE ${r.location} answered ${del.status}`);
    // Ended for real: REST no longer lists it, media stops, the resource is gone.
    const deadline = Date.now() + 5000;
    while ((await streamsListed(server)).length > 0 && Date.now() < deadline) await sleep(100);
    assert.deepEqual(await streamsListed(server), [], 'the stream is still listed after DELETE');
    const before = (await measure(page, 500)).last.video.framesDecoded;
    await sleep(1500);
    const after = (await measure(page, 100)).last.video.framesDecoded;
    assert.ok(after - before <= 2, `${after - before} more frames decoded after DELETE`);
    const again = await fetch(new URL(r.location, server.base), { method: 'DELETE' });
    assert.equal(again.status, 404, `a second DELETE answered ${again.status}`);
    await page.evaluate(() => window.__whepPc.close());
    await assertServerUp(server);
  });

  // VP8 alone is answered with VP8 (vp8.test.mjs); a codec the server cannot send is not.
  test('an offer with neither H.264 nor VP8 (VP9 only) is refused with "No common codecs", never played as sound only', { timeout: 20000 }, async () => {
    const r = await page.evaluate(async () => {
      const pc = window.__whep.peer();
      const vp9 = RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => /vp9|rtx/i.test(c.mimeType));
      pc.getTransceivers().find((t) => t.receiver.track.kind === 'video').setCodecPreferences(vp9);
      await window.__whep.offer(pc);
      const offered = pc.localDescription.sdp;
      const res = await window.__whep.post(pc, 'vod://sample.mp4');
      pc.close();
      return { ...res, h264Offered: /H264|VP8/i.test(offered) };
    });
    assert.equal(r.h264Offered, false, 'the page still offered H.264 or VP8');
    assert.equal(r.status, 400, JSON.stringify(r));
    assert.equal(r.body, 'No common codecs');
    assert.deepEqual(await streamsListed(server), [], 'REST lists a stream that is not sent');
    await assertServerUp(server);
  });

  test('a missing file answers 404 "File not found"', { timeout: 20000 }, async () => {
    const r = await whepStart(page, 'vod://no_such_file.mp4');
    assert.equal(r.status, 404, `POST answered ${r.status}: ${r.body}`);
    assert.match(r.body, /File not found/);
    await assertServerUp(server);
  });

  test('a file cut short after its moov answers 415 with the reason', { timeout: 20000 }, async () => {
    const r = await whepStart(page, 'vod://cut_short.mp4');
    assert.equal(r.status, 415, `POST answered ${r.status}: ${r.body}`);
    assert.match(r.body, /File has wrong format: the file is cut short/);
    await page.evaluate(() => window.__whepPc.close());
    await assertServerUp(server);
  });

  test('two viewers at once each get their own picture', { timeout: 40000 }, async () => {
    const page2 = await browser.newPage();
    await page2.goto(`${server.base}/api/files`);
    const [a, b] = await Promise.all([whepStart(page, 'vod://sample.mp4'), whepStart(page2, 'vod://sample.mp4')]);
    assert.equal(a.status, 201, a.body);
    assert.equal(b.status, 201, b.body);
    assert.notEqual(a.location, b.location, 'each session has its own resource');
    for (const p of [page, page2]) {
      await waitForStats(p, (s) => s.video?.framesDecoded > 25, { timeoutMs: 10000, what: '25 frames in each viewer' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    }
    for (const loc of [a.location, b.location]) {
      const del = await fetch(new URL(loc, server.base), { method: 'DELETE' });
      assert.equal(del.status, 200);
    }
    await page2.close();
  });
});
