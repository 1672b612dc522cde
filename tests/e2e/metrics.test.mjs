// Metrics as an operator reads them: a real Prometheus (Debian's package) scrapes
// reelcast's /metrics with the REST credentials, and its query API reports the viewers,
// their time to first frame and the transcoders while two WHEP viewers play;
// `promtool check metrics` passes on the output; without credentials /metrics is
// refused; the Grafana dashboard and docs/OPERATIONS.md name exactly what is served.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CI, REPO, SAMPLE, freeTcpPort, launchBrowser, requireFiles, startServer, withServerLog,
} from './helpers.mjs';
import { closeAllViewers, waitFrames, whepWatch } from './frames.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const have = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const AUTH = 'Basic ' + Buffer.from('ops:metrics-pw').toString('base64');

describe('metrics', { timeout: 180000 }, () => {
  let browser;
  before(async () => {
    requireFiles(SAMPLE);
    for (const tool of ['prometheus', 'promtool']) {
      if (!have(tool) && CI) throw new Error(`${tool} is missing (apt-get install prometheus)`);
    }
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => { if (browser) await browser.close(); });

  test('Prometheus scrapes /metrics and its query API counts the viewers; promtool accepts the text', { timeout: 120000, skip: !have('prometheus') && !CI }, async () => {
    const server = await startServer({ files: [SAMPLE], settings: { disable_rest_auth: 'false', rest_auth_users: 'ops:metrics-pw' } });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reelcast-prom-'));
    let prom;
    try {
      // Refused without the REST credentials.
      const refused = await fetch(`${server.base}/metrics`);
      assert.equal(refused.status, 401);
      const res = await fetch(`${server.base}/metrics`, { headers: { Authorization: AUTH } });
      assert.equal(res.status, 200);
      const text = await res.text();
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
      // The Grafana dashboard and docs/OPERATIONS.md use exactly the names served: no
      // name that is not served, and every family served is in both.
      const types = text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' '));
      const served = new Set(types.map((t) => t[2]));
      const histograms = types.filter((t) => t[3] === 'histogram').map((t) => t[2]);
      // A histogram is queried by its series (`_bucket`, `_sum`, `_count`).
      const family = (n) => histograms.find((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`].includes(n)) ?? n;
      for (const [file, what] of [[path.join('packaging', 'grafana', 'reelcast.json'), 'the dashboard'], [path.join('docs', 'OPERATIONS.md'), 'OPERATIONS.md']]) {
        const names = new Set((await readFile(path.join(REPO, file), 'utf8')).match(/reelcast_[a-z0-9_]+/g).map(family));
        assert.deepEqual([...names].filter((n) => !served.has(n)), [], `names in ${file} that /metrics does not serve`);
        assert.deepEqual([...served].filter((n) => !names.has(n)), [], `names served that ${what} does not show`);
      }
      assert.ok(text.includes('# TYPE reelcast_process_cpu_seconds_total counter'), 'process CPU is a counter');

      const promPort = await freeTcpPort();
      await writeFile(path.join(dir, 'prometheus.yml'), [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        '  - job_name: reelcast',
        '    basic_auth: { username: ops, password: metrics-pw }',
        `    static_configs: [ { targets: ["127.0.0.1:${server.http}"] } ]`,
        '',
      ].join('\n'));
      let promLog = '';
      prom = spawn('prometheus', [
        `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      prom.stdout.on('data', (d) => { promLog += d; });
      prom.stderr.on('data', (d) => { promLog += d; });
      const query = async (q) => {
        const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(3000) });
        const body = await r.json();
        return body.data?.result ?? [];
      };

      const page = await browser.newPage();
      await page.goto(`${server.base}/api/files`);
      const a = await whepWatch(page, 'vod://sample.mp4');
      const b = await whepWatch(page, 'vod://sample.mp4');
      await waitFrames(page, a, 10, 15000, server);
      await waitFrames(page, b, 10, 15000, server);

      // What Prometheus stored from its own scrapes (bounded: 40 s).
      const deadline = Date.now() + 40000;
      let viewers = null; let sent = null;
      while (Date.now() < deadline) {
        try {
          const v = await query('reelcast_viewers{protocol="whep"}');
          const s = await query('reelcast_udp_sent_packets_total');
          viewers = v.length ? Number(v[0].value[1]) : null;
          sent = s.length ? Number(s[0].value[1]) : null;
          if (viewers === 2 && sent > 0) break;
        } catch { /* Prometheus is starting */ }
        await sleep(500);
      }
      assert.equal(viewers, 2, withServerLog(server, `Prometheus reports ${viewers} WHEP viewers; its log:\n${promLog.slice(-2000)}`));
      assert.ok(sent > 0, `packets sent: ${sent}`);
      const personal = await query('reelcast_streams{kind="personal",state="playing"}');
      assert.equal(Number(personal[0]?.value[1]), 2);
      // Both viewers' first frames were timed; each stream transcodes its AAC to Opus.
      let ttff = null; let busy = null;
      for (const until = Date.now() + 10000; Date.now() < until; await sleep(500)) {
        ttff = Number((await query('reelcast_time_to_first_frame_seconds_count{protocol="whep"}'))[0]?.value[1]);
        busy = Number((await query('reelcast_transcoders_busy'))[0]?.value[1]);
        if (ttff >= 2 && busy === 2) break;
      }
      assert.equal(ttff, 2, 'time to first frame observed once per WHEP viewer');
      assert.equal(busy, 2, 'transcoders busy: one per stream with AAC audio');
      const le10 = await query('reelcast_time_to_first_frame_seconds_bucket{protocol="whep",le="10.0"}');
      assert.equal(Number(le10[0]?.value[1]), 2, 'both first frames within 10 s of their POST');
      const ttffSum = Number((await query('reelcast_time_to_first_frame_seconds_sum{protocol="whep"}'))[0]?.value[1]);
      console.log(`# time to first frame, WHEP, mean of ${ttff}: ${(1000 * ttffSum / ttff).toFixed(0)} ms`);
      const wcs = await query('reelcast_time_to_first_frame_seconds_count{protocol="wcs"}');
      assert.equal(Number(wcs[0]?.value[1]), 0, 'no WCS viewer, no WCS observation');
      await closeAllViewers(page);
      await page.close();
      // The transcoders are let go with their streams.
      let left = null;
      for (const until = Date.now() + 15000; Date.now() < until; await sleep(300)) {
        const m = await (await fetch(`${server.base}/metrics`, { headers: { Authorization: AUTH } })).text();
        left = Number(m.match(/^reelcast_transcoders_busy (\d+)$/m)?.[1]);
        if (left === 0) break;
      }
      assert.equal(left, 0, 'transcoders busy after every viewer left');
    } finally {
      if (prom) { prom.kill('SIGTERM'); await new Promise((r) => prom.once('exit', r)); }
      await rm(dir, { recursive: true, force: true });
      await server.stop();
    }
  });
});
