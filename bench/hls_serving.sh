#!/usr/bin/env bash
# Benchmark (not a test): HLS segment and part serving, reelcast vs nginx, per core.
#
#   bench/hls_serving.sh        # after: cargo build --release -p reelcast
#   DURATION=10 CONNS=16 ROUNDS=2 WHAT="segment part" bench/hls_serving.sh
#   BASELINE=/path/to/other/reelcast bench/hls_serving.sh   # A/B: a second build in turn
#
# Needs Debian's `nginx-light` and `wrk` (apt-get install nginx-light wrk). Everything is
# on loopback. reelcast runs a looped translation of media/sample.mp4 (640x360 H.264 +
# AAC, ~800 kbit/s: ~200 KB segments, ~50 KB parts) on core 0 (taskset). Before each pair
# of runs the newest complete segment of the live playlist and its second part (`.1`, in
# the middle of the segment; parts are numbered from 0) are copied to a tmpfs folder that
# nginx (one worker, also on core 0, access log off, sendfile on) serves under the same
# paths; wrk (on core 1, keep-alive, CONNS connections, one thread) asks each server for
# that URL for DURATION seconds, the two servers taking turns ROUNDS times. A figure per
# core is bytes (or requests) per CPU-second the server process used during the run (utime
# + stime of /proc/PID/stat), so a run where the server is not quite saturated, or shares
# core 0 with other programs, still compares fairly; requests/s as wrk saw them is given
# beside it. reelcast's process also runs the translation itself (pacing, AAC→Opus for
# WebRTC viewers): its CPU with no request for DURATION seconds is measured first and
# taken off each run's ("net" columns). With BASELINE set, a second reelcast (that binary,
# same settings, its own translation and its own newest segment, also on core 0) takes its
# turn after the two in every round, and the summary compares the two builds too. Bounded:
# about ROUNDS x 4 x DURATION seconds (x 6 with BASELINE); everything it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
server="${REELCAST_BIN:-$target/release/reelcast}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-16}"
ROUNDS="${ROUNDS:-2}"
BASELINE="${BASELINE:-}"
for tool in "$server" ${BASELINE:+"$BASELINE"} nginx wrk taskset curl python3; do
  command -v "$tool" >/dev/null || [[ -x "$tool" ]] || { echo "missing: $tool" >&2; exit 1; }
done

work="$(mktemp -d /dev/shm/reelcast-hls-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nginx_port=$(free_port)
mkdir -p "$work/media" "$work/www/bench"
cp media/sample.mp4 "$work/media/"

# Starts `$1` serving a looped translation "bench" with HLS; sets $started_pid and
# $started_base (the stream's HLS URL folder).
start_reelcast() {
  local bin=$1 http_port ws_port hls_port udp_port
  http_port=$(free_port); ws_port=$(free_port); hls_port=$(free_port); udp_port=$(free_port)
  # A window of 60 segments (2 min): the URLs under test stay served through the run.
  taskset -c 0 "$bin" serve --media-dir "$work/media" --http-port "$http_port" --ws-port "$ws_port" \
    --media-port "$udp_port" --set ip=127.0.0.1 --set ip_local=127.0.0.1 --set hls.port="$hls_port" \
    --set hls_list_size=60 >"$work/reelcast-$hls_port.log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/health" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST -H 'content-type: application/json' "http://127.0.0.1:$http_port/rest-api/vod/startup" \
    -d '{"uri":"vod-live://sample.mp4","localStreamName":"bench","loop":true}' >/dev/null
  started_base="http://127.0.0.1:$hls_port/bench"
  for _ in $(seq 40); do
    [[ $(curl -sf "$started_base/bench.m3u8" | grep -c '^[^#].*-[0-9]*\.m4s$' || true) -ge 3 ]] && break
    sleep 0.5
  done
}
start_reelcast "$server"; reelcast_pid=$started_pid; base=$started_base
if [[ -n $BASELINE ]]; then
  start_reelcast "$BASELINE"; baseline_pid=$started_pid; baseline_base=$started_base
  # A stream nobody reads ends: the baseline's is read only every third run, so a
  # playlist request every 2 s keeps it (and this build's, alike) going.
  while sleep 2; do curl -sf "$base/bench.m3u8" "$baseline_base/bench.m3u8" -o /dev/null -o /dev/null || true; done &
  pids+=("$!")
fi

# The newest complete segment of the playlist at `$1`: sets $segment and $part (its
# second part, in the middle of the segment as most parts are).
newest() {
  local playlist
  playlist=$(curl -sf "$1/bench.m3u8" || true)
  segment=$(grep '^[^#].*-[0-9]*\.m4s$' <<<"$playlist" | tail -1)
  [[ -n "$segment" ]] || { echo "no segments in the playlist:"; echo "$playlist"; exit 1; } >&2
  part="${segment%.m4s}.1.m4s"
}
# The URLs under test are picked fresh before each measurement and copied to nginx's
# folder, so both servers serve the same bytes and the window never loses them mid-run.
pick() {
  local f
  newest "$base"
  rm -f "$work/www/bench/"*
  for f in "$segment" "$part"; do
    curl -sf "$base/$f" -o "$work/www/bench/$f" || { echo "cannot fetch $f" >&2; exit 1; }
  done
}
pick

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  types { video/mp4 m4s mp4; }
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    location / { add_header Cache-Control "max-age=31536000, immutable"; add_header Access-Control-Allow-Origin "*"; }
  }
}
EOF
taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
pids+=("$nginx_pid")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nginx_port/bench/$part" -o /dev/null && break; sleep 0.1; done
# The worker is nginx's child: its CPU is what serves.
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run: prints "requests/s bytes/s cpu_seconds bytes_total requests_total".
measure() {
  local pid=$1 url=$2 before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url")
  after=$(cpu_ticks "$pid")
  python3 - "$before" "$after" "$hz" "$DURATION" <<PY "$out"
import re, sys
before, after, hz, dur = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = sys.argv[5]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
m = re.search(r"requests in [\d.]+\w+, ([\d.]+)(\w+) read", out)
unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)]
total = float(m.group(1)) * unit
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"{errors.group(1)} answers were not 200: {out}")
cpu = (after - before) / hz
print(f"{reqs / dur:.0f} {total / dur:.0f} {cpu:.2f} {total:.0f} {reqs}")
PY
}

idle_before=$(cpu_ticks "$reelcast_pid"); sleep "$DURATION"; idle_after=$(cpu_ticks "$reelcast_pid")
idle_cpu=$(python3 -c "print(($idle_after - $idle_before) / $hz)")
echo "reelcast with no requests: $idle_cpu CPU-s in ${DURATION} s (the translation itself)"
servers="reelcast nginx"
if [[ -n $BASELINE ]]; then
  servers="reelcast nginx baseline"
  idle_before=$(cpu_ticks "$baseline_pid"); sleep "$DURATION"; idle_after=$(cpu_ticks "$baseline_pid")
  baseline_idle=$(python3 -c "print(($idle_after - $idle_before) / $hz)")
  echo "baseline ($BASELINE) with no requests: $baseline_idle CPU-s in ${DURATION} s"
fi
echo "wrk -t1 -c$CONNS -d${DURATION}s, keep-alive; each row's URL is picked fresh (its size beside it)"
echo "| what | bytes | server | round | requests/s | MB/s | server CPU s | MB per CPU-second | requests per CPU-second |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A sum_bytes sum_cpu sum_reqs
for round in $(seq "$ROUNDS"); do
  for what in ${WHAT:-segment part}; do
    pick
    file=$segment; [[ $what == part ]] && file=$part
    size=$(stat -c %s "$work/www/bench/$file")
    for srv in $servers; do
      case $srv in
        reelcast) pid=$reelcast_pid; url="$base/$file" ;;
        nginx) pid=$nginx_worker; url="http://127.0.0.1:$nginx_port/bench/$file" ;;
        # Its own newest segment (another run of the stream: other names, like sizes).
        baseline) pid=$baseline_pid; newest "$baseline_base"
          url="$baseline_base/$segment"; [[ $what == part ]] && url="$baseline_base/$part" ;;
      esac
      read -r rps bps cpu total reqs < <(measure "$pid" "$url")
      key="$what/$srv"
      sum_bytes[$key]=$(( ${sum_bytes[$key]:-0} + total ))
      sum_reqs[$key]=$(( ${sum_reqs[$key]:-0} + reqs ))
      sum_cpu[$key]=$(python3 -c "print(${sum_cpu[$key]:-0} + $cpu)")
      python3 -c "print(f'| $what | $size | $srv | $round | $rps | {$bps/1e6:.1f} | $cpu | {$total/1e6/max($cpu,0.01):.0f} | {$reqs/max($cpu,0.01):.0f} |')"
    done
  done
done
echo
echo "| what | reelcast MB per CPU-s | reelcast net of idle | nginx MB per CPU-s | reelcast / nginx | net / nginx | reelcast req per CPU-s (net) | nginx req per CPU-s |"
echo "|---|---|---|---|---|---|---|---|"
for what in ${WHAT:-segment part}; do
  python3 -c "
cpu = max(${sum_cpu[$what/reelcast]}, 0.01)
net = max(cpu - $ROUNDS * $idle_cpu, 0.01)
r = ${sum_bytes[$what/reelcast]} / cpu
rn = ${sum_bytes[$what/reelcast]} / net
n = ${sum_bytes[$what/nginx]} / max(${sum_cpu[$what/nginx]}, 0.01)
q = ${sum_reqs[$what/reelcast]} / net
qn = ${sum_reqs[$what/nginx]} / max(${sum_cpu[$what/nginx]}, 0.01)
print(f'| $what | {r/1e6:.0f} | {rn/1e6:.0f} | {n/1e6:.0f} | {100*r/n:.0f} % | {100*rn/n:.0f} % | {q:.0f} | {qn:.0f} |')"
done
if [[ -n $BASELINE ]]; then
  echo
  echo "| what | reelcast MB per CPU-s | baseline MB per CPU-s | reelcast / baseline | reelcast net / baseline net |"
  echo "|---|---|---|---|---|"
  for what in ${WHAT:-segment part}; do
    python3 -c "
r = ${sum_bytes[$what/reelcast]} / max(${sum_cpu[$what/reelcast]}, 0.01)
b = ${sum_bytes[$what/baseline]} / max(${sum_cpu[$what/baseline]}, 0.01)
rn = ${sum_bytes[$what/reelcast]} / max(${sum_cpu[$what/reelcast]} - $ROUNDS * $idle_cpu, 0.01)
bn = ${sum_bytes[$what/baseline]} / max(${sum_cpu[$what/baseline]} - $ROUNDS * $baseline_idle, 0.01)
print(f'| $what | {r/1e6:.0f} | {b/1e6:.0f} | {100*r/b:.0f} % | {100*rn/bn:.0f} % |')"
  done
fi
