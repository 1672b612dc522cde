#!/usr/bin/env python3
"""A WHEP viewer that is not a browser: aiortc (PyPI), as a Python app would play reelcast.

    whep_aiortc.py URL [--seconds S] [--only-ipv6]

POSTs a recvonly H.264 + Opus offer to URL (http://host:port/whep/<url-encoded name>),
applies the answer, decodes what arrives, and prints one JSON line:
    {"status": 201, "connected": true, "video_frames": N, "width": W, "height": H,
     "audio_frames": N, "audio_samples": N, "candidates": [...], "pair": "..."}
Exit status 0 when it ran (the test judges the figures), 2 on a usage error.
Bounded: gives up after --seconds (default 20) from the POST.

--only-ipv6 offers only the client's IPv6 host candidates (an IPv6-only client).
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.mediastreams import MediaStreamError


def only_ipv6():
    original = aioice.ice.get_host_addresses

    def ipv6_hosts(use_ipv4, use_ipv6):
        return [a for a in original(use_ipv4, use_ipv6) if ":" in a]

    aioice.ice.get_host_addresses = ipv6_hosts


def post(url, sdp, timeout):
    req = urllib.request.Request(url, data=sdp.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def count(track, result, key, deadline):
    while time.monotonic() < deadline:
        try:
            frame = await asyncio.wait_for(track.recv(), max(0.1, deadline - time.monotonic()))
        except (asyncio.TimeoutError, MediaStreamError):
            return
        if key == "video":
            result["video_frames"] += 1
            result["width"], result["height"] = frame.width, frame.height
        else:
            result["audio_frames"] += 1
            result["audio_samples"] += frame.samples


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--want-frames", type=int, default=50)
    ap.add_argument("--only-ipv6", action="store_true")
    args = ap.parse_args()
    if args.only_ipv6:
        only_ipv6()

    result = {"status": None, "connected": False, "video_frames": 0, "width": 0, "height": 0,
              "audio_frames": 0, "audio_samples": 0, "candidates": [], "pair": None}
    pc = RTCPeerConnection()
    tasks = []
    deadline = time.monotonic() + args.seconds
    for kind in ("video", "audio"):
        t = pc.addTransceiver(kind, direction="recvonly")
        caps = RTCRtpSender.getCapabilities(kind)
        want = "video/H264" if kind == "video" else "audio/opus"
        t.setCodecPreferences([c for c in caps.codecs if c.mimeType == want])

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(count(track, result, track.kind, deadline)))

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            result["connected"] = True

    await pc.setLocalDescription(await pc.createOffer())
    result["candidates"] = [l.split()[4] for l in pc.localDescription.sdp.splitlines()
                            if l.startswith("a=candidate:")]
    status, body = await asyncio.get_running_loop().run_in_executor(
        None, post, args.url, pc.localDescription.sdp, 10)
    result["status"] = status
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        while time.monotonic() < deadline and (
                result["video_frames"] < args.want_frames or result["audio_frames"] < args.want_frames):
            await asyncio.sleep(0.1)
        try:
            ice = pc.getTransceivers()[0].receiver.transport.transport
            pair = ice._connection._nominated.get(1)
            if pair is not None:
                result["pair"] = f"{pair.local_candidate.host} -> {pair.remote_candidate.host}"
        except Exception:  # the pair is diagnostics only
            pass
    else:
        result["body"] = body[:200]
    for t in tasks:
        t.cancel()
    await pc.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
