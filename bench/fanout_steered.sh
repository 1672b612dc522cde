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
#
# Arguments go to the fan-out benchmark (crates/reelcast/examples/fanout.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

rps=/sys/class/net/lo/queues/rx-0/rps_cpus
[[ $(nproc) -ge 2 ]] || { echo "needs 2 cores" >&2; exit 1; }
[[ -w $rps ]] || { echo "cannot write $rps (run as root)" >&2; exit 1; }

cargo build --release --quiet -p reelcast --bin reelcast --example fanout
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

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

args=(--server "$(pinned "$target/release/reelcast" reelcast)")
[[ -n ${BASELINE:-} ]] && args+=(--baseline "$(pinned "$BASELINE" baseline)")
taskset -c 1 "$target/release/examples/fanout" "${args[@]}" "$@"
