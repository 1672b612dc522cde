#!/usr/bin/env bash
# Media lost when the server is killed with SIGKILL while it records a published stream
# (a benchmark, not a test; issue 13's target: ≤ 1 s).
#
#   bench/record_kill.sh [--seconds 10,20] [--runs 3]
#   REELCAST_BIN=/path/to/reelcast bench/record_kill.sh --seconds 10,20 --runs 4
#
# Each run: a fresh record_dir; the server (record_streams=true, recordings named after
# the stream); one WHIP publisher (bench/publish_cpu.py publish: aiortc sending a 720p
# 2 Mbit/s H.264 + Opus file as it is, in real time) publishes `killed`; T + a random
# fraction of a second after the stream is PUBLISHING the server gets SIGKILL; the time
# published is from the publisher's first media packet to the kill. The server is started again
# on the same record_dir: it finalizes the unfinished recording before it opens its ports
# (see `reelcast recover`). Loss = the time published − the recovered file's duration (ffprobe: the
# container's, and the video track's). Prints one line per run and the max and median.
# Bounded: every process is stopped by the script; the publisher also stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10,20
runs=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds LIST] [--runs N]" >&2; exit 2 ;;
  esac
done
bin=${REELCAST_BIN:-target/release/reelcast}
[[ -x $bin ]] || { echo "$bin not found (build it, or set REELCAST_BIN)" >&2; exit 1; }
media=$(python3 bench/publish_cpu.py make-media)

work=$(mktemp -d /tmp/reelcast-recordkill-XXXXXX)
server_pid=
publisher_pid=
cleanup() {
  [[ -n $publisher_pid ]] && kill "$publisher_pid" 2>/dev/null || true
  [[ -n $server_pid ]] && kill -9 "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts the server on $dir and waits until it answers; sets server_pid and base.
start_server() {
  local dir=$1 http ws udp
  http=$(free_port); ws=$(free_port); udp=$(free_port)
  base=http://127.0.0.1:$http
  RUST_LOG=info "$bin" serve --media-dir "$dir/media" --http-port "$http" --ws-port "$ws" \
    --media-port "$udp" --ip 127.0.0.1 --set "record_dir=$dir/records" \
    --set record_streams=true --set stream_record_policy=streamName \
    >> "$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 150); do
    curl -sf -o /dev/null "$base/metrics" && return 0
    sleep 0.1
  done
  echo "the server did not start: $(tail -5 "$dir/server.log")" >&2
  exit 1
}

# The monotonic time of the publisher's first media packet, once it has one (it prints
# it at its end; while it runs, the server's REST status is the sign media flows).
publishing() {
  curl -sf -X POST "$base/rest-api/stream/find_all" -d '{}' 2>/dev/null |
    python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s.get("name")=="killed" and s.get("status")=="PUBLISHING"))' 2>/dev/null || echo 0
}

losses=()
printf '| T (s) | run | published (s) | recovered file (s) | video track (s) | loss (s) | recovery log |\n|---|---|---|---|---|---|---|\n'
for t in ${seconds//,/ }; do
  for run in $(seq "$runs"); do
    dir=$work/$t-$run
    mkdir -p "$dir/media" "$dir/records"
    start_server "$dir"
    python3 bench/publish_cpu.py publish "$base/whip/killed" --media "$media" \
      --seconds $((t + 60)) > "$dir/publisher.json" 2> "$dir/publisher.err" &
    publisher_pid=$!
    for _ in $(seq 200); do
      [[ $(publishing) == 1 ]] && break
      sleep 0.1
    done
    [[ $(publishing) == 1 ]] || { echo "not publishing: $(tail -3 "$dir/publisher.err")" >&2; exit 1; }
    # Kill T seconds and a random fraction of one after PUBLISHING (fragments are cut
    # every second: the fraction spreads the kills over a fragment's span). The time
    # published is the publisher's own: its first packet left at media_start
    # (CLOCK_MONOTONIC, printed at its end), the kill's time is taken right before it.
    sleep "$(printf '%d.%03d' "$t" $((RANDOM % 1000)))"
    killed_at=$(python3 -c 'import os,sys,time; t=time.monotonic(); os.kill(int(sys.argv[1]), 9); print(f"{t:.3f}")' "$server_pid")
    { wait "$server_pid"; } 2>/dev/null || true # (bash's "Killed" notice)
    server_pid=
    kill "$publisher_pid" 2>/dev/null || true
    wait "$publisher_pid" 2>/dev/null || true
    publisher_pid=
    media_start=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["media_start"])' "$dir/publisher.json")
    published=$(python3 -c "print(f'{$killed_at - $media_start:.3f}')")
    [[ -e $dir/records/.killed.mp4.recording ]] || echo "warning: no sidecar after the kill" >&2

    start_server "$dir" # recovers before it listens
    recovered=$(grep -o 'Recovered recording killed.mp4: [0-9]* ms kept[^"]*' "$dir/server.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' || true)
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    server_pid=
    [[ ! -e $dir/records/.killed.mp4.recording ]] || echo "warning: the sidecar is still there" >&2
    file=$dir/records/killed.mp4
    duration=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$file")
    vduration=$(ffprobe -v error -select_streams v:0 -show_entries stream=duration -of default=nw=1:nk=1 "$file")
    ffmpeg -v error -i "$file" -f null - 2> "$dir/decode.err" || true
    [[ ! -s $dir/decode.err ]] || echo "warning: decoding errors: $(head -3 "$dir/decode.err")" >&2
    loss=$(python3 -c "print(f'{$published - $duration:.3f}')")
    losses+=("$loss")
    printf '| %s | %s | %s | %.3f | %.3f | %s | %s |\n' "$t" "$run" "$published" "$duration" "$vduration" "$loss" "${recovered:-none}"
  done
done
python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"\nloss over {len(v)} runs: max {max(v):.3f} s, median {statistics.median(v):.3f} s (target: ≤ 1 s)")' "${losses[@]}"
