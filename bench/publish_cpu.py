#!/usr/bin/env python3
"""The server's CPU per published stream, with and without recording (a benchmark, not a
test; issue 13's "≤ 2 % of a core per stream at 720p 2 Mbit/s, Opus→AAC included").

    bench/publish_cpu.py bench [--publishers 1,4] [--duration 20] [--settle 6] [--rounds 2]
                               [--server PATH] [--server-cpu 0] [--client-cpu 1]
                               [--audio-channels 2|1] [--server-set KEY=VALUE ...]
    bench/publish_cpu.py ab BIN_A BIN_B [--mode recorded] [--rounds 4] [same options]
    bench/publish_cpu.py publish URL [--media FILE] [--seconds S]

`bench`: for each round and each N, in turn: the idle server, N publishers without
recording, N publishers each recorded (`record_streams=true`: the recorder re-encodes
the Opus audio to AAC and writes a fragmented MP4, as a WCS `record: true` publisher
gets). The server runs pinned to one CPU (`taskset`), the publishers on the other; for
`--duration` seconds after `--settle` seconds the server's CPU (utime + stime,
/proc/PID/stat) and what its UDP port received (`reelcast_udp_received_bytes_total`,
/metrics) are read. Per stream = (mode − idle of the same round) / N; the recording's own
cost = (recorded − not recorded) / N. Prints a Markdown table of medians over the
rounds, and checks each recording with ffprobe (codecs, duration). Bounded: every server
and publisher is stopped by the script, every publisher also stops by itself.

`ab`: two server binaries A/B in one run, one publisher each, `--mode` (recorded by
default) only, the two alternating (A, B, B, A, A, B, …) so both see the same machine
load; prints each binary's median % of a core (the idle server is ~0).

`publish`: one WHIP publisher, aiortc (PyPI) with no encoder: the H.264 and Opus packets
of a file made once with ffmpeg (1280x720 30 fps H.264 constrained baseline at a
constant 2 Mbit/s, keyframe every 2 s, Opus 64 kbit/s stereo, 120 s, MPEG-TS so the
H.264 is Annex B) are sent as they are, paced by their timestamps and looped with
timestamps that keep increasing. The publisher's CPU is then RTP packetization and SRTP,
not encoding, so 4 of them fit on one core beside the bench. Loopback only: one host
candidate, 127.0.0.1, and no STUN server. Stops after --seconds (DELETE of its
Location), or when the server goes away, or with --while-parent when the process
that started it exits. --wait S retries the POST while the server does not listen
yet. Also used by bench/record_kill.sh and
bench/fanout_steered.sh --published.
"""

import argparse
import asyncio
import fractions
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH_DIR = Path("/tmp/reelcast-bench")
MEDIA = BENCH_DIR / "publish_720p_2m.ts"
# The same picture with mono Opus at 32 kbit/s: what Chromium's microphone sends unless the
# page asks for stereo (the server's answer does not), so what a browser publisher records.
MEDIA_MONO = BENCH_DIR / "publish_720p_2m_mono.ts"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the media file

def make_media(path=MEDIA, channels=2):
    """The 720p 2 Mbit/s H.264 + Opus file, made once (about a minute of ffmpeg): Opus
    64 kbit/s stereo, or with `channels=1` 32 kbit/s mono."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.ts")
    print(f"making {path} with ffmpeg ...", file=sys.stderr)
    # The noise keeps x264 at its rate: a test pattern alone compresses far below 2 Mbit/s.
    subprocess.run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "120", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline",
        "-level", "3.1", "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "2M",
        "-x264-params", "keyint=60:min-keyint=60:scenecut=0:nal-hrd=cbr",
        "-pix_fmt", "yuv420p", "-c:a", "libopus",
        "-b:a", "64k" if channels == 2 else "32k", "-ac", str(channels),
        "-f", "mpegts", str(tmp)], check=True)
    tmp.rename(path)
    return path


# ---------------------------------------------------------------- the publisher

def read_packets(path):
    """Every packet of the file as (seconds from the first, bytes), per kind, and the
    period to loop at (the video's length)."""
    import av
    from aiortc.codecs.h264 import H264Encoder

    out = {"video": [], "audio": []}
    first = {}
    with av.open(str(path)) as container:
        for p in container.demux():
            if not p.size or p.pts is None:
                continue
            kind = p.stream.type
            if kind not in out:
                continue
            t = float(p.pts * p.time_base)
            first.setdefault(kind, t)
            data = bytes(p)
            if kind == "video":
                # Access unit delimiters (the TS muxer's) carry nothing for RTP.
                nals = [n for n in H264Encoder._split_bitstream(data) if n[0] & 0x1F != 9]
                data = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
            out[kind].append((t, data))
    start = min(first.values())
    for kind in out:
        out[kind] = sorted((t - start, d) for t, d in out[kind])
    video = out["video"]
    period = video[-1][0] + (video[-1][0] - video[0][0]) / max(1, len(video) - 1)
    return out, period


def publish(url, media, seconds, wait=0.0, parent=None):
    import aioice.ice
    import av
    from aiortc import (MediaStreamTrack, RTCConfiguration, RTCPeerConnection,
                        RTCSessionDescription)
    from aiortc.rtcrtpsender import RTCRtpSender

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    packets, period = read_packets(media)
    clock = {"start": None}
    # Frames handed to aiortc per kind, and how far behind its time the latest was at most.
    stats = {"video": 0, "audio": 0, "max_lag": 0.0}

    class Looped(MediaStreamTrack):
        """The file's packets of one kind, as they are, in real time, looped."""

        def __init__(self, kind, rate):
            super().__init__()
            self.kind = kind
            self.items = packets[kind]
            self.rate = rate
            self.n = 0

        async def recv(self):
            i, lap = self.n % len(self.items), self.n // len(self.items)
            t, data = self.items[i]
            t += lap * period
            self.n += 1
            if clock["start"] is None:
                clock["start"] = time.monotonic()
            ahead = clock["start"] + t - time.monotonic()
            stats[self.kind] += 1
            stats["max_lag"] = max(stats["max_lag"], round(-ahead, 3))
            await asyncio.sleep(max(0.0, ahead))
            packet = av.Packet(data)
            packet.pts = round(t * self.rate)
            packet.time_base = fractions.Fraction(1, self.rate)
            return packet

    def request(target, method, sdp=None):
        headers = {"Content-Type": "application/sdp"} if sdp is not None else {}
        req = urllib.request.Request(target, data=sdp.encode() if sdp else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return res.status, res.read().decode(), res.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), e.headers

    async def run():
        result = {"status": None, "connected": False, "seconds": 0.0}
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for track in (Looped("video", 90000), Looped("audio", 48000)):
            t = pc.addTransceiver(track, direction="sendonly")
            caps = RTCRtpSender.getCapabilities(track.kind)
            want = "video/H264" if track.kind == "video" else "audio/opus"
            t.setCodecPreferences([c for c in caps.codecs if c.mimeType == want
                                   and ("42e01f" in (c.parameters or {}).get(
                                       "profile-level-id", "42e01f"))])
        done = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state():
            if pc.connectionState == "connected":
                result["connected"] = True
            if pc.connectionState in ("failed", "closed"):
                done.set()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        loop.add_signal_handler(signal.SIGINT, done.set)
        began = time.monotonic()
        await pc.setLocalDescription(await pc.createOffer())
        while True:
            try:
                status, body, headers = await loop.run_in_executor(
                    None, request, url, "POST", pc.localDescription.sdp)
                break
            except OSError:
                # --wait: the server may not listen yet.
                if time.monotonic() - began > wait:
                    raise
                await asyncio.sleep(0.2)
        if parent is not None:
            async def watch_parent():
                while os.getppid() == parent:
                    await asyncio.sleep(0.5)
                done.set()
            asyncio.ensure_future(watch_parent())
        result["status"] = status
        if status == 201:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
            try:
                await asyncio.wait_for(done.wait(), timeout=seconds)
            except asyncio.TimeoutError:
                pass
            location = headers.get("Location")
            if location and pc.connectionState == "connected":
                try:
                    result["delete_status"], _, _ = await loop.run_in_executor(
                        None, request, urllib.parse.urljoin(url, location), "DELETE")
                except OSError as e:  # the server is gone (record_kill.sh kills it)
                    result["delete_status"] = str(e)
        else:
            result["body"] = body[:200]
        result["seconds"] = round(time.monotonic() - began, 2)
        result["media_start"] = clock["start"]
        result.update(video_frames=stats["video"], audio_frames=stats["audio"],
                      max_lag=stats["max_lag"], state=pc.connectionState)
        await pc.close()
        print(json.dumps(result), flush=True)

    asyncio.run(run())


# ---------------------------------------------------------------- the bench

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def http(base, path, method="GET", body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=body.encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as res:
        return res.read().decode()


def metric(base, name):
    for line in http(base, "/metrics").splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Server:
    def __init__(self, binary, cpu, root, record, extra=()):
        self.root = root
        self.records = root / "records"
        media = root / "media"
        media.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        args = ["taskset", "-c", str(cpu), str(binary), "serve", "--media-dir", str(media),
                "--http-port", str(self.http_port), "--ws-port", str(free_port()),
                "--media-port", str(free_port()), "--ip", "127.0.0.1",
                "--set", f"record_dir={self.records}",
                "--set", "stream_record_policy=streamName"]
        if record:
            args += ["--set", "record_streams=true"]
        for setting in extra:
            args += ["--set", setting]
        self.log = open(root / "server.log", "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env={**os.environ, "RUST_LOG": "warn"})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                http(self.base, "/metrics")
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise SystemExit(f"the server did not start: {(root / 'server.log').read_text()}")

    def publishing(self):
        try:
            streams = json.loads(http(self.base, "/rest-api/stream/find_all", "POST", "{}"))
        except urllib.error.HTTPError:  # 404: none running
            return 0
        return sum(1 for s in streams if s.get("published") and s.get("status") == "PUBLISHING"
                   and s.get("mediaType") == "publish" and s.get("protocol") == "whip")

    def stop(self):
        """SIGTERM: recordings are finalized before the server exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_publishers(base, n, cpu, seconds, media, prefix="pub"):
    procs = []
    for i in range(n):
        url = f"{base}/whip/{prefix}{i}"
        procs.append(subprocess.Popen(
            ["taskset", "-c", str(cpu), sys.executable, str(Path(__file__).resolve()),
             "publish", url, "--media", str(media), "--seconds", str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
    return procs


def stop_publishers(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        line = out.decode().strip().splitlines()
        results.append(json.loads(line[-1]) if line else {"error": err.decode()[-300:]})
    return results


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,width,height:format=duration", "-of", "json",
                          str(path)], capture_output=True, text=True)
    try:
        v = json.loads(out.stdout)
        return ([s["codec_name"] for s in v.get("streams", [])],
                float(v.get("format", {}).get("duration", 0)))
    except (ValueError, KeyError):
        return ([], 0.0)


def measure(opts, mode, n):
    """One point: the server's % of a core and received kbit/s over the window."""
    root = Path(tempfile.mkdtemp(prefix=f"reelcast-pubcpu-{mode}-"))
    server = Server(opts.server, opts.server_cpu, root, record=(mode == "recorded"),
                    extra=opts.server_set)
    procs = []
    try:
        if mode != "idle":
            procs = start_publishers(server.base, n, opts.client_cpu,
                                     opts.settle + opts.duration + 30, opts.media)
            deadline = time.monotonic() + 20
            while server.publishing() < n and time.monotonic() < deadline:
                time.sleep(0.2)
            if server.publishing() < n:
                raise SystemExit(f"{mode} N={n}: only {server.publishing()} publishing; "
                                 f"log: {root / 'server.log'}")
        time.sleep(opts.settle)
        c0, b0, t0 = cpu_seconds(server.proc.pid), metric(server.base,
                                                          "reelcast_udp_received_bytes_total"), time.monotonic()
        time.sleep(opts.duration)
        c1, b1, t1 = cpu_seconds(server.proc.pid), metric(server.base,
                                                          "reelcast_udp_received_bytes_total"), time.monotonic()
        ok = server.publishing() if mode != "idle" else 0
    finally:
        results = stop_publishers(procs)
        server.stop()
    files = sorted(server.records.glob("*.mp4")) if server.records.exists() else []
    checks = [(f.name, *probe(f)) for f in files]
    point = {"mode": mode, "n": n, "cpu": 100 * (c1 - c0) / (t1 - t0),
             "kbps": (b1 - b0) * 8 / (t1 - t0) / 1000, "publishing_at_end": ok,
             "publishers": results, "recordings": checks}
    subprocess.run(["rm", "-rf", str(root)])
    return point


def bench(opts):
    if opts.media:
        opts.media = make_media(Path(opts.media))
    elif opts.audio_channels == 1:
        opts.media = make_media(MEDIA_MONO, channels=1)
    else:
        opts.media = make_media()
    points = []
    for r in range(1, opts.rounds + 1):
        idle = measure(opts, "idle", 0)
        print(f"round {r}: idle {idle['cpu']:.2f} % of a core", file=sys.stderr)
        for n in opts.publishers:
            for mode in ("published", "recorded"):
                p = measure(opts, mode, n)
                p["round"], p["idle"] = r, idle["cpu"]
                points.append(p)
                recs = ", ".join(f"{name} {'+'.join(c)} {d:.1f} s" for name, c, d in p["recordings"])
                print(f"round {r}: {mode} N={n}: {p['cpu']:.2f} % of a core, received "
                      f"{p['kbps']:.0f} kbit/s, {p['publishing_at_end']} publishing at the end"
                      f"{'; ' + recs if recs else ''}", file=sys.stderr)
                bad = [x for x in p["publishers"] if x.get("status") != 201 or not x.get("connected")]
                if bad:
                    print(f"  publishers that did not run: {bad}", file=sys.stderr)
    print(f"\nServer on CPU {opts.server_cpu}, publishers on CPU {opts.client_cpu}; "
          f"{opts.rounds} rounds, settle {opts.settle} s, window {opts.duration} s; medians "
          f"(each round's figure in brackets).\n")
    print("| publishers | mode | server % of a core | − idle, per stream | received per stream |")
    print("|---|---|---|---|---|")
    per = {}
    for n in opts.publishers:
        for mode in ("published", "recorded"):
            ps = [p for p in points if p["n"] == n and p["mode"] == mode]
            each = [(p["cpu"] - p["idle"]) / n for p in ps]
            per[(n, mode)] = each
            cpu = statistics.median(p["cpu"] for p in ps)
            kbps = statistics.median(p["kbps"] / n for p in ps)
            print(f"| {n} | {mode} | {cpu:.2f} | **{statistics.median(each):.2f} %** "
                  f"[{', '.join(f'{x:.2f}' for x in each)}] | {kbps:.0f} kbit/s |")
    print("\n| publishers | recording's own cost per stream (recorded − published) |")
    print("|---|---|")
    for n in opts.publishers:
        diff = [a - b for a, b in zip(per[(n, "recorded")], per[(n, "published")])]
        print(f"| {n} | {statistics.median(diff):.2f} % of a core "
              f"[{', '.join(f'{x:.2f}' for x in diff)}] |")


def ab(opts):
    """Two binaries alternating A B B A …, one publisher, one mode."""
    opts.media = make_media(MEDIA_MONO, channels=1) if opts.audio_channels == 1 else make_media()
    bins = {"A": opts.a, "B": opts.b}
    cpu = {"A": [], "B": []}
    for r in range(opts.rounds):
        for which in ("AB" if r % 2 == 0 else "BA"):
            opts.server = bins[which]
            p = measure(opts, opts.mode, 1)
            cpu[which].append(p["cpu"])
            recs = ", ".join(f"{'+'.join(c)} {d:.1f} s" for _, c, d in p["recordings"])
            print(f"round {r + 1}: {which} {p['cpu']:.2f} % of a core, {p['kbps']:.0f} kbit/s"
                  f"{'; ' + recs if recs else ''}; load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr)
    print(f"\n{opts.mode}, 1 publisher ({opts.audio_channels}-channel Opus), {opts.rounds} "
          f"rounds, settle {opts.settle} s, window {opts.duration} s\n")
    print("| server | % of a core, median | rounds |")
    print("|---|---|---|")
    for which in "AB":
        print(f"| {which}: {bins[which]} | **{statistics.median(cpu[which]):.2f} %** | "
              f"{', '.join(f'{x:.2f}' for x in cpu[which])} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--publishers", default="1,4",
                   type=lambda s: [int(x) for x in s.split(",") if int(x) > 0])
    b.add_argument("--duration", type=float, default=20)
    b.add_argument("--settle", type=float, default=6)
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--server", default=os.environ.get(
        "REELCAST_BIN", str(HERE.parent / "target/release/reelcast")))
    b.add_argument("--server-cpu", type=int, default=0)
    b.add_argument("--client-cpu", type=int, default=1)
    b.add_argument("--media")
    b.add_argument("--server-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for every server (e.g. record_audio_codec=opus)")
    b.add_argument("--audio-channels", type=int, choices=(1, 2), default=2,
                   help="the publishers' Opus: 2 = 64 kbit/s stereo, 1 = 32 kbit/s mono "
                   "(Chromium's default microphone)")
    a = sub.add_parser("ab")
    a.add_argument("a")
    a.add_argument("b")
    a.add_argument("--mode", choices=("published", "recorded"), default="recorded")
    a.add_argument("--duration", type=float, default=20)
    a.add_argument("--settle", type=float, default=6)
    a.add_argument("--rounds", type=int, default=4)
    a.add_argument("--server-cpu", type=int, default=0)
    a.add_argument("--client-cpu", type=int, default=1)
    a.add_argument("--server-set", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument("--audio-channels", type=int, choices=(1, 2), default=1)
    p = sub.add_parser("publish")
    p.add_argument("url")
    p.add_argument("--media", default=str(MEDIA))
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--wait", type=float, default=0,
                   help="seconds to retry the POST while the server does not listen yet")
    p.add_argument("--while-parent", action="store_true",
                   help="stop when the parent process (the server this one was started "
                   "beside, by a wrapper that then exec'd it) exits")
    sub.add_parser("make-media")
    opts = ap.parse_args()
    if opts.cmd == "publish":
        publish(opts.url, Path(opts.media), opts.seconds, opts.wait,
                os.getppid() if opts.while_parent else None)
    elif opts.cmd == "make-media":
        print(make_media())
    elif opts.cmd == "ab":
        ab(opts)
    else:
        bench(opts)


if __name__ == "__main__":
    main()
