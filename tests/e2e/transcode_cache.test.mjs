// The transcode cache of personal VODs: the first play of a file whose video browsers
// cannot take (H.264 with B-frames) is a miss that fills the cache in the background;
// the second play of the unchanged file is a hit and runs no transcoder at all, at the
// file's frame rate; a touched file is a miss again (never stale video); a small
// `transcode_cache_max_size` evicts the least recently used entry; an S3 object is cached
// by its ETag, and a replaced object is a miss again. Asserted from the server's own
// counters (/metrics), played in Chromium through WHEP.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readdir, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import {
  launchBrowser, metricValue, readStats, requireFiles, startServer, testMedia, waitForStats, withServerLog,
} from './helpers.mjs';
import { closeAllViewers, whepWatch } from './frames.mjs';
import { startStore } from './s3_store.mjs';
import { execFileSync } from 'node:child_process';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FILE = 'tc_bframes.mp4'; // 640x360, 30 fps, 10 s, B-frames + AAC
const FPS = 30;

const counts = async (server) => ({
  hits: await metricValue(server, 'transcode_cache_hits_total'),
  misses: await metricValue(server, 'transcode_cache_misses_total'),
  evictions: await metricValue(server, 'transcode_cache_evictions_total'),
  bytes: await metricValue(server, 'transcode_cache_bytes'),
});

/** Polls `check()` until true (`what` in the failure). */
async function until(server, what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, withServerLog(server, `timed out waiting for ${what}`));
    await sleep(250);
  }
}

const cacheDir = (server) => path.join(server.root, 'records', '.transcode-cache');
const entries = async (server) => (await readdir(cacheDir(server))).filter((f) => !f.startsWith('.'));

/** Plays `vod://name` over WHEP in a fresh page until `frames` are decoded; then `during(page)`. */
async function play(browser, server, name, during = async () => {}) {
  const page = await browser.newPage();
  try {
    await page.goto(`${server.base}/api/files`);
    await whepWatch(page, `vod://${name}`);
    await waitForStats(page, (s) => s.video?.framesDecoded > 0,
      { timeoutMs: 15000, what: `${name}: first frame` })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    await during(page);
  } finally {
    await closeAllViewers(page).catch(() => {});
    await page.close();
  }
}

/** No video transcode runs (the personal VODs before, and their cache jobs, ended). */
async function noTranscoders(server) {
  await until(server, 'no video transcoder busy',
    async () => (await metricValue(server, 'video_transcoders_busy')) === 0, 30000);
}

describe('transcode cache of personal VODs', { timeout: 400000 }, () => {
  let browser;
  before(async () => {
    requireFiles(testMedia(FILE));
    browser = await launchBrowser();
  });
  after(async () => { if (browser) await browser.close(); });

  describe('one file played again', () => {
    let server;
    before(async () => { server = await startServer({ files: [testMedia(FILE)] }); }, { timeout: 60000 });
    after(async () => { if (server) await server.stop(); });

    test('first play: a miss that fills the cache; second play: a hit, no transcoder, at the file\'s rate; touched: a miss again', { timeout: 200000 }, async () => {
      assert.deepEqual(await counts(server), { hits: 0, misses: 0, evictions: 0, bytes: 0 });

      // 1. A miss: the play transcodes as it goes, the job fills the cache beside it.
      await play(browser, server, FILE);
      const first = await counts(server);
      assert.equal(first.misses, 1, JSON.stringify(first));
      assert.equal(first.hits, 0);
      await until(server, 'the cache entry', async () => (await metricValue(server, 'transcode_cache_bytes')) > 0);
      const [entry] = await entries(server);
      assert.ok(entry, 'a finished entry in the cache folder');
      assert.equal((await stat(path.join(cacheDir(server), entry))).size, await metricValue(server, 'transcode_cache_bytes'));
      await noTranscoders(server);

      // 2. A hit: no transcoder while it plays, frames at the file's rate.
      await play(browser, server, FILE, async (page) => {
        const c = await counts(server);
        assert.equal(c.hits, 1, withServerLog(server, JSON.stringify(c)));
        assert.equal(c.misses, 1);
        const s0 = await readStats(page);
        const t0 = Date.now();
        for (let i = 0; i < 8; i++) {
          assert.equal(await metricValue(server, 'video_transcoders_busy'), 0, 'a cached play runs no transcoder');
          await sleep(500);
        }
        const s1 = await readStats(page);
        const seconds = (Date.now() - t0) / 1000;
        const frames = s1.video.framesDecoded - s0.video.framesDecoded;
        assert.ok(frames >= 0.8 * FPS * seconds,
          withServerLog(server, `${frames} frames decoded in ${seconds.toFixed(1)} s (the file has ${FPS} fps)`));
        assert.equal(`${s1.video.frameWidth}x${s1.video.frameHeight}`, '640x360');
        assert.ok(s1.audio?.totalSamplesReceived > 0, 'sound from the cached entry');
      });

      // 3. The file touched (a new mtime): the entry is not its version any more.
      const later = new Date(Date.now() + 60000);
      await utimes(path.join(server.mediaDir, FILE), later, later);
      await play(browser, server, FILE);
      const touched = await counts(server);
      assert.equal(touched.misses, 2, JSON.stringify(touched));
      assert.equal(touched.hits, 1);
      // Its new entry replaces the stale one.
      await until(server, 'the new entry replacing the stale one',
        async () => { const e = await entries(server); return e.length === 1 && e[0] !== entry; });
    });
  });

  describe('a small transcode_cache_max_size', () => {
    let server;
    let size;
    before(async () => {
      // The size of one entry, from a first server: the second holds one and a half.
      const probe = await startServer({ files: [testMedia(FILE)] });
      try {
        await play(browser, probe, FILE);
        await until(probe, 'the cache entry', async () => (await metricValue(probe, 'transcode_cache_bytes')) > 0);
        size = await metricValue(probe, 'transcode_cache_bytes');
      } finally {
        await probe.stop();
      }
      server = await startServer({
        files: [testMedia(FILE)],
        settings: { transcode_cache_max_size: String(Math.floor(size * 1.5)) },
      });
      await copyFile(testMedia(FILE), path.join(server.mediaDir, 'copy.mp4'));
    }, { timeout: 120000 });
    after(async () => { if (server) await server.stop(); });

    test('the least recently used entry is evicted', { timeout: 200000 }, async () => {
      await play(browser, server, FILE);
      await until(server, 'the first entry', async () => (await metricValue(server, 'transcode_cache_bytes')) > 0);
      await noTranscoders(server);
      await play(browser, server, 'copy.mp4');
      await until(server, 'an eviction', async () => (await metricValue(server, 'transcode_cache_evictions_total')) === 1);
      const c = await counts(server);
      assert.ok(c.bytes > 0 && c.bytes <= size * 1.5, JSON.stringify(c));
      assert.equal((await entries(server)).length, 1);
      await noTranscoders(server);
      // The evicted file is a miss again; the one kept is a hit.
      await play(browser, server, 'copy.mp4');
      assert.equal(await metricValue(server, 'transcode_cache_hits_total'), 1);
      await play(browser, server, FILE);
      assert.equal(await metricValue(server, 'transcode_cache_misses_total'), 3);
    });
  });

  describe('an S3 object', () => {
    let store;
    let server;
    before(async () => {
      store = await startStore({
        buckets: ['media'],
        objects: [{ bucket: 'media', key: 'tc.mp4', file: testMedia(FILE) }],
      });
      const { reader } = store;
      server = await startServer({
        files: [testMedia(FILE)],
        settings: {
          aws_s3_endpoint: store.endpoint,
          aws_s3_credentials: `us-east-1;${reader.key};${reader.secret}`,
          aws_s3_allowed_endpoints: '127.0.0.1',
          aws_s3_allow_private_addresses: 'true',
        },
      });
    }, { timeout: 60000 });
    after(async () => {
      if (server) await server.stop();
      if (store) await store.stop();
    });

    test('is cached by its ETag: a second play is a hit, a replaced object a miss', { timeout: 200000 }, async () => {
      const name = 's3/media/tc.mp4';
      await play(browser, server, name);
      assert.equal(await metricValue(server, 'transcode_cache_misses_total'), 1);
      await until(server, 'the cache entry', async () => (await metricValue(server, 'transcode_cache_bytes')) > 0);
      await noTranscoders(server);
      await play(browser, server, name);
      assert.equal(await metricValue(server, 'transcode_cache_hits_total'), 1,
        withServerLog(server, 'the second play of the unchanged object'));
      // The object replaced by another file (another ETag): never the stale entry.
      const code = [
        'import boto3, sys',
        's3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",',
        '    aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])',
        's3.upload_file(sys.argv[4], "media", "tc.mp4")',
      ].join('\n');
      execFileSync(process.env.PYTHON || 'python3',
        ['-c', code, store.endpoint, store.reader.key, store.reader.secret, testMedia('tc_hevc.mp4')]);
      await noTranscoders(server);
      await play(browser, server, name);
      assert.equal(await metricValue(server, 'transcode_cache_misses_total'), 2);
      assert.equal(await metricValue(server, 'transcode_cache_hits_total'), 1);
    });
  });
});
