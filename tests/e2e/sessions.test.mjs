// A WCS session's streams end with it, whatever names and ids the client reused: the
// official SDK plays, stops and plays the same name again on one session; every stop
// really stops (REST no longer lists it) and closing the session ends what still plays.
//
// The SDK makes a new mediaSessionId per createStream; other clients reuse one for the
// same name. That is played here by the unmodified SDK whose socket rewrites the second
// stream's id to the first one's on the wire (and back for what the server answers).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, openSdkPage, requireFiles, sdkEvents, startServer, testMedia, waitForStatus, withServerLog,
} from './helpers.mjs';

const LONG = testMedia('long_gop.mp4'); // 30 s: outlives every check here
const NAME = 'vod://long_gop.mp4';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The plays REST lists (`/stream/find_all`), as [{mediaSessionId, status}]. */
async function listed(server) {
  const res = await fetch(`${server.base}/rest-api/stream/find_all`, { method: 'POST', signal: AbortSignal.timeout(10000) });
  if (res.status === 404) return [];
  assert.equal(res.status, 200, `find_all: ${res.status}`);
  return (await res.json()).map((s) => ({ mediaSessionId: s.mediaSessionId, status: s.status }));
}

/** Waits (bounded) until REST lists exactly `count` plays; returns them. */
async function waitListed(server, count, what) {
  let plays = [];
  for (let i = 0; i < 50; i++) {
    plays = await listed(server);
    if (plays.length === count) return plays;
    await sleep(200);
  }
  throw new Error(withServerLog(server, `${what}: REST lists ${JSON.stringify(plays)}, expected ${count} play(s)`));
}

/**
 * Runs in the page before the SDK: every WebSocket the SDK opens can rewrite ids, both
 * ways, through window.__idMap = {from, to} (out: from → to; in: to → from). While
 * window.__dropStaleStatus is set, a STOPPED for `to` before the new play's PLAYING (the
 * earlier play's, which a client reusing ids cannot tell apart) is dropped. window.__stopBeforeNextPlay = {mediaSessionId, name} sends that
 * stopStream right before the next playStream: a client that stops and plays again at
 * once (the earlier play's own peer connection stays open, as a client's may).
 * window.__send(message, data) sends a message of our own on the SDK's socket.
 */
function installIdRewriter() {
  const Orig = window.WebSocket;
  window.__sockets = [];
  window.__send = (message, data) => window.__sockets[window.__sockets.length - 1].send(JSON.stringify({ message, data: [data] }));
  window.WebSocket = class extends Orig {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }

    send(data) {
      const m = window.__idMap;
      const out = m && typeof data === 'string' ? data.replaceAll(m.from, m.to) : data;
      const stop = window.__stopBeforeNextPlay;
      if (stop && typeof out === 'string' && JSON.parse(out).message === 'playStream') {
        window.__stopBeforeNextPlay = null;
        super.send(JSON.stringify({ message: 'stopStream', data: [stop] }));
      }
      super.send(out);
    }

    set onmessage(fn) {
      super.onmessage = (ev) => {
        const m = window.__idMap;
        if (!m || typeof ev.data !== 'string' || !ev.data.includes(m.to)) return fn(ev);
        const msg = JSON.parse(ev.data);
        const status = msg.message === 'notifyStreamStatusEvent' ? msg.data[0].status : null;
        if (status === 'PLAYING') window.__dropStaleStatus = false;
        else if (status === 'STOPPED' && window.__dropStaleStatus) return undefined;
        return fn({ data: ev.data.replaceAll(m.to, m.from) });
      };
    }

    get onmessage() { return super.onmessage; }
  };
}

describe('a WCS session and its streams', { timeout: 180000 }, () => {
  let server;
  let browser;

  before(async () => {
    requireFiles(LONG);
    server = await startServer({ files: [LONG] });
    browser = await launchBrowser();
    await browser.context.addInitScript(installIdRewriter);
  }, { timeout: 60000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  /** A page with the SDK whose session and streams are window.__s / window.__streams. */
  async function sdkPage() {
    const page = await openSdkPage(browser);
    await page.evaluate(async (url) => {
      window.__streams = [];
      window.__s = await window.__session(url);
      window.__newStream = (name) => {
        const S = Flashphoner.constants.STREAM_STATUS;
        const events = [];
        window.__events.push(events);
        const div = document.createElement('div');
        document.getElementById('displays').appendChild(div);
        const stream = window.__s.createStream({ name, display: div });
        for (const st of [S.PLAYING, S.STOPPED, S.FAILED]) {
          stream.on(st, (s) => events.push({ status: st, info: s.getInfo ? s.getInfo() : undefined }));
        }
        window.__streams.push(stream);
        return { idx: window.__events.length - 1, id: stream.id() };
      };
    }, server.wsUrl);
    return page;
  }

  async function play(page, what) {
    const { idx, id } = await page.evaluate((n) => window.__newStream(n), NAME);
    await page.evaluate((i) => window.__streams[window.__streams.length - 1].play(), idx);
    const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000)
      .catch((e) => { throw new Error(withServerLog(server, `${what}: ${e.message}`)); });
    assert.equal(ev.status, 'PLAYING', withServerLog(server, `${what}: ${JSON.stringify(await sdkEvents(page, idx))}`));
    return { idx, id };
  }

  const stopLast = (page) => page.evaluate(() => window.__streams[window.__streams.length - 1].stop());

  test('the SDK plays, stops and plays the same name again: each stop stops, closing the session ends the rest', async () => {
    const page = await sdkPage();
    for (let round = 1; round <= 3; round++) {
      await play(page, `play ${round}`);
      await waitListed(server, 1, `while play ${round} plays`);
      await stopLast(page);
      await waitListed(server, 0, `after stopping play ${round}`);
    }
    await play(page, 'last play');
    await waitListed(server, 1, 'while the last play plays');
    await page.close();
    await waitListed(server, 0, 'after the page (and its session) closed');
  });

  test('a client reusing one mediaSessionId: stopStream stops the latest play, closing the socket ends it', async () => {
    const page = await sdkPage();
    const first = await play(page, 'first play');
    const [listedFirst] = await waitListed(server, 1, 'while the first play plays');
    assert.equal(listedFirst.mediaSessionId, first.id);

    /** Plays NAME again under the first play's id; with `stopFirst`, stops the one before at once. */
    async function replay(round, stopFirst) {
      const { idx, id } = await page.evaluate((n) => window.__newStream(n), NAME);
      await page.evaluate(([from, to, name, stop]) => {
        window.__idMap = { from, to };
        window.__dropStaleStatus = true;
        if (stop) window.__stopBeforeNextPlay = { mediaSessionId: to, name };
        window.__streams[window.__streams.length - 1].play();
      }, [id, first.id, NAME, stopFirst]);
      const ev = await waitForStatus(page, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000);
      assert.equal(ev.status, 'PLAYING', withServerLog(server, `play ${round} under a reused id: ${JSON.stringify(ev)}`));
      const [again] = await waitListed(server, 1, `while play ${round} plays under the reused id`);
      assert.equal(again.mediaSessionId, first.id);
    }

    // stopStream + playStream back to back, same id: then stopStream must stop the new play.
    await replay(2, true);
    await page.evaluate(([id, name]) => window.__send('stopStream', { mediaSessionId: id, name }), [first.id, NAME]);
    await waitListed(server, 0, 'after stopStream of play 2 (reused id)');

    // Again, and then the socket closes (the peer connection stays open): the play must end.
    await replay(3, false);
    await replay(4, true);
    await page.evaluate(() => window.__sockets.forEach((s) => s.close()));
    await waitListed(server, 0, 'after the socket of a reused id closed');
    await page.close();
  });
});
