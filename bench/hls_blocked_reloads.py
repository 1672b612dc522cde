#!/usr/bin/env python3
"""Benchmark (not a test): the server's memory per waiting LL-HLS blocking reload.

Starts reelcast with HLS on, plays the bundled sample as a live translation over HLS,
then holds N playlist requests that block (`_HLS_msn` two segments ahead) and reads the
server's VmRSS before and while they wait.

    python3 bench/hls_blocked_reloads.py            # N=2000, target/release/reelcast
    N=500 REELCAST_BIN=/path/to/reelcast python3 bench/hls_blocked_reloads.py
"""
import asyncio, os, re, socket, subprocess, sys, tempfile, time, urllib.request

N = int(os.environ.get("N", "2000"))
BIN = os.environ.get("REELCAST_BIN", "target/release/reelcast")
NAME = "vod-live%3A%2F%2Fsample.mp4"
PLAYLIST = f"/{NAME}/{NAME}.m3u8"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold(port, msn):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {PLAYLIST}?_HLS_msn={msn} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    return writer


async def main():
    media = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "media")
    hls, http, ws, media_port = free_port(), free_port(), free_port(), free_port()
    args = [BIN, "serve", "--config", "/dev/null", "--set", f"media_dir={media}",
            "--set", f"hls.port={hls}", "--set", f"http.port={http}", "--set", f"ws.port={ws}",
            "--set", f"media_port={media_port}", "--set", "ice_tcp_transport=false", "--set", f"http.max_connections={N + 100}",
            "--set", f"http.max_connections_per_client={N + 100}",
            "--set", "hls_target_duration=4000"]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 20
        while True:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{hls}{PLAYLIST}", timeout=20).read().decode()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    server.kill()
                    log.seek(0)
                    sys.exit("the server did not start: " + log.read().decode()[-500:])
                time.sleep(0.2)
        msn = int(re.search(r'PRELOAD-HINT:TYPE=PART,URI="[^"]*?-(\d+)\.', text).group(1))
        time.sleep(1)
        before = rss_kb(server.pid)
        writers = [await hold(hls, msn + 2) for _ in range(N)]
        await asyncio.sleep(1.0)
        during = rss_kb(server.pid)
        print(f"{N} blocked reloads: server RSS {before} kB -> {during} kB, "
              f"{(during - before) * 1024 / N / 1024:.1f} KB per waiting request")
        for w in writers:
            w.close()
    finally:
        server.kill()
        server.wait()


asyncio.run(main())
