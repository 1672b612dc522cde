// The Debian package: packaging/deb/build.sh builds it from the release binary, `dpkg -i`
// installs it on this machine, the installed binary starts with the installed settings
// as the package's own user (directly: systemd is not PID 1 on the test machines; where
// it is, postinst starts the unit itself), plays the bundled sample to a WHEP viewer in
// Chromium, and `dpkg --purge` removes every file, the settings and the user.
// Needs root (dpkg); under CI=true not being root fails the test.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, CI, REPO, freeTcpPort, launchBrowser, requireFiles } from './helpers.mjs';
import { waitFrames, whepWatch } from './frames.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ...r, out: `${r.stdout}${r.stderr}` };
};
const PROPS = '/etc/reelcast/flashphoner.properties';
const isRoot = process.getuid && process.getuid() === 0;
const systemdRuns = existsSync('/run/systemd/system');

describe('Debian package', { timeout: 240000 }, () => {
  let browser;
  before(async () => {
    requireFiles(BIN, path.join(REPO, 'media', 'sample.mp4'));
    if (!isRoot && CI) throw new Error('the package test needs root (dpkg -i)');
    if (run('sh', ['-c', 'command -v dpkg-deb']).status !== 0 && CI) throw new Error('dpkg-deb is missing');
    browser = await launchBrowser();
  }, { timeout: 60000 });
  after(async () => { if (browser) await browser.close(); });

  test('builds, installs, plays the bundled sample with the installed settings, purges cleanly', { timeout: 200000, skip: !isRoot && !CI }, async () => {
    assert.ok(!existsSync('/usr/bin/reelcast'), 'reelcast is installed already: this test would remove it');
    const built = run(path.join(REPO, 'packaging', 'deb', 'build.sh'), [BIN, path.join(REPO, 'target', 'deb-test')]);
    assert.equal(built.status, 0, built.out);
    const deb = built.stdout.trim().split('\n').pop();
    const contents = run('dpkg-deb', ['--contents', deb]).out;
    for (const f of ['./usr/bin/reelcast', './lib/systemd/system/reelcast.service', `.${PROPS}`, './var/lib/reelcast/media/sample.mp4']) {
      assert.ok(contents.includes(f), `${f} not in the package:\n${contents}`);
    }

    let proc;
    try {
      const installed = run('dpkg', ['-i', deb]);
      assert.equal(installed.status, 0, installed.out);
      assert.equal(run('getent', ['passwd', 'reelcast']).status, 0, 'no reelcast user');
      const service = readFileSync('/lib/systemd/system/reelcast.service', 'utf8');
      for (const line of ['User=reelcast', 'Restart=on-failure', 'ProtectSystem=strict', 'NoNewPrivileges=yes']) {
        assert.ok(service.includes(line), `the unit has no ${line}`);
      }
      if (run('sh', ['-c', 'command -v systemd-analyze']).status === 0) {
        const verify = run('systemd-analyze', ['verify', '/lib/systemd/system/reelcast.service']);
        assert.ok(!/error|invalid/i.test(verify.out), `systemd-analyze verify: ${verify.out}`);
      } else if (CI) {
        throw new Error('systemd-analyze is missing (apt-get install systemd)');
      }

      // Free ports, chosen in the installed settings file (as an operator would edit it).
      const [http, ws, media] = [await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
      let props = readFileSync(PROPS, 'utf8')
        .replace(/^http\.port=.*$/m, `http.port=${http}`)
        .replace(/^ws\.port=.*$/m, `ws.port=${ws}`)
        .replace(/^media_port=.*$/m, `media_port=${media}`);
      props += '\nip=127.0.0.1\nip_local=127.0.0.1\n';
      writeFileSync(PROPS, props);

      let log = '';
      if (systemdRuns) {
        assert.equal(run('systemctl', ['restart', 'reelcast']).status, 0);
      } else {
        // As the service would: the package's user, its settings file, its folder.
        proc = spawn('runuser', ['-u', 'reelcast', '--', '/usr/bin/reelcast', 'serve', '--config', PROPS],
          { cwd: '/var/lib/reelcast', stdio: ['ignore', 'pipe', 'pipe'] });
        proc.stdout.on('data', (d) => { log += d; });
        proc.stderr.on('data', (d) => { log += d; });
      }
      const base = `http://127.0.0.1:${http}`;
      const deadline = Date.now() + 20000;
      let ready = null;
      while (Date.now() < deadline) {
        try { ready = await fetch(`${base}/ready`); if (ready.status === 200) break; } catch { /* starting */ }
        await sleep(200);
      }
      assert.equal(ready?.status, 200, `the installed server is not ready; its log:\n${log}`);

      const page = await browser.newPage();
      await page.goto(`${base}/api/files`);
      const viewer = await whepWatch(page, 'vod://sample.mp4');
      await waitFrames(page, viewer, 20, 15000, { stderr: () => log });
      await page.close();
    } finally {
      if (proc) {
        proc.kill('SIGTERM');
        await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(15000)]);
      }
      const purged = run('dpkg', ['--purge', 'reelcast']);
      assert.equal(purged.status, 0, purged.out);
    }
    for (const p of ['/usr/bin/reelcast', '/lib/systemd/system/reelcast.service', '/etc/reelcast', '/var/lib/reelcast']) {
      assert.ok(!existsSync(p), `${p} is still there after dpkg --purge`);
    }
    assert.notEqual(run('getent', ['passwd', 'reelcast']).status, 0, 'the reelcast user is still there');
    assert.notEqual(run('dpkg-query', ['-W', 'reelcast']).status, 0, 'dpkg still lists reelcast');
  });
});
