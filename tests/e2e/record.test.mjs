// Recording published streams, end to end with real clients: headless Chromium's fake
// camera and microphone (fed from files ffmpeg makes here) publish through the official
// WCS SDK with `record: true`; the SDK's getRecordInfo() names the file; a second
// browser watches live, then plays the finished recording (`vod://NAME`) through the SDK
// and WHEP; ffprobe checks the file in record_dir (H.264 + AAC, duration = the time
// published, moov before mdat). REST starts and stops a recording of a publisher that did
// not ask for one; a publisher whose page vanishes still leaves a finished file; one
// that changes its picture size mid-recording leaves a file that decodes throughout;
// `record_streams=true` records a WHIP publisher (aiortc).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  CI, FAKE_MEDIA_FLAGS, addSdkPublisher, launchBrowser, openSdkPage, requireFiles, restPost,
  sdkEvents, sdkPlay, startServer, waitForStats, waitForStatus, withServerLog,
} from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AIORTC_CLIENT = path.join(here, 'whip_aiortc.py');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** How far a recording's duration may be from the time it was published. */
const DURATION_SLACK_S = 0.5;

/** ffmpeg with these arguments; false when ffmpeg is missing (a failure under CI=true). */
function ffmpeg(args) {
  try {
    execFileSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch (e) {
    if (e.code === 'ENOENT' && !CI) return false;
    throw e;
  }
}

/**
 * What ffprobe reads in `file`, every packet decoded: { duration (s), video, audio }
 * with each stream's { codec, frames, duration }.
 */
function probe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-count_frames',
    '-show_entries', 'format=duration:stream=codec_type,codec_name,nb_read_frames,start_time,duration,width,height',
    '-of', 'json', file], { encoding: 'utf8' });
  const j = JSON.parse(out);
  const stream = (type) => {
    const s = j.streams.find((x) => x.codec_type === type);
    return s && {
      codec: s.codec_name, frames: Number(s.nb_read_frames), start: Number(s.start_time), duration: Number(s.duration),
      width: s.width, height: s.height,
    };
  };
  return { duration: Number(j.format.duration), video: stream('video'), audio: stream('audio') };
}

/**
 * Every frame of `file` decoded by ffprobe: { sizes: {"W,H": pictures}, errors: what the
 * decoders said ('' when clean) }. ffprobe rather than ffmpeg to a null output, whose
 * 1/fps time base merges two pictures of an irregular publisher into one timestamp and
 * reports that as an error of its own.
 */
function decodeAll(file) {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'frame=media_type,width,height',
    '-of', 'csv=p=0', file], { encoding: 'utf8' });
  const sizes = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [type, w, h] = line.split(',');
    if (type === 'video') sizes[`${w},${h}`] = (sizes[`${w},${h}`] || 0) + 1;
  }
  return { sizes, errors: `${r.stderr}${r.status === 0 ? '' : `exit status ${r.status}`}`.trim() };
}

/** The video packets' decode times in `file` (seconds), in file order. */
function videoDts(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=dts_time',
    '-of', 'csv=p=0', file], { encoding: 'utf8' });
  return out.trim().split('\n').map(Number);
}

/** The top-level box types of an MP4 file, in order. */
function topLevelBoxes(file) {
  const buf = readFileSync(file);
  const boxes = [];
  for (let pos = 0; pos + 8 <= buf.length;) {
    let size = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (size === 1) size = Number(buf.readBigUInt64BE(pos + 8));
    else if (size === 0) size = buf.length - pos;
    assert.ok(size >= 8, `box ${type} at ${pos} has size ${size}`);
    boxes.push(type);
    pos += size;
  }
  return boxes;
}

/** Waits until `name` is finished in `dir`: there, with no sidecar and no temporary. */
async function finished(server, dir, name, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  const done = () => existsSync(path.join(dir, name))
    && !existsSync(path.join(dir, `.${name}.recording`))
    && !existsSync(path.join(dir, `.${name}.finalizing`));
  while (!done()) {
    if (Date.now() > deadline) {
      throw new Error(withServerLog(server, `${name} not finished after ${timeoutMs} ms; record_dir has ${readdirSync(dir)}`));
    }
    await sleep(100);
  }
}

/** Checks a finished recording: H.264 + AAC, every packet decodes, faststart; its probe. */
function checkFile(file, what) {
  const p = probe(file);
  assert.equal(p.video?.codec, 'h264', `${what}: ${JSON.stringify(p)}`);
  assert.equal(p.audio?.codec, 'aac', `${what}: ${JSON.stringify(p)}`);
  assert.ok(p.video.frames > 0 && p.audio.frames > 0, `${what}: ${JSON.stringify(p)}`);
  // Both tracks start together (measured: audio 10-20 ms after the first picture).
  assert.ok(Math.abs(p.audio.start - p.video.start) < 0.1, `${what}: tracks start apart: ${JSON.stringify(p)}`);
  const boxes = topLevelBoxes(file);
  assert.ok(boxes.includes('moov') && boxes.includes('mdat'), `${what}: boxes ${boxes}`);
  assert.ok(boxes.indexOf('moov') < boxes.indexOf('mdat'), `${what}: moov after mdat (${boxes})`);
  assert.ok(!boxes.includes('moof'), `${what}: still fragmented (${boxes})`);
  const dts = videoDts(file);
  const back = dts.findIndex((d, i) => i > 0 && !(d > dts[i - 1]));
  assert.equal(back, -1, `${what}: video decode times not increasing at packet ${back}: ${dts.slice(Math.max(0, back - 2), back + 2)}`);
  return p;
}

/**
 * Chromium's flags for a fake camera and microphone fed from files made in `dir`: 2 s
 * of 640x360 testsrc2 at 30 fps and a 440 Hz tone (Chromium loops both). null without
 * ffmpeg (a failure under CI=true).
 */
function fakeCamera(dir) {
  const cam = path.join(dir, 'cam.y4m');
  const mic = path.join(dir, 'mic.wav');
  if (!ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-t', '2', '-pix_fmt', 'yuv420p', cam])) return null;
  ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '2', '-ac', '1', mic]);
  return [...FAKE_MEDIA_FLAGS, `--use-file-for-fake-video-capture=${cam}`, `--use-file-for-fake-audio-capture=${mic}`];
}

/** The published stream `name` as /stream/find_all lists it (undefined when not). */
async function publisherListed(server, name) {
  const r = await restPost(server, '/stream/find_all');
  return r.status === 200 ? r.body.find((s) => s.published && s.name === name) : undefined;
}

describe('recording published streams', { timeout: 400000 }, () => {
  let server;
  let publisherBrowser;
  let viewerBrowser;
  let pub;
  let viewer;
  let whepPage;
  let tmp;
  let recordDir;
  let skip = false;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'reelcast-rec-e2e-'));
    recordDir = path.join(tmp, 'records');
    const camera = fakeCamera(tmp);
    if (!camera) {
      skip = true;
      return;
    }
    server = await startServer({ files: [], settings: { record_dir: recordDir } });
    publisherBrowser = await launchBrowser({ args: camera });
    viewerBrowser = await launchBrowser();
    pub = await openSdkPage(publisherBrowser);
    await addSdkPublisher(pub);
    viewer = await openSdkPage(viewerBrowser);
    whepPage = await viewerBrowser.newPage();
    await whepPage.goto(`${server.base}/api/files`);
  }, { timeout: 60000 });

  after(async () => {
    if (publisherBrowser) await publisherBrowser.close();
    if (viewerBrowser) await viewerBrowser.close();
    if (server) await server.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** Publishes `name` from `page` and waits for PUBLISHING; returns [index, that event]. */
  async function publish(page, name, record) {
    const idx = await page.evaluate(([url, n, r, c]) => window.__publish(url, n, r, c),
      [server.wsUrl, name, record, { audio: true, video: { width: 640, height: 360 } }]);
    const ev = await waitForStatus(page, idx, ['PUBLISHING', 'FAILED', 'UNPUBLISHED'], 20000)
      .catch((e) => { throw new Error(withServerLog(server, `${name}: ${e.message}`)); });
    assert.equal(ev.status, 'PUBLISHING',
      withServerLog(server, `${name}: expected PUBLISHING, got ${JSON.stringify(await sdkEvents(page, idx))}`));
    return [idx, ev];
  }

  /** Plays `name` through the SDK in the viewer page until frames decode and audio comes. */
  async function watchBySdk(name, frames = 10) {
    const idx = await sdkPlay(viewer, server, name);
    const ev = await waitForStatus(viewer, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000)
      .catch((e) => { throw new Error(withServerLog(server, `SDK viewer of ${name}: ${e.message}`)); });
    assert.equal(ev.status, 'PLAYING', withServerLog(server, `SDK viewer of ${name}: ${JSON.stringify(ev)}`));
    await waitForStats(viewer, (s) => s.video?.framesDecoded > frames && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 15000, what: `frames and audio of ${name} by the SDK` })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    return idx;
  }

  /** Plays `name` through WHEP in the WHEP page, rendered as a player would. */
  async function watchByWhep(name, frames = 25) {
    const r = await whepPage.evaluate(async (n) => {
      (window.__whepPcs ||= []).forEach((pc) => pc.close());
      const w = await window.__whep.start(n);
      window.__whepPcs.push(w.pc);
      if (w.status === 201) {
        const v = document.createElement('video');
        v.srcObject = new MediaStream(w.pc.getReceivers().map((x) => x.track));
        document.body.appendChild(v);
        await v.play().catch(() => {});
      }
      return { status: w.status, body: w.status === 201 ? '' : w.body };
    }, name);
    assert.equal(r.status, 201, withServerLog(server, `WHEP of ${name}: ${JSON.stringify(r)}`));
    await waitForStats(whepPage, (s) => s.video?.framesDecoded > frames && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 20000, what: `frames and audio of ${name} by WHEP` })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
  }

  test('record: true through the SDK: recordName at PUBLISHING, watched live, the finished file plays (SDK, WHEP) and probes as H.264 + AAC, faststart, as long as it was published',
    { timeout: 120000 }, async (t) => {
      if (skip) return t.skip('ffmpeg is not installed');
      const [idx, publishing] = await publish(pub, 'rec1', true);
      const recordName = publishing.recordInfo;
      assert.equal(typeof recordName, 'string', withServerLog(server, `getRecordInfo() at PUBLISHING: ${JSON.stringify(publishing)}`));
      assert.match(recordName, /\.mp4$/);
      assert.ok(existsSync(path.join(recordDir, recordName)), `${recordName} is not in record_dir: ${readdirSync(recordDir)}`);
      const listed = await publisherListed(server, 'rec1');
      assert.equal(listed?.record, true, JSON.stringify(listed));

      const live = await watchBySdk('rec1');
      await sleep(6000 - (await pub.evaluate(() => performance.now()) - publishing.at));
      const stopAt = await pub.evaluate((i) => window.__unpublish(i), idx);
      const published = (stopAt - publishing.at) / 1000;
      const unpublished = await waitForStatus(pub, idx, ['UNPUBLISHED', 'FAILED'], 10000);
      assert.equal(unpublished.status, 'UNPUBLISHED', JSON.stringify(unpublished));
      const stopped = await waitForStatus(viewer, live, ['STOPPED', 'FAILED'], 10000);
      assert.equal(stopped.status, 'STOPPED');

      await finished(server, recordDir, recordName);
      const file = path.join(recordDir, recordName);
      const p = checkFile(file, recordName);
      t.diagnostic(`published ${published.toFixed(3)} s; ${recordName}: ${JSON.stringify(p)}`);
      assert.equal(p.video.width, 640, JSON.stringify(p));
      assert.equal(p.video.height, 360, JSON.stringify(p));
      assert.ok(Math.abs(p.duration - published) <= DURATION_SLACK_S,
        withServerLog(server, `${recordName} lasts ${p.duration} s, published ${published.toFixed(3)} s`));

      const vod = await watchBySdk(`vod://${recordName}`, 25);
      await watchByWhep(`vod://${recordName}`);
      const end = await waitForStatus(viewer, vod, ['STOPPED', 'FAILED'], 20000);
      assert.equal(end.status, 'STOPPED', withServerLog(server, `vod play ended ${JSON.stringify(end)}`));
    });

  test('REST startRecording of a publisher without record: listed by /recorder/find_all, record: true in /stream/find_all; stopRecording leaves a file as long as the time recorded',
    { timeout: 90000 }, async (t) => {
      if (skip) return t.skip('ffmpeg is not installed');
      const [idx, publishing] = await publish(pub, 'rec2', false);
      assert.equal(publishing.recordInfo ?? '', '', JSON.stringify(publishing));
      const before = await publisherListed(server, 'rec2');
      assert.ok(before, 'rec2 is not listed');
      assert.equal(before.record, false);
      const none = await restPost(server, '/recorder/find_all');
      assert.equal(none.status, 404, JSON.stringify(none));
      // Well past the publisher's first keyframe: the recording's must be asked for.
      await sleep(2000);

      const id = before.mediaSessionId;
      const started = Date.now();
      const start = await restPost(server, '/stream/startRecording', { mediaSessionId: id });
      assert.equal(start.status, 200, withServerLog(server, JSON.stringify(start)));
      const fileName = start.body.fileName;
      assert.match(fileName, /\.mp4$/);
      const again = await restPost(server, '/stream/startRecording', { mediaSessionId: id });
      assert.equal(again.status, 409, JSON.stringify(again));
      const recs = await restPost(server, '/recorder/find_all');
      assert.equal(recs.status, 200, JSON.stringify(recs));
      assert.deepEqual(recs.body.map((r) => [r.fileName, r.mediaSessionId]), [[fileName, id]]);
      assert.equal((await publisherListed(server, 'rec2'))?.record, true);

      await sleep(4000);
      const stop = await restPost(server, '/stream/stopRecording', { mediaSessionId: id });
      const recorded = (Date.now() - started) / 1000;
      assert.equal(stop.status, 200, JSON.stringify(stop));
      assert.equal(stop.body.fileName, fileName);
      await finished(server, recordDir, fileName);
      assert.equal((await publisherListed(server, 'rec2'))?.record, false);
      const p = checkFile(path.join(recordDir, fileName), fileName);
      t.diagnostic(`recorded ${recorded.toFixed(3)} s; ${fileName}: ${JSON.stringify(p)}`);
      assert.ok(Math.abs(p.duration - recorded) <= DURATION_SLACK_S,
        withServerLog(server, `${fileName} lasts ${p.duration} s, recorded ${recorded.toFixed(3)} s`));

      // Recorded again: a file of its own (the name gets a suffix), from its own keyframe.
      const startedAgain = Date.now();
      const second = await restPost(server, '/stream/startRecording', { mediaSessionId: id });
      assert.equal(second.status, 200, JSON.stringify(second));
      assert.notEqual(second.body.fileName, fileName);
      await sleep(2000);
      assert.equal((await restPost(server, '/stream/stopRecording', { mediaSessionId: id })).status, 200);
      const recordedAgain = (Date.now() - startedAgain) / 1000;
      await finished(server, recordDir, second.body.fileName);
      const p2 = checkFile(path.join(recordDir, second.body.fileName), second.body.fileName);
      assert.ok(Math.abs(p2.duration - recordedAgain) <= DURATION_SLACK_S,
        `${second.body.fileName} lasts ${p2.duration} s, recorded ${recordedAgain.toFixed(3)} s`);
      assert.equal(checkFile(path.join(recordDir, fileName), fileName).duration, p.duration, 'the first file is untouched');

      await pub.evaluate((i) => window.__unpublish(i), idx);
      await waitForStatus(pub, idx, ['UNPUBLISHED', 'FAILED'], 10000);
    });

  test('a recorded publisher whose page vanishes leaves a finished, playable recording', { timeout: 90000 }, async (t) => {
    if (skip) return t.skip('ffmpeg is not installed');
    const gone = await openSdkPage(publisherBrowser);
    await addSdkPublisher(gone);
    const [, publishing] = await publish(gone, 'rec3', true);
    const recordName = publishing.recordInfo;
    assert.match(recordName ?? '', /\.mp4$/, JSON.stringify(publishing));
    await sleep(4000);
    const closedAt = await gone.evaluate(() => performance.now());
    const published = (closedAt - publishing.at) / 1000;
    await gone.close();
    await finished(server, recordDir, recordName, 30000);
    const p = checkFile(path.join(recordDir, recordName), recordName);
    t.diagnostic(`published ${published.toFixed(3)} s until the page closed; ${recordName}: ${JSON.stringify(p)}`);
    assert.ok(Math.abs(p.duration - published) <= DURATION_SLACK_S,
      withServerLog(server, `${recordName} lasts ${p.duration} s, published ${published.toFixed(3)} s`));
  });
  test('a publisher that changes its picture size mid-recording: every picture of the file decodes, at both sizes',
    { timeout: 90000 }, async (t) => {
      if (skip) return t.skip('ffmpeg is not installed');
      const [idx, publishing] = await publish(pub, 'rec5', true);
      const recordName = publishing.recordInfo;
      await sleep(2500);
      // As WebRTC does under CPU or bandwidth pressure: a smaller picture (new SPS).
      const scaled = await pub.evaluate(async () => {
        const pc = window.__pcs[window.__pcs.length - 1];
        const sender = pc.getSenders().find((x) => x.track && x.track.kind === 'video');
        const params = sender.getParameters();
        params.encodings.forEach((e) => { e.scaleResolutionDownBy = 2; });
        await sender.setParameters(params);
        return params.encodings.length;
      });
      assert.ok(scaled > 0);
      await sleep(2500);
      await pub.evaluate((i) => window.__unpublish(i), idx);
      await waitForStatus(pub, idx, ['UNPUBLISHED', 'FAILED'], 10000);
      await finished(server, recordDir, recordName);
      const file = path.join(recordDir, recordName);
      const p = checkFile(file, recordName);
      const { sizes, errors } = decodeAll(file);
      t.diagnostic(`${recordName}: ${JSON.stringify(p)}; decoded sizes ${JSON.stringify(sizes)}`);
      assert.deepEqual(Object.keys(sizes).sort(), ['320,180', '640,360'], JSON.stringify(sizes));
      assert.equal(errors, '', `${recordName} does not decode cleanly:\n${errors.slice(0, 2000)}`);
      // Played back by name, the browser gets past the change too.
      await watchByWhep(`vod://${recordName}`);
      await waitForStats(whepPage, (x) => x.video?.frameWidth === 320 && x.video.framesDecoded > 100,
        { timeoutMs: 20000, what: 'the smaller pictures of the recording by WHEP' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    });

  test('a template names the file with the publisher\'s {sessionId} and {login} (the SDK\'s sipOptions.login)',
    { timeout: 60000 }, async (t) => {
      if (skip) return t.skip('ffmpeg is not installed');
      const tmp = await mkdtemp(path.join(os.tmpdir(), 'reelcast-rec-tpl-'));
      const server = await startServer({
        files: [],
        settings: {
          record_dir: path.join(tmp, 'records'),
          stream_record_policy: 'template',
          stream_record_policy_template: '{streamName}-{sessionId}-{login}',
        },
      });
      t.after(async () => {
        await server.stop();
        rmSync(tmp, { recursive: true, force: true });
      });
      const recordName = await pub.evaluate((url) => new Promise((resolve, reject) => {
        const SS = Flashphoner.constants.SESSION_STATUS;
        const S = Flashphoner.constants.STREAM_STATUS;
        Flashphoner.createSession({ urlServer: url, sipOptions: { login: 'alice' } })
          .on(SS.FAILED, () => reject(new Error('session FAILED')))
          .on(SS.ESTABLISHED, (session) => {
            const div = document.createElement('div');
            document.body.appendChild(div);
            const stream = session.createStream({ name: 'tpl', display: div, record: true });
            stream.on(S.PUBLISHING, (st) => { resolve(st.getRecordInfo()); session.disconnect(); });
            stream.on(S.FAILED, (st) => reject(new Error(`FAILED ${st.getInfo()}`)));
            stream.publish();
          });
        setTimeout(() => reject(new Error('no PUBLISHING in 20 s')), 20000);
      }), server.wsUrl).catch((e) => { throw new Error(withServerLog(server, e.message)); });
      assert.match(recordName, /^tpl-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-alice\.mp4$/,
        withServerLog(server, `recordName ${recordName}`));
    });
});

describe('record_streams=true', { timeout: 120000 }, () => {
  test('records a WHIP publisher (aiortc) that did not ask', { timeout: 90000 }, async (t) => {
    requireFiles(AIORTC_CLIENT);
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'reelcast-rec-whip-'));
    const recordDir = path.join(tmp, 'records');
    const server = await startServer({ files: [], settings: { record_dir: recordDir, record_streams: true } });
    t.after(async () => {
      await server.stop();
      rmSync(tmp, { recursive: true, force: true });
    });
    const url = `${server.base}/whip/${encodeURIComponent('py rec')}`;
    const client = promisify(execFile)('python3', [AIORTC_CLIENT, url, '--seconds', '6'], { timeout: 60000 })
      .catch((e) => { throw new Error(withServerLog(server, `aiortc client failed: ${e.stderr || e.message}`)); });
    const deadline = Date.now() + 15000;
    let listed = await publisherListed(server, 'py rec');
    while (!(listed?.status === 'PUBLISHING') && Date.now() < deadline) {
      await sleep(100);
      listed = await publisherListed(server, 'py rec');
    }
    assert.equal(listed?.record, true, withServerLog(server, `py rec: ${JSON.stringify(listed)}`));
    const recs = await restPost(server, '/recorder/find_all');
    assert.equal(recs.status, 200, JSON.stringify(recs));
    assert.equal(recs.body.length, 1, JSON.stringify(recs));
    assert.equal(recs.body[0].mediaSessionId, listed.mediaSessionId);
    const { fileName } = recs.body[0];
    const out = JSON.parse((await client).stdout.trim().split('\n').pop());
    assert.equal(out.delete_status, 200, JSON.stringify(out));
    await finished(server, recordDir, fileName);
    const p = checkFile(path.join(recordDir, fileName), fileName);
    t.diagnostic(`${fileName}: ${JSON.stringify(p)}`);
    assert.equal(p.video.width, 320);
    assert.ok(p.duration > 3, JSON.stringify(p));
  });
});

describe('shutdown while a publisher is recorded', { timeout: 120000 }, () => {
  test('SIGTERM unpublishes the publisher and finalizes its recording before the process exits', { timeout: 90000 }, async (t) => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'reelcast-rec-term-'));
    const recordDir = path.join(tmp, 'records');
    let browser;
    let server;
    t.after(async () => {
      if (browser) await browser.close();
      if (server) await server.stop();
      rmSync(tmp, { recursive: true, force: true });
    });
    const camera = fakeCamera(tmp);
    if (!camera) return t.skip('ffmpeg is not installed');
    server = await startServer({ files: [], settings: { record_dir: recordDir } });
    browser = await launchBrowser({ args: camera });
    const page = await openSdkPage(browser);
    await addSdkPublisher(page);
    const idx = await page.evaluate(([url]) => window.__publish(url, 'term', true), [server.wsUrl]);
    const publishing = await waitForStatus(page, idx, ['PUBLISHING', 'FAILED'], 20000);
    assert.equal(publishing.status, 'PUBLISHING', withServerLog(server, JSON.stringify(publishing)));
    const recordName = publishing.recordInfo;
    assert.match(recordName ?? '', /\.mp4$/, JSON.stringify(publishing));
    await sleep(3000);
    server.proc.kill('SIGTERM');
    const exited = await new Promise((resolve) => server.proc.once('exit', (code, signal) => resolve({ code, signal })));
    assert.deepEqual(exited, { code: 0, signal: null }, withServerLog(server, 'exit after SIGTERM'));
    const unpublished = await waitForStatus(page, idx, ['UNPUBLISHED', 'FAILED'], 5000);
    assert.equal(unpublished.status, 'UNPUBLISHED', JSON.stringify(unpublished));
    // Finished before the exit: no sidecar, no temporary, and nothing left to recover.
    assert.deepEqual(readdirSync(recordDir), [recordName]);
    const p = checkFile(path.join(recordDir, recordName), recordName);
    t.diagnostic(`${recordName}: ${JSON.stringify(p)}`);
    assert.ok(p.duration > 2.5, JSON.stringify(p));
  });
});
