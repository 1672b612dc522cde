#!/usr/bin/env bash
# Benchmark (not a test): the CPU of an HLS ABR ladder (`NAME-HLS-ABR-STREAM`) of a
# 1080p30 translation, per rung and in total.
#
#   bench/hls_abr.sh                        # default ladder, 20 s measured
#   LADDER=480:1200,240:400 bench/hls_abr.sh
#   MEASURE=30 bench/hls_abr.sh
#
# It makes a 1080p30 H.264 + AAC source without B-frames (ffmpeg's testsrc2, x264
# `veryfast`, a keyframe every 2 s: a file a translation sends as it is), then:
# - per rung: runs it through the server's transcoder at the rung's height and bit rate
#   (crates/transcode/examples/reencode.rs, the `VideoTranscoder` a rung's thread runs:
#   decode, scale, encode on one thread, as fast as it goes) and reports its CPU time
#   against the media's duration (a share of one core in real time);
# - in total: runs the server (release build in $CARGO_TARGET_DIR or target/) with
#   `hls.port`, has one reader fetch the plain HLS playlist every second and measures
#   the server's CPU (utime + stime from /proc) for MEASURE seconds; then the same with
#   one reader of the ABR form fetching the multivariant and every variant playlist each
#   second. The difference is what the ladder costs (its encoders and muxers).
set -euo pipefail
cd "$(dirname "$0")/.."
measure=${MEASURE:-20}
ladder=${LADDER:-720:2500,480:1200,360:800,240:400}
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p reelcast-transcode --example reencode
cargo build --release -q -p reelcast
reencode="$target/release/examples/reencode"
server="$target/release/reelcast"

mkdir -p "$work/media"
src="$work/media/abr1080.mp4"
ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 20 -pix_fmt yuv420p \
  -c:v libx264 -preset veryfast -bf 0 -g 60 -keyint_min 60 -sc_threshold 0 -b:v 6M \
  -c:a aac -b:a 128k -movflags +faststart "$src"
echo "source: 1080p30, $(( $(stat -c %s "$src") * 8 / 20 / 1000 )) kbit/s"

echo "per rung (one thread: decode 1080p, scale, x264 superfast):"
IFS=, read -ra rungs <<< "$ladder"
for rung in "${rungs[@]}"; do
  height=${rung%%:*}
  kbps=${rung##*:}
  echo "  ${height}p at ${kbps} kbit/s:"
  "$reencode" "$src" "$work/out.h264" "0x$height" "$kbps" | sed 's/^/    /'
done

# CPU seconds (user + system) of process $1 so far.
cpu() {
  awk '{ sub(/^.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$1/stat"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rest=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ws=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" serve --media-dir "$work/media" --http-port "$rest" --ws-port "$ws" \
  --set "hls.port=$port" --set vod_live_loop=true --set ip=127.0.0.1 \
  --set "hls_abr_ladder=$ladder" --set "record_dir=$work/records" > "$work/server.log" 2>&1 &
server_pid=$!
sleep 2

name=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("vod-live://abr1080.mp4", safe=""))')
plain="http://127.0.0.1:$port/$name/$name.m3u8"
abr="http://127.0.0.1:$port/$name-HLS-ABR-STREAM/$name-HLS-ABR-STREAM.m3u8"

# Reads `$1` (and, with `abr`, every variant it lists) every second for $2 seconds.
read_for() {
  local url=$1 seconds=$2 kind=${3:-plain}
  for _ in $(seq "$seconds"); do
    if [[ $kind == abr ]]; then
      for v in $(curl -fsS "$url" | grep -v '^#'); do curl -fsS -o /dev/null "${url%/*}/$v"; done
    else
      curl -fsS -o /dev/null "$url"
    fi
    sleep 1
  done
}

# The server's CPU share of one core while reading `$1` (kind `$2`), after a 5 s warm-up.
cpu_share() {
  local url=$1 kind=$2 before after
  read_for "$url" 5 "$kind"
  before=$(cpu "$server_pid")
  read_for "$url" "$measure" "$kind"
  after=$(cpu "$server_pid")
  awk -v a="$after" -v b="$before" -v s="$measure" 'BEGIN { printf "%.1f", (a - b) / s * 100 }'
}

read_for "$plain" 3
plain_cpu=$(cpu_share "$plain" plain)
echo "server, plain HLS reader only: ${plain_cpu} % of a core"
abr_cpu=$(cpu_share "$abr" abr)
variants=$(curl -fsS "$abr" | grep -c '^#EXT-X-STREAM-INF')
echo "server, ABR reader ($variants variants: the source and $((variants - 1)) rungs): ${abr_cpu} % of a core"
awk -v a="$abr_cpu" -v p="$plain_cpu" 'BEGIN { printf "the ladder: %.1f %% of a core\n", a - p }'
