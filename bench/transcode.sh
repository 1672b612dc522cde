#!/usr/bin/env bash
# Benchmark (not a test): the video transcoder's CPU per stream and its picture quality.
#
#   bench/transcode.sh            # 720p30 and 1080p30 B-frame H.264, 20 s each
#   SECONDS_OF_MEDIA=10 bench/transcode.sh
#
# For each size: makes a B-frame H.264 source with ffmpeg (x264 `medium`, 3 B-frames,
# CRF 18: a good file as people have them), runs it through the server's transcoder
# (crates/transcode/examples/reencode.rs: the same decoder and encoder settings, one
# thread, as fast as it goes) and reports its CPU time against the media's duration
# (a share of one core in real time), then ffmpeg's ssim filter between the re-encode
# (at the default bit rate) and the source. The picture is ffmpeg's `testsrc2` with
# `mandelbrot` detail (made small, scaled up: cheap to make) under it, moving: neither flat nor noise.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${SECONDS_OF_MEDIA:-20}
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p reelcast-transcode --example reencode
bin="$target/release/examples/reencode"

for size in 1280x720 1920x1080; do
  src="$work/src_$size.mp4"
  ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "mandelbrot=size=480x270:rate=30:end_scale=0.001:outer=normalized_iteration_count" \
    -f lavfi -i "testsrc2=size=$size:rate=30" \
    -filter_complex "[0]scale=$size:flags=bicubic[m];[1][m]blend=all_mode=overlay:all_opacity=0.5,format=yuv420p" -t "$dur" \
    -c:v libx264 -preset medium -crf 18 -bf 3 -g 60 "$src"
  out="$work/out_$size.h264"
  "$bin" "$src" "$out"
  ssim=$(ffmpeg -hide_banner -nostdin -i "$out" -i "$src" -lavfi "[0:v][1:v]ssim" -f null - 2>&1 \
    | grep -o 'All:[0-9.]*' | tail -1)
  echo "  $size: SSIM of the re-encode against the source: ${ssim#All:}"
done
