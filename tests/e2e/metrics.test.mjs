// Metrics as an operator reads them: a real Prometheus (Debian's package) scrapes
// reelcast's /metrics with the REST credentials, and its query API reports the viewers
// while two WHEP viewers play; `promtool check metrics` passes on the output; without
// credentials /metrics is refused.

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
      // The Grafana dashboard uses exactly the names served.
      const dashboard = await readFile(path.join(REPO, 'packaging', 'grafana', 'reelcast.json'), 'utf8');
      const served = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
      const unknown = [...new Set(dashboard.match(/reelcast_[a-z_]+/g))].filter((n) => !served.has(n));
      assert.deepEqual(unknown, [], 'names in packaging/grafana/reelcast.json that /metrics does not serve');

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
      await closeAllViewers(page);
      await page.close();
    } finally {
      if (prom) { prom.kill('SIGTERM'); await new Promise((r) => prom.once('exit', r)); }
      await rm(dir, { recursive: true, force: true });
      await server.stop();
    }
  });
});
