// The WCS REST API over real HTTP(S): every method, code and field, checked against
// docs/openapi.json (the document the server serves). A translation started by REST is
// played by its localStreamName with the official SDK, listed, terminated (the viewer
// gets STOPPED "Stopped by rest /terminate"), and gone. Auth on and off; HTTPS and WSS
// with a self-signed certificate made here with the openssl CLI.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import {
  REPO, SAMPLE, freeTcpPort, launchBrowser, openSdkPage, requireFiles, sdkPlay, startServer, testMedia,
  waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const LONG = testMedia('long_gop.mp4'); // 30 s: a personal VOD that outlives the checks

// ---------------------------------------------------------------- the OpenAPI document
const OPENAPI_PATH = path.join(REPO, 'docs', 'openapi.json');
const openapi = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(openapi, 'openapi.json');
const pointer = (...parts) => parts.map((p) => String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('/');
/** Every "METHOD path status" seen, to check at the end that each documented answer was. */
const seen = new Set();

/** Asserts `res` is an answer the document lists for this operation, with that shape. */
function checkAgainstOpenApi(method, apiPath, res) {
  const op = openapi.paths[apiPath]?.[method];
  assert.ok(op, `${method.toUpperCase()} ${apiPath} is not in docs/openapi.json`);
  let response = op.responses[String(res.status)];
  assert.ok(response, `${method.toUpperCase()} ${apiPath} answered ${res.status}, which docs/openapi.json does not list: ${res.text}`);
  let where = `#/${pointer('paths', apiPath, method, 'responses', res.status)}`;
  if (response.$ref) {
    where = response.$ref;
    response = response.$ref.slice(2).split('/').reduce((o, k) => o[k], openapi);
  }
  for (const [name] of Object.entries(response.headers || {})) {
    assert.ok(res.headers.get(name), `${apiPath} ${res.status} lacks the documented header ${name}`);
  }
  if (response.content?.['application/json']) {
    assert.match(res.headers.get('content-type') || '', /application\/json/, `${apiPath} ${res.status} content-type`);
    const validate = ajv.getSchema(`openapi.json${where}/content/application~1json/schema`);
    assert.ok(validate, `no schema at ${where}`);
    assert.ok(validate(res.json), `${method.toUpperCase()} ${apiPath} ${res.status} does not match docs/openapi.json: `
      + `${ajv.errorsText(validate.errors)}\nbody: ${res.text}`);
  }
  seen.add(`${method} ${apiPath} ${res.status}`);
}

/**
 * POSTs to /rest-api`method` and checks the answer against the OpenAPI document.
 * `body`: an object (sent as JSON), a string (sent as is) or undefined (no body).
 * Returns { status, json, text, headers }.
 */
async function rest(server, method, body, { auth, origin, base, contentType } = {}) {
  const headers = {};
  if (contentType) headers['content-type'] = contentType;
  else if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  if (origin) headers.origin = origin;
  const payload = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
  const res = await (base ? httpsRequest(`${base}/rest-api${method}`, payload, headers)
    : fetch(`${server.base}/rest-api${method}`, { method: 'POST', headers, body: payload, signal: AbortSignal.timeout(10000) }));
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  const out = { status: res.status, json, text, headers: res.headers };
  checkAgainstOpenApi('post', `/rest-api${method}`, out);
  return out;
}

/** An error answer: the code, and a plain reason matching `reason`. */
async function expectError(server, method, body, status, reason, opts) {
  const r = await rest(server, method, body, opts);
  assert.equal(r.status, status, withServerLog(server, `${method} ${JSON.stringify(body)}: ${r.text}`));
  assert.equal(r.json.status, status);
  if (reason) assert.match(r.json.error, reason, `${method} ${JSON.stringify(body)}`);
  return r;
}

// ---------------------------------------------------------------- HTTPS with a private CA
let tlsCa; // the self-signed certificate, trusted explicitly (never "reject nothing")
function httpsRequest(url, body, headers, method = 'POST') {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca: tlsCa, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: new Headers(res.headers), text: async () => text });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// ---------------------------------------------------------------- a WHEP viewer in a page
function whepPlay(page, name) {
  return page.evaluate(async (streamName) => {
    const { status, location, body } = await window.__whep.start(streamName);
    return { status, location, body };
  }, name);
}

/** A browser's CORS preflight for a POST with a JSON body from `origin`. */
function preflight(server, path, origin) {
  return fetch(`${server.base}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    signal: AbortSignal.timeout(10000),
  });
}

const REST_METHODS = Object.keys(openapi.paths)
  .filter((p) => openapi.paths[p].post)
  .map((p) => p.replace('/rest-api', ''));

// ==================================================================== auth off (default)
describe('REST API (auth off)', { timeout: 240000 }, () => {
  let server;
  let browser;

  before(async () => {
    requireFiles(LONG);
    server = await startServer({ files: [SAMPLE, LONG], settings: { vod_stream_timeout: 60000 } });
    browser = await launchBrowser();
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('nothing runs: every find and terminate answers 404', async () => {
    await expectError(server, '/vod/find_all', undefined, 404, /No VOD/);
    await expectError(server, '/vod/find_all', {}, 404, /No VOD/);
    await expectError(server, '/vod/find', { localStreamName: 'test' }, 404, /No VOD/);
    await expectError(server, '/vod/terminate', { localStreamName: 'test' }, 404, /No VOD/);
    await expectError(server, '/stream/find_all', undefined, 404, /Stream not found/);
    await expectError(server, '/stream/find', { name: 'test', published: true }, 404, /Stream not found/);
    await expectError(server, '/stream/find', {}, 404, /Stream not found/);
    await expectError(server, '/stream/terminate', { mediaSessionId: 'nope' }, 404, /Stream not found/);
    await expectError(server, '/stream/terminate', { name: 'nope' }, 404, /Stream not found/);
  });

  test('bad requests answer 400 with the reason', async () => {
    const s = server;
    await expectError(s, '/vod/startup', '{"uri":"vod-live://sample.mp4",', 400, /^Malformed JSON: EOF/);
    await expectError(s, '/vod/startup', 'uri=vod-live://sample.mp4', 400, /^Malformed JSON/);
    await expectError(s, '/vod/startup', '', 400, /Request body is empty/, { contentType: 'application/json' });
    // From a browser (an Origin header), only JSON bodies: what a page on any site can
    // POST without a preflight is refused.
    const page = { origin: 'http://evil.example' };
    await expectError(s, '/vod/startup', undefined, 415, /^Unsupported Media Type: REST bodies must be JSON/, page);
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
      await expectError(s, '/vod/terminate', '{"localStreamName":"test"}', 415, /Content-Type: application\/json/, { ...page, contentType: type });
    }
    for (const m of ['/vod/find', '/stream/find', '/stream/terminate']) {
      await expectError(s, m, '{"name":"test"}', 415, /must be JSON/, { ...page, contentType: 'text/plain' });
    }
    // A script (no Origin: curl -d sends a form type, as WCS's examples do) is read as JSON.
    await expectError(s, '/vod/find', '{"localStreamName":"nothing"}', 404, undefined, { contentType: 'application/x-www-form-urlencoded' });
    await expectError(s, '/vod/startup', undefined, 400, /Request body is empty/, { contentType: 'text/plain' });
    await expectError(s, '/vod/startup', '["vod-live://sample.mp4"]', 400, /expected a JSON object, got an array/);
    await expectError(s, '/vod/startup', { uri: 5 }, 400, /invalid type: integer `5`, expected a string/);
    await expectError(s, '/vod/startup', { uri: 'vod-live://sample.mp4', loop: 'yes' }, 400, /expected a boolean/);
    await expectError(s, '/vod/startup', { uri: 'vod-live://sample.mp4', foo: 1 }, 400, /unknown field `foo`/);
    await expectError(s, '/vod/startup', { localStreamName: 'x' }, 400, /missing field `uri`/);
    await expectError(s, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: '' }, 400, /localStreamName must not be empty/);
    await expectError(s, '/vod/startup', { uri: 'vod://sample.mp4' }, 400, /live translations only: use vod-live:\/\/sample.mp4/);
    await expectError(s, '/vod/startup', { uri: 'rtmp://host/app' }, 400, /no known scheme/);
    await expectError(s, '/vod/startup', { uri: 'vod-live://../etc/passwd' }, 400);
    await expectError(s, '/vod/find', {}, 400, /Give localStreamName or uri/);
    await expectError(s, '/vod/find', { name: 'x' }, 400, /unknown field `name`/);
    await expectError(s, '/vod/terminate', {}, 400, /Give localStreamName or uri/);
    await expectError(s, '/vod/terminate', { localStreamName: 1 }, 400, /expected a string/);
    await expectError(s, '/stream/find', { published: 'true' }, 400, /expected a boolean/);
    await expectError(s, '/stream/find', { nmae: 'x' }, 400, /unknown field `nmae`/);
    await expectError(s, '/stream/find', 'nope', 400, /Malformed JSON/);
    await expectError(s, '/stream/terminate', {}, 400, /Give mediaSessionId or name/);
    await expectError(s, '/stream/terminate', { id: 'x' }, 400, /unknown field `id`/);
  });

  test('unknown path 404, GET 405, OpenAPI document served, no CORS for REST by default, CORS for WHEP', async () => {
    let res = await fetch(`${server.base}/rest-api/vod/nope`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { status: 404, error: 'Unknown REST method /rest-api/vod/nope' });
    for (const m of REST_METHODS) {
      res = await fetch(`${server.base}/rest-api${m}`);
      assert.equal(res.status, 405, `GET ${m}`);
      assert.equal(res.headers.get('allow'), 'POST');
      assert.match((await res.json()).error, /Method not allowed/);
    }
    res = await fetch(`${server.base}/rest-api/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    assert.deepEqual(await res.json(), openapi, 'the served document is docs/openapi.json');
    seen.add('get /rest-api/openapi.json 200');

    // A page on another origin gets no CORS answer for REST (rest_allowed_origins unset).
    res = await preflight(server, '/rest-api/vod/terminate', 'http://app.example');
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    const r = await rest(server, '/vod/find_all', undefined, { origin: 'http://app.example' });
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    // WHEP players live on other sites: whep_allowed_origins is * by default.
    res = await preflight(server, '/whep/vod%3A%2F%2Fsample.mp4', 'http://player.example');
    assert.ok(res.status < 300, `WHEP preflight answered ${res.status}`);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match(res.headers.get('access-control-allow-methods') || '', /POST/);
  });

  test('a page on another site cannot stop a translation through the browser (form, text, JSON)', { timeout: 60000 }, async () => {
    const started = await rest(server, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: 'csrf' });
    assert.equal(started.status, 200, started.text);
    // The attacking page: served from another origin (another port of this machine).
    const port = await freeTcpPort();
    const site = http.createServer((_, res) => { res.setHeader('content-type', 'text/html'); res.end('<html><body>hi</body></html>'); });
    await new Promise((r) => site.listen(port, '127.0.0.1', r));
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${port}/`);
      const target = `${server.base}/rest-api/vod/terminate`;
      const tried = await page.evaluate(async (url) => {
        const body = JSON.stringify({ localStreamName: 'csrf' });
        const out = [];
        // What any page may send without a preflight: opaque answers, but sent.
        for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
          await fetch(url, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': type }, body })
            .then(() => out.push(`${type}: sent`), (e) => out.push(`${type}: ${e}`));
        }
        // A JSON body needs a preflight, which this origin does not pass.
        await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
          .then((r) => out.push(`json: ${r.status}`), (e) => out.push(`json: blocked (${e.name})`));
        // And a plain HTML form post.
        const form = document.createElement('form');
        form.method = 'POST'; form.action = url; form.enctype = 'text/plain';
        const input = document.createElement('input');
        input.name = '{"localStreamName":"csrf","x":"'; input.value = '"}';
        form.appendChild(input); document.body.appendChild(form);
        const frame = document.createElement('iframe'); frame.name = 'sink'; document.body.appendChild(frame);
        form.target = 'sink'; form.submit();
        await new Promise((r) => setTimeout(r, 1000));
        return out;
      }, target);
      assert.ok(tried.some((t) => t.endsWith('sent')), `the page sent nothing: ${tried}`);
      const found = await rest(server, '/vod/find', { localStreamName: 'csrf' });
      assert.equal(found.status, 200, `the translation was stopped by another site's page (${tried}): ${found.text}`);
    } finally {
      await page.close();
      site.close();
      await rest(server, '/vod/terminate', { localStreamName: 'csrf' });
    }
  });

  test('a missing file: 500 "File not found" (as WCS); nothing is left running', async () => {
    await expectError(server, '/vod/startup', { uri: 'vod-live://missing.mp4', localStreamName: 'm' }, 500, /^File not found$/);
    await expectError(server, '/vod/find', { localStreamName: 'm' }, 404);
  });

  test('startup → played by its name (SDK) → listed → terminate → viewer STOPPED → gone', { timeout: 120000 }, async () => {
    // 1. Start it.
    const started = await rest(server, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: 'test', loop: true });
    assert.equal(started.status, 200, withServerLog(server, started.text));
    const vod = started.json;
    assert.deepEqual(Object.keys(vod).sort(),
      ['hasAudio', 'hasVideo', 'localMediaSessionId', 'localStreamName', 'loop', 'record', 'status', 'uri']);
    assert.equal(vod.localStreamName, 'test');
    assert.equal(vod.uri, 'vod-live://sample.mp4');
    assert.equal(vod.status, 'PROCESSED_LOCAL');
    assert.equal(vod.loop, true);
    assert.equal(vod.record, false);
    assert.equal(vod.hasVideo, true);
    assert.equal(vod.hasAudio, true);
    await expectError(server, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: 'test' }, 409, /^Stream name is already in use$/);

    // 2. Play it by its localStreamName with the official SDK; a WHEP personal VOD too.
    const sdkPage = await openSdkPage(browser);
    const idx = await sdkPlay(sdkPage, server, 'test');
    await waitForStatus(sdkPage, idx, ['PLAYING', 'FAILED'], 15000).then((e) => {
      assert.equal(e.status, 'PLAYING', withServerLog(server, `the SDK got ${JSON.stringify(e)}`));
    });
    await waitForStats(sdkPage, (st) => st.video?.framesDecoded > 10, { timeoutMs: 10000, what: 'frames of "test"' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    const whepPage = await browser.newPage();
    await whepPage.goto(`${server.base}/api/files`);
    const w = await whepPlay(whepPage, 'vod://long_gop.mp4');
    assert.equal(w.status, 201, withServerLog(server, w.body));
    await waitForStats(whepPage, (st) => st.video?.framesDecoded > 0, { timeoutMs: 10000, what: 'WHEP frames' });

    // 3. Find it, as a VOD and as streams.
    let r = await rest(server, '/vod/find', { localStreamName: 'test' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, [vod]);
    r = await rest(server, '/vod/find', { uri: 'vod-live://sample.mp4' });
    assert.deepEqual(r.json, [vod]);
    r = await rest(server, '/vod/find_all');
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 2, r.text);
    assert.deepEqual(r.json[0], vod, 'translations first');
    const personal = r.json[1];
    assert.equal(personal.localStreamName, 'vod://long_gop.mp4');
    assert.equal(personal.uri, 'vod://long_gop.mp4');
    assert.equal(personal.loop, false);
    assert.equal(personal.status, 'PROCESSED_LOCAL');
    r = await rest(server, '/vod/find', { uri: 'vod://long_gop.mp4', localStreamName: 'vod://long_gop.mp4' });
    assert.deepEqual(r.json, [personal]);

    r = await rest(server, '/stream/find', { name: 'test', published: true });
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 1);
    const pub = r.json[0];
    assert.equal(pub.mediaSessionId, vod.localMediaSessionId);
    assert.equal(pub.status, 'PUBLISHING');
    assert.equal(pub.mediaType, 'publish');
    assert.equal(pub.viewers, 1);
    assert.equal(`${pub.width}x${pub.height}`, '640x360');
    assert.equal(pub.videoCodec, 'H264');
    assert.equal(pub.audioCodec, 'opus');
    assert.equal(pub.record, false);
    assert.ok(Math.abs(Date.now() - pub.createDate) < 120000, `createDate ${pub.createDate}`);
    r = await rest(server, '/stream/find', { published: false });
    assert.equal(r.json.length, 2, r.text);
    const sdkPlayStream = r.json.find((s) => s.protocol === 'wcs');
    const whepPlayStream = r.json.find((s) => s.protocol === 'whep');
    assert.equal(sdkPlayStream.name, 'test');
    assert.equal(sdkPlayStream.status, 'PLAYING');
    assert.equal(sdkPlayStream.mediaType, 'play');
    assert.equal(sdkPlayStream.uri, 'vod-live://sample.mp4');
    assert.equal(whepPlayStream.name, 'vod://long_gop.mp4');
    assert.equal(whepPlayStream.mediaSessionId, personal.localMediaSessionId);
    assert.equal(w.location, `/whep/resource/${whepPlayStream.mediaSessionId}`);
    r = await rest(server, '/stream/find_all');
    assert.equal(r.json.length, 3);
    assert.equal(r.json[0].published, true, 'published streams first');
    r = await rest(server, '/stream/find', { mediaSessionId: sdkPlayStream.mediaSessionId });
    assert.deepEqual(r.json, [sdkPlayStream]);

    // 4. Terminate the personal VOD by its play's media session id.
    r = await rest(server, '/stream/terminate', { mediaSessionId: whepPlayStream.mediaSessionId });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.map((s) => s.mediaSessionId), [whepPlayStream.mediaSessionId]);
    await expectError(server, '/vod/find', { localStreamName: 'vod://long_gop.mp4' }, 404);

    // 5. Terminate the translation: the SDK viewer is told why; nothing is left.
    r = await rest(server, '/vod/terminate', { uri: 'vod-live://sample.mp4', localStreamName: 'test' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, [vod]);
    const stopped = await waitForStatus(sdkPage, idx, ['STOPPED', 'FAILED'], 10000);
    assert.equal(stopped.status, 'STOPPED');
    assert.equal(stopped.info, 'Stopped by rest /terminate');
    await expectError(server, '/vod/find', { localStreamName: 'test' }, 404);
    await expectError(server, '/stream/find_all', undefined, 404);
    await expectError(server, '/vod/terminate', { localStreamName: 'test' }, 404);
  });

  test('localStreamName defaults to the uri; loop to vod_live_loop (false); /stream/terminate by name', async () => {
    const r = await rest(server, '/vod/startup', { uri: 'vod-live://sample.mp4' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.localStreamName, 'vod-live://sample.mp4');
    assert.equal(r.json.loop, false);
    const t = await rest(server, '/stream/terminate', { name: 'vod-live://sample.mp4' });
    assert.equal(t.status, 200);
    assert.equal(t.json[0].mediaSessionId, r.json.localMediaSessionId);
    assert.equal(t.json[0].published, true);
    await expectError(server, '/vod/find_all', undefined, 404);
  });
});

// ==================================================================== auth on
describe('REST API (auth on: disable_rest_auth=false)', { timeout: 120000 }, () => {
  let server;
  const ADMIN = 'admin:secret';

  before(async () => {
    server = await startServer({
      files: [SAMPLE],
      settings: { disable_rest_auth: 'false', rest_auth_users: 'admin:secret,ops:pw2', vod_live_loop: 'true' },
    });
  }, { timeout: 60000 });

  after(async () => { if (server) await server.stop(); });

  test('401 with WWW-Authenticate without or with wrong credentials, on every method', async () => {
    for (const m of REST_METHODS) {
      for (const auth of [undefined, 'admin:wrong', 'nobody:secret', 'ops:secret']) {
        const r = await expectError(server, m, {}, 401, /Unauthorized/, { auth });
        assert.equal(r.headers.get('www-authenticate'), 'Basic realm="reelcast"');
      }
    }
    // An unknown path does not tell whether it exists.
    const res = await fetch(`${server.base}/rest-api/nope`, { method: 'POST' });
    assert.equal(res.status, 401);
    // The OpenAPI document holds no data: public.
    assert.equal((await fetch(`${server.base}/rest-api/openapi.json`)).status, 200);
    // So are the page and WHEP's listing of files (auth guards the REST API only).
    assert.equal((await fetch(`${server.base}/api/files`)).status, 200);
  });

  test('200 with the right credentials; loop defaults to vod_live_loop (true), the request wins', async () => {
    await expectError(server, '/vod/find_all', undefined, 404, /No VOD/, { auth: ADMIN });
    let r = await rest(server, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: 'a' }, { auth: ADMIN });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.loop, true, 'vod_live_loop=true');
    r = await rest(server, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: 'b', loop: false }, { auth: 'ops:pw2' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.loop, false, '"loop" in the request wins over vod_live_loop');
    r = await rest(server, '/vod/find_all', undefined, { auth: ADMIN });
    assert.deepEqual(r.json.map((v) => [v.localStreamName, v.loop]), [['a', true], ['b', false]]);
    r = await rest(server, '/stream/find', { published: true }, { auth: ADMIN });
    assert.equal(r.json.length, 2);
    r = await rest(server, '/stream/terminate', { name: 'a' }, { auth: ADMIN });
    assert.equal(r.status, 200);
    r = await rest(server, '/vod/terminate', { uri: 'vod-live://sample.mp4' }, { auth: ADMIN });
    assert.deepEqual(r.json.map((v) => v.localStreamName), ['b']);
    await expectError(server, '/stream/find_all', undefined, 404, null, { auth: ADMIN });
  });
});

// ==================================================================== HTTPS and WSS
describe('HTTPS (https.port) and WSS (wss.port) with a certificate', { timeout: 120000 }, () => {
  let server;
  let browser;
  let dir;
  let ports;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'reelcast-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    // Throws (a failure, never a skip) when the openssl CLI is missing.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    tlsCa = readFileSync(cert);
    ports = { https: await freeTcpPort(), wss: await freeTcpPort() };
    server = await startServer({
      files: [SAMPLE],
      settings: { 'https.cert': cert, 'https.key': key, 'https.port': ports.https, 'wss.port': ports.wss },
    });
    browser = await launchBrowser({ args: ['--ignore-certificate-errors'] });
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('REST over https: startup, find, terminate; the page too', async () => {
    const base = `https://127.0.0.1:${ports.https}`;
    let r = await rest(server, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: 'tls' }, { base });
    assert.equal(r.status, 200, withServerLog(server, r.text));
    r = await rest(server, '/vod/find', { localStreamName: 'tls' }, { base });
    assert.equal(r.json[0].localStreamName, 'tls');
    r = await rest(server, '/vod/terminate', { localStreamName: 'tls' }, { base });
    assert.equal(r.status, 200);
    const page = await httpsRequest(`${base}/`, undefined, {}, 'GET');
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>reelcast<\/title>/);
  });

  test('a failed or stalled TLS handshake does not stop the listener', async () => {
    const stalled = net.connect(ports.https, '127.0.0.1'); // never says anything
    await new Promise((resolve) => {
      const garbage = net.connect(ports.https, '127.0.0.1', () => garbage.end('GET / HTTP/1.1\r\n\r\n'));
      garbage.on('close', resolve);
      garbage.on('error', resolve);
    });
    const r = await rest(server, '/vod/find_all', undefined, { base: `https://127.0.0.1:${ports.https}` });
    assert.equal(r.status, 404);
    stalled.destroy();
  });

  test('the official SDK plays over wss://', { timeout: 60000 }, async () => {
    const page = await openSdkPage(browser);
    const idx = await sdkPlay(page, { wsUrl: `wss://127.0.0.1:${ports.wss}` }, 'vod://sample.mp4');
    const e = await waitForStatus(page, idx, ['PLAYING', 'FAILED'], 15000);
    assert.equal(e.status, 'PLAYING', withServerLog(server, JSON.stringify(e)));
    await waitForStats(page, (st) => st.video?.framesDecoded > 10, { timeoutMs: 10000, what: 'frames over wss signalling' })
      .catch((err) => { throw new Error(withServerLog(server, err.message)); });
  });
});

// ==================================================================== the document itself
describe('REST CORS with rest_allowed_origins', { timeout: 60000 }, () => {
  let server;
  before(async () => {
    server = await startServer({ settings: { rest_allowed_origins: 'http://app.example' } });
  }, { timeout: 30000 });
  after(async () => { if (server) await server.stop(); });

  test('the listed origin may call REST from a page, another may not', async () => {
    let res = await preflight(server, '/rest-api/vod/terminate', 'http://app.example');
    assert.ok(res.status < 300, `preflight answered ${res.status}`);
    assert.equal(res.headers.get('access-control-allow-origin'), 'http://app.example');
    const r = await rest(server, '/vod/find_all', undefined, { origin: 'http://app.example' });
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    res = await preflight(server, '/rest-api/vod/terminate', 'http://evil.example');
    assert.notEqual(res.headers.get('access-control-allow-origin'), 'http://evil.example');
    assert.notEqual(res.headers.get('access-control-allow-origin'), '*');
  });
});

describe('REST recording (/stream/startRecording, /stream/stopRecording, /recorder/*)', { timeout: 120000 }, () => {
  let server;
  let blocked;
  let tmp;

  before(async () => {
    server = await startServer({ files: [SAMPLE] });
    // record_dir below a plain file: no recording's file can be made there.
    tmp = mkdtempSync(path.join(os.tmpdir(), 'reelcast-rest-rec-'));
    writeFileSync(path.join(tmp, 'file'), 'not a folder');
    blocked = await startServer({ files: [SAMPLE], settings: { record_dir: path.join(tmp, 'file', 'records') } });
  }, { timeout: 60000 });

  after(async () => {
    if (server) await server.stop();
    if (blocked) await blocked.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** A looping translation of the sample named `name`; its mediaSessionId. */
  async function translation(s, name) {
    const r = await rest(s, '/vod/startup', { uri: 'vod-live://sample.mp4', localStreamName: name, loop: true });
    assert.equal(r.status, 200, withServerLog(s, r.text));
    return r.json.localMediaSessionId;
  }

  /** Waits until no recording of `s` is still recording or finalizing (10 s at most). */
  async function allFinished(s) {
    const deadline = Date.now() + 10000;
    for (;;) {
      const r = await rest(s, '/recorder/find_all');
      if (r.status === 404 || r.json.every((x) => x.status === 'DONE')) return;
      assert.ok(Date.now() < deadline, withServerLog(s, `recordings not finished: ${r.text}`));
      await sleep(200);
    }
  }

  test('start, list, stop by both names, with WCS codes and plain reasons', async () => {
    const s = server;
    await expectError(s, '/recorder/find_all', undefined, 404, /No recordings/);
    const id = await translation(s, 'rec-rest');
    for (const [start, stop] of [['/stream/startRecording', '/stream/stopRecording'], ['/recorder/startup', '/recorder/terminate']]) {
      await expectError(s, start, { mediaSessionId: 'no-such-stream' }, 404);
      const started = await rest(s, start, { mediaSessionId: id });
      assert.equal(started.status, 200, withServerLog(s, started.text));
      assert.equal(started.json.mediaSessionId, id);
      assert.match(started.json.fileName, /\.mp4$/);
      await expectError(s, start, { mediaSessionId: id }, 409);
      const list = await rest(s, '/recorder/find_all');
      assert.equal(list.status, 200);
      assert.ok(list.json.some((r) => r.fileName === started.json.fileName && r.mediaSessionId === id && r.status === 'RECORDING'), list.text);
      const streams = await rest(s, '/stream/find', { mediaSessionId: id });
      assert.equal(streams.json[0].record, true, streams.text);
      await sleep(1500);
      const stopped = await rest(s, stop, { mediaSessionId: id });
      assert.equal(stopped.status, 200, withServerLog(s, stopped.text));
      assert.equal(stopped.json.fileName, started.json.fileName);
      await expectError(s, stop, { mediaSessionId: id }, 404);
      await expectError(s, stop, { mediaSessionId: 'no-such-stream' }, 404);
      for (const m of [start, stop]) {
        await expectError(s, m, '{"mediaSessionId":', 400, /^Malformed JSON/);
        await expectError(s, m, { id }, 400, /unknown field `id`/);
        await expectError(s, m, '{"mediaSessionId":"x"}', 415, /must be JSON/, { origin: 'http://evil.example', contentType: 'text/plain' });
      }
      await allFinished(s);
    }
  });

  test('a record_dir where no file can be made: 500 with the plain reason, never the path; the stream goes on', async () => {
    const id = await translation(blocked, 'rec-blocked');
    for (const m of ['/stream/startRecording', '/recorder/startup']) {
      const r = await expectError(blocked, m, { mediaSessionId: id }, 500);
      assert.ok(!r.text.includes(tmp), `the answer names a path: ${r.text}`);
    }
    const still = await rest(blocked, '/stream/find', { mediaSessionId: id });
    assert.equal(still.status, 200, still.text);
  });
});

test('every answer docs/openapi.json lists was seen and matched', () => {
  const documented = [];
  for (const [p, ops] of Object.entries(openapi.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      for (const code of Object.keys(op.responses)) documented.push(`${m} ${p} ${code}`);
    }
  }
  const missing = documented.filter((d) => !seen.has(d));
  assert.deepEqual(missing, [], 'documented answers no test produced');
});
