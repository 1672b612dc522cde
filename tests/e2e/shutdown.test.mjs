// SIGTERM, as systemd or an orchestrator sends it: the server stops taking plays, tells
// every viewer why (the WCS SDK's STOPPED with "Server is shutting down", WHEP an RTCP
// BYE and then silence), finishes open recordings into playable files, and exits with
// status 0 within shutdown_grace_period. A second
// SIGTERM exits at once. The real binary, headless Chromium, the official WCS SDK.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  launchBrowser, openSdkPage, requireFiles, sdkPlay, startServer, testMedia, waitForStatus,
  withServerLog,
} from './helpers.mjs';
import { record, waitFrames, whepWatch } from './frames.mjs';

const LONG_GOP = testMedia('long_gop.mp4'); // 30 s: still playing when the signal comes
const REASON = 'Server is shutting down';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with { code, signal, ms } when the server process exits (ms since `since`). */
function exitOf(server, since) {
  return new Promise((resolve) => {
    if (!server.alive()) resolve({ already: true });
    server.proc.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - since }));
  });
}

/** Waits until the server's output matches `re` (10 s at most). */
async function waitForLog(server, re) {
  const deadline = Date.now() + 10000;
  while (!re.test(server.stderr())) {
    if (Date.now() > deadline) throw new Error(withServerLog(server, `no log line matching ${re}`));
    await sleep(50);
  }
}

/**
 * A WCS session held open by a backend that never answers its /connect hook: the drain
 * cannot finish until the hook times out, so what ends the process is the grace period
 * or a second SIGTERM. Returns { url, close() } of that silent backend.
 */
async function silentBackend() {
  const sockets = [];
  const srv = net.createServer((s) => sockets.push(s)); // accepts, reads, never answers
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}/app`,
    close: () => { for (const s of sockets) s.destroy(); srv.close(); },
  };
}

/** In `page`: opens a WCS WebSocket session to `wsUrl` and sends `connection`. */
async function connectRawSession(page, wsUrl) {
  await page.evaluate((url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => {
      ws.send(JSON.stringify({ message: 'connection', data: [{ appKey: 'defaultApp', mediaProviders: ['WebRTC'] }] }));
      resolve();
    };
    ws.onerror = () => reject(new Error('WebSocket failed'));
    window.__rawWs = ws;
  }), wsUrl);
}

describe('SIGTERM', { timeout: 180000 }, () => {
  let browser;
  before(async () => {
    requireFiles(LONG_GOP);
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => { if (browser) await browser.close(); });

  test('during a translation being recorded: the SDK viewer gets STOPPED with the reason, the WHEP viewer is closed, the recording is finished, exit 0 within the grace', { timeout: 60000 }, async () => {
    const GRACE_MS = 8000;
    const server = await startServer({ files: [LONG_GOP], settings: { shutdown_grace_period: String(GRACE_MS) } });
    try {
      const name = 'vod-live://long_gop.mp4';
      const whepPage = await browser.newPage();
      await whepPage.goto(`${server.base}/api/files`);
      const whep = await whepWatch(whepPage, name);
      await waitFrames(whepPage, whep, 10, 15000, server);
      const sdkPage = await openSdkPage(browser);
      const idx = await sdkPlay(sdkPage, server, name);
      const playing = await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED'], 15000);
      assert.equal(playing.status, 'PLAYING', JSON.stringify(playing));
      // A recording of the translation, running when the signal comes.
      const list = await (await fetch(`${server.base}/rest-api/stream/find_all`, { method: 'POST' })).json();
      const translation = list.find((s) => s.published && s.name === name);
      assert.ok(translation, `the translation is listed: ${JSON.stringify(list)}`);
      const rec = await fetch(`${server.base}/rest-api/stream/startRecording`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ mediaSessionId: translation.mediaSessionId }),
      });
      assert.equal(rec.status, 200, withServerLog(server, `startRecording: ${rec.status}`));
      const { fileName } = await rec.json();
      await sleep(3000);
      // Kept by the test: the server's stop() removes its root.
      const recordDir = path.join(server.root, 'records');

      const t0 = Date.now();
      const exited = exitOf(server, t0);
      server.proc.kill('SIGTERM');
      const ended = await waitForStatus(sdkPage, idx, ['STOPPED', 'FAILED'], GRACE_MS + 5000);
      assert.deepEqual([ended.status, ended.info], ['STOPPED', REASON], JSON.stringify(ended));
      const exit = await Promise.race([exited, sleep(GRACE_MS + 5000).then(() => null)]);
      assert.ok(exit, withServerLog(server, 'the server did not exit'));
      assert.deepEqual([exit.code, exit.signal], [0, null], withServerLog(server, `exit: ${JSON.stringify(exit)}`));
      // Everyone left, so it did not wait out the grace (a generous bound: the machine is shared).
      assert.ok(exit.ms < GRACE_MS, withServerLog(server, `exited after ${exit.ms} ms, grace ${GRACE_MS} ms`));
      assert.match(server.stderr(), /every stream stopped and every session closed/);
      // The recording was finished before the exit: no sidecar or temporary left, and
      // ffprobe reads its ~3 s of H.264 and AAC.
      assert.deepEqual(readdirSync(recordDir), [fileName], 'only the finished file is left');
      const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_entries',
        'stream=codec_name:format=duration', '-of', 'json', path.join(recordDir, fileName)]));
      assert.deepEqual(probe.streams.map((st) => st.codec_name).sort(), ['aac', 'h264']);
      assert.ok(Number(probe.format.duration) >= 2, `recorded ${probe.format.duration} s`);

      // The WHEP viewer: no picture after the exit, and its connection is no longer up.
      const framesAtExit = (await record(whepPage, whep)).frames.length;
      const deadline = Date.now() + 20000;
      let state;
      while (Date.now() < deadline) {
        state = await whepPage.evaluate(() => window.__pcs.map((pc) => pc.connectionState));
        if (state.every((s) => s !== 'connected' && s !== 'connecting' && s !== 'new')) break;
        await sleep(200);
      }
      assert.ok(state.every((s) => ['disconnected', 'failed', 'closed'].includes(s)), `WHEP peer connection: ${state}`);
      const framesAfter = (await record(whepPage, whep)).frames.length;
      assert.ok(framesAfter - framesAtExit <= 3, `${framesAfter - framesAtExit} frames shown after the exit`);
      await whepPage.close();
      await sdkPage.close();
    } finally {
      await server.stop();
    }
  });

  test('a session that cannot end holds the exit no longer than the grace; a second SIGTERM exits at once', { timeout: 90000 }, async () => {
    const backend = await silentBackend();
    const GRACE_MS = 3000;
    const settings = { shutdown_grace_period: String(GRACE_MS), rest_hook_url: backend.url, rest_request_timeout: '60' };
    try {
      // Grace: one SIGTERM, the session stuck in its hook; the process exits 0 after the grace.
      let server = await startServer({ settings });
      let page = await browser.newPage();
      await page.goto(`${server.base}/api/files`);
      await connectRawSession(page, server.wsUrl);
      await sleep(300); // the session is waiting on its hook now
      let t0 = Date.now();
      let exited = exitOf(server, t0);
      server.proc.kill('SIGTERM');
      let exit = await Promise.race([exited, sleep(GRACE_MS + 10000).then(() => null)]);
      assert.ok(exit, withServerLog(server, 'no exit within grace + 10 s'));
      assert.deepEqual([exit.code, exit.signal], [0, null], withServerLog(server, JSON.stringify(exit)));
      assert.ok(exit.ms >= GRACE_MS - 100, withServerLog(server, `exited after ${exit.ms} ms: the grace was not given`));
      assert.match(server.stderr(), /shutdown_grace_period passed/);
      await page.close();
      await server.stop();

      // A second SIGTERM while draining: out at once, status 1.
      server = await startServer({ settings: { ...settings, shutdown_grace_period: '60000' } });
      page = await browser.newPage();
      await page.goto(`${server.base}/api/files`);
      await connectRawSession(page, server.wsUrl);
      await sleep(300);
      t0 = Date.now();
      exited = exitOf(server, t0);
      server.proc.kill('SIGTERM');
      await waitForLog(server, /stopping every stream/);
      server.proc.kill('SIGTERM');
      exit = await Promise.race([exited, sleep(10000).then(() => null)]);
      assert.ok(exit, withServerLog(server, 'the second SIGTERM did not end it (grace 60 s)'));
      assert.deepEqual([exit.code, exit.signal], [1, null], withServerLog(server, JSON.stringify(exit)));
      assert.match(server.stderr(), /second SIGTERM while shutting down/);
      await page.close();
      await server.stop();
    } finally {
      backend.close();
    }
  });
});
