// The demo page a newcomer opens first (GET / → web/index.html): it lists the files,
// plays one on a click, shows the server's reason when a stream fails.
//
// Stable hooks the page provides (keep them when editing web/index.html):
//   #files button[data-file="NAME"]  one per entry of /api/files; a click plays vod://NAME
//   #stream-name  #play  #stop  #video  #stats
//   #status[data-state]  idle | connecting | playing | stopped | error (text: the reason)
//   Live translations (REST): #tr-form (#tr-file, #tr-name, #tr-loop, #tr-start), #tr-refresh,
//   #tr-list li[data-name][data-uri][data-loop] with button[data-action=play|stop], #tr-note[data-state]
//   HLS player: #hls-name #hls-play #hls-stop #hls-video #hls-url, #hls-status[data-state][data-engine]

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  REPO, SAMPLE, freeTcpPort, launchBrowser, serverAndPage, startServer, waitForStats, withServerLog,
} from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `frames()` has grown past `from + more` (a slow machine gets there late, a
 * stalled picture never); rejects at `timeoutMs` with how far it got.
 */
async function framesGrow(frames, from, more, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let now = await frames();
  while (now - from <= more) {
    if (Date.now() > deadline) throw new Error(`${what}: ${now - from} frames in ${timeoutMs} ms, wanted more than ${more}`);
    await sleep(100);
    now = await frames();
  }
  return now - from;
}

describe('demo page', { timeout: 120000 }, () => {
  let env;
  let server;
  let page;

  before(async () => {
    env = await serverAndPage({ files: [SAMPLE], sameOrigin: false });
    ({ server, page } = env);
  }, { timeout: 60000 });

  after(async () => {
    if (env) await env.close();
  });

  test('GET / serves the page; it lists sample.mp4', { timeout: 20000 }, async () => {
    const res = await fetch(`${server.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /text\/html/);
    await page.goto(`${server.base}/`);
    assert.equal(await page.title(), 'reelcast');
    await page.locator('#files button[data-file="sample.mp4"]').waitFor({ timeout: 10000 });
    assert.equal(await page.inputValue('#stream-name'), 'vod://sample.mp4');
  });

  test('clicking sample.mp4 plays it in the <video>', { timeout: 40000 }, async () => {
    await page.click('#files button[data-file="sample.mp4"]');
    await page.waitForSelector('#status[data-state="playing"]', { timeout: 15000 })
      .catch(async (e) => {
        const st = await page.textContent('#status');
        throw new Error(withServerLog(server, `page status stayed "${st}": ${e.message}`));
      });
    const frames = () => page.evaluate(() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames);
    const f0 = await frames();
    await framesGrow(frames, f0, 25, 20000, 'the <video> showed')
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    const size = await page.evaluate(() => {
      const v = document.getElementById('video');
      return `${v.videoWidth}x${v.videoHeight}`;
    });
    assert.equal(size, '640x360');
    const s = await waitForStats(page, (st) => st.audio?.totalSamplesReceived > 0, { timeoutMs: 5000, what: 'audio' });
    assert.ok(s.video.framesDecoded > 25);
    // The live stats line shows the resolution.
    await page.waitForFunction(() => /640\D360/.test(document.getElementById('stats').textContent), null, { timeout: 5000 });

    await page.click('#stop');
    await page.waitForSelector('#status[data-state="stopped"]', { timeout: 5000 });
  });

  test('a missing file shows the server\'s reason', { timeout: 20000 }, async () => {
    await page.fill('#stream-name', 'vod://no_such_file.mp4');
    await page.click('#play');
    await page.waitForSelector('#status[data-state="error"]', { timeout: 10000 });
    assert.match(await page.textContent('#status'), /File not found/);
  });

  test('starts a live translation, lists it, plays it by its name, stops it', { timeout: 60000 }, async () => {
    const restFind = (name) => fetch(`${server.base}/rest-api/vod/find`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ localStreamName: name }),
    });
    await page.goto(`${server.base}/`);
    await page.locator('#tr-file option[value="sample.mp4"]').waitFor({ state: 'attached', timeout: 10000 });
    await page.selectOption('#tr-file', 'sample.mp4');
    await page.fill('#tr-name', 'channel1');
    await page.check('#tr-loop');
    await page.click('#tr-start');
    await page.waitForSelector('#tr-list li[data-name="channel1"][data-loop="true"][data-uri="vod-live://sample.mp4"]', { timeout: 10000 })
      .catch(async (e) => { throw new Error(withServerLog(server, `not listed (note: ${await page.textContent('#tr-note')}): ${e.message}`)); });
    assert.match(await page.textContent('#tr-note'), /Started channel1/);
    const found = await restFind('channel1');
    assert.equal(found.status, 200, 'the server runs what the page lists');
    assert.equal((await found.json())[0].loop, true);

    // The same name again: the server's reason is shown.
    await page.click('#tr-start');
    await page.waitForSelector('#tr-note[data-state="error"]', { timeout: 5000 });
    assert.match(await page.textContent('#tr-note'), /Stream name is already in use/);

    await page.click('#tr-list li[data-name="channel1"] button[data-action="play"]');
    assert.equal(await page.inputValue('#stream-name'), 'channel1');
    await page.waitForSelector('#status[data-state="playing"]', { timeout: 15000 })
      .catch(async (e) => { throw new Error(withServerLog(server, `status "${await page.textContent('#status')}": ${e.message}`)); });
    const frames = () => page.evaluate(() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames);
    const f0 = await frames();
    await framesGrow(frames, f0, 15, 20000, 'the translation plays in the <video>')
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });

    await page.click('#tr-list li[data-name="channel1"] button[data-action="stop"]');
    await page.waitForSelector('#tr-list li[data-name="channel1"]', { state: 'detached', timeout: 10000 });
    assert.match(await page.textContent('#tr-note'), /Stopped channel1/);
    assert.equal((await restFind('channel1')).status, 404);
    // The player notices that the stream has gone.
    await page.waitForSelector('#status[data-state="stopped"], #status[data-state="error"]', { timeout: 30000 });
  });
});

describe('demo page: the HLS player', { timeout: 120000 }, () => {
  // hls.js comes from a URL the operator sets (hls_player_url); here a tiny static server on
  // loopback serves the npm copy, as an operator without internet would host it.
  const HLS_JS = readFileSync(path.join(REPO, 'tests', 'e2e', 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
  let server, browser, page, statics, hlsPort;
  let scriptRequests = 0;

  before(async () => {
    statics = http.createServer((req, res) => {
      if (req.url !== '/hls.min.js') { res.writeHead(404).end(); return; }
      scriptRequests += 1;
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(HLS_JS);
    });
    await new Promise((resolve) => statics.listen(0, '127.0.0.1', resolve));
    hlsPort = await freeTcpPort();
    server = await startServer({
      settings: {
        'hls.port': hlsPort,
        vod_live_loop: 'true',
        hls_player_url: `http://127.0.0.1:${statics.address().port}/hls.min.js`,
      },
    });
    browser = await launchBrowser();
    page = await browser.newPage();
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (statics) await new Promise((resolve) => statics.close(resolve));
  });

  test('GET /api/hls tells the page the HLS port and where hls.js is', async () => {
    const res = await fetch(`${server.base}/api/hls`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      port: hlsPort, httpsPort: null, player: `http://127.0.0.1:${statics.address().port}/hls.min.js`,
    });
  });

  test('plays a translation over HLS with hls.js loaded from hls_player_url', { timeout: 60000 }, async () => {
    await page.goto(`${server.base}/`);
    await page.fill('#hls-name', 'vod-live://sample.mp4');
    await page.click('#hls-play');
    await page.waitForSelector('#hls-status[data-state="playing"]', { timeout: 30000 })
      .catch(async (e) => {
        const st = await page.textContent('#hls-status');
        throw new Error(withServerLog(server, `HLS status stayed "${st}": ${e.message}`));
      });
    assert.equal(await page.getAttribute('#hls-status', 'data-engine'), 'hls.js');
    assert.ok(scriptRequests >= 1, 'hls.js came from hls_player_url');
    const n = encodeURIComponent('vod-live://sample.mp4');
    assert.equal(await page.getAttribute('#hls-url', 'href'), `http://127.0.0.1:${hlsPort}/${n}/${n}.m3u8`);
    const frames = () => page.evaluate(() => document.getElementById('hls-video').getVideoPlaybackQuality().totalVideoFrames);
    const f0 = await frames();
    await framesGrow(frames, f0, 25, 20000, 'the HLS <video> showed')
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    const size = await page.evaluate(() => {
      const v = document.getElementById('hls-video');
      return `${v.videoWidth}x${v.videoHeight}`;
    });
    assert.equal(size, '640x360');
    await page.click('#hls-stop');
    await page.waitForSelector('#hls-status[data-state="stopped"]', { timeout: 5000 });
  });

  test('a name that is not a translation shows why', { timeout: 30000 }, async () => {
    await page.fill('#hls-name', 'vod-live://no_such_file.mp4');
    await page.click('#hls-play');
    await page.waitForSelector('#hls-status[data-state="error"]', { timeout: 20000 });
    assert.match(await page.textContent('#hls-status'), /Stream not found/);
  });
});

describe('demo page without HLS', { timeout: 60000 }, () => {
  test('the HLS player says HLS is off', { timeout: 40000 }, async () => {
    const env = await serverAndPage({ files: [SAMPLE], sameOrigin: false });
    try {
      await env.page.goto(`${env.server.base}/`);
      await env.page.waitForSelector('#hls-status[data-state="off"]', { timeout: 10000 });
      assert.match(await env.page.textContent('#hls-status'), /hls\.port/);
      assert.ok(await env.page.isDisabled('#hls-play'));
    } finally {
      await env.close();
    }
  });
});
