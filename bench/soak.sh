#!/usr/bin/env bash
# Soak benchmark (not a test): 2,000 join/leave cycles against the real server, WHEP with
# and without DELETE, WCS WebSocket with and without stopStream; the server's RSS, open
# fds and threads after a warm-up and after every quarter, each read once
# /rest-api/stream/find_all lists nothing again (abandoned viewers end at the 15 s
# consent time-out). Loopback only; bounded (each cycle 10 s at most, each wait for the
# server to empty 25 s at most); ~5-10 min on a loaded 2-core machine.
#
#   bench/soak.sh                          # 2,000 cycles, 6 at a time
#   bench/soak.sh --cycles 400 --parallel 4
#
# Arguments go to the soak program (crates/reelcast/examples/soak.rs). Results:
# docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p reelcast --bin reelcast --example soak
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/release/examples/soak" --server "$target/release/reelcast" "$@"
