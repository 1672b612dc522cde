// Clients that reach the server by another address than loopback: a network of our own
// (netns.mjs: the server in one namespace, the clients in another, a veth pair between,
// IPv4 and IPv6 on each end, and a server address the client cannot reach). Nothing here
// touches this machine's real interfaces or sends anywhere outside the two namespaces.
//
// The non-browser clients are aiortc (PyPI) as a WHEP viewer, which must decode video
// frames and audio, and ffmpeg reading HLS over IPv4 and IPv6 at once. Its host candidates are its namespace's non-loopback addresses, and it drops
// answers that do not come from the address it wrote to, as browsers do.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SAMPLE, launchBrowser, startServer, withServerLog, CHROMIUM } from './helpers.mjs';
import {
  CLIENT_IP, SERVER_IP, SERVER_IP6, UNREACHABLE_IP, execIn, makeNetwork,
} from './netns.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AIORTC_CLIENT = path.join(here, 'whep_aiortc.py');
const WHEP_SAMPLE = '/whep/vod%3A%2F%2Fsample.mp4';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs the aiortc viewer in the client namespace against `server`; its JSON result. */
async function aiortcPlays(net, server, extra = []) {
  const url = `${server.base}${WHEP_SAMPLE}`;
  let out;
  try {
    out = await execIn(net.client, 'python3', [AIORTC_CLIENT, url, '--seconds', '25', ...extra], { timeout: 60000 });
  } catch (e) {
    throw new Error(withServerLog(server, `aiortc client failed: ${e.stderr || e.message}`));
  }
  const line = out.stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

function assertPlayed(r, server) {
  const detail = withServerLog(server, `aiortc: ${JSON.stringify(r)}`);
  assert.equal(r.status, 201, detail);
  assert.ok(r.connected, `never connected: ${detail}`);
  assert.ok(r.video_frames >= 50, `decoded ${r.video_frames} video frames: ${detail}`);
  assert.equal(`${r.width}x${r.height}`, '640x360', detail);
  assert.ok(r.audio_frames >= 50 && r.audio_samples > 0, `decoded ${r.audio_frames} audio frames: ${detail}`);
  assert.ok(r.candidates.length > 0 && r.candidates.every((c) => !/^127\.|^::1$/.test(c)),
    `the client's candidates are its non-loopback addresses: ${r.candidates}`);
}

/** The addresses of the server's ICE candidates, from its log. */
function announced(server) {
  const m = server.stderr().match(/announcing (?:every address of this host in ICE candidates: )?(.*?) (?:in ICE candidates|\(set ip)/);
  return m ? m[1].split(', ') : [];
}

describe('clients on another address than loopback (network namespaces)', { timeout: 400000 }, () => {
  let net;

  before(async () => {
    // Under CI=true as everywhere: a namespace that cannot be made fails, never skips.
    net = await makeNetwork();
  });

  after(async () => {
    await net?.remove();
  });

  test('ip unset, bound to every address: announces every interface address, aiortc plays over IPv4 and IPv6', { timeout: 120000 }, async () => {
    const server = await startServer({ files: [SAMPLE], netns: net.server });
    try {
      const list = announced(server);
      for (const want of [SERVER_IP, UNREACHABLE_IP, SERVER_IP6, '127.0.0.1', '::1']) {
        assert.ok(list.includes(want), withServerLog(server, `${want} not announced: ${list}`));
      }
      assert.ok(!list.some((a) => a.startsWith('fe80')), `link-local announced: ${list}`);
      assertPlayed(await aiortcPlays(net, server), server);
      const v6 = await aiortcPlays(net, server, ['--only-ipv6']);
      assertPlayed(v6, server);
      assert.match(v6.pair || '', /:.* -> .*:/, `not an IPv6 pair: ${v6.pair}`);
    } finally {
      await server.stop();
    }
  });

  test('bound to one address: aiortc plays', { timeout: 90000 }, async () => {
    const server = await startServer({ files: [SAMPLE], netns: net.server, settings: { ip_local: SERVER_IP } });
    try {
      assert.deepEqual(announced(server), [SERVER_IP], server.stderr());
      assertPlayed(await aiortcPlays(net, server), server);
    } finally {
      await server.stop();
    }
  });

  test('ip lists several addresses, one unreachable for the client: it plays over one it reaches', { timeout: 90000 }, async () => {
    const ips = [UNREACHABLE_IP, SERVER_IP6, SERVER_IP];
    const server = await startServer({ files: [SAMPLE], netns: net.server, settings: { ip: ips.join(',') } });
    try {
      assert.deepEqual(announced(server), ips, server.stderr());
      const r = await aiortcPlays(net, server);
      assertPlayed(r, server);
      assert.ok(!(r.pair || '').includes(UNREACHABLE_IP), r.pair);
    } finally {
      await server.stop();
    }
  });

  test('HLS from another host over IPv4 and IPv6: ffmpeg reads a translation on WCS\'s port, each address a reader', { timeout: 120000 }, async () => {
    const server = await startServer({ files: [SAMPLE], netns: net.server, settings: { 'hls.port': 8082 } });
    const name = encodeURIComponent('vod-live://sample.mp4');
    const hosts = [SERVER_IP, `[${SERVER_IP6}]`];
    const playlist = (host) => `http://${host}:8082/${name}/${name}.m3u8`;
    try {
      // Six seconds of media from each address at once, every picture and audio frame
      // decoded: the playlist, the init segment and the segments all came over it.
      await Promise.all(hosts.map(async (host) => {
        const read = await execIn(net.client, 'ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', playlist(host), '-t', '6', '-f', 'null', '-'], { timeout: 60000 })
          .catch((e) => assert.fail(withServerLog(server, `ffmpeg over ${host} failed: ${e.stderr || e.message}`)));
        assert.equal(read.stderr.trim(), '', `ffmpeg over ${host} reported errors`);
      }));
      // Readers are told apart by address: one from each, listed by REST until they have
      // been quiet three target durations.
      const found = await execIn(net.client, 'curl', ['-sS', '-X', 'POST', `${server.base}/rest-api/stream/find_all`]);
      const hls = JSON.parse(found.stdout).filter((p) => p.protocol === 'hls');
      assert.equal(hls.length, 2, withServerLog(server, `HLS readers listed: ${found.stdout}`));
      for (const host of hosts) {
        const probe = await execIn(net.client, 'ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', playlist(host)]);
        const kinds = new Set(probe.stdout.split('\n').map((l) => l.trim().replace(/,$/, '')).filter(Boolean));
        assert.deepEqual([...kinds].sort(), ['aac', 'h264'], `over ${host}`);
      }
    } finally {
      await server.stop();
    }
  });

  test('the demo page plays 20 times in a row in Chromium on another host, ip unset: 20/20', { timeout: 300000 }, async (t) => {
    const server = await startServer({ files: [SAMPLE], netns: net.server });
    // Chromium runs in the client namespace: a wrapper playwright launches as the browser.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-netns-'));
    const wrapper = path.join(dir, 'chromium-in-netns');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${net.client.name} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    const browser = await launchBrowser({ executablePath: wrapper });
    let played = 0;
    const failures = [];
    try {
      const page = await browser.newPage();
      await page.goto(`${server.base}/`);
      await page.locator('#files button[data-file="sample.mp4"]').waitFor({ timeout: 10000 });
      const frames = () => page.evaluate(() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames);
      for (let i = 0; i < 20; i++) {
        await page.click('#files button[data-file="sample.mp4"]');
        try {
          await page.waitForSelector('#status[data-state="playing"]', { timeout: 15000 });
          const f0 = await frames();
          // Pictures shown, whatever the machine's load: wait for some, bounded.
          await page.waitForFunction((n) => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > n + 10, f0, { timeout: 10000 });
          played++;
        } catch (e) {
          failures.push(`play ${i + 1}: status "${await page.textContent('#status')}" (${e.message.split('\n')[0]})`);
        }
        await page.click('#stop').catch(() => {});
        await page.waitForSelector('#status[data-state="stopped"], #status[data-state="error"], #status[data-state="idle"]', { timeout: 5000 }).catch(() => {});
        await sleep(100);
      }
      t.diagnostic(`${played}/20 played`);
      assert.equal(played, 20, withServerLog(server, `${played}/20 played: ${failures.join('; ')}`));
    } finally {
      await browser.close();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

export { CLIENT_IP };
