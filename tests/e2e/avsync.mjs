// The lip-sync probe in a page: when each white flash of the probe file is shown and
// when each 1 kHz beep is heard, from what the browser itself renders.
//
// Video: requestVideoFrameCallback on the <video> gives each picture's expected display
// time; the picture is drawn to a small canvas and a flash is a picture whose mean
// brightness rises past half-scale after a dark one.
// Audio: the <video>'s audio track goes to WebAudio (MediaStreamAudioSourceNode → an
// AudioWorklet that finds the first loud sample after a quiet spell). The sample's
// AudioContext time becomes page time through getOutputTimestamp(): the time that sample
// leaves for the speaker. Both times are on the page's performance clock.
//
// The probe file (scripts/make-test-media: lipsync.mp4) has a flash starting at every
// whole second, on the same instant as a beep, so for each flash the audio-minus-video
// offset is the onset of the beep nearest to it less the flash's display time.

/** Defines window.__av in `page`: watch(video) → record index; read(i) → record. */
export async function installAvProbe(page) {
  await page.evaluate(async () => {
    if (window.__av) return;
    const worklet = `
      class Onsets extends AudioWorkletProcessor {
        constructor() { super(); this.quiet = 0; this.blocks = 0; }
        process(inputs) {
          const ch = inputs[0] && inputs[0][0];
          this.blocks++;
          if (ch) {
            for (let i = 0; i < ch.length; i++) {
              if (Math.abs(ch[i]) > 0.1) {
                // A beep starts: the first loud sample after 300 ms of quiet.
                if (this.quiet > sampleRate * 0.3) this.port.postMessage((currentFrame + i) / sampleRate);
                this.quiet = 0;
              } else {
                this.quiet++;
              }
            }
          }
          if (this.blocks % 375 === 0) this.port.postMessage(-1); // ~1 s: still running
          return true;
        }
      }
      registerProcessor('onsets', Onsets);`;
    const ctx = new AudioContext({ latencyHint: 'interactive' });
    await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'text/javascript' })));
    await ctx.resume();
    // The context-time → page-time mapping, refreshed while the page runs.
    let stamp = ctx.getOutputTimestamp();
    setInterval(() => { stamp = ctx.getOutputTimestamp(); }, 100);
    const toPageTime = (ctxTime) => stamp.performanceTime + (ctxTime - stamp.contextTime) * 1000;

    const records = [];
    window.__av = {
      ctx,
      read: (i) => records[i],
      watch(video) {
        const rec = { flashes: [], beeps: [], frames: 0, audioAlive: 0, started: performance.now() };
        records.push(rec);
        // Video: brightness of each displayed picture.
        const canvas = document.createElement('canvas');
        canvas.width = 16;
        canvas.height = 16;
        const g = canvas.getContext('2d', { willReadFrequently: true });
        let bright = false;
        const onFrame = (_now, meta) => {
          g.drawImage(video, 0, 0, 16, 16);
          const px = g.getImageData(0, 0, 16, 16).data;
          let sum = 0;
          for (let i = 0; i < px.length; i += 4) sum += px[i] + px[i + 1] + px[i + 2];
          const luma = sum / (px.length / 4) / 3;
          rec.frames++;
          if (!bright && luma > 160) rec.flashes.push(meta.expectedDisplayTime);
          if (luma > 160) bright = true;
          else if (luma < 96) bright = false;
          video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
        // Audio: the element's audio track, once it has one.
        const hookAudio = () => {
          // A WebRTC viewer's stream, or (a file playing in the element) what it plays.
          const stream = video.srcObject || (video.readyState >= 1 && video.captureStream());
          const track = stream && stream.getAudioTracks && stream.getAudioTracks()[0];
          if (!track) { setTimeout(hookAudio, 20); return; }
          const source = ctx.createMediaStreamSource(new MediaStream([track]));
          const node = new AudioWorkletNode(ctx, 'onsets');
          node.port.onmessage = (e) => {
            if (e.data < 0) rec.audioAlive++;
            else rec.beeps.push(toPageTime(e.data));
          };
          source.connect(node);
          node.connect(ctx.destination);
          rec.nodes = [source, node]; // kept alive with the record
        };
        hookAudio();
        // Diagnosis: the receiver's own delays, once a second (the newest peer connection
        // at the time of watching).
        const pc = window.__statsPc || (window.__pcs || []).at(-1);
        rec.stats = [];
        if (pc) {
          const last = {};
          const timer = setInterval(async () => {
            if (pc.connectionState === 'closed') { clearInterval(timer); return; }
            const row = { t: Math.round(performance.now()) };
            (await pc.getStats()).forEach((x) => {
              if (x.type !== 'inbound-rtp') return;
              const k = x.kind;
              const prev = last[k] || {};
              const d = (f) => (x[f] || 0) - (prev[f] || 0);
              row[k] = {
                jb: d('jitterBufferEmittedCount') ? Math.round(1000 * d('jitterBufferDelay') / d('jitterBufferEmittedCount')) : null,
                target: d('jitterBufferEmittedCount') ? Math.round(1000 * d('jitterBufferTargetDelay') / d('jitterBufferEmittedCount')) : null,
                min: d('jitterBufferEmittedCount') ? Math.round(1000 * d('jitterBufferMinimumDelay') / d('jitterBufferEmittedCount')) : null,
                lost: x.packetsLost, jitter: x.jitter,
                accel: d('removedSamplesForAcceleration'), expand: d('concealedSamples'),
              };
              last[k] = x;
            });
            rec.stats.push(row);
          }, 1000);
        }
        return records.length - 1;
      },
    };
  });
}

/** The probe's record `i` in `page`, without its WebAudio nodes. */
export async function readAv(page, i) {
  return page.evaluate((k) => {
    const { flashes, beeps, frames, audioAlive, started, stats } = window.__av.read(k);
    return { flashes, beeps, frames, audioAlive, started, stats, now: performance.now() };
  }, i);
}

/**
 * Audio-minus-video offsets (ms) of a record: for each flash shown from `skipMs` to
 * `skipMs + spanMs` after the first one, the beep whose onset is nearest to it (within
 * ±450 ms: flashes are a second apart).
 */
export function avOffsets(rec, { skipMs = 0, spanMs = Infinity } = {}) {
  if (!rec.flashes.length) return [];
  const from = rec.flashes[0] + skipMs;
  const out = [];
  for (const f of rec.flashes) {
    if (f < from || f >= from + spanMs) continue;
    let best = null;
    for (const b of rec.beeps) if (Math.abs(b - f) <= 450 && (best === null || Math.abs(b - f) < Math.abs(best - f))) best = b;
    if (best !== null) out.push(best - f);
  }
  return out;
}

export function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
