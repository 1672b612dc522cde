// Who may play: WCS's REST hooks. With rest_hook_url set, reelcast asks the application's
// backend (here a real HTTP server in this file) `/connect` when a session opens and
// `/playStream` before each play; a non-200 answer refuses, and the backend's reason
// reaches the client. The official SDK in Chromium and WHEP with a Bearer token.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  SAMPLE, assertServerUp, freeTcpPort, launchBrowser, openSdkPage, startServer, withServerLog,
} from './helpers.mjs';

/** The application's backend: tokens "good" connect; names with "secret" never play. */
async function backend() {
  const port = await freeTcpPort();
  const asked = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const fields = JSON.parse(body || '{}');
      asked.push({ path: req.url, fields, type: req.headers['content-type'] });
      const refuse = (reason) => {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ reason }));
      };
      if (req.url.endsWith('/connect')) {
        const token = fields.authToken || fields.custom?.token;
        if (token !== 'good') return refuse(`Bad token: ${token ?? 'none'}`);
      } else if (req.url.endsWith('/playStream')) {
        if (String(fields.name).includes('secret')) return refuse('Not for you');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const close = () => { server.close(); server.closeAllConnections(); };
  return { url: `http://127.0.0.1:${port}/rest/my_api`, asked, close };
}

/** In the page: a session with `custom`, one play of `name`; what the SDK reported. */
function sdkTry(page, wsUrl, custom, name) {
  return page.evaluate(async ([url, cust, streamName]) => {
    const SS = Flashphoner.constants.SESSION_STATUS;
    const S = Flashphoner.constants.STREAM_STATUS;
    const seen = { session: [], warn: [], stream: [] };
    const session = await new Promise((resolve) => {
      Flashphoner.createSession({ urlServer: url, custom: cust })
        .on(SS.ESTABLISHED, (s) => { seen.session.push('ESTABLISHED'); resolve(s); })
        .on(SS.WARN, (obj) => seen.warn.push(obj?.info))
        .on(SS.FAILED, () => { seen.session.push('FAILED'); resolve(null); })
        .on(SS.DISCONNECTED, () => { seen.session.push('DISCONNECTED'); resolve(null); });
    });
    if (!session || !streamName) return seen;
    const display = document.createElement('div');
    document.body.appendChild(display);
    await new Promise((resolve) => {
      const stream = session.createStream({ name: streamName, display, custom: cust });
      for (const st of [S.PLAYING, S.FAILED, S.STOPPED]) {
        stream.on(st, (s) => { seen.stream.push({ status: st, info: s.getInfo() }); resolve(); });
      }
      stream.play();
      setTimeout(resolve, 15000);
    });
    session.disconnect();
    return seen;
  }, [wsUrl, custom, name]);
}

/** In the page: a WHEP POST of `name` with `token` as Bearer; the answer's status and body. */
function whepTry(page, base, name, token) {
  return page.evaluate(async ([b, n, t]) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const headers = { 'Content-Type': 'application/sdp' };
    if (t) headers.Authorization = `Bearer ${t}`;
    const r = await fetch(`${b}/whep/${encodeURIComponent(n)}`, { method: 'POST', headers, body: pc.localDescription.sdp });
    const out = { status: r.status, body: await r.text(), auth: r.headers.get('www-authenticate'), location: r.headers.get('location') };
    pc.close();
    if (out.location) await fetch(new URL(out.location, b), { method: 'DELETE' });
    return out;
  }, [base, name, token]);
}

describe('REST hooks: the application decides who connects and plays', { timeout: 120000 }, () => {
  let app;
  let server;
  let browser;
  let page;

  before(async () => {
    app = await backend();
    server = await startServer({ files: [SAMPLE], settings: { rest_hook_url: app.url, rest_request_timeout: '5' } });
    browser = await launchBrowser();
    page = await openSdkPage(browser);
  }, { timeout: 60000 });

  after(async () => {
    await browser?.close();
    await server?.stop();
    app?.close();
  });

  test('SDK: a good token connects and plays; the hooks got the session\'s fields', { timeout: 30000 }, async () => {
    const seen = await sdkTry(page, server.wsUrl, { token: 'good' }, 'vod://sample.mp4');
    assert.deepEqual(seen.session.slice(0, 1), ['ESTABLISHED'], JSON.stringify(seen));
    assert.equal(seen.stream[0]?.status, 'PLAYING', withServerLog(server, JSON.stringify(seen)));
    const connect = app.asked.find((a) => a.path === '/rest/my_api/connect');
    const play = app.asked.find((a) => a.path === '/rest/my_api/playStream');
    assert.equal(connect.type, 'application/json');
    assert.deepEqual(connect.fields.custom, { token: 'good' });
    assert.ok(connect.fields.sessionId && connect.fields.appKey !== undefined, JSON.stringify(connect.fields));
    assert.equal(play.fields.name, 'vod://sample.mp4');
    assert.equal(play.fields.sessionId, connect.fields.sessionId);
    assert.equal(play.fields.sdp, undefined, 'the offer is not sent to the backend');
    assert.deepEqual(play.fields.custom, { token: 'good' });
  });

  test('SDK: a bad token is refused with the backend\'s reason; nothing plays', { timeout: 30000 }, async () => {
    const seen = await sdkTry(page, server.wsUrl, { token: 'bad' }, 'vod://sample.mp4');
    assert.ok(!seen.session.includes('ESTABLISHED'), JSON.stringify(seen));
    assert.deepEqual(seen.warn, ['Bad token: bad'], JSON.stringify(seen));
    assert.ok(seen.session.includes('DISCONNECTED') || seen.session.includes('FAILED'), JSON.stringify(seen));
  });

  test('SDK: a refused play fails with the backend\'s reason; the session plays on', { timeout: 30000 }, async () => {
    const seen = await sdkTry(page, server.wsUrl, { token: 'good' }, 'vod://secret.mp4');
    assert.deepEqual(seen.stream, [{ status: 'FAILED', info: 'Not for you' }], JSON.stringify(seen));
    await assertServerUp(server);
  });

  test('WHEP: Bearer token checked the same way (401 without, 403 for a refused play, 201 with)', { timeout: 30000 }, async () => {
    const none = await whepTry(page, server.base, 'vod://sample.mp4', null);
    assert.equal(none.status, 401, JSON.stringify(none));
    assert.equal(none.auth, 'Bearer');
    assert.equal(none.body, 'Bad token: none');
    const bad = await whepTry(page, server.base, 'vod://sample.mp4', 'bad');
    assert.equal(bad.status, 401, JSON.stringify(bad));
    const secret = await whepTry(page, server.base, 'vod://secret.mp4', 'good');
    assert.equal(secret.status, 403, JSON.stringify(secret));
    assert.equal(secret.body, 'Not for you');
    const good = await whepTry(page, server.base, 'vod://sample.mp4', 'good');
    assert.equal(good.status, 201, withServerLog(server, JSON.stringify(good)));
    const asked = app.asked.filter((a) => a.fields.appKey === 'whep' && a.path.endsWith('/connect'));
    assert.ok(asked.some((a) => a.fields.authToken === 'good'), JSON.stringify(asked));
  });

  test('a backend that is gone refuses (fails closed), saying the authorisation service is unavailable (WHEP: 503)', { timeout: 30000 }, async () => {
    app.close();
    await new Promise((r) => setTimeout(r, 200));
    const seen = await sdkTry(page, server.wsUrl, { token: 'good' }, null);
    assert.ok(!seen.session.includes('ESTABLISHED'), JSON.stringify(seen));
    assert.match(String(seen.warn[0]), /^Authorization service unavailable/, JSON.stringify(seen));
    // A good token is not a bad one: 503 with the reason, not 401.
    const whep = await whepTry(page, server.base, 'vod://sample.mp4', 'good');
    assert.equal(whep.status, 503, JSON.stringify(whep));
    assert.match(whep.body, /^Authorization service unavailable/, JSON.stringify(whep));
    assert.equal(whep.auth, null, 'no WWW-Authenticate: the token was not refused');
    await assertServerUp(server);
  });
});
