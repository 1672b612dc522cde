#!/usr/bin/env bash
# Benchmark (not a test): the CPU of one rendition (transcoding on play): a 1080p30 H.264
# translation that browsers take as it is, re-encoded at 640x360 for the viewers who
# asked for it (`constraints: {video: {height: 360}}`).
#
#   bench/rendition.sh                     # 1080p30 → 640x360, default bit rate, 10 s
#   SIZE=320x180 KBPS=300 bench/rendition.sh
#   SECONDS_OF_MEDIA=20 bench/rendition.sh
#   CODEC=vp8 bench/rendition.sh           # VP8 (libvpx, realtime): a viewer without H.264
#
# For each picture (`plain`: ffmpeg's testsrc2; `detail`: the same with a zooming
# mandelbrot over it, as bench/transcode.sh makes) it makes a 1080p30 H.264 source
# without B-frames (x264 `veryfast`, a keyframe every second: a file a translation sends
# as it is), runs it through the server's transcoder with the rendition's size and bit
# rate (crates/transcode/examples/reencode.rs: the `VideoTranscoder` a rendition's thread
# runs, decoder, scaler and encoder on one thread, as fast as it goes) and reports its
# CPU time against the media's duration: a share of one core in real time, what one
# rendition costs however many viewers share it.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${SECONDS_OF_MEDIA:-10}
size=${SIZE:-0x360}
kbps=${KBPS:-}
codec=${CODEC:-h264}
case $codec in h264) out=out.h264 ;; vp8) out=out.ivf ;; *) echo "CODEC is h264 or vp8" >&2; exit 2 ;; esac
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p reelcast-transcode --example reencode
bin="$target/release/examples/reencode"

for picture in plain detail; do
  src="$work/src_$picture.mp4"
  if [[ $picture == plain ]]; then
    ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" -t "$dur" \
      -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 0 -g 30 "$src"
  else
    ffmpeg -hide_banner -loglevel error -nostdin -y \
      -f lavfi -i "mandelbrot=size=480x270:rate=30:end_scale=0.001:outer=normalized_iteration_count" \
      -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
      -filter_complex "[0]scale=1920x1080:flags=bicubic[m];[1][m]blend=all_mode=overlay:all_opacity=0.5,format=yuv420p" -t "$dur" \
      -c:v libx264 -preset veryfast -bf 0 -g 30 "$src"
  fi
  echo "1080p30 $picture ($(( $(stat -c %s "$src") * 8 / dur / 1000 )) kbit/s source) → $codec $size${kbps:+ at $kbps kbit/s}:"
  # shellcheck disable=SC2086 # KBPS is one word or none
  "$bin" "$src" "$work/$out" "$size" $kbps
  ffprobe -v error -select_streams v -show_entries stream=width,height -of csv=p=0 "$work/$out" \
    | sed 's/^/  encoded size: /; s/,/x/'
done
