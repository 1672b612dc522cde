#!/usr/bin/env bash
# Benchmark (not a test): the server's CPU for an HLS-only translation of a 720p30
# H.264 file with B-frames, for two builds side by side in one run.
#
#   BASELINE=/work/bin/reelcast-d6f21a5 bench/hls_bframes_cpu.sh
#   BASELINE=... NEW=/path/to/reelcast SECONDS_OF_MEDIA=20 WINDOW=20 bench/hls_bframes_cpu.sh
#
# Makes the file with ffmpeg (testsrc2 1280x720 at 30 fps, x264 `medium`, 3 B-frames,
# CRF 20, a keyframe every 2 s; AAC), then for each build: starts the server with
# `hls.port` (the file looping), reads its HLS as a player does (the playlist every
# second, each new segment once: curl, no browser), and after WARMUP seconds counts the
# server's CPU time (utime + stime from /proc/PID/stat) over WINDOW seconds. A build that
# re-encodes B-frame video for every sink (before issue 14) spends a core's share on its
# transcoder; one that hands HLS the file's own pictures spends what muxing costs. Also
# prints reelcast_video_transcoders_busy from each server's /metrics.
#
# NEW defaults to the worktree's release build ($CARGO_TARGET_DIR or target).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASELINE:?set BASELINE to the older build}"
new=${NEW:-${CARGO_TARGET_DIR:-target}/release/reelcast}
dur=${SECONDS_OF_MEDIA:-20}
warmup=${WARMUP:-6}
window=${WINDOW:-20}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

mkdir -p "$work/media"
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=f=440:sample_rate=48000" -t "$dur" \
  -pix_fmt yuv420p -c:v libx264 -preset medium -crf 20 -bf 3 -g 60 -c:a aac -b:a 128k \
  "$work/media/bf720.mp4"
echo "source: $(ffprobe -v error -select_streams v -show_entries stream=profile,has_b_frames,width,height -of csv=p=0 "$work/media/bf720.mp4")"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
name=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("vod-live://bf720.mp4", safe=""))')

measure() { # label, binary
  local label=$1 bin=$2 http hls ws media
  http=$(free_port); hls=$(free_port); ws=$(free_port); media=$(free_port)
  "$bin" serve --media-dir "$work/media" --http-port "$http" --ws-port "$ws" --media-port "$media" \
    --set ip=127.0.0.1 --set "record_dir=$work/records" --set "hls.port=$hls" --set vod_live_loop=true \
    > "$work/$label.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$http/api/files" > /dev/null && break; sleep 0.2; done
  local url="http://127.0.0.1:$hls/$name/$name.m3u8" base="http://127.0.0.1:$hls/$name"
  # The reader: the playlist every second, each segment (and the init) once.
  (
    declare -A seen=()
    while true; do
      curl -sf "$url" -o "$work/$label.m3u8" || true
      while read -r uri; do
        [[ -n ${seen[$uri]:-} ]] && continue
        seen[$uri]=1
        curl -sf "$base/$uri" -o /dev/null || true
      done < <(grep -o -E '^[^#].*|^#EXT-X-MAP:URI="[^"]*"' "$work/$label.m3u8" 2>/dev/null | sed -E 's/^#EXT-X-MAP:URI="(.*)"$/\1/' || true)
      sleep 1
    done
  ) &
  local reader=$!
  pids+=("$reader")
  sleep "$warmup"
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(ticks "$pid")
  sleep "$window"
  t1=$(date +%s.%N); c1=$(ticks "$pid")
  local busy
  busy=$(curl -sf "http://127.0.0.1:$http/metrics" | awk '/^reelcast_video_transcoders_busy /{print $2}')
  local profile
  profile=$(ffprobe -v error -select_streams v -show_entries stream=profile,has_b_frames -of csv=p=0 "$url" 2>/dev/null | head -1 || true)
  kill "$reader" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 -c "import sys; c=($c1-$c0)/$hz; w=$t1-$t0; print(f'{sys.argv[1]:>9}: {100*c/w:5.1f} % of a core over {w:.0f} s (CPU {c:.2f} s); video transcoders busy: {sys.argv[2]}; HLS video: {sys.argv[3]}')" \
    "$label" "${busy:-?}" "${profile:-?}"
}

echo "HLS-only translation of a 720p30 B-frame file, one reader; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
measure baseline "$BASELINE"
measure new "$new"
