// What the HLS tests share: hls.js playing a playlist in headless Chromium, ffmpeg/ffprobe
// runs, and a checker of media playlists against the rules of RFC 8216bis a validator
// flags (the JavaScript twin of crates/reelcast/tests/hls.rs' parse / check_rules).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO } from './helpers.mjs';

export const HLS_JS = path.join(REPO, 'tests', 'e2e', 'node_modules', 'hls.js', 'dist', 'hls.min.js');

/** Runs `cmd` with `args` (60 s at most); resolves { code, stdout, stderr }. */
export function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c) => { stdout += c; });
    proc.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60000);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/**
 * hls.js plays `url` in a page of `origin` (another origin than the HLS port's: CORS),
 * until `pictures` pictures were shown and audio decoded (20 s at most) or a fatal error.
 * Returns { pictures, decoded, audioBytes, width, latency, parts, fragments, errors }.
 */
export async function playWithHlsJs(browser, origin, url, { lowLatencyMode = false, pictures: want = 60 } = {}) {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/api/files`);
    await page.addScriptTag({ path: HLS_JS });
    return await page.evaluate(async ({ url, lowLatencyMode, want }) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const video = document.createElement('video');
      video.muted = true;
      document.body.appendChild(video);
      let pictures = 0;
      const onFrame = () => { pictures += 1; video.requestVideoFrameCallback(onFrame); };
      video.requestVideoFrameCallback(onFrame);
      const hls = new window.Hls({ lowLatencyMode });
      const seen = { parts: 0, fragments: 0, errors: [] };
      hls.on(window.Hls.Events.FRAG_LOADED, (_e, data) => {
        if (data.part) seen.parts += 1; else seen.fragments += 1;
      });
      hls.on(window.Hls.Events.ERROR, (_e, data) => {
        if (data.fatal) seen.errors.push(`${data.type}: ${data.details}`);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
      for (let i = 0; i < 80; i += 1) {
        if (pictures >= want && video.webkitAudioDecodedByteCount > 0) break;
        if (seen.errors.length) break;
        await sleep(250);
      }
      const quality = video.getVideoPlaybackQuality();
      const out = {
        pictures,
        decoded: quality.totalVideoFrames,
        audioBytes: video.webkitAudioDecodedByteCount,
        width: video.videoWidth,
        latency: hls.latency,
        ...seen,
      };
      hls.destroy();
      return out;
    }, { url, lowLatencyMode, want });
  } finally {
    await page.close();
  }
}

/** The value of attribute `key` in a tag line (`#EXT-X-PART:DURATION=0.5,URI="a"`). */
function attr(line, key) {
  const body = line.slice(line.indexOf(':') + 1);
  for (const kv of body.split(',')) {
    const [k, v] = kv.split('=');
    if (k === key && v !== undefined) return v.replace(/^"|"$/g, '');
  }
  return undefined;
}

/**
 * Parses a media playlist, checking its syntax as it goes: { target, partTarget,
 * partHoldBack, mediaSequence, map, segments: [{ msn, duration, uri, parts: [{ duration,
 * uri, independent }], dated }], hint, ended }.
 */
export function parsePlaylist(text) {
  const lines = text.split('\n');
  assert.equal(lines[0], '#EXTM3U', text);
  const value = (prefix) => {
    const line = lines.find((l) => l.startsWith(prefix));
    assert.ok(line !== undefined, `no ${prefix} in\n${text}`);
    return line.slice(prefix.length);
  };
  assert.ok(Number(value('#EXT-X-VERSION:')) >= 6, text);
  const control = value('#EXT-X-SERVER-CONTROL:');
  assert.match(control, /CAN-BLOCK-RELOAD=YES/, control);
  const p = {
    target: Number(value('#EXT-X-TARGETDURATION:')),
    partTarget: Number(value('#EXT-X-PART-INF:PART-TARGET=')),
    partHoldBack: Number(attr(`x:${control}`, 'PART-HOLD-BACK')),
    mediaSequence: Number(value('#EXT-X-MEDIA-SEQUENCE:')),
    map: attr(lines.find((l) => l.startsWith('#EXT-X-MAP:')), 'URI'),
    segments: [],
    hint: null,
    ended: lines.includes('#EXT-X-ENDLIST'),
  };
  assert.ok(Number.isInteger(p.target) && p.target > 0, `TARGETDURATION in\n${text}`);
  assert.ok(p.map, `EXT-X-MAP URI in\n${text}`);
  const fresh = (msn) => ({ msn, duration: null, uri: null, parts: [], dated: false });
  let current = fresh(p.mediaSequence);
  let extinf = null;
  for (const line of lines) {
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      current.dated = true;
    } else if (line.startsWith('#EXT-X-PART:')) {
      const duration = Number(attr(line, 'DURATION'));
      assert.ok(duration > 0, `part duration in ${line}`);
      current.parts.push({ duration, uri: attr(line, 'URI'), independent: attr(line, 'INDEPENDENT') === 'YES' });
    } else if (line.startsWith('#EXTINF:')) {
      extinf = Number(line.slice('#EXTINF:'.length).replace(/,.*$/, ''));
      assert.ok(extinf > 0, `EXTINF in ${line}`);
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) {
      assert.equal(attr(line, 'TYPE'), 'PART', line);
      p.hint = attr(line, 'URI');
    } else if (line !== '' && !line.startsWith('#')) {
      assert.ok(extinf !== null, `a URI without EXTINF:\n${text}`);
      current.duration = extinf;
      current.uri = line;
      extinf = null;
      p.segments.push(current);
      current = fresh(current.msn + 1);
    }
  }
  if (current.parts.length) p.segments.push(current);
  return p;
}

/** What a validator flags in one playlist (RFC 8216bis §4.4.3.1, §4.4.4.9, §4.4.3.7). */
export function checkRules(p, text) {
  assert.ok(p.partHoldBack >= 2 * p.partTarget, `PART-HOLD-BACK below twice the part target:\n${text}`);
  for (const s of p.segments) {
    assert.ok(s.dated, `segment ${s.msn} has no PROGRAM-DATE-TIME:\n${text}`);
    if (s.duration !== null) {
      assert.ok(Math.round(s.duration) <= p.target, `segment ${s.msn} lasts ${s.duration} s, over the target ${p.target}:\n${text}`);
      if (s.parts.length) {
        const sum = s.parts.reduce((a, x) => a + x.duration, 0);
        assert.ok(Math.abs(sum - s.duration) < 0.002, `segment ${s.msn}: parts sum to ${sum}, EXTINF says ${s.duration}`);
      }
    }
    for (const part of s.parts) {
      assert.ok(part.duration <= p.partTarget + 1e-9, `part ${part.uri} lasts ${part.duration} s, over PART-TARGET ${p.partTarget}:\n${text}`);
    }
  }
}

/**
 * Reads the playlist at `url` every 500 ms for `ms`: each one parses and obeys
 * checkRules, #EXT-X-TARGETDURATION never changes, the media sequence never goes back
 * and a segment number keeps its URI. Returns the last playlist parsed and how many
 * listed segments began without an INDEPENDENT part.
 */
export async function checkPlaylistsFor(url, ms) {
  const targets = new Set();
  const uris = new Map();
  let last = null;
  let lastSequence = -1;
  const dependent = new Set();
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const res = await fetch(url);
    assert.equal(res.status, 200, `playlist ${res.status}`);
    const text = await res.text();
    const p = parsePlaylist(text);
    checkRules(p, text);
    targets.add(p.target);
    assert.ok(p.mediaSequence >= lastSequence, `media sequence went back from ${lastSequence}:\n${text}`);
    lastSequence = p.mediaSequence;
    for (const s of p.segments) {
      if (s.uri) {
        assert.equal(uris.get(s.msn) ?? s.uri, s.uri, `segment ${s.msn} changed its URI`);
        uris.set(s.msn, s.uri);
      }
      if (s.parts.length && !s.parts[0].independent) dependent.add(s.msn);
    }
    last = p;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(targets.size, 1, `#EXT-X-TARGETDURATION changed: ${[...targets]}`);
  return { last, dependent: [...dependent] };
}
