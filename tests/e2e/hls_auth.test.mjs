// HLS authentication (WCS's hls_auth_enabled): every HLS request carries ?token=…, which
// the application's backend (a real HTTP server in this file, answering /playHLS 200 for
// one token and 403 for the rest, counting its calls) must allow; its verdict is kept
// hls_auth_token_cache seconds per token and stream. Clients we did not write: hls.js in
// headless Chromium and ffprobe play with the good token; a bad or missing token is a 401
// that hls.js reports; a segment asked without the playlist's token is a 401 too.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SAMPLE, freeTcpPort, launchBrowser, startServer, withServerLog } from './helpers.mjs';
import { playWithHlsJs, run } from './hls_shared.mjs';

const NAME = encodeURIComponent('vod-live://sample.mp4');
const GOOD = 'good-token_1';

/** The application's backend: /playHLS allows GOOD only; every call is kept. */
async function backend() {
  const port = await freeTcpPort();
  const asked = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const fields = JSON.parse(body || '{}');
      asked.push({ path: req.url, fields });
      const ok = req.url.endsWith('/playHLS') && fields.token === GOOD;
      res.writeHead(ok ? 200 : 403, { 'content-type': 'application/json' });
      res.end(ok ? body : JSON.stringify({ reason: 'Bad token' }));
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const close = () => { server.close(); server.closeAllConnections(); };
  const calls = (token) => asked.filter((a) => a.fields.token === token).length;
  return { url: `http://127.0.0.1:${port}/rest/my_api`, asked, calls, close };
}

describe('HLS authentication: hls_auth_enabled and the /playHLS hook', { timeout: 180000 }, () => {
  let app, server, browser, hlsBase, playlistUrl;
  before(async () => {
    app = await backend();
    const hlsPort = await freeTcpPort();
    server = await startServer({
      files: [SAMPLE],
      settings: {
        'hls.port': hlsPort,
        vod_live_loop: 'true',
        rest_hook_url: app.url,
        rest_request_timeout: '5',
        hls_auth_enabled: 'true',
        // Longer than the whole file: every call below is within one cache time.
        hls_auth_token_cache: '600',
      },
    });
    hlsBase = `http://127.0.0.1:${hlsPort}`;
    playlistUrl = `${hlsBase}/${NAME}/${NAME}.m3u8`;
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (app) app.close();
  });

  test('a missing or bad token is a 401 with a plain body; the backend is asked once per token', async () => {
    const missing = await fetch(playlistUrl);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('content-type'), /^text\/plain/);
    assert.match(await missing.text(), /token is needed/);
    assert.equal(app.asked.length, 0, 'no token: the backend is not asked');
    for (let i = 0; i < 3; i += 1) {
      const bad = await fetch(`${playlistUrl}?token=bad`);
      assert.equal(bad.status, 401);
      assert.equal(await bad.text(), 'Not authorized: Bad token\n');
    }
    assert.equal(app.calls('bad'), 1, 'a refusal is kept too: one call for three requests');
    // A refused client did not start the translation.
    const found = await fetch(`${server.base}/rest-api/stream/find_all`, { method: 'POST' });
    assert.equal(found.status, 404, await found.text());
  });

  test('hls.js plays with the good token; the hook gets WCS\'s fields, once', { timeout: 60000 }, async () => {
    const seen = await playWithHlsJs(browser, server.base, `${playlistUrl}?token=${GOOD}`);
    assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
    assert.ok(seen.pictures >= 60, `${seen.pictures} pictures shown`);
    assert.ok(seen.audioBytes > 0, 'audio decoded');
    assert.ok(seen.fragments > 0, 'segments loaded');
    assert.equal(app.calls(GOOD), 1, 'one /playHLS call for the playlist, its reloads and segments');
    const call = app.asked.find((a) => a.fields.token === GOOD);
    assert.ok(call.path.endsWith('/rest/my_api/playHLS'), call.path);
    assert.equal(call.fields.mediaProvider, 'HLS');
    assert.equal(call.fields.name, 'vod-live://sample.mp4');
    assert.equal(typeof call.fields.mediaSessionId, 'string');
  });

  test('hls.js in low-latency mode keeps the token on blocking reloads and parts', { timeout: 60000 }, async () => {
    const seen = await playWithHlsJs(browser, server.base, `${playlistUrl}?token=${GOOD}`, { lowLatencyMode: true });
    assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
    assert.ok(seen.pictures >= 60, `${seen.pictures} pictures shown`);
    assert.ok(seen.parts > 0, 'partial segments loaded');
    assert.equal(app.calls(GOOD), 1, 'still one call within the cache time');
  });

  test('ffprobe reads the stream with the good token', { timeout: 60000 }, async () => {
    const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0',
      '-i', `${playlistUrl}?token=${GOOD}`]);
    assert.equal(probe.code, 0, probe.stderr);
    assert.match(probe.stdout, /h264/);
    assert.match(probe.stdout, /aac/);
    assert.equal(app.calls(GOOD), 1, 'still one call within the cache time');
  });

  test('hls.js reports the 401 of a bad token', { timeout: 60000 }, async () => {
    const seen = await playWithHlsJs(browser, server.base, `${playlistUrl}?token=other`, { pictures: 1 });
    assert.equal(seen.pictures, 0);
    assert.ok(seen.errors.some((e) => /manifestLoadError/.test(e)), JSON.stringify(seen.errors));
    assert.equal(app.calls('other'), 1);
  });

  test('segments, parts and the init segment need the playlist\'s token', async () => {
    const res = await fetch(`${playlistUrl}?token=${GOOD}`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const uris = [
      ...text.split('\n').filter((l) => l && !l.startsWith('#')),
      ...[...text.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]),
    ];
    assert.ok(uris.length > 3, text);
    for (const uri of uris) {
      assert.ok(uri.endsWith(`?token=${GOOD}`), `${uri} carries the token`);
    }
    const segment = uris.find((u) => /-\d+\.m4s\?/.test(u));
    const init = uris.find((u) => u.startsWith('init-'));
    for (const uri of [segment, init]) {
      const good = await fetch(`${hlsBase}/${NAME}/${uri}`);
      assert.equal(good.status, 200, uri);
      await good.arrayBuffer();
      const bare = uri.split('?')[0];
      const none = await fetch(`${hlsBase}/${NAME}/${bare}`);
      assert.equal(none.status, 401, `${bare} without a token`);
      await none.text();
      const bad = await fetch(`${hlsBase}/${NAME}/${bare}?token=bad`);
      assert.equal(bad.status, 401, `${bare} with a refused token`);
      await bad.text();
    }
    assert.equal(app.calls(GOOD), 1);
    assert.equal(app.calls('bad'), 1);
  });
});
