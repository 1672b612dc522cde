// A viewer whose link carries less than the stream sends hears the SDK's notEnoughBandwidth
// (STREAM_EVENT, info "remoteBitrate/networkBandwidth" in bit/s) and plays on; a viewer of
// the same stream on a good link hears nothing.
//
// The server announces 127.0.0.2 in its ICE candidate and listens on 127.0.0.1; a UDP relay
// (relay.mjs) listens on 127.0.0.2 with the same port and passes everything on. For the
// browser addresses it first hears from after `throttleNew`, it passes the server's RTP
// through a token bucket of 300 kbit/s and drops what exceeds it, as a full router queue
// would; the sample file is ~800 kbit/s.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SAMPLE, launchBrowser, openSdkPage, sdkPlay, startServer, waitForStatus, withServerLog,
} from './helpers.mjs';
import { FRONT_IP, udpRelay } from './relay.mjs';

const LINK_BPS = 300_000;

/** RTP from the server (not RTCP, STUN or DTLS): what a media link's capacity limits. */
function isRtp(msg) {
  return msg.length >= 12 && msg[0] >= 0x80 && msg[0] < 0xc0 && !(msg[1] >= 192 && msg[1] <= 223);
}

/** A token bucket of `bps` (a tenth of a second deep): true when `len` bytes get through now. */
function tokenBucket(bps) {
  const rate = bps / 8 / 1000; // bytes per ms
  const depth = rate * 100;
  let tokens = depth;
  let last = performance.now();
  return (len) => {
    const now = performance.now();
    tokens = Math.min(depth, tokens + (now - last) * rate);
    last = now;
    if (tokens < len) return false;
    tokens -= len;
    return true;
  };
}

/** The relay (see the file's head); `stats` counts per browser address what passed and dropped. */
async function narrowingRelay(port) {
  const stats = {};
  let narrowNew = null;
  const relay = await udpRelay(port, (key) => {
    const s = { throttled: narrowNew !== null, passed: 0, dropped: 0 };
    stats[key] = s;
    const carries = narrowNew !== null ? tokenBucket(narrowNew) : () => true;
    return (back) => {
      if (!isRtp(back)) return true;
      if (!carries(back.length)) { s.dropped++; return false; }
      s.passed++;
      return true;
    };
  });
  return {
    stats,
    /** Browser addresses first heard from after this get a link of `bps`. */
    throttleNew(bps) { narrowNew = bps; },
    close: () => relay.close(),
  };
}

/** In the page: records play `idx`'s STREAM_EVENTs (type, info, ms since the play began). */
function recordStreamEvents(page, idx) {
  return page.evaluate((i) => {
    const stream = window.__lastStream;
    const t0 = performance.now();
    window.__streamEvents = window.__streamEvents || {};
    const events = [];
    window.__streamEvents[i] = { events, stream };
    stream.on(Flashphoner.constants.STREAM_EVENT, (e) => events.push({
      type: e.type, info: e.payload && e.payload.info, t: Math.round(performance.now() - t0),
    }));
  }, idx);
}

/** Play `idx`'s STREAM_EVENTs so far, its SDK status now and what the SDK says of its bandwidth. */
function streamState(page, idx) {
  return page.evaluate((i) => {
    const { events, stream } = window.__streamEvents[i];
    return {
      events: events.slice(),
      status: stream.status(),
      remoteBitrate: stream.getRemoteBitrate(),
      networkBandwidth: stream.getNetworkBandwidth(),
    };
  }, idx);
}

async function metric(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : NaN;
}

describe('not enough bandwidth', { timeout: 120000 }, () => {
  let server;
  let relay;
  let browser;
  let page;

  before(async () => {
    server = await startServer({
      files: [SAMPLE],
      settings: { ip: FRONT_IP, ip_local: '127.0.0.1', vod_live_loop: 'true' },
    });
    relay = await narrowingRelay(server.media);
    browser = await launchBrowser();
    page = await openSdkPage(browser);
  }, { timeout: 60000 });

  after(async () => {
    await browser?.close();
    relay?.close();
    await server?.stop();
  });

  test('a viewer on a 300 kbit/s link hears notEnoughBandwidth within seconds and keeps PLAYING; one on a good link hears nothing', { timeout: 90000 }, async (t) => {
    const name = 'vod-live://sample.mp4';
    const good = await sdkPlay(page, server, name);
    await recordStreamEvents(page, good);
    await waitForStatus(page, good, 'PLAYING', 15000)
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });

    relay.throttleNew(LINK_BPS);
    const narrow = await sdkPlay(page, server, name);
    await recordStreamEvents(page, narrow);
    const playing = await waitForStatus(page, narrow, 'PLAYING', 15000)
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });

    // The event: within a few seconds of PLAYING (the server waits for 2 s of evidence).
    const deadline = Date.now() + 15000;
    let state = await streamState(page, narrow);
    while (!state.events.some((e) => e.type === 'notEnoughBandwidth') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      state = await streamState(page, narrow);
    }
    const detail = () => `narrow viewer ${JSON.stringify(state)}; relay ${JSON.stringify(relay.stats)}`;
    const event = state.events.find((e) => e.type === 'notEnoughBandwidth');
    assert.ok(event, withServerLog(server, `no notEnoughBandwidth within 15 s of PLAYING: ${detail()}`));
    const throttled = Object.values(relay.stats).filter((s) => s.throttled);
    assert.ok(throttled.some((s) => s.dropped > 100), `the relay dropped too little to test anything: ${detail()}`);
    const [remote, network] = event.info.split('/').map(Number);
    t.diagnostic(`notEnoughBandwidth ${event.t - playing.t} ms after PLAYING: remoteBitrate ${remote}, networkBandwidth ${network} (link ${LINK_BPS}); ${detail()}`);
    // In bit/s: the stream's own ~800 kbit/s (not its catch-up or repairs), and what the
    // 300 kbit/s link carried of it (a loss-based estimate).
    assert.ok(remote > 500_000 && remote < 1_200_000, `remoteBitrate ${remote}: ${detail()}`);
    assert.ok(network > 50_000 && network < remote * 0.8, `networkBandwidth ${network}: ${detail()}`);
    assert.equal(Number(state.networkBandwidth), network, 'the SDK keeps the figures');
    assert.equal(Number(state.remoteBitrate), remote);
    assert.ok(event.t - playing.t < 10000, `too late: ${event.t - playing.t} ms after PLAYING`);

    // The stream plays on, and is told once while the link stays narrow.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    state = await streamState(page, narrow);
    assert.equal(state.status, 'PLAYING', `the narrow viewer's stream: ${detail()}`);
    assert.equal(state.events.filter((e) => e.type === 'notEnoughBandwidth').length, 1, detail());
    const goodState = await streamState(page, good);
    assert.equal(goodState.status, 'PLAYING');
    assert.deepEqual(goodState.events.filter((e) => e.type === 'notEnoughBandwidth'), [],
      `the viewer on a good link was told: ${JSON.stringify(goodState)}`);
    assert.equal(await metric(server, 'reelcast_viewer_bandwidth_short_total{protocol="wcs"}'), 1);
  });
});
