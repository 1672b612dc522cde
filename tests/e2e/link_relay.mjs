// A narrowing relay whose link can be narrowed and widened while a viewer plays: for tests
// and benchmarks of what the server does when a viewer's link drops and recovers. Built on
// relay.mjs (the server announces FRONT_IP; every browser address gets an upstream socket of
// its own). Browser addresses first heard from after `controlNew()` are *controlled*: what
// the server sends them as RTP passes a token bucket of the rate set by `setLink(bps)`
// (`depthMs` deep, as a router's queue: 250 ms by default; `null`: no limit). Others pass
// untouched.

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { udpRelay } from './relay.mjs';

export { FRONT_IP } from './relay.mjs';

/** A 720p30 H.264 file of ~1.9 Mbit/s (no B-frames, a keyframe a second) with AAC: `dir/switch720.mp4`. */
export function make720(dir) {
  const file = path.join(dir, 'switch720.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '12',
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'main', '-bf', '0', '-g', '30',
    '-b:v', '1800k', '-maxrate', '2000k', '-bufsize', '2000k', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart', file]);
  return file;
}

/** RTP from the server (not RTCP, STUN or DTLS): what a media link's capacity limits. */
function isRtp(msg) {
  return msg.length >= 12 && msg[0] >= 0x80 && msg[0] < 0xc0 && !(msg[1] >= 192 && msg[1] <= 223);
}

/** Resolves to { stats, controlNew(), setLink(bps|null), close() } relaying to `port`. */
export async function linkRelay(port, { depthMs = 250 } = {}) {
  const stats = {};
  let controlling = false;
  let bps = null;
  let tokens = 0;
  let last = performance.now();
  // One bucket for every controlled address (tests control one viewer at a time).
  const carries = (len) => {
    if (bps === null) return true;
    const rate = bps / 8 / 1000; // bytes per ms
    const now = performance.now();
    tokens = Math.min(rate * depthMs, tokens + (now - last) * rate);
    last = now;
    if (tokens < len) return false;
    tokens -= len;
    return true;
  };
  const relay = await udpRelay(port, (key) => {
    const s = { controlled: controlling, passed: 0, dropped: 0 };
    stats[key] = s;
    return (back) => {
      if (!s.controlled || !isRtp(back)) return true;
      if (!carries(back.length)) { s.dropped++; return false; }
      s.passed++;
      return true;
    };
  });
  return {
    stats,
    /** Browser addresses first heard from after this are controlled. */
    controlNew() { controlling = true; },
    /** The controlled link's rate from now on, in bit/s; `null`: unlimited. */
    setLink(rate) {
      bps = rate;
      tokens = 0;
      last = performance.now();
    },
    close: () => relay.close(),
  };
}
