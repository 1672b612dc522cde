// Publishing, end to end with real clients: headless Chromium with a fake camera and
// microphone publishes through the unmodified WCS SDK (`createStream({name}).publish()`);
// a second browser watches it live by name through the SDK and through WHEP; REST lists
// the publisher and its viewers. A publisher's end (unPublishStream, REST terminate, a
// page that vanishes) stops its viewers with `Stopped by publisher stop`; a second
// publisher of a name in use fails with WCS's `Stream name is already in use`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FAKE_MEDIA_FLAGS, SAMPLE, addSdkPublisher, launchBrowser, openSdkPage, requireFiles, restPost, sdkEvents, sdkPlay,
  startServer, waitForStats, waitForStatus, withServerLog, measure,
} from './helpers.mjs';

/** The streams REST lists now ([] when none). */
async function listed(server) {
  const r = await restPost(server, '/stream/find_all');
  return r.status === 200 ? r.body : [];
}

describe('publishing from a browser, watched live', { timeout: 300000 }, () => {
  let server;
  let publisherBrowser;
  let viewerBrowser;
  let pub;
  let viewer;
  let whepPage;

  before(async () => {
    requireFiles(SAMPLE);
    server = await startServer();
    publisherBrowser = await launchBrowser({ args: FAKE_MEDIA_FLAGS });
    viewerBrowser = await launchBrowser();
    pub = await openSdkPage(publisherBrowser);
    await addSdkPublisher(pub);
    viewer = await openSdkPage(viewerBrowser);
    whepPage = await viewerBrowser.newPage();
    await whepPage.goto(`${server.base}/api/files`);
  }, { timeout: 60000 });

  after(async () => {
    if (publisherBrowser) await publisherBrowser.close();
    if (viewerBrowser) await viewerBrowser.close();
    if (server) await server.stop();
  });

  /** Publishes `name` from `page` and waits for PUBLISHING; returns its index. */
  async function publishToPublishing(page, name, record = false) {
    const idx = await page.evaluate(([url, n, r]) => window.__publish(url, n, r), [server.wsUrl, name, record]);
    const ev = await waitForStatus(page, idx, ['PUBLISHING', 'FAILED', 'UNPUBLISHED'], 20000)
      .catch((e) => { throw new Error(withServerLog(server, `${name}: ${e.message}`)); });
    assert.equal(ev.status, 'PUBLISHING',
      withServerLog(server, `${name}: expected PUBLISHING, got ${JSON.stringify(await sdkEvents(page, idx))}`));
    return idx;
  }

  /** Plays `name` through the SDK in the viewer page until frames decode and audio comes. */
  async function watchBySdk(name) {
    const idx = await sdkPlay(viewer, server, name);
    const ev = await waitForStatus(viewer, idx, ['PLAYING', 'FAILED', 'STOPPED'], 15000)
      .catch((e) => { throw new Error(withServerLog(server, `viewer of ${name}: ${e.message}`)); });
    assert.equal(ev.status, 'PLAYING', withServerLog(server, `viewer of ${name}: ${JSON.stringify(ev)}`));
    await waitForStats(viewer, (s) => s.video?.framesDecoded > 10 && s.audio?.totalSamplesReceived > 0,
      { timeoutMs: 15000, what: `frames and audio of ${name} by the SDK` })
      .catch((e) => { throw new Error(withServerLog(server, e.message)); });
    // The sound decodes, not only arrives: a browser's Opus is variable-rate, so about
    // half its packets reach viewers with RTP padding (webrtc::packets::packetize_pair);
    // a packet the browser could not parse would be concealed.
    const heard = await measure(viewer, 3000);
    assert.ok(heard.samples > 48000 * 2 && heard.concealed < 0.05 * heard.samples,
      `audio of ${name}: ${heard.concealed} of ${heard.samples} samples concealed in 3 s`);
    return idx;
  }

  test('WCS SDK publishes; SDK and WHEP viewers watch it live; REST lists it; a second publisher of the name fails; unpublish stops the viewers',
    { timeout: 120000 }, async () => {
      const pubIdx = await publishToPublishing(pub, 'cam1', true);
      const publishing = (await sdkEvents(pub, pubIdx)).find((e) => e.status === 'PUBLISHING');
      assert.ok(publishing, 'no PUBLISHING event');

      const sdkIdx = await watchBySdk('cam1');
      const whep = await whepPage.evaluate(async () => {
        const r = await window.__whep.start('cam1');
        window.__whepPc = r.pc;
        // As a WHEP player shows it: Chromium pulls a live stream's audio only when it is
        // rendered (measured: bytes arrive, no samples, without an element).
        const v = document.createElement('video');
        v.muted = false;
        v.srcObject = new MediaStream(r.pc.getReceivers().map((x) => x.track));
        document.body.appendChild(v);
        await v.play().catch(() => {});
        return { status: r.status, location: r.location, contentType: r.contentType };
      });
      assert.equal(whep.status, 201, withServerLog(server, `WHEP of cam1: ${JSON.stringify(whep)}`));
      await waitForStats(whepPage, (s) => s.video?.framesDecoded > 10 && s.audio?.totalSamplesReceived > 0,
        { timeoutMs: 15000, what: 'frames and audio of cam1 by WHEP' })
        .catch((e) => { throw new Error(withServerLog(server, e.message)); });

      const streams = await listed(server);
      const published = streams.find((s) => s.published && s.name === 'cam1');
      assert.ok(published, `REST does not list the publisher: ${JSON.stringify(streams)}`);
      assert.equal(published.status, 'PUBLISHING');
      assert.equal(published.mediaType, 'publish');
      assert.equal(published.mediaProvider, 'WebRTC');
      assert.equal(published.record, true);
      assert.equal(published.hasVideo, true);
      assert.equal(published.hasAudio, true);
      assert.equal(published.protocol, 'wcs');
      assert.equal(published.viewers, 2, JSON.stringify(published));
      assert.ok(published.createDate > 0);
      const viewers = streams.filter((s) => !s.published && s.name === 'cam1').map((s) => s.protocol).sort();
      assert.deepEqual(viewers, ['wcs', 'whep'], JSON.stringify(streams));

      const twice = await pub.evaluate(([url]) => window.__publish(url, 'cam1', false), [server.wsUrl]);
      const refused = await waitForStatus(pub, twice, ['FAILED', 'PUBLISHING'], 10000);
      assert.equal(refused.status, 'FAILED');
      assert.equal(refused.info, 'Stream name is already in use');

      await pub.evaluate((i) => window.__unpublish(i), pubIdx);
      const unpublished = await waitForStatus(pub, pubIdx, ['UNPUBLISHED', 'FAILED'], 10000);
      assert.equal(unpublished.status, 'UNPUBLISHED', JSON.stringify(unpublished));
      const stopped = await waitForStatus(viewer, sdkIdx, ['STOPPED', 'FAILED'], 10000)
        .catch((e) => { throw new Error(withServerLog(server, `SDK viewer: ${e.message}`)); });
      assert.equal(stopped.status, 'STOPPED');
      assert.equal(stopped.info, 'Stopped by publisher stop');
      // The WHEP viewer is let go (RTCP BYE) and leaves the registry.
      const deadline = Date.now() + 10000;
      let left = await listed(server);
      while (left.some((s) => s.name === 'cam1') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        left = await listed(server);
      }
      assert.deepEqual(left.filter((s) => s.name === 'cam1'), [], 'cam1 or a viewer of it is still listed');
      await whepPage.evaluate(() => window.__whepPc.close());
    });

  test('REST /stream/terminate stops a publisher (UNPUBLISHED) and its viewers (Stopped by publisher stop)',
    { timeout: 90000 }, async () => {
      const pubIdx = await publishToPublishing(pub, 'cam2');
      const sdkIdx = await watchBySdk('cam2');
      const r = await restPost(server, '/stream/terminate', { name: 'cam2' });
      assert.equal(r.status, 200, JSON.stringify(r));
      const unpublished = await waitForStatus(pub, pubIdx, ['UNPUBLISHED', 'FAILED'], 10000);
      assert.equal(unpublished.status, 'UNPUBLISHED');
      assert.equal(unpublished.info, 'Stopped by rest /terminate');
      const stopped = await waitForStatus(viewer, sdkIdx, ['STOPPED', 'FAILED'], 10000);
      assert.equal(stopped.status, 'STOPPED');
      assert.equal(stopped.info, 'Stopped by publisher stop');
    });

  test('a publisher whose page vanishes stops its viewers; the name is free again', { timeout: 90000 }, async () => {
    const gone = await openSdkPage(publisherBrowser);
    await addSdkPublisher(gone);
    await publishToPublishing(gone, 'cam3');
    const sdkIdx = await watchBySdk('cam3');
    await gone.close();
    const stopped = await waitForStatus(viewer, sdkIdx, ['STOPPED', 'FAILED'], 20000)
      .catch((e) => { throw new Error(withServerLog(server, `viewer of a vanished publisher: ${e.message}`)); });
    assert.equal(stopped.status, 'STOPPED');
    assert.equal(stopped.info, 'Stopped by publisher stop');
    const again = await publishToPublishing(pub, 'cam3');
    await pub.evaluate((i) => window.__unpublish(i), again);
  });
});
