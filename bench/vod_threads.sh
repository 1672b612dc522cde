#!/usr/bin/env bash
# Benchmark (not a test): server threads and memory for N concurrent personal VODs.
#
#   bench/vod_threads.sh            # after: cargo build --release -p reelcast --example fanout
#   COUNTS="100 500" bench/vod_threads.sh
#
# For each N, a fresh server and N WHEP viewers (str0m clients of
# crates/reelcast/examples/fanout.rs), each with its own `vod://file.mp4` of the 60 s
# 640x360 H.264 + AAC file fanout makes: N streams, each demuxing, transcoding AAC to
# Opus and pacing on its own. The table's `threads` column is `Threads:` of
# /proc/PID/status (= entries of /proc/PID/task) during a 10 s window with all N
# receiving; VmRSS is beside it. Bounded: ~1 min per N; everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
fanout="$target/release/examples/fanout"
server="${REELCAST_BIN:-$target/release/reelcast}"
[[ -x "$fanout" && -x "$server" ]] || { echo "build first: cargo build --release -p reelcast --example fanout" >&2; exit 1; }
for n in ${COUNTS:-100 500}; do
  echo "== $n personal VODs"
  "$fanout" --server "$server" --stream vod://file.mp4 --viewers "0,$n" --window 10 --settle 3 2>&1 \
    | grep -E '^\| (0|[0-9]+) \||^\| viewers|^N='
done
