#!/usr/bin/env bash
# Benchmark (not a test): the video transcoder's CPU per stream and its picture quality.
#
#   bench/transcode.sh            # 720p30 and 1080p30 B-frame H.264, 10 s each
#   SECONDS_OF_MEDIA=20 bench/transcode.sh
#
# For each size: makes a B-frame H.264 source with ffmpeg (x264 `medium`, 3 B-frames,
# CRF 18: a good file as people have them), runs it through the server's transcoder
# (crates/transcode/examples/reencode.rs: the same decoder and encoder settings, one
# thread, as fast as it goes) and reports its CPU time against the media's duration
# (a share of one core in real time), then ffmpeg's ssim filter between the re-encode
# (at the default bit rate) and the source, frame by frame. Two pictures: `plain`,
# ffmpeg's `testsrc2` (sharp edges, flat areas, motion); `detail`, the same with a
# zooming `mandelbrot` blended over it (made small, scaled up: cheap to make), whose
# detail grows finer as the zoom goes on (past ~8 s it is close to noise: harder than
# camera pictures).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${SECONDS_OF_MEDIA:-10}
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p reelcast-transcode --example reencode
bin="$target/release/examples/reencode"

for size in 1280x720 1920x1080; do
  for picture in plain detail; do
    src="$work/src_${size}_$picture.mp4"
    if [[ $picture == plain ]]; then
      ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "testsrc2=size=$size:rate=30" -t "$dur" \
        -pix_fmt yuv420p -c:v libx264 -preset medium -crf 18 -bf 3 -g 60 "$src"
    else
      ffmpeg -hide_banner -loglevel error -nostdin -y \
        -f lavfi -i "mandelbrot=size=480x270:rate=30:end_scale=0.001:outer=normalized_iteration_count" \
        -f lavfi -i "testsrc2=size=$size:rate=30" \
        -filter_complex "[0]scale=$size:flags=bicubic[m];[1][m]blend=all_mode=overlay:all_opacity=0.5,format=yuv420p" -t "$dur" \
        -c:v libx264 -preset medium -crf 18 -bf 3 -g 60 "$src"
    fi
    out="$work/out.h264"
    echo "$size $picture ($(( $(stat -c %s "$src") * 8 / dur / 1000 )) kbit/s source):"
    "$bin" "$src" "$out"
    # Frame by frame: the raw .h264 has no times, so both are numbered from 0.
    ssim=$(ffmpeg -hide_banner -nostdin -framerate 30 -i "$out" -i "$src" \
      -lavfi "[0:v]setpts=N/30/TB[a];[1:v]setpts=N/30/TB[b];[a][b]ssim" -f null - 2>&1 \
      | grep -o 'All:[0-9.]*' | tail -1)
    echo "  SSIM of the re-encode against the source: ${ssim#All:}"
  done
done
