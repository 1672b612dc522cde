// WHIP (RFC 9725) with clients we did not write: Python aiortc (whip_aiortc.py: a
// generated picture encoded by libx264, a tone in Opus) and Chromium's own
// RTCPeerConnection with its fake camera POSTing to /whip/{name}. A WHEP viewer in
// Chromium watches each live by name; REST lists the publisher; DELETE of the Location
// ends it; a second publisher of the name gets 409 with WCS's words.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  SAMPLE, launchBrowser, requireFiles, startServer, waitForStats, withServerLog,
} from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AIORTC_CLIENT = path.join(here, 'whip_aiortc.py');

async function listed(server) {
  const res = await fetch(`${server.base}/rest-api/stream/find_all`, { method: 'POST' });
  return res.status === 200 ? res.json() : [];
}

/** Waits (10 s at most) until REST lists nothing named `name`. */
async function untilUnlisted(server, name) {
  const deadline = Date.now() + 10000;
  let left = await listed(server);
  while (left.some((s) => s.name === name) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = await listed(server);
  }
  assert.deepEqual(left.filter((s) => s.name === name), [], withServerLog(server, `${name} is still listed`));
}

/** A WHEP viewer of `name` in `page`, its tracks rendered as a player would. */
async function watchByWhep(page, server, name) {
  const r = await page.evaluate(async (n) => {
    const w = await window.__whep.start(n);
    window.__whepPc = w.pc;
    if (w.status === 201) {
      const v = document.createElement('video');
      v.srcObject = new MediaStream(w.pc.getReceivers().map((x) => x.track));
      document.body.appendChild(v);
      await v.play().catch(() => {});
    }
    return { status: w.status, body: w.status === 201 ? '' : w.body };
  }, name);
  assert.equal(r.status, 201, withServerLog(server, `WHEP of ${name}: ${JSON.stringify(r)}`));
  await waitForStats(page, (s) => s.video?.framesDecoded > 25 && s.audio?.totalSamplesReceived > 0,
    { timeoutMs: 15000, what: `frames and audio of ${name} by WHEP` })
    .catch((e) => { throw new Error(withServerLog(server, e.message)); });
}

describe('WHIP publishers', { timeout: 240000 }, () => {
  let server;
  let browser;

  before(async () => {
    requireFiles(SAMPLE, AIORTC_CLIENT);
    server = await startServer();
    browser = await launchBrowser({ args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('aiortc publishes H.264 + Opus by WHIP; a WHEP viewer watches it; its DELETE ends it', { timeout: 90000 }, async () => {
    const url = `${server.base}/whip/${encodeURIComponent('py cam')}`;
    const publishing = promisify(execFile)('python3', [AIORTC_CLIENT, url, '--seconds', '12'], { timeout: 60000 })
      .catch((e) => { throw new Error(withServerLog(server, `aiortc client failed: ${e.stderr || e.message}`)); });
    // The publisher is listed once its offer is answered.
    const deadline = Date.now() + 15000;
    let streams = await listed(server);
    while (!streams.some((s) => s.name === 'py cam' && s.status === 'PUBLISHING') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      streams = await listed(server);
    }
    const published = streams.find((s) => s.name === 'py cam' && s.published);
    assert.ok(published, withServerLog(server, `REST does not list the WHIP publisher: ${JSON.stringify(streams)}`));
    assert.equal(published.protocol, 'whip');
    assert.equal(published.status, 'PUBLISHING');

    const page = await browser.newPage();
    await page.goto(`${server.base}/api/files`);
    await watchByWhep(page, server, 'py cam');

    const { stdout } = await publishing;
    const r = JSON.parse(stdout.trim().split('\n').pop());
    assert.equal(r.status, 201, JSON.stringify(r));
    assert.equal(r.content_type, 'application/sdp');
    assert.match(r.location, /^\/whip\/py%20cam\/[0-9a-f-]{36}$/);
    assert.ok(r.connected, `aiortc never connected: ${JSON.stringify(r)}`);
    assert.equal(r.delete_status, 200, JSON.stringify(r));
    await untilUnlisted(server, 'py cam');
    await page.close();
  });

  test("Chromium's RTCPeerConnection publishes by WHIP; a WHEP viewer watches; 409 for the name in use; DELETE ends it", { timeout: 90000 }, async () => {
    const pub = await browser.newPage();
    await pub.goto(`${server.base}/api/files`);
    const post = () => pub.evaluate(async () => {
      const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const pc = new RTCPeerConnection();
      for (const track of media.getTracks()) {
        const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
        if (track.kind === 'video') {
          t.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/H264'));
        }
      }
      await window.__whep.offer(pc);
      const res = await fetch('/whip/chrome', {
        method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
      });
      const body = await res.text();
      if (res.status === 201) {
        await pc.setRemoteDescription({ type: 'answer', sdp: body });
        window.__whipPc = pc;
      } else {
        pc.close();
      }
      return { status: res.status, location: res.headers.get('location'), body: res.status === 201 ? '' : body };
    });
    const first = await post();
    assert.equal(first.status, 201, withServerLog(server, JSON.stringify(first)));

    const viewer = await browser.newPage();
    await viewer.goto(`${server.base}/api/files`);
    await watchByWhep(viewer, server, 'chrome');

    const second = await post();
    assert.deepEqual([second.status, second.body], [409, 'Stream name is already in use']);
    const bad = await fetch(`${server.base}/whip/${encodeURIComponent('a\tb')}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\n',
    });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /^Bad stream name: control characters/);

    const del = await fetch(new URL(first.location, server.base), { method: 'DELETE' });
    assert.equal(del.status, 200);
    await untilUnlisted(server, 'chrome');
    const again = await fetch(new URL(first.location, server.base), { method: 'DELETE' });
    assert.equal(again.status, 404);
    await pub.close();
    await viewer.close();
  });
});
