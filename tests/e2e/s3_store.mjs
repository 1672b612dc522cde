// A real S3-protocol server for the tests: moto (PyPI `moto[server]`) on 127.0.0.1, run
// by tests/e2e/s3_server.py (which checks presigned URLs, as S3 does and moto does not),
// filled by tests/e2e/s3_setup.py (boto3), with SigV4 and IAM checks switched on.
// And a TCP proxy to put between reelcast and the store: it counts the bytes the
// store sends, can limit their rate, cut connections after N bytes, and stall.
//
// A missing moto is always a failure (never a skip), like every other missing tool.

import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeTcpPort } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.PYTHON || 'python3';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


/**
 * Starts moto on a free port and fills it: `buckets` (names), `objects` ([{bucket,
 * key, file}]). Resolves to { endpoint, port, reader: {key, secret}, nobody: {key,
 * secret}, served(), stop() }. `reader` may read everything; `nobody` has no
 * permissions. `served()` resolves to what the store has served so far:
 * {"/BUCKET/KEY": {requests, bytes}} (bytes: body bytes of its 2xx answers).
 */
export async function startStore({ buckets, objects }) {
  const port = await freeTcpPort();
  const proc = spawn(PYTHON, [path.join(here, 's3_server.py'), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log = (log + d).slice(-20000); });
  let exited = null;
  const spawnError = new Promise((resolve) => proc.on('error', (e) => { exited = e; resolve(e); }));
  proc.on('exit', (code) => { exited = exited || new Error(`s3_server.py exited with ${code}`); });
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await Promise.race([new Promise((r) => proc.on('exit', r)), sleep(3000)]);
    }
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) {
      throw new Error(`cannot run ${PYTHON} s3_server.py (moto; install it with: python3 -m pip install 'moto[server]'): ${exited.message}\n${log}`);
    }
    try {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      if (res.status < 500) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`s3_server.py (moto) not ready in 20 s:\n${log}`); }
    await Promise.race([sleep(100), spawnError]);
  }
  const keys = await new Promise((resolve, reject) => {
    const py = spawn(PYTHON, [path.join(here, 's3_setup.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    py.stdout.on('data', (d) => { out += d; });
    py.stderr.on('data', (d) => { err += d; });
    py.on('error', reject);
    py.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`s3_setup.py failed (${code}):\n${err}\n${log}`))));
    py.stdin.end(JSON.stringify({ endpoint, buckets, objects }));
  }).catch(async (e) => { await stop(); throw e; });
  const served = async () => {
    const res = await fetch(`${endpoint}/reelcast-test/served`, { signal: AbortSignal.timeout(5000) });
    return res.json();
  };
  return { endpoint, port, ...keys, log: () => log, served, stop };
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort`. Options: `bytesPerSecond` (limit
 * on what the store sends, 0: none), `cutEvery` (every time this many more bytes came
 * from the store, the connection carrying the last of them is cut mid-response, 0:
 * never). Resolves to { port, endpoint, stats: {bytes, connections, cuts}, stall(),
 * resume(), close() }: a stalled proxy holds everything the store sends.
 */
export async function startProxy(targetPort, { bytesPerSecond = 0, cutEvery = 0 } = {}) {
  const stats = { bytes: 0, connections: 0, cuts: 0 };
  let sinceCut = 0;
  let stalled = false;
  const pumps = new Set();
  const sockets = new Set();
  const server = net.createServer((client) => {
    stats.connections += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client); sockets.add(upstream);
    let queue = [];
    let closed = false;
    let upstreamEnded = false;
    const close = () => {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      client.destroy(); upstream.destroy();
      sockets.delete(client); sockets.delete(upstream);
      pumps.delete(pump);
    };
    const send = (buf) => {
      let chunk = buf;
      if (cutEvery && sinceCut + chunk.length >= cutEvery) {
        chunk = chunk.subarray(0, cutEvery - sinceCut);
        sinceCut = 0;
        stats.bytes += chunk.length;
        stats.cuts += 1;
        client.write(chunk, () => close());
        queue = [];
        return false;
      }
      sinceCut += chunk.length;
      stats.bytes += chunk.length;
      client.write(chunk);
      return true;
    };
    // Releases what the store sent (at most `budget` bytes), unless the proxy stalls.
    const pump = (budget = Infinity) => {
      if (stalled) return;
      while (budget > 0 && queue.length && !closed) {
        const head = queue[0];
        const part = head.subarray(0, budget);
        if (part.length === head.length) queue.shift(); else queue[0] = head.subarray(part.length);
        budget -= part.length;
        if (!send(part)) return;
      }
      if (!queue.length && !closed) {
        if (upstreamEnded) { if (timer) clearInterval(timer); client.end(() => close()); } else upstream.resume();
      }
    };
    pumps.add(pump);
    // Throttle: every 20 ms, release bytesPerSecond / 50 bytes of what the store sent.
    const timer = bytesPerSecond ? setInterval(() => pump(Math.max(1, Math.floor(bytesPerSecond / 50))), 20) : null;
    upstream.on('data', (buf) => {
      queue.push(buf);
      upstream.pause();
      if (!bytesPerSecond) pump();
    });
    client.on('data', (buf) => upstream.write(buf));
    client.on('error', close); upstream.on('error', close);
    // The store closes after a response (moto does): pass on what is still queued first.
    const upstreamGone = () => {
      upstreamEnded = true;
      if (!queue.length) client.end(() => close());
    };
    client.on('close', close);
    upstream.on('end', upstreamGone);
    upstream.on('close', upstreamGone);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    /** From now on connections are accepted and requests passed on, but nothing comes back. */
    stall() { stalled = true; },
    /** What the store sent meanwhile (on connections still open) flows again. */
    resume() { stalled = false; for (const pump of pumps) pump(); },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
