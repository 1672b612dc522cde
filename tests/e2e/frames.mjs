// Which picture a browser shows, and when: requestVideoFrameCallback on each <video>
// records (display time, RTP timestamp) per frame. For a live translation the RTP
// timestamp is the shared stream time, so it identifies "the same frame" across viewers.
// Used by the live translation tests and by bench/late_join.mjs.

import { withServerLog } from './helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** In `page`: installs window.__watch(video) → index of a record of displayed frames. */
export async function installFrameRecorder(page) {
  await page.evaluate(() => {
    if (window.__watch) return;
    window.__records = [];
    window.__watch = (video, startedAt) => {
      const rec = { startedAt, frames: [] };
      window.__records.push(rec);
      const onFrame = (_now, meta) => {
        if (meta.rtpTimestamp !== undefined) {
          rec.frames.push([performance.timeOrigin + meta.expectedDisplayTime, meta.rtpTimestamp]);
          if (rec.frames.length > 3000) rec.frames.shift();
        }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
      return window.__records.length - 1;
    };
  });
}

/** In `page` (same origin as the server): a WHEP viewer of `name`; returns its record index. */
export async function whepWatch(page, name) {
  await installFrameRecorder(page);
  return page.evaluate(async (streamName) => {
    const startedAt = performance.timeOrigin + performance.now();
    const pc = window.__whep.peer();
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    document.body.appendChild(video);
    pc.ontrack = (e) => { video.srcObject = e.streams[0]; video.play().catch(() => {}); };
    const index = window.__watch(video, startedAt);
    await window.__whep.offer(pc);
    const r = await window.__whep.post(pc, streamName);
    if (r.status !== 201) throw new Error(`WHEP POST answered ${r.status}: ${r.body}`);
    window.__whepLocations = [...(window.__whepLocations || []), r.location];
    await window.__whep.answer(pc, r);
    return index;
  }, name);
}

/** In an SDK page: watches the <video> of SDK play `idx`; returns its record index. */
export async function watchSdkVideo(page, idx, startedAt) {
  await installFrameRecorder(page);
  return page.evaluate(async ([i, t0]) => {
    const deadline = Date.now() + 10000;
    for (;;) {
      const video = document.querySelector(`[data-play="${i}"] video`);
      if (video) return window.__watch(video, t0);
      if (Date.now() > deadline) throw new Error('the SDK made no <video>');
      await new Promise((r) => setTimeout(r, 20));
    }
  }, [idx, startedAt]);
}

export const record = (page, i) => page.evaluate((k) => window.__records[k], i);

/** Waits until record `i` has `n` frames; returns the record. */
export async function waitFrames(page, i, n, timeoutMs, server) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rec = await record(page, i);
    if (rec.frames.length >= n) return rec;
    if (Date.now() > deadline) {
      throw new Error(withServerLog(server, `viewer ${i}: ${rec.frames.length} of ${n} frames after ${timeoutMs} ms`));
    }
    await sleep(100);
  }
}

/** Ends every WHEP session of the page (DELETE) and closes its peer connections. */
export async function closeAllViewers(page) {
  await page.evaluate(async () => {
    for (const loc of window.__whepLocations || []) await fetch(loc, { method: 'DELETE' });
    window.__whepLocations = [];
    for (const pc of window.__pcs || []) pc.close();
    window.__pcs = [];
  });
}
