// S3: the official WCS SDK in headless Chromium plays objects from a real S3-protocol
// server (moto, SigV4 and IAM checks on) through reelcast, and fails the way a user can
// act on: wrong credentials, no permission, missing object, missing bucket, not an MP4,
// a store that does not answer. Then the same through a slow link that drops its
// connections: playback starts long before the object is read and survives the cuts.
// Over HTTPS (a TLS front with a certificate from a test CA given in aws_s3_ca_file; an
// untrusted one fails at once) and with virtual-host names (bucket.s3.reelcast.test,
// reached through a CONNECT proxy, ALL_PROXY).
// And what a viewer cannot make the server do: reach a store the operator did not allow
// (aws_s3_allowed_endpoints) or one at a private or local address
// (aws_s3_allow_private_addresses), follow a store's redirect, or read a store's
// answers back. moto runs on 127.0.0.1, so every server here allows that explicitly.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  SAMPLE, assertServerUp, launchBrowser, openSdkPage, requireFiles, sdkEvents, sdkPlay,
  readStats, sdkStopLast, startServer, testMedia, waitForFrames, waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';
import { STORE_DOMAIN, makeCertificates, startConnectProxy, startFront } from './s3_https.mjs';
import { startProxy, startStore } from './s3_store.mjs';

const LONG = testMedia('long_moov_end.mp4');
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

describe('S3 objects through the official WCS SDK', { timeout: 300000 }, () => {
  let store;
  let server;
  let browser;
  let page;
  let slow;        // throttled, connection-cutting proxy in front of the store
  let denied;      // plain proxy whose host:port has the credentials of a user without rights
  let closedPort;  // a port nobody listens on
  let tmp;         // certificates
  let certs;
  let fronts = []; // HTTPS (trusted CA, untrusted) and HTTP fronts of the store
  let connect;     // CONNECT proxy for virtual-host names under STORE_DOMAIN
  let stalling;    // proxy that can stop passing on anything the store sends
  let small;       // a server with 1 s of read-ahead, so that a stall shows soon

  before(async () => {
    requireFiles(SAMPLE, testMedia('moov_end.mp4'), testMedia('not_mp4.mp4'), LONG);
    store = await startStore({
      buckets: ['media'],
      objects: [
        { bucket: 'media', key: 'moov_first.mp4', file: SAMPLE },
        { bucket: 'media', key: 'moov_end.mp4', file: testMedia('moov_end.mp4') },
        { bucket: 'media', key: 'dir/with spaces+(é).mp4', file: SAMPLE },
        { bucket: 'media', key: 'not_mp4.mp4', file: testMedia('not_mp4.mp4') },
        { bucket: 'media', key: 'long_moov_end.mp4', file: LONG },
      ],
    });
    slow = await startProxy(store.port, { bytesPerSecond: 200000, cutEvery: 100000 });
    denied = await startProxy(store.port);
    stalling = await startProxy(store.port);
    closedPort = await startProxy(store.port).then(async (p) => { await p.close(); return p.port; });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'reelcast-s3-tls-'));
    certs = makeCertificates(tmp);
    fronts = [
      await startFront(store.port, { tls: { cert: certs.cert, key: certs.key } }),
      await startFront(store.port, { tls: { cert: certs.rogueCert, key: certs.rogueKey } }),
      await startFront(store.port),
    ];
    const { reader, nobody } = store;
    server = await startServer({
      files: [SAMPLE],
      settings: {
        aws_s3_ca_file: certs.ca,
        aws_s3_endpoint: store.endpoint,
        aws_s3_credentials: `us-east-1;${reader.key};${reader.secret}`,
        // Full-URL names may reach the test's stores and fronts, all on loopback.
        aws_s3_allowed_endpoints: '127.0.0.1,no-such-store.invalid',
        aws_s3_allow_private_addresses: 'true',
        // Per-endpoint credentials: a wrong secret for `localhost:PORT` (the same store),
        // a user without permissions for the `denied` proxy.
        [`aws_s3_credentials.localhost:${store.port}`]: `us-east-1;${reader.key};not-the-secret`,
        [`aws_s3_credentials.127.0.0.1:${denied.port}`]: `us-east-1;${nobody.key};${nobody.secret}`,
      },
    });
    small = await startServer({
      files: [SAMPLE],
      settings: {
        aws_s3_credentials: `us-east-1;${reader.key};${reader.secret}`,
        vod_mp4_container_new_buffer_ms: 1000,
        // An address written out allows that address, private or not.
        aws_s3_allowed_endpoints: '127.0.0.1',
      },
    });
    browser = await launchBrowser();
    page = await openSdkPage(browser);
  }, { timeout: 120000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (small) await small.stop();
    if (slow) await slow.close();
    if (stalling) await stalling.close();
    if (denied) await denied.close();
    for (const f of fronts) await f.close();
    if (connect) await connect.close();
    if (store) await store.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function play(name, want, { timeoutMs = 15000, on = server } = {}) {
    const idx = await sdkPlay(page, on, name);
    const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], timeoutMs)
      .catch((e) => { throw new Error(withServerLog(on, `${name}: ${e.message}`)); });
    assert.equal(ev.status, want,
      withServerLog(on, `${name}: expected ${want}, got ${JSON.stringify(await sdkEvents(page, idx))}`));
    return { idx, ev };
  }

  async function playsFrames(name, { on = server } = {}) {
    await play(name, 'PLAYING', { on });
    const s = await waitForStats(page, (st) => st.video?.framesDecoded > 20 && st.audio?.totalSamplesReceived > 0,
      { timeoutMs: 10000, what: `${name}: 20 decoded frames and audio` })
      .catch((e) => { throw new Error(withServerLog(on, e.message)); });
    await sdkStopLast(page);
    await new Promise((r) => setTimeout(r, 300));
    return s;
  }

  test('moov first, short name (aws_s3_endpoint): plays 640x360 with audio', { timeout: 30000 }, async () => {
    const s = await playsFrames('vod://s3/media/moov_first.mp4');
    assert.equal(`${s.video.frameWidth}x${s.video.frameHeight}`, '640x360');
  });

  test('moov at the end, full URL form: plays', { timeout: 30000 }, async () => {
    const s = await playsFrames(`vod://s3/${store.endpoint}/media/moov_end.mp4`);
    assert.equal(`${s.video.frameWidth}x${s.video.frameHeight}`, '320x240');
  });

  test('a key with a space, a plus, parentheses and a non-ASCII letter, written %XX: plays', { timeout: 30000 }, async () => {
    await playsFrames('vod://s3/media/dir/with%20spaces%2B(%C3%A9).mp4');
  });

  test('an HTTPS endpoint whose certificate a CA in aws_s3_ca_file issued: plays (path style)', { timeout: 30000 }, async () => {
    const [trusted] = fronts;
    const endpoint = `https://127.0.0.1:${trusted.port}`;
    await playsFrames(`vod://s3/${endpoint}/media/moov_first.mp4`);
    const seen = trusted.requests.map((r) => `${r.host} ${r.path.split('?')[0]}`);
    assert.ok(seen.includes(`127.0.0.1:${trusted.port} /media/moov_first.mp4`), seen.join('\n'));
    assert.ok(trusted.requests.every((r) => /[?&]X-Amz-Signature=[0-9a-f]{64}/.test(r.path)), 'every request presigned');
  });

  test('an HTTPS endpoint with a certificate nobody trusts: FAILED at once, saying why', { timeout: 30000 }, async () => {
    const rogue = fronts[1];
    const t0 = Date.now();
    const { ev } = await play(`vod://s3/https://127.0.0.1:${rogue.port}/media/moov_first.mp4`, 'FAILED', { timeoutMs: 10000 });
    const ms = Date.now() - t0;
    assert.match(ev.info, /^Failed to read file: S3 endpoint https:\/\/127\.0\.0\.1:\d+: its TLS certificate is not trusted \(self-signed certificate\); if a private CA issued it, set aws_s3_ca_file to that CA's PEM file$/);
    assert.ok(ms < 5000, `FAILED after ${ms} ms`);
    assert.equal(rogue.requests.length, 0, 'no request went over the untrusted connection');
  });

  test('virtual-host addressing over HTTPS and HTTP: the bucket is in the host name, the object plays', { timeout: 60000 }, async () => {
    const [httpsFront, , httpFront] = fronts;
    connect = await startConnectProxy({ 443: httpsFront.port, 80: httpFront.port });
    const { reader } = store;
    const virtual = await startServer({
      files: [SAMPLE],
      settings: {
        aws_s3_addressing: 'virtual',
        aws_s3_ca_file: certs.ca,
        // The proxy resolves these names: what is checked here is the name as written.
        aws_s3_allowed_endpoints: STORE_DOMAIN,
        aws_s3_credentials: `us-east-1;${reader.key};${reader.secret}`,
      },
      // No DNS names STORE_DOMAIN: the proxy reaches it.
      env: { ALL_PROXY: connect.url, NO_PROXY: '' },
    });
    try {
      const before = [httpsFront.requests.length, httpFront.requests.length];
      await playsFrames(`vod://s3/https://${STORE_DOMAIN}/media/moov_first.mp4`, { on: virtual });
      await playsFrames(`vod://s3/http://${STORE_DOMAIN}/media/moov_end.mp4`, { on: virtual });
      const overHttps = httpsFront.requests.slice(before[0]).map((r) => `${r.host} ${r.path.split('?')[0]}`);
      const overHttp = httpFront.requests.slice(before[1]).map((r) => `${r.host} ${r.path.split('?')[0]}`);
      assert.ok(overHttps.length > 0 && overHttps.every((r) => r === `media.${STORE_DOMAIN} /moov_first.mp4`), overHttps.join('\n'));
      assert.ok(overHttp.length > 0 && overHttp.every((r) => r === `media.${STORE_DOMAIN} /moov_end.mp4`), overHttp.join('\n'));
      assert.ok(connect.tunnels.includes(`media.${STORE_DOMAIN}:443`), connect.tunnels.join(' '));
      assert.ok(connect.tunnels.includes(`media.${STORE_DOMAIN}:80`), connect.tunnels.join(' '));
    } finally {
      await virtual.stop();
    }
  });

  test('a live translation of an object (vod-live://s3/...): two viewers share it, the object is read once', { timeout: 40000 }, async () => {
    const name = 'vod-live://s3/media/moov_end.mp4';
    const size = statSync(testMedia('moov_end.mp4')).size;
    const servedBytes = async () => (await store.served())['/media/moov_end.mp4']?.bytes ?? 0;
    const servedBefore = await servedBytes();
    const before = server.stderr().length;
    const a = (await play(name, 'PLAYING')).idx;
    const b = (await play(name, 'PLAYING')).idx;
    // moov_end.mp4 is 4 s: both viewers see the one end of file.
    const endA = await waitForStatus(page, a, ['STOPPED', 'FAILED'], 10000);
    const endB = await waitForStatus(page, b, ['STOPPED', 'FAILED'], 10000);
    assert.equal(endA.status, 'STOPPED', withServerLog(server, JSON.stringify(endA)));
    assert.equal(endB.status, 'STOPPED', withServerLog(server, JSON.stringify(endB)));
    const log = server.stderr().slice(before);
    const started = log.match(/translation started/g) || [];
    assert.equal(started.length, 1, withServerLog(server, `${started.length} translations started for two viewers`));
    // What the store sent: the object's bytes once (played to its end), not twice.
    const served = (await servedBytes()) - servedBefore;
    assert.ok(served >= 0.9 * size && served <= 1.1 * size,
      withServerLog(server, `the store served ${served} bytes of a ${size}-byte object for two viewers`));
    console.log(`# live translation of a ${size}-byte object, two viewers: the store served ${served} bytes`);
  });

  test('failures say why, and are counted by outcome; the server plays on', { timeout: 90000 }, async () => {
    const before = await metrics(server);
    const failed = async (name) => (await play(name, 'FAILED')).ev.info;
    assert.match(await failed(`vod://s3/http://localhost:${store.port}/media/moov_first.mp4`),
      /^Restricted access: S3 denied access to media\/moov_first\.mp4 \(SignatureDoesNotMatch; check aws_s3_credentials\)$/);
    assert.match(await failed(`vod://s3/http://127.0.0.1:${denied.port}/media/moov_first.mp4`),
      /^Restricted access: S3 denied access to media\/moov_first\.mp4 \(AccessDenied; check aws_s3_credentials\)$/);
    assert.equal(await failed('vod://s3/media/no_such_object.mp4'), 'File not found');
    // The operator's store is named by its setting, not by its address.
    assert.equal(await failed('vod://s3/nobucket/moov_first.mp4'),
      'Failed to read file: S3 bucket "nobucket" does not exist at aws_s3_endpoint');
    assert.match(await failed('vod://s3/media/not_mp4.mp4'), /^File has wrong format/);
    assert.match(await failed(`vod://s3/http://127.0.0.1:${closedPort}/media/moov_first.mp4`),
      /^Failed to read file: S3 endpoint http:\/\/127\.0\.0\.1:\d+ cannot be reached: connection refused$/);
    // .invalid never resolves (RFC 6761).
    assert.equal(await failed('vod://s3/http://no-such-store.invalid/media/moov_first.mp4'),
      'Failed to read file: S3 endpoint http://no-such-store.invalid is unknown (host name not found)');
    await assertServerUp(server);
    const after = await metrics(server);
    const moved = (outcome) => after.get(`reelcast_s3_requests_total{outcome="${outcome}"}`)
      - before.get(`reelcast_s3_requests_total{outcome="${outcome}"}`);
    assert.equal(moved('denied'), 2, 'the two 403s');
    assert.equal(moved('not_found'), 2, 'the missing object and the missing bucket');
    // The refused connection is tried 3 times, the unknown host once.
    assert.ok(moved('transient') >= 3, `${moved('transient')} transient failures`);
    assert.ok(moved('failed') >= 1, `${moved('failed')} other failures`);
    assert.ok(after.get('reelcast_s3_retries_total') - before.get('reelcast_s3_retries_total') >= 2, 'the refused connection was retried');
    await playsFrames('vod://s3/media/moov_first.mp4');
  });

  test('a full-URL name reaches only the stores the operator allowed, and no private address: refused before any connection, saying which setting allows it', { timeout: 90000 }, async () => {
    // `watch` passes requests on to the store and counts the connections it gets.
    const watch = await startProxy(store.port);
    const { reader } = store;
    const strict = await startServer({
      files: [SAMPLE],
      settings: {
        aws_s3_endpoint: store.endpoint,
        aws_s3_credentials: `us-east-1;${reader.key};${reader.secret}`,
        // A host name that resolves to loopback: allowed as a store, refused as an address.
        aws_s3_allowed_endpoints: `localhost:${watch.port}`,
      },
    });
    try {
      // The operator's own store, written as an address in aws_s3_endpoint: plays, by
      // the short name and by its full URL.
      await playsFrames('vod://s3/media/moov_first.mp4', { on: strict });
      await playsFrames(`vod://s3/${store.endpoint}/media/moov_end.mp4`, { on: strict });

      const notAllowed = (endpoint) => `Restricted access: S3 endpoint ${endpoint} is not an allowed store; `
        + 'the server\'s aws_s3_allowed_endpoints setting lists the stores names may use';
      const failed = async (name) => (await play(name, 'FAILED', { on: strict })).ev.info;
      // Over the WCS WebSocket (the SDK), for names not listed, however the address is spelled.
      for (const endpoint of [watch.endpoint, `http://0x7f.0.0.1:${watch.port}`,
        `http://[::ffff:127.0.0.1]:${watch.port}`, `http://localhost:${watch.port}@127.0.0.1:${watch.port}`]) {
        assert.equal(await failed(`vod://s3/${endpoint}/media/moov_first.mp4`), notAllowed(endpoint));
      }
      // Listed, but the name resolves to loopback, which is not allowed by default.
      assert.equal(await failed(`vod://s3/http://localhost:${watch.port}/media/moov_first.mp4`),
        `Restricted access: S3 endpoint http://localhost:${watch.port} is at a private or local address; `
        + 'the server\'s aws_s3_allow_private_addresses setting allows such stores');
      // Over WHEP and REST: the same refusal, before any offer is answered.
      const name = `vod://s3/${watch.endpoint}/media/moov_first.mp4`;
      const whep = await fetch(`${strict.base}/whep/${encodeURIComponent(name)}`, {
        method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\n', signal: AbortSignal.timeout(10000),
      });
      assert.equal(whep.status, 403);
      assert.equal(await whep.text(), notAllowed(watch.endpoint));
      const rest = await fetch(`${strict.base}/rest-api/vod/startup`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(10000),
        body: JSON.stringify({ uri: `vod-live://s3/${watch.endpoint}/media/moov_first.mp4`, localStreamName: 'ssrf' }),
      });
      assert.equal(rest.status, 400);
      assert.equal((await rest.json()).error, notAllowed(watch.endpoint));
      assert.equal(watch.stats.connections, 0, 'the server connected to a store that was not allowed');
      await assertServerUp(strict);
    } finally {
      await strict.stop();
      await watch.close();
    }
  });

  test('a store\'s redirects are not followed and its answers are not read back to the viewer', { timeout: 60000 }, async () => {
    // `elsewhere` is where a redirect points: it must never be asked anything.
    const elsewhere = { requests: 0 };
    const target = http.createServer((req, res) => { elsewhere.requests += 1; res.writeHead(500); res.end(); });
    await new Promise((r) => target.listen(0, '127.0.0.1', r));
    const odd = http.createServer((req, res) => {
      const key = req.url.split('?')[0];
      if (key === '/media/redirect.mp4') {
        res.writeHead(307, { Location: `http://127.0.0.1:${target.address().port}/media/moov_first.mp4` });
        res.end();
      } else if (key === '/media/secret.mp4') {
        res.writeHead(400, { 'Content-Type': 'application/xml' });
        res.end('<Error><Code>InternalBackendGone</Code><Message>db-7.internal 10.9.8.7 refused</Message></Error>');
      } else {
        res.writeHead(405, { 'Content-Type': 'text/html' });
        res.end('<html>Admin console 1.2: method not allowed</html>');
      }
    });
    await new Promise((r) => odd.listen(0, '127.0.0.1', r));
    const base = `vod://s3/http://127.0.0.1:${odd.address().port}/media`;
    try {
      const failed = async (name) => (await play(name, 'FAILED')).ev.info;
      assert.equal(await failed(`${base}/redirect.mp4`),
        'Failed to read file: S3 media/redirect.mp4: HTTP 307: the store answered with a redirect, which is not followed (check the endpoint and region)');
      assert.equal(await failed(`${base}/secret.mp4`), 'Failed to read file: S3 media/secret.mp4: HTTP 400 from the store');
      assert.equal(await failed(`${base}/admin.mp4`), 'Failed to read file: S3 media/admin.mp4: HTTP 405 from the store');
      assert.equal(elsewhere.requests, 0, 'the server followed a redirect');
    } finally {
      for (const srv of [odd, target]) {
        srv.closeAllConnections();
        await new Promise((r) => srv.close(r));
      }
    }
  });

  /** The samples of `on`'s /metrics (open: auth is off), by series with its labels. */
  async function metrics(on) {
    const text = await (await fetch(`${on.base}/metrics`)).text();
    const values = new Map();
    for (const line of text.split('\n')) {
      const m = line.match(/^(reelcast_[a-z0-9_]+(?:\{[^}]*\})?) (\S+)$/);
      if (m) values.set(m[1], Number(m[2]));
    }
    return values;
  }

  test('a slow link that drops connections: starts long before the object is read, survives the cuts; the S3 metrics count it', { timeout: 60000 }, async () => {
    const size = statSync(LONG).size;
    const before = await metrics(server);
    slow.stats.bytes = 0;
    slow.stats.cuts = 0;
    const t0 = Date.now();
    const { idx } = await play(`vod://s3/${slow.endpoint}/media/long_moov_end.mp4`, 'PLAYING');
    await waitForStats(page, (s) => s.video?.framesDecoded > 0, { timeoutMs: 10000, what: 'first frame over the slow link' })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    const atFirstFrame = slow.stats.bytes;
    const firstFrameMs = Date.now() - t0;
    // The whole object takes more than 8 s at 200 kB/s; the first frame must not wait for it.
    assert.ok(atFirstFrame < 0.3 * size,
      `${atFirstFrame} of ${size} bytes fetched before the first frame (${firstFrameMs} ms)`);
    assert.ok(firstFrameMs < 5000, `first frame after ${firstFrameMs} ms`);

    // 151 more frames (6 s of the 25 fps file) and two cuts survived, however long a
    // loaded machine takes; a play that stalls at a cut never gets there.
    const m = await waitForFrames(page, 151, { timeoutMs: 40000, what: '151 more frames across the cuts' })
      .catch((e) => { throw new Error(withServerLog(server, `${e.message}; ${slow.stats.cuts} cuts`)); });
    for (const until = Date.now() + 20000; slow.stats.cuts < 2 && Date.now() < until;) await sleep(100);
    const events = await sdkEvents(page, idx);
    assert.ok(!events.some((e) => e.status === 'FAILED'), withServerLog(server, `events: ${JSON.stringify(events)}`));
    assert.ok(slow.stats.cuts >= 2, `the proxy cut only ${slow.stats.cuts} connections`);
    assert.ok(m.frames > 150, withServerLog(server,
      `${m.frames} frames decoded in ${m.ms} ms across ${slow.stats.cuts} cuts (25 fps file): ${JSON.stringify(m.last)}`));
    console.log(`# slow link: first frame after ${firstFrameMs} ms with ${atFirstFrame} of ${size} bytes fetched; `
      + `${m.frames} frames in ${m.ms} ms across ${slow.stats.cuts} cuts`);
    await sdkStopLast(page);
    // What the S3 metrics say of it: bytes came (no more than the link passed, headers
    // included), the requests succeeded, the cut answers were retried, each request was
    // timed; and the viewer's first frame was timed under its protocol.
    const after = await metrics(server);
    const moved = (k) => (after.get(k) ?? NaN) - (before.get(k) ?? NaN);
    const fetched = moved('reelcast_s3_fetched_bytes_total');
    assert.ok(fetched > 0.3 * size && fetched <= slow.stats.bytes, `${fetched} bytes counted; the link passed ${slow.stats.bytes}`);
    const ok = moved('reelcast_s3_requests_total{outcome="ok"}');
    assert.ok(ok >= 2, `${ok} successful requests`);
    assert.ok(moved('reelcast_s3_retries_total') >= 1, 'no retry counted after the cuts');
    const requests = ['ok', 'not_found', 'denied', 'transient', 'failed']
      .reduce((n, o) => n + moved(`reelcast_s3_requests_total{outcome="${o}"}`), 0);
    assert.equal(moved('reelcast_s3_request_duration_seconds_count'), requests, 'each request timed once');
    assert.equal(moved('reelcast_time_to_first_frame_seconds_count{protocol="wcs"}'), 1, 'the WCS viewer\'s first frame timed');
  });

  // Plays the 20 s moov-last object through the stalling proxy on `small` until 1 s of
  // it has been decoded, then stalls the store. Returns the play's index and the time.
  async function playThenStall() {
    const { idx } = await play(`vod://s3/${stalling.endpoint}/media/long_moov_end.mp4`, 'PLAYING', { on: small });
    await waitForStats(page, (st) => st.video?.framesDecoded > 25, { timeoutMs: 10000, what: '1 s of frames' })
      .catch((e) => { throw new Error(withServerLog(small, e.message)); });
    stalling.stall();
    return { idx, t0: Date.now() };
  }

  const framesNow = async () => (await readStats(page)).video?.framesDecoded ?? 0;

  test('a store that stalls for 7 s (past the 5 s read timeout): a pause, then playback goes on', { timeout: 60000 }, async () => {
    const { idx, t0 } = await playThenStall();
    const { connections } = stalling.stats;
    try {
      await sleep(4000 - (Date.now() - t0));
      const at4 = await framesNow();
      await sleep(7000 - (Date.now() - t0));
      const at7 = await framesNow();
      assert.ok(at7 - at4 <= 3, `frames kept coming during the stall: ${at4} at 4 s, ${at7} at 7 s`);
      assert.ok(stalling.stats.connections > connections, 'no new request after the read timeout');
      stalling.resume();
      await waitForStats(page, (st) => st.video?.framesDecoded > at7 + 50, { timeoutMs: 10000, what: '50 more frames after the store came back' })
        .catch((e) => { throw new Error(withServerLog(small, e.message)); });
      const events = await sdkEvents(page, idx);
      assert.ok(!events.some((e) => e.status === 'FAILED'), withServerLog(small, `events: ${JSON.stringify(events)}`));
    } finally {
      stalling.resume();
      await sdkStopLast(page);
    }
  });

  test('a store that stops answering for good: a pause, then FAILED within 20 s, saying why; opening on it too', { timeout: 90000 }, async () => {
    const { idx, t0 } = await playThenStall();
    try {
      const ev = await waitForStatus(page, idx, ['FAILED', 'STOPPED'], 30000)
        .catch((e) => { throw new Error(withServerLog(small, e.message)); });
      const ms = Date.now() - t0;
      assert.equal(ev.status, 'FAILED', withServerLog(small, JSON.stringify(ev)));
      assert.match(ev.info, /^Got exception while streaming file: S3 read of media\/long_moov_end\.mp4 stopped: no data for 1\d s \((waiting for|reading) the answer timed out\)$/);
      // Retried first (a 5 s read timeout, then more), and bounded (12 s + one attempt).
      assert.ok(ms > 8000 && ms < 21000, withServerLog(small, `FAILED ${ms} ms after the store stalled: ${ev.info}`));
      console.log(`# stalled store: FAILED ${ms} ms after the stall: ${ev.info}`);
      // Opening an object on the silent store fails in bounded time too (3 attempts).
      const t1 = Date.now();
      const open = await play(`vod://s3/${stalling.endpoint}/media/moov_first.mp4`, 'FAILED', { on: small, timeoutMs: 30000 });
      const openMs = Date.now() - t1;
      assert.match(open.ev.info, /^Failed to read file: S3 endpoint http:\/\/127\.0\.0\.1:\d+ cannot be reached: waiting for the answer timed out$/);
      assert.ok(openMs < 20000, `opening on a silent store FAILED after ${openMs} ms`);
      console.log(`# silent store at open: FAILED after ${openMs} ms`);
    } finally {
      stalling.resume();
    }
  });
});
