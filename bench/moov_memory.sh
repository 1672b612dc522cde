#!/usr/bin/env bash
# Benchmark (not a test): server memory for 20 concurrent personal VODs of a file whose
# moov is 250 MB, against the same file with its plain moov.
#
#   bench/moov_memory.sh            # after: cargo build --release -p reelcast --example fanout
#
# The file: 60 s of 640x360 H.264 + AAC (ffmpeg, moov at the end), then its moov padded
# with a 250 MB `udta` child it does not need, written as a hole (a sparse file: it costs
# the disk nothing, as it costs an attacker nothing). It is a legitimate file: every play
# must play. Viewers are WHEP clients (str0m, crates/reelcast/examples/fanout.rs), which
# reports VmRSS of the idle server and with the 20 viewers connected and receiving.
# Bounded: ~1.5 min; the server and the clients stop by themselves. Files in $BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BENCH_DIR:-/tmp/reelcast-bench}"
target="${CARGO_TARGET_DIR:-target}"
fanout="$target/release/examples/fanout"
server="${REELCAST_BIN:-$target/release/reelcast}"
viewers="${VIEWERS:-20}"
pad_mb="${PAD_MB:-250}"
[[ -x "$fanout" && -x "$server" ]] || { echo "build first: cargo build --release -p reelcast --example fanout" >&2; exit 1; }
mkdir -p "$dir"
plain="$dir/moov_end_60s.mp4"
big="$dir/moov_${pad_mb}mb.mp4"
if [[ ! -e "$plain" ]]; then
  ffmpeg -v error -y -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 60 -c:v libx264 -b:v 550k -maxrate 600k -bufsize 600k -g 60 -bf 0 -pix_fmt yuv420p \
    -c:a aac -b:a 64k -f mp4 "$dir/.moov_end.tmp" && mv "$dir/.moov_end.tmp" "$plain"
fi
python3 - "$plain" "$big" "$pad_mb" <<'PY'
import os, struct, sys
src, dst, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
data = bytearray(open(src, 'rb').read())
pos = last = 0
while pos < len(data):                      # the last top-level box must be the moov
    size, kind = struct.unpack('>I4s', data[pos:pos + 8]); last = pos; pos += size
assert data[last + 4:last + 8] == b'moov', 'moov is not the last box'
size = struct.unpack('>I', data[last:last + 4])[0]
struct.pack_into('>I', data, last, size + 8 + pad)
with open(dst, 'wb') as f:
    f.write(data + struct.pack('>I4s', 8 + pad, b'udta'))
    f.truncate(len(data) + 8 + pad)         # the padding is a hole
st = os.stat(dst)
print(f'{dst}: {st.st_size / 2**20:.0f} MB, {st.st_blocks * 512 / 2**20:.1f} MB on disk, moov {(size + 8 + pad) / 2**20:.1f} MB')
PY
for file in "$big" "$plain"; do
  echo "== $viewers personal VODs of $(basename "$file")"
  "$fanout" --server "$server" --media "$file" --stream vod://file.mp4 \
    --viewers "0,$viewers" --batch "$viewers" --window 10 --settle 3 2>&1 | grep -E '^\| (0|[0-9]+) \||^\| viewers|^N='
done
