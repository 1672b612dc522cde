#!/usr/bin/env python3
"""RSS of reelcast before, with and after N idle WebSocket sessions (clients that upgrade
and then never send or read a byte), all on 127.0.0.1.

  python3 bench/idle_sessions.py BIN [N] [--set KEY=VALUE ...]

Prints VmRSS (MB) idle, with the N sessions open, and 3 s after the clients closed them.
"""
import os, socket, subprocess, sys, tempfile, time

def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def main():
    binary, rest = sys.argv[1], sys.argv[2:]
    n = int(rest.pop(0)) if rest and rest[0].isdigit() else 2000
    media = tempfile.mkdtemp()
    http, ws, udp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen([binary, "serve", "--media-dir", media, "--http-port", str(http), "--ws-port", str(ws),
                             "--media-port", str(udp), "--ip-local", "127.0.0.1", *rest],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if False else \
        subprocess.Popen([binary, "serve", "--media-dir", media, "--http-port", str(http), "--ws-port", str(ws),
                          "--media-port", str(udp), *rest], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close(); break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        idle = rss_mb(proc.pid)
        socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", ws), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: r\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = s.recv(4096)
            if not head.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"session {i}: {head[:80]!r}")
            socks.append(s)
        time.sleep(2)
        with_sessions = rss_mb(proc.pid)
        for s in socks:
            s.close()
        time.sleep(3)
        after = rss_mb(proc.pid)
        print(f"{n} idle sessions: RSS idle {idle:.1f} MB, with them {with_sessions:.1f} MB "
              f"({(with_sessions - idle) * 1024 / n:.1f} KB each), after they closed {after:.1f} MB")
    finally:
        proc.terminate(); proc.wait(timeout=10)

main()
