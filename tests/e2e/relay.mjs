// A UDP relay between browsers and the server, for tests of what a network does to media
// (loss, a narrow link). The server announces FRONT_IP in its ICE candidate
// (`ip: FRONT_IP, ip_local: '127.0.0.1'`) and listens on 127.0.0.1; the relay listens on
// FRONT_IP with the server's port and passes everything on, each browser address through
// an upstream socket of its own, so the server sees one peer per browser. What the server
// sends a browser passes through that browser's filter, which may drop it.

import dgram from 'node:dgram';

/** The relay's address as the browser sees it (the server's announced `ip`). */
export const FRONT_IP = '127.0.0.2';

function bind(socket, port, address) {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => { socket.off('error', reject); resolve(); });
  });
}

/**
 * Relays FRONT_IP:`port` to the server on 127.0.0.1:`port`. `filterFor(key)` is called
 * once per browser address (`key` is `address:port`) and returns the filter of what the
 * server sends it: `(packet) => true` passes the packet on, `false` drops it.
 * Resolves to `{ close() }` once listening.
 */
export async function udpRelay(port, filterFor) {
  const front = dgram.createSocket('udp4');
  await bind(front, port, FRONT_IP);
  const upstreams = new Map();
  front.on('message', async (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let up = upstreams.get(key);
    if (!up) {
      up = dgram.createSocket('udp4');
      upstreams.set(key, up);
      const passes = filterFor(key);
      up.on('message', (back) => {
        if (passes(back)) front.send(back, from.port, from.address);
      });
      await bind(up, 0, FRONT_IP);
    }
    up.send(msg, port, '127.0.0.1');
  });
  return {
    close() {
      for (const up of upstreams.values()) up.close();
      front.close();
    },
  };
}
