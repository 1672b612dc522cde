// HTTPS and virtual-host names in front of the test S3 store (s3_store.mjs).
//
// - certificates made with the openssl CLI: a test CA, the store's certificate it
//   signs (for 127.0.0.1, localhost and *.STORE_DOMAIN), and a self-signed one for the
//   same names that nobody trusts;
// - a front: the store over HTTPS (or plain HTTP), recording the Host and path of
//   every request it passes on;
// - an HTTP CONNECT proxy that tunnels names under STORE_DOMAIN (which resolve nowhere)
//   to the fronts by port. reelcast's S3 client honours ALL_PROXY, so with it a
//   virtual-host name such as media.s3.reelcast.test reaches the store without DNS,
//   TLS name checks included.
//
// A missing openssl CLI is a failure (execFileSync throws), never a skip.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';

export const STORE_DOMAIN = 's3.reelcast.test';

/** Makes the certificates in `dir`; resolves to their paths. */
export function makeCertificates(dir) {
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  const names = `subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:${STORE_DOMAIN},DNS:*.${STORE_DOMAIN}`;
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-days', '2', '-subj', '/CN=reelcast test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('store.key'), '-out', f('store.csr'),
    '-subj', '/CN=reelcast test store');
  writeFileSync(f('store.ext'), `${names}\n`);
  openssl('x509', '-req', '-in', f('store.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('store.pem'), '-days', '2', '-extfile', f('store.ext'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('rogue.key'), '-out', f('rogue.pem'),
    '-days', '2', '-subj', '/CN=reelcast rogue store', '-addext', names);
  return { ca: f('ca.pem'), cert: f('store.pem'), key: f('store.key'), rogueCert: f('rogue.pem'), rogueKey: f('rogue.key') };
}

async function listen(server, sockets) {
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
}

function closer(server, sockets) {
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
}

/**
 * The store on 127.0.0.1:`targetPort` served again, over HTTPS with `tls` ({cert, key}
 * paths) or over plain HTTP without. Every request is passed on with its Host header.
 * Resolves to { port, endpoint, requests: [{host, path}], close() }.
 */
export async function startFront(targetPort, { tls } = {}) {
  const requests = [];
  const pass = (req, res) => {
    requests.push({ host: req.headers.host, path: req.url });
    const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => { res.writeHead(answer.statusCode, answer.headers); answer.pipe(res); });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = tls
    ? https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, pass)
    : http.createServer(pass);
  const sockets = new Set();
  const port = await listen(server, sockets);
  return { port, endpoint: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, requests, close: closer(server, sockets) };
}

/**
 * An HTTP CONNECT proxy: a tunnel to STORE_DOMAIN or a name under it goes to
 * 127.0.0.1:`ports[its port]` (e.g. {443: httpsFront.port, 80: httpFront.port}); any
 * other is refused (502). Resolves to { port, url, tunnels: ['host:port', ...], close() }.
 */
export async function startConnectProxy(ports) {
  const tunnels = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => { res.writeHead(405); res.end(); });
  server.on('connect', (req, client, head) => {
    tunnels.push(req.url);
    const [host, port] = req.url.split(':');
    const to = (host === STORE_DOMAIN || host.endsWith(`.${STORE_DOMAIN}`)) && ports[port];
    if (!to) { client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'); return; }
    const up = net.connect(to, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on('close', () => { sockets.delete(up); client.destroy(); });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  const port = await listen(server, sockets);
  return { port, url: `http://127.0.0.1:${port}`, tunnels, close: closer(server, sockets) };
}
