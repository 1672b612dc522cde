// Logs: `log_format=json` gives one JSON object per line, with the stream and viewer of
// the spans an event happened in; a live translation's viewers (WHEP and WCS SDK) have
// their lines in a span naming both, in both formats; and no secret reaches any log
// line, in either format, at debug level, while every secret is configured and used:
// S3 credentials (a signed request goes out), REST Basic auth (right and wrong
// passwords), a WHEP Bearer token (asked of the hooks backend), a hook URL with a
// password in it, a metrics token (right and wrong).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  SAMPLE, freeTcpPort, launchBrowser, openSdkPage, requireFiles, sdkPlay, sdkStopLast, startServer,
  waitForStatus, withServerLog,
} from './helpers.mjs';

const LIVE = 'vod-live://sample.mp4';
// eslint-disable-next-line no-control-regex
const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');

const SECRETS = {
  s3KeyId: 'AKIAREELCASTLOGTEST1',
  s3Secret: 'reelcastS3Secret/LogTest+9876',
  restPassword: 'RestPassw0rd-LogTest',
  bearer: 'BearerTok-LogTest-9f8e7d',
  hookPassword: 'HookPass-LogTest-123',
  metricsToken: 'MetricsTok-LogTest-5a4b3c2d',
};
const basic = Buffer.from(`admin:${SECRETS.restPassword}`).toString('base64');

/** A hooks backend that lets every session and play go on. */
async function allowingBackend() {
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { port: srv.address().port, close: () => srv.close() };
}

/** In the page: a WHEP POST of `name` with a Bearer token; its status. DELETEs a 201. */
async function whepWithToken(page, name, token) {
  return page.evaluate(async ([n, t]) => {
    const pc = window.__whep.peer();
    await window.__whep.offer(pc);
    const res = await fetch(`/whep/${encodeURIComponent(n)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${t}` },
      body: pc.localDescription.sdp,
    });
    const body = await res.text();
    if (res.status === 201) {
      await window.__whep.answer(pc, { status: 201, body });
      await new Promise((r) => setTimeout(r, 1500)); // it plays a little
      await fetch(res.headers.get('location'), { method: 'DELETE' });
    }
    pc.close();
    return res.status;
  }, [name, token]);
}

async function runWithSecrets(browser, format) {
  const backend = await allowingBackend();
  const closedPort = await freeTcpPort(); // nothing listens: the S3 request is refused
  const server = await startServer({
    files: [SAMPLE],
    env: { RUST_LOG: 'debug' },
    settings: {
      log_format: format,
      aws_s3_credentials: `us-east-1;${SECRETS.s3KeyId};${SECRETS.s3Secret}`,
      aws_s3_endpoint: `http://127.0.0.1:${closedPort}`,
      disable_rest_auth: 'false',
      rest_auth_users: `admin:${SECRETS.restPassword}`,
      rest_hook_url: `http://hooks:${SECRETS.hookPassword}@127.0.0.1:${backend.port}/app`,
      metrics_token: SECRETS.metricsToken,
    },
  });
  try {
    for (const auth of [`Basic ${basic}`, `Basic ${Buffer.from('admin:wrong').toString('base64')}`]) {
      const res = await fetch(`${server.base}/rest-api/stream/find_all`, {
        method: 'POST', headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: '{}',
      });
      await res.text();
    }
    for (const token of [SECRETS.metricsToken, 'wrong-token-0123456789']) {
      const res = await fetch(`${server.base}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(res.status, token === SECRETS.metricsToken ? 200 : 401);
      await res.text();
    }
    const page = await browser.newPage();
    await page.goto(`${server.base}/api/files`);
    assert.equal(await whepWithToken(page, 'vod://sample.mp4', SECRETS.bearer), 201);
    // A signed S3 request (its presigned URL holds the key id) to a store that is not there.
    assert.notEqual(await whepWithToken(page, 'vod://s3/bucket/sample.mp4', SECRETS.bearer), 201);
    // A live translation's viewers: one over WHEP, one through the WCS SDK.
    assert.equal(await whepWithToken(page, LIVE, SECRETS.bearer), 201);
    await page.close();
    const sdk = await openSdkPage(browser);
    const idx = await sdkPlay(sdk, server, LIVE);
    const playing = await waitForStatus(sdk, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000);
    assert.equal(playing.status, 'PLAYING', withServerLog(server, JSON.stringify(playing)));
    await sdkStopLast(sdk);
    await waitForStatus(sdk, idx, ['STOPPED', 'FAILED'], 10000);
    await sdk.close();
  } finally {
    await server.stop();
    backend.close();
  }
  return server.stderr();
}

function assertNoSecrets(log, format) {
  const found = Object.entries({ ...SECRETS, restBasicHeader: basic })
    .filter(([, secret]) => log.includes(secret))
    .map(([what]) => what);
  const lines = log.split('\n').filter((l) => Object.values(SECRETS).some((s) => l.includes(s)));
  assert.deepEqual(found, [], `${format} log holds secrets:\n${lines.slice(0, 5).join('\n')}`);
}

describe('logs', { timeout: 120000 }, () => {
  let browser;
  before(async () => { requireFiles(SAMPLE); browser = await launchBrowser(); }, { timeout: 60000 });
  after(async () => { if (browser) await browser.close(); });

  test('text at debug level: a translation viewer\'s lines name its stream and viewer; no secret in any line while all are configured and used', { timeout: 60000 }, async () => {
    const log = await runWithSecrets(browser, 'text');
    assert.match(log, /DEBUG/, 'the run was not at debug level');
    const lines = plain(log).split('\n');
    const inViewer = (what) => lines.filter((l) => /viewer\{stream=vod-live:\/\/sample\.mp4 viewer=\d+\}/.test(l) && l.includes(what));
    assert.equal(inViewer('joined the translation').length, 2, 'a line per translation viewer (WHEP, WCS) in its span');
    assert.equal(inViewer('PLAYING').length, 1, 'the WCS viewer\'s PLAYING in its span');
    const stops = lines.filter((l) => /STOPPED|UNPUBLISHED|FAILED/.test(l)).slice(0, 10).join('\n');
    assert.equal(inViewer('STOPPED: Stopped by user').length, 1, `the WCS viewer's STOPPED in its span; ending lines:\n${stops}`);
    assertNoSecrets(log, 'text');
  });

  test('json: every line is a JSON object with time, level and message; stream spans carry the stream and viewer; no secret', { timeout: 60000 }, async () => {
    const log = await runWithSecrets(browser, 'json');
    const lines = log.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length > 20, `only ${lines.length} lines`);
    const events = lines.map((l) => {
      try { return JSON.parse(l); } catch (e) { throw new Error(`not a JSON line: ${l}`); }
    });
    for (const e of events) {
      assert.ok(e.timestamp && e.level && typeof e.message === 'string', `missing time/level/message: ${JSON.stringify(e)}`);
    }
    assert.ok(events.some((e) => e.level === 'DEBUG'), 'the run was not at debug level');
    const inVod = events.filter((e) => (e.spans || []).some((s) => s.name === 'vod' && s.stream === 'vod://sample.mp4' && s.viewer !== undefined));
    assert.ok(inVod.length > 0, 'no event in the span of the personal VOD with its stream and viewer');
    // A translation's viewers: their lines are in a `viewer` span with the stream and
    // viewer, and every line naming one of them names the stream too (the WebRTC engine's
    // as fields: it runs outside the play's span).
    const viewerSpan = (e) => (e.spans || []).find((sp) => sp.name === 'viewer' && sp.stream === LIVE && sp.viewer !== undefined);
    const joined = events.filter((e) => e.message === 'joined the translation' && viewerSpan(e));
    assert.equal(joined.length, 2, 'a line per translation viewer (WHEP, WCS) in its span');
    assert.ok(events.some((e) => e.message === 'PLAYING' && viewerSpan(e)), 'the WCS viewer\'s PLAYING in its span');
    const ids = new Set(joined.map((e) => viewerSpan(e).viewer));
    const about = events.filter((e) => ids.has(e.viewer) || (e.spans || []).some((sp) => ids.has(sp.viewer)));
    const fromEngine = about.filter((e) => String(e.target).startsWith('reelcast::webrtc'));
    const withoutStream = about.filter((e) => e.stream === undefined && !(e.spans || []).some((sp) => sp.stream !== undefined));
    assert.ok(about.length >= 4, `only ${about.length} lines about the translation's viewers`);
    assert.ok(fromEngine.some((e) => e.message === 'WebRTC connected' && e.stream === LIVE),
      `no "WebRTC connected" line of the engine naming ${LIVE}: ${JSON.stringify(fromEngine.slice(0, 3))}`);
    assert.deepEqual(withoutStream, [], 'lines about a translation viewer without its stream');
    assertNoSecrets(log, 'json');
  });
});
