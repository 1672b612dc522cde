#!/usr/bin/env bash
# The fan-out benchmark with the load client's share of the kernel's work kept off the
# server's core (a benchmark, not a test; needs root and 2 or more cores).
#
# On loopback the kernel delivers each datagram to the receiving socket inside the
# sender's system call, so the plain benchmark charges the server for its viewers' receive
# path too (perf: ~25 % of the server's CPU). On a real network that work happens on the
# viewers' machines. Here the server runs on CPU 0, the load client on CPU 1, and
# loopback's receive processing is steered to CPU 1 (RPS), so the server's CPU is what
# the server itself does. The setting is put back on exit.
#
#   bench/fanout_steered.sh --viewers 0,250,500 --window 10 --settle 12
#   BASELINE=/path/to/older/reelcast bench/fanout_steered.sh --rounds 2 --viewers 0,250,500
#   bench/fanout_steered.sh --published --rounds 2 --viewers 0,500 --window 10 --settle 12
#
# Arguments go to the fan-out benchmark (crates/reelcast/examples/fanout.rs), except
# --published: then every round measures the usual source (one translation of the file)
# and then a published stream of the same content (one WHIP publisher, aiortc sending the
# file's H.264 as it is with its audio as Opus: bench/publish_cpu.py publish, on CPU 1,
# started beside the server by its wrapper, stopping with it), at the same viewer counts,
# and the two runs' tables are printed one after the other (--rounds N: N rounds, the
# kinds alternating). The published stream's intake is in its N = 0 point, so the
# per-viewer figures compare what the viewers cost.
#
# REELCAST_BIN and FANOUT_BIN (both set): use these builds of the server and of the
# example instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."

rps=/sys/class/net/lo/queues/rx-0/rps_cpus
[[ $(nproc) -ge 2 ]] || { echo "needs 2 cores" >&2; exit 1; }
[[ -w $rps ]] || { echo "cannot write $rps (run as root)" >&2; exit 1; }

published=0
rounds=1
pass=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --published) published=1; shift ;;
    --rounds) rounds=$2; pass+=("$1" "$2"); shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done

if [[ -n ${REELCAST_BIN:-} && -n ${FANOUT_BIN:-} ]]; then
  server_bin=$REELCAST_BIN
  fanout_bin=$FANOUT_BIN
else
  cargo build --release --quiet -p reelcast --bin reelcast --example fanout
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  server_bin=$target/release/reelcast
  fanout_bin=$target/release/examples/fanout
fi

work=$(mktemp -d)
old=$(cat "$rps")
trap 'echo "$old" > "$rps"; rm -rf "$work"' EXIT
echo 2 > "$rps" # CPU 1

# A server binary wrapped to run on CPU 0 (exec keeps the pid the benchmark measures).
pinned() {
  local wrapper="$work/$2"
  printf '#!/bin/sh\nexec taskset -c 0 %q "$@"\n' "$(realpath "$1")" > "$wrapper"
  chmod +x "$wrapper"
  echo "$wrapper"
}

if [[ $published == 0 ]]; then
  args=(--server "$(pinned "$server_bin" reelcast)")
  [[ -n ${BASELINE:-} ]] && args+=(--baseline "$(pinned "$BASELINE" baseline)")
  taskset -c 1 "$fanout_bin" "${args[@]}" "${pass[@]}"
  exit
fi

# --published: the wrapper starts the publisher (its parent is the wrapper's process,
# which exec turns into the server: the publisher stops when the server does).
[[ -z ${BASELINE:-} ]] || { echo "--published does not take BASELINE" >&2; exit 1; }
rest=()
skip=0
for a in "${pass[@]}"; do # the rounds are this script's: the kinds alternate
  if [[ $skip == 1 ]]; then skip=0; continue; fi
  if [[ $a == --rounds ]]; then skip=1; continue; fi
  rest+=("$a")
done
published_wrapper() {
  local wrapper="$work/published" ts=$1
  cat > "$wrapper" <<EOF
#!/bin/bash
port=
prev=
for a in "\$@"; do [[ \$prev == --http-port ]] && port=\$a; prev=\$a; done
nice -n -10 taskset -c 1 python3 $(realpath bench/publish_cpu.py) publish "http://127.0.0.1:\$port/whip/fanout" \\
  --media $(printf %q "$ts") --seconds 3600 --wait 15 --while-parent > $(printf %q "$work")/publisher.log 2>&1 &
exec taskset -c 0 $(printf %q "$(realpath "$server_bin")") "\$@"
EOF
  chmod +x "$wrapper"
  echo "$wrapper"
}

for round in $(seq "$rounds"); do
  echo "== round $round/$rounds: translation (vod-live://file.mp4)"
  taskset -c 1 "$fanout_bin" --server "$(pinned "$server_bin" reelcast)" "${rest[@]}"
  # The same content as the translation's file, as a publisher sends it: H.264 as it is
  # (Annex B), the AAC re-encoded once to Opus.
  ts=/tmp/reelcast-bench/fanout_600k.ts
  if [[ ! -e $ts ]]; then
    ffmpeg -v error -y -i /tmp/reelcast-bench/fanout_600k.mp4 -c:v copy -bsf:v h264_mp4toannexb \
      -c:a libopus -b:a 64k -ar 48000 -f mpegts "$ts.tmp" && mv "$ts.tmp" "$ts"
  fi
  echo "== round $round/$rounds: published (one WHIP publisher of the same content)"
  taskset -c 1 "$fanout_bin" --server "$(published_wrapper "$ts")" --stream fanout "${rest[@]}"
  for _ in $(seq 50); do [[ -s $work/publisher.log ]] && break; sleep 0.1; done # it stops with the server
  echo "publisher: $(tail -1 "$work/publisher.log" 2>/dev/null)"
  rm -f "$work/publisher.log"
done
