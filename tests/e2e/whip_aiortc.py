#!/usr/bin/env python3
"""A WHIP publisher that is not a browser: aiortc (PyPI), as a Python app would publish.

    whip_aiortc.py URL [--seconds S]

POSTs a sendonly H.264 + Opus offer to URL (http://host:port/whip/<url-encoded name>),
applies the answer, sends a generated picture (a bar moving across 320x240, 25 fps,
encoded by aiortc's H.264 encoder: PyAV's libx264) and a 440 Hz tone for S seconds, then
DELETEs the Location it was given, and prints one JSON line:
    {"status": 201, "location": "/whip/...", "content_type": "application/sdp",
     "connected": true, "video_frames": N, "audio_frames": N, "delete_status": 200}
Exit status 0 when it ran (the test judges the figures), 2 on a usage error.
Bounded: stops after --seconds (default 10) from the POST.

Only loopback: the offer has 127.0.0.1 as its one host candidate and no STUN server
(aiortc would otherwise ask Google's), so every packet stays on this machine.
"""

import argparse
import array
import asyncio
import fractions
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
import av
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCPeerConnection,
                    RTCSessionDescription)
from aiortc.rtcrtpsender import RTCRtpSender

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

WIDTH, HEIGHT, FPS = 320, 240, 25
RATE, SAMPLES = 48000, 960  # 20 ms of 48 kHz audio


class MovingBar(MediaStreamTrack):
    kind = "video"

    def __init__(self, counts):
        super().__init__()
        self.n = 0
        self.start = None
        self.counts = counts

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.n / FPS
        await asyncio.sleep(max(0, due - time.monotonic()))
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        x = (self.n * 4) % WIDTH
        row = bytes(32 if not x <= i < x + 16 else 235 for i in range(WIDTH))
        luma = frame.planes[0]
        luma.update(row.ljust(luma.line_size, b"\0") * HEIGHT)
        for chroma in frame.planes[1:]:
            chroma.update(bytes([128]) * (chroma.line_size * (HEIGHT // 2)))
        frame.pts = self.n * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        self.counts["video_frames"] += 1
        return frame


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self, counts):
        super().__init__()
        self.n = 0
        self.start = None
        self.counts = counts

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.n * SAMPLES / RATE
        await asyncio.sleep(max(0, due - time.monotonic()))
        first = self.n * SAMPLES
        pcm = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * (first + i) / RATE))
                                for i in range(SAMPLES)))
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = RATE
        frame.pts = self.n * SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        self.n += 1
        self.counts["audio_frames"] += 1
        return frame


def request(url, method, sdp=None, timeout=10):
    headers = {"Content-Type": "application/sdp"} if sdp is not None else {}
    req = urllib.request.Request(url, data=sdp.encode() if sdp else None, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read().decode(), res.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()

    result = {"status": None, "location": None, "content_type": None, "connected": False,
              "video_frames": 0, "audio_frames": 0, "delete_status": None}
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for track in (MovingBar(result), Tone(result)):
        t = pc.addTransceiver(track, direction="sendonly")
        caps = RTCRtpSender.getCapabilities(track.kind)
        want = "video/H264" if track.kind == "video" else "audio/opus"
        t.setCodecPreferences([c for c in caps.codecs if c.mimeType == want])

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            result["connected"] = True

    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + args.seconds
    await pc.setLocalDescription(await pc.createOffer())
    status, body, headers = await loop.run_in_executor(
        None, request, args.url, "POST", pc.localDescription.sdp)
    result["status"] = status
    result["location"] = headers.get("Location")
    result["content_type"] = headers.get("Content-Type")
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if result["location"]:
            target = urllib.parse.urljoin(args.url, result["location"])
            result["delete_status"], _, _ = await loop.run_in_executor(
                None, request, target, "DELETE")
    else:
        result["body"] = body[:200]
    await pc.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
