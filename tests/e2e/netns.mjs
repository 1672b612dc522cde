// A small network of our own for the tests that need more than loopback's one address,
// without touching this machine's real interfaces: two network namespaces joined by a veth
// pair, each end with its own IPv4 and IPv6 (ULA) address.
//
//   server namespace                         client namespace
//   lo 127.0.0.1 ::1                         lo 127.0.0.1 ::1
//   veth 10.203.0.1/24 fd42:203::1/64  <->   veth 10.203.0.2/24 fd42:203::2/64
//   lo also 10.204.0.1/32 (a second address the client has no route to)
//
// Nothing leaves the pair: neither namespace has a default route, so an address the
// client cannot reach (10.204.0.1, the server's loopback) fails at its sendto. remove()
// deletes both namespaces, which destroys the veth pair with them.
// Needs root (CAP_NET_ADMIN) and iproute2's `ip`; a failure to set it up throws.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SERVER_IP = '10.203.0.1';
export const SERVER_IP6 = 'fd42:203::1';
export const CLIENT_IP = '10.203.0.2';
export const CLIENT_IP6 = 'fd42:203::2';
/** A server address the client has no route to. */
export const UNREACHABLE_IP = '10.204.0.1';

async function ip(...args) {
  try {
    await run('ip', args, { timeout: 10000 });
  } catch (e) {
    throw new Error(`ip ${args.join(' ')} failed (the network tests need root and iproute2): ${e.stderr || e.message}`);
  }
}

/** Makes the two namespaces; returns { server, client, remove() } (server.ip: its veth address). */
export async function makeNetwork() {
  const id = `${process.pid % 100000}`;
  const server = { name: `rcsrv${id}`, ip: SERVER_IP };
  const client = { name: `rccli${id}` };
  const remove = async () => {
    for (const ns of [server.name, client.name]) {
      await run('ip', ['netns', 'del', ns]).catch(() => {});
    }
  };
  await remove(); // left over from a killed run of the same pid
  try {
    await ip('netns', 'add', server.name);
    await ip('netns', 'add', client.name);
    await ip('link', 'add', `rcv${id}s`, 'netns', server.name, 'type', 'veth', 'peer', 'name', `rcv${id}c`, 'netns', client.name);
    for (const [ns, dev, v4, v6] of [
      [server.name, `rcv${id}s`, SERVER_IP, SERVER_IP6],
      [client.name, `rcv${id}c`, CLIENT_IP, CLIENT_IP6],
    ]) {
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', dev);
      // nodad: usable at once, not after duplicate address detection.
      await ip('-n', ns, 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad');
      await ip('-n', ns, 'link', 'set', dev, 'up');
    }
    // On the server's lo (the kernel here has no dummy interfaces): an interface address
    // like any other, that nothing routes to.
    await ip('-n', server.name, 'addr', 'add', `${UNREACHABLE_IP}/32`, 'dev', 'lo');
  } catch (e) {
    await remove();
    throw e;
  }
  return { server, client, remove };
}

/** Runs `cmd args` inside namespace `ns`; resolves with { stdout, stderr } (rejects on failure). */
export function execIn(ns, cmd, args, { timeout = 60000 } = {}) {
  return run('ip', ['netns', 'exec', ns.name, cmd, ...args], { timeout, maxBuffer: 4 << 20 });
}
