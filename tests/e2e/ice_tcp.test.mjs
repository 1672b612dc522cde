// A viewer whose network blocks UDP plays over ICE-TCP (RFC 6544): the server in one
// network namespace, Chromium in another (netns.mjs), and an iptables rule in the
// server's namespace that drops every UDP datagram to the media port. Nothing here
// touches this machine's real interfaces or firewall: the rule lives in the namespace
// and goes with it (and is deleted first).
//
// Played through the official WCS SDK with `transport: "TCP"` (the answer then carries
// TCP candidates only, as WCS's does) and through WHEP (both kinds offered; only TCP
// gets through). As a check that the rule works: the SDK with `transport: "UDP"` never
// connects.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SAMPLE, CHROMIUM, launchBrowser, sdkBundlePath, startServer, waitForStats, readStats, withServerLog } from './helpers.mjs';
import { SERVER_IP, execIn, makeNetwork } from './netns.mjs';

const MEDIA_PORT = 31001; // startServer's media port inside a namespace
const DROP_UDP = ['INPUT', '-p', 'udp', '--dport', String(MEDIA_PORT), '-j', 'DROP'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The transport of the pair the page's newest RTCPeerConnection uses ('tcp', 'udp', or null). */
async function selectedProtocol(page) {
  return page.evaluate(async () => {
    const pc = window.__pcs[window.__pcs.length - 1];
    const report = await pc.getStats();
    let pairId = null;
    report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    const pair = pairId && report.get(pairId);
    const local = pair && report.get(pair.localCandidateId);
    return local ? local.protocol : null;
  });
}

/** Plays `name` with the SDK on `page` (already at the server's origin) with `transport`; the SDK's status events. */
async function sdkPlayWith(page, wsUrl, name, transport) {
  await page.evaluate(async ([url, n, tr]) => {
    await Flashphoner.init({});
    const providers = Flashphoner.getMediaProviders();
    if (providers[0] !== 'WebRTC') throw new Error(`the SDK would not use WebRTC (providers: ${providers})`);
    window.__events = [];
    const S = Flashphoner.constants.SESSION_STATUS;
    const session = await new Promise((resolve, reject) => {
      Flashphoner.createSession({ urlServer: url })
        .on(S.ESTABLISHED, (s) => resolve(s))
        .on(S.FAILED, () => reject(new Error('session FAILED')));
    });
    const div = document.createElement('div');
    document.body.appendChild(div);
    const T = Flashphoner.constants.STREAM_STATUS;
    const stream = session.createStream({ name: n, display: div, transport: tr });
    for (const st of [T.PENDING, T.PLAYING, T.STOPPED, T.FAILED]) {
      stream.on(st, (s) => window.__events.push({ status: st, info: s.getInfo ? s.getInfo() : undefined }));
    }
    stream.play();
  }, [wsUrl, name, transport]);
}

describe('ICE-TCP: UDP to the media port dropped (network namespaces + iptables)', { timeout: 300000 }, () => {
  let net;
  let server;
  let browser;
  let dir;

  before(async () => {
    // Under CI=true as everywhere: a namespace or rule that cannot be made fails, never skips.
    net = await makeNetwork();
    await execIn(net.server, 'iptables', ['-I', ...DROP_UDP]);
    server = await startServer({ files: [SAMPLE], netns: net.server, settings: { ip: SERVER_IP } });
    dir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-icetcp-'));
    const wrapper = path.join(dir, 'chromium-in-netns');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${net.client.name} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    // The page comes from http://10.203.0.1: a real deployment serves it over https, which
    // the SDK needs to pick WebRTC (else it falls back to MSE over the WebSocket).
    browser = await launchBrowser({
      executablePath: wrapper,
      args: [`--unsafely-treat-insecure-origin-as-secure=${server.base}`],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (net) await execIn(net.server, 'iptables', ['-D', ...DROP_UDP]).catch(() => {});
    await net?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function sdkPage() {
    const page = await browser.context.newPage();
    await page.goto(`${server.base}/api/files`);
    await page.addScriptTag({ path: sdkBundlePath() });
    return page;
  }

  async function assertPlaysOverTcp(page, what) {
    const stats = await waitForStats(page,
      (s) => s.video?.framesDecoded >= 30 && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 20000, what: `${what}: frames decoded and audio` }).catch((e) => {
      throw new Error(withServerLog(server, e.message));
    });
    assert.equal(`${stats.video.frameWidth}x${stats.video.frameHeight}`, '640x360');
    assert.equal(await selectedProtocol(page), 'tcp', `${what}: the selected pair is not TCP`);
    const later = await waitForStats(page, (s) => s.video?.framesDecoded >= stats.video.framesDecoded + 25,
      { timeoutMs: 10000, what: `${what}: frames keep coming` });
    assert.ok(later.audio.totalSamplesReceived > stats.audio.totalSamplesReceived, `${what}: audio stopped`);
  }

  test('the WCS SDK with transport "TCP" plays vod://sample.mp4', { timeout: 60000 }, async () => {
    const page = await sdkPage();
    try {
      await sdkPlayWith(page, server.wsUrl, 'vod://sample.mp4', 'TCP');
      await assertPlaysOverTcp(page, 'SDK TCP');
      const events = await page.evaluate(() => window.__events);
      assert.ok(events.some((e) => e.status === 'PLAYING'), JSON.stringify(events));
    } finally {
      await page.close();
    }
  });

  test('WHEP plays vod://sample.mp4 (UDP and TCP offered, only TCP gets through)', { timeout: 60000 }, async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.base}/api/files`);
      const r = await page.evaluate(async () => {
        // Played into a <video>, so the audio is played out (and counted) too.
        const video = document.createElement('video');
        video.autoplay = true;
        video.muted = true;
        document.body.appendChild(video);
        const pc = window.__whep.peer();
        pc.ontrack = (e) => { video.srcObject = e.streams[0]; video.play().catch(() => {}); };
        await window.__whep.offer(pc);
        const res = await window.__whep.post(pc, 'vod://sample.mp4');
        await window.__whep.answer(pc, res);
        return { status: res.status, body: res.body };
      });
      assert.equal(r.status, 201, r.body);
      assert.match(r.body, / tcp .* typ host tcptype passive/);
      assert.match(r.body, / udp .* typ host/);
      await assertPlaysOverTcp(page, 'WHEP');
    } finally {
      await page.close();
    }
  });

  test('check of the rule: the SDK with transport "UDP" never connects', { timeout: 60000 }, async () => {
    const page = await sdkPage();
    try {
      await sdkPlayWith(page, server.wsUrl, 'vod://sample.mp4', 'UDP');
      // Bounded: 10 s is many ICE check rounds; none may succeed.
      const deadline = Date.now() + 10000;
      let s;
      while (Date.now() < deadline) {
        s = await readStats(page);
        assert.notEqual(s.connectionState, 'connected', 'connected over UDP: the rule does not drop it');
        assert.ok(!(s.video?.framesDecoded > 0), 'frames decoded over UDP');
        await sleep(250);
      }
      assert.ok(s.pcs > 0, 'the SDK made no peer connection');
    } finally {
      await page.close();
    }
  });
});
