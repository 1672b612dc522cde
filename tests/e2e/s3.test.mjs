// S3: the official WCS SDK in headless Chromium plays objects from a real S3-protocol
// server (moto, SigV4 and IAM checks on) through reelcast, and fails the way a user can
// act on: wrong credentials, no permission, missing object, missing bucket, not an MP4,
// a store that does not answer. Then the same through a slow link that drops its
// connections: playback starts long before the object is read and survives the cuts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import {
  SAMPLE, assertServerUp, launchBrowser, measure, openSdkPage, requireFiles, sdkEvents, sdkPlay,
  sdkStopLast, startServer, testMedia, waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';
import { startProxy, startStore } from './s3_store.mjs';

const LONG = testMedia('long_moov_end.mp4');

describe('S3 objects through the official WCS SDK', { timeout: 300000 }, () => {
  let store;
  let server;
  let browser;
  let page;
  let slow;        // throttled, connection-cutting proxy in front of the store
  let denied;      // plain proxy whose host:port has the credentials of a user without rights
  let closedPort;  // a port nobody listens on

  before(async () => {
    requireFiles(SAMPLE, testMedia('moov_end.mp4'), testMedia('not_mp4.mp4'), LONG);
    store = await startStore({
      buckets: ['media'],
      objects: [
        { bucket: 'media', key: 'moov_first.mp4', file: SAMPLE },
        { bucket: 'media', key: 'moov_end.mp4', file: testMedia('moov_end.mp4') },
        { bucket: 'media', key: 'dir/with spaces.mp4', file: SAMPLE },
        { bucket: 'media', key: 'not_mp4.mp4', file: testMedia('not_mp4.mp4') },
        { bucket: 'media', key: 'long_moov_end.mp4', file: LONG },
      ],
    });
    slow = await startProxy(store.port, { bytesPerSecond: 200000, cutEvery: 100000 });
    denied = await startProxy(store.port);
    closedPort = await startProxy(store.port).then(async (p) => { await p.close(); return p.port; });
    const { reader, nobody } = store;
    server = await startServer({
      files: [SAMPLE],
      settings: {
        aws_s3_endpoint: store.endpoint,
        aws_s3_credentials: `us-east-1;${reader.key};${reader.secret}`,
        // Per-endpoint credentials: a wrong secret for `localhost:PORT` (the same store),
        // a user without permissions for the `denied` proxy.
        [`aws_s3_credentials.localhost:${store.port}`]: `us-east-1;${reader.key};not-the-secret`,
        [`aws_s3_credentials.127.0.0.1:${denied.port}`]: `us-east-1;${nobody.key};${nobody.secret}`,
      },
    });
    browser = await launchBrowser();
    page = await openSdkPage(browser);
  }, { timeout: 120000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (slow) await slow.close();
    if (denied) await denied.close();
    if (store) await store.stop();
  });

  async function play(name, want, timeoutMs = 15000) {
    const idx = await sdkPlay(page, server, name);
    const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], timeoutMs)
      .catch((e) => { throw new Error(withServerLog(server, `${name}: ${e.message}`)); });
    assert.equal(ev.status, want,
      withServerLog(server, `${name}: expected ${want}, got ${JSON.stringify(await sdkEvents(page, idx))}`));
    return { idx, ev };
  }

  async function playsFrames(name) {
    await play(name, 'PLAYING');
    const s = await waitForStats(page, (st) => st.video?.framesDecoded > 20 && st.audio?.totalSamplesReceived > 0,
      { timeoutMs: 10000, what: `${name}: 20 decoded frames and audio` })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
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

  test('a key with a space, written %20: plays', { timeout: 30000 }, async () => {
    await playsFrames('vod://s3/media/dir/with%20spaces.mp4');
  });

  test('a live translation of an object (vod-live://s3/...): two viewers share it, the object is read once', { timeout: 40000 }, async () => {
    const name = 'vod-live://s3/media/moov_end.mp4';
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
  });

  test('failures say why; the server plays on', { timeout: 90000 }, async () => {
    const failed = async (name) => (await play(name, 'FAILED')).ev.info;
    assert.match(await failed(`vod://s3/http://localhost:${store.port}/media/moov_first.mp4`),
      /^Restricted access: S3 denied access to media\/moov_first\.mp4 \(SignatureDoesNotMatch; check aws_s3_credentials\)$/);
    assert.match(await failed(`vod://s3/http://127.0.0.1:${denied.port}/media/moov_first.mp4`),
      /^Restricted access: S3 denied access to media\/moov_first\.mp4 \(AccessDenied; check aws_s3_credentials\)$/);
    assert.equal(await failed('vod://s3/media/no_such_object.mp4'), 'File not found');
    assert.match(await failed('vod://s3/nobucket/moov_first.mp4'),
      /^Failed to read file: S3 bucket "nobucket" does not exist at http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(await failed('vod://s3/media/not_mp4.mp4'), /^File has wrong format/);
    assert.match(await failed(`vod://s3/http://127.0.0.1:${closedPort}/media/moov_first.mp4`),
      /^Failed to read file: S3 endpoint http:\/\/127\.0\.0\.1:\d+ cannot be reached: connection refused$/);
    await assertServerUp(server);
    await playsFrames('vod://s3/media/moov_first.mp4');
  });

  test('a slow link that drops connections: starts long before the object is read, survives the cuts', { timeout: 60000 }, async () => {
    const size = statSync(LONG).size;
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

    const m = await measure(page, 8000);
    const events = await sdkEvents(page, idx);
    assert.ok(!events.some((e) => e.status === 'FAILED'), withServerLog(server, `events: ${JSON.stringify(events)}`));
    assert.ok(slow.stats.cuts >= 2, `the proxy cut only ${slow.stats.cuts} connections`);
    assert.ok(m.frames > 150, withServerLog(server,
      `${m.frames} frames decoded in 8 s across ${slow.stats.cuts} cuts (25 fps file): ${JSON.stringify(m.last)}`));
    console.log(`# slow link: first frame after ${firstFrameMs} ms with ${atFirstFrame} of ${size} bytes fetched; `
      + `${m.frames} frames in 8 s across ${slow.stats.cuts} cuts`);
    await sdkStopLast(page);
  });
});
