// HLS ABR (`NAME-HLS-ABR-STREAM`): a translation of a 720p file offered as a ladder, the
// source untouched on top and renditions below it, each encoded once. Checked with
// clients we did not write: hls.js in headless Chromium (its levels, and each level
// forced showing pictures of that size), ffprobe reading every variant, and the RFC
// 8216bis checker of hls_shared.mjs on each media playlist; /metrics shows one encoder
// per rung however many read, and none once the readers have gone quiet.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, startServer, freeTcpPort, withServerLog } from './helpers.mjs';
import { HLS_JS, checkPlaylistsFor, run } from './hls_shared.mjs';

const NAME = encodeURIComponent('vod-live://abr720.mp4');
const ABR = `${NAME}-HLS-ABR-STREAM`;
// The default ladder below a 720p source: 480p, 360p, 240p (widths keep 16:9, even).
const SIZES = ['1280x720', '852x480', '640x360', '426x240'];

/** A 12 s 1280x720 30 fps H.264 (keyframe every 2 s) + AAC file in a new folder. */
async function make720p() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reelcast-abr-'));
  const file = path.join(dir, 'abr720.mp4');
  const made = await run('ffmpeg', ['-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '12', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-g', '60', '-keyint_min', '60', '-sc_threshold', '0',
    '-b:v', '3M', '-c:a', 'aac', '-b:a', '128k', '-movflags', '+faststart', file]);
  assert.equal(made.code, 0, made.stderr);
  return { dir, file };
}

/** The value of attribute `key` of an `#EXT-X-STREAM-INF` line (quoted values may hold commas). */
function attr(line, key) {
  const m = line.match(new RegExp(`[:,]${key}=("[^"]*"|[^,]*)`));
  return m ? m[1].replace(/^"|"$/g, '') : undefined;
}

/** Parses a multivariant playlist, checking what a validator checks: [{ bandwidth,
 * average, codecs, resolution, frameRate, uri }]. */
function parseMultivariant(text) {
  const lines = text.split('\n');
  assert.equal(lines[0], '#EXTM3U', text);
  assert.ok(!lines.some((l) => l.startsWith('#EXTINF') || l.startsWith('#EXT-X-TARGETDURATION')), `media tags in a multivariant playlist:\n${text}`);
  const variants = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('#EXT-X-STREAM-INF:')) return;
    const uri = lines[i + 1];
    assert.ok(uri && !uri.startsWith('#'), `EXT-X-STREAM-INF without its URI:\n${text}`);
    const v = {
      bandwidth: Number(attr(line, 'BANDWIDTH')),
      average: Number(attr(line, 'AVERAGE-BANDWIDTH')),
      codecs: attr(line, 'CODECS'),
      resolution: attr(line, 'RESOLUTION'),
      frameRate: Number(attr(line, 'FRAME-RATE')),
      uri,
    };
    assert.ok(Number.isInteger(v.bandwidth) && v.bandwidth > 0, `BANDWIDTH in ${line}`);
    assert.ok(v.average > 0 && v.average <= v.bandwidth, `AVERAGE-BANDWIDTH in ${line}`);
    assert.match(v.codecs ?? '', /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/, `CODECS in ${line}`);
    assert.match(v.resolution ?? '', /^\d+x\d+$/, `RESOLUTION in ${line}`);
    assert.ok(Math.abs(v.frameRate - 30) < 0.5, `FRAME-RATE in ${line}`);
    variants.push(v);
  });
  return variants;
}

/** A gauge of /metrics. */
async function gauge(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

/** Waits (20 s at most) until `name` reads `want`; returns what it read last. */
async function gaugeBecomes(server, name, want) {
  let got;
  for (let i = 0; i < 80; i += 1) {
    got = await gauge(server, name);
    if (got === want) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return got;
}

describe('HLS ABR of a translation', { timeout: 300000 }, () => {
  let server, browser, base, media;
  before(async () => {
    media = await make720p();
    const hlsPort = await freeTcpPort();
    server = await startServer({
      files: [media.file],
      settings: { 'hls.port': hlsPort, vod_live_loop: 'true' },
    });
    base = `http://127.0.0.1:${hlsPort}/${ABR}`;
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (media) rmSync(media.dir, { recursive: true, force: true });
  });

  test('the multivariant playlist lists the source and the ladder below it; each variant resolves and obeys the RFC', { timeout: 90000 }, async () => {
    const res = await fetch(`${base}/${ABR}.m3u8`);
    assert.equal(res.status, 200, withServerLog(server, 'the ABR playlist answers'));
    assert.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const variants = parseMultivariant(await res.text());
    assert.deepEqual(variants.map((v) => v.resolution), SIZES);
    // Highest first, each rung under the one above.
    for (let i = 1; i < variants.length; i += 1) {
      assert.ok(variants[i].bandwidth < variants[i - 1].bandwidth, `BANDWIDTH falls down the ladder: ${JSON.stringify(variants)}`);
    }
    // The source untouched (the file's High profile), the rungs constrained baseline.
    assert.match(variants[0].codecs, /^avc1\.64/, variants[0].codecs);
    for (const v of variants.slice(1)) assert.match(v.codecs, /^avc1\.42/, v.codecs);
    for (const v of variants) {
      const url = new URL(v.uri, `${base}/${ABR}.m3u8`).href;
      const { last } = await checkPlaylistsFor(url, 3000);
      assert.ok(last.segments.length > 0, `${v.uri} lists segments`);
      const init = await fetch(new URL(last.map, url));
      assert.equal(init.status, 200, `${v.uri}'s init segment`);
      const seg = last.segments.find((s) => s.uri);
      const got = await fetch(new URL(seg.uri, url));
      assert.equal(got.status, 200, `${v.uri}'s segment ${seg.uri}`);
      assert.ok((await got.arrayBuffer()).byteLength > 1000, `${v.uri}'s segment has media`);
    }
    // A blocking reload of a rung waits for the next part, as for plain HLS.
    const rung = new URL(variants[2].uri, `${base}/${ABR}.m3u8`).href;
    const { last } = await checkPlaylistsFor(rung, 600);
    const next = last.segments[last.segments.length - 1];
    const started = Date.now();
    const blocked = await fetch(`${rung}?_HLS_msn=${next.msn}&_HLS_part=${next.parts.length}`);
    assert.equal(blocked.status, 200);
    assert.ok(Date.now() - started < 3000, 'a blocking reload answers within a part or two');
  });

  test('ffprobe sees every variant: its size, H.264 and AAC, without errors', { timeout: 90000 }, async () => {
    const probe = await run('ffprobe', ['-hide_banner', '-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', `${base}/${ABR}.m3u8`]);
    assert.equal(probe.code, 0, `ffprobe failed: ${probe.stderr}`);
    assert.equal(probe.stderr.trim(), '', 'ffprobe reports nothing wrong');
    const streams = JSON.parse(probe.stdout).streams;
    const sizes = streams.filter((s) => s.codec_name === 'h264').map((s) => `${s.width}x${s.height}`);
    assert.deepEqual(sizes, SIZES);
    assert.equal(streams.filter((s) => s.codec_name === 'aac').length, SIZES.length, 'AAC in every variant');
  });

  test('hls.js gets one level per variant; forcing each level shows pictures of its size', { timeout: 150000 }, async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.base}/api/files`);
      await page.addScriptTag({ path: HLS_JS });
      const seen = await page.evaluate(async (url) => {
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        const video = document.createElement('video');
        video.muted = true;
        document.body.appendChild(video);
        let pictures = 0;
        const onFrame = () => { pictures += 1; video.requestVideoFrameCallback(onFrame); };
        video.requestVideoFrameCallback(onFrame);
        const hls = new window.Hls();
        const errors = [];
        hls.on(window.Hls.Events.ERROR, (_e, d) => { if (d.fatal) errors.push(`${d.type}: ${d.details}`); });
        const parsed = new Promise((r) => hls.on(window.Hls.Events.MANIFEST_PARSED, r));
        hls.loadSource(url);
        hls.attachMedia(video);
        await parsed;
        video.play().catch(() => {});
        const levels = hls.levels.map((l) => `${l.width}x${l.height}`);
        const forced = [];
        for (let i = 0; i < hls.levels.length && !errors.length; i += 1) {
          hls.currentLevel = i;
          const want = hls.levels[i];
          const until = Date.now() + 20000;
          let shown = null;
          while (Date.now() < until && !errors.length) {
            if (video.videoWidth === want.width && video.videoHeight === want.height) {
              if (shown === null) shown = pictures;
              // Pictures keep coming at that size.
              if (pictures - shown >= 45) break;
            }
            await sleep(100);
          }
          forced.push({ level: i, width: video.videoWidth, height: video.videoHeight, pictures: shown === null ? 0 : pictures - shown });
        }
        hls.destroy();
        return { levels, forced, errors };
      }, `${base}/${ABR}.m3u8`);
      assert.deepEqual(seen.errors, [], withServerLog(server, 'no fatal hls.js error'));
      assert.deepEqual([...seen.levels].sort(), [...SIZES].sort(), 'one level per variant');
      for (const f of seen.forced) {
        assert.equal(`${f.width}x${f.height}`, seen.levels[f.level], `level ${f.level} forced: ${JSON.stringify(seen.forced)}`);
        assert.ok(f.pictures >= 45, `level ${f.level} keeps decoding: ${JSON.stringify(seen.forced)}`);
      }
    } finally {
      await page.close();
    }
  });

  test('two readers share one encoder per rung; the encoders stop once they go quiet; an unknown name is 404', { timeout: 90000 }, async () => {
    // Whatever earlier tests left has gone quiet first (3 target durations: 6 s).
    assert.equal(await gaugeBecomes(server, 'reelcast_hls_abr_rungs', 0), 0, 'no rung before');
    const read = async (agent) => {
      const headers = { 'user-agent': agent };
      const res = await fetch(`${base}/${ABR}.m3u8`, { headers });
      assert.equal(res.status, 200);
      const variants = parseMultivariant(await res.text());
      for (const v of variants) {
        const r = await fetch(`${base}/${v.uri}`, { headers });
        assert.equal(r.status, 200, v.uri);
        await r.text();
      }
    };
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      await Promise.all([read('reader-one'), read('reader-two')]);
      assert.equal(await gauge(server, 'reelcast_hls_abr_rungs'), 3, 'one encoder per rung, shared by both readers');
      assert.equal(await gauge(server, 'reelcast_video_transcoders_busy'), 3, 'no other encoder');
      await new Promise((r) => setTimeout(r, 500));
    }
    const find = await fetch(`${server.base}/rest-api/stream/find_all`, { method: 'POST' });
    const hls = (await find.json()).filter((s) => s.protocol === 'hls');
    assert.equal(hls.length, 2, 'REST lists the two readers');
    // Both quiet now: within three target durations (and a little) the encoders stop.
    const quiet = Date.now();
    assert.equal(await gaugeBecomes(server, 'reelcast_hls_abr_rungs', 0), 0, withServerLog(server, 'the rungs stop'));
    assert.equal(await gauge(server, 'reelcast_video_transcoders_busy'), 0, 'their encoders too');
    assert.ok(Date.now() - quiet >= 4000, 'not before the readers have been quiet a while');

    for (const name of ['nothing-here-HLS-ABR-STREAM', `${encodeURIComponent('vod-live://missing.mp4')}-HLS-ABR-STREAM`]) {
      const res = await fetch(`${base.replace(ABR, name)}/${name}.m3u8`);
      assert.equal(res.status, 404, name);
      assert.match(res.headers.get('content-type'), /^text\/plain/);
    }
    const stale = await fetch(`${base}/0badf00d-1.m4s`);
    assert.equal(stale.status, 404, 'a segment of no running ladder');
  });
});

describe('HLS ABR under limits', { timeout: 120000 }, () => {
  let media;
  before(async () => { media = await make720p(); }, { timeout: 60000 });
  after(() => { if (media) rmSync(media.dir, { recursive: true, force: true }); });

  /** The variants' sizes of the ABR playlist, from a server with `settings`. */
  async function sizesWith(settings) {
    const hlsPort = await freeTcpPort();
    const server = await startServer({ files: [media.file], settings: { 'hls.port': hlsPort, ...settings } });
    try {
      const res = await fetch(`http://127.0.0.1:${hlsPort}/${ABR}/${ABR}.m3u8`);
      if (res.status !== 200) return res.status;
      return parseMultivariant(await res.text()).map((v) => v.resolution);
    } finally {
      await server.stop();
    }
  }

  test('one free transcoder: the source and the top rung; transcoding disabled: the source only; ABR off: 404', { timeout: 100000 }, async () => {
    assert.deepEqual(await sizesWith({ video_transcoders_max: 1 }), SIZES.slice(0, 2));
    assert.deepEqual(await sizesWith({ transcoding_disabled: 'true' }), SIZES.slice(0, 1));
    assert.deepEqual(await sizesWith({ hls_abr_ladder: '360:700' }), ['1280x720', '640x360']);
    assert.equal(await sizesWith({ hls_abr_auto_start: 'false' }), 404);
  });
});
