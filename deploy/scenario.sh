#!/usr/bin/env bash
# Start a scenario's federation as background `liaison run` processes (one per
# node), set it up (cards, hub directories, agreements, records), and stop it.
#
#   deploy/scenario.sh start [SCENARIO] [DIR]   # default: commit-mekong ./liaison-scenario
#   deploy/scenario.sh status [DIR]
#   deploy/scenario.sh stop [DIR]
#
# Environment: LIAISON (the binary; default: liaison on PATH, else
# target/release/liaison, built if missing), BASE_PORT (default 7700; each
# node takes two ports: federation, then local API).
set -euo pipefail

cmd=${1:-}
here=$(cd "$(dirname "$0")/.." && pwd)

liaison_bin() {
  if [[ -n "${LIAISON:-}" ]]; then echo "$LIAISON"; return; fi
  if command -v liaison >/dev/null 2>&1; then command -v liaison; return; fi
  if [[ ! -x "$here/target/release/liaison" ]]; then
    (cd "$here" && cargo build --release --bin liaison >&2)
  fi
  echo "$here/target/release/liaison"
}

node_dirs() {
  local dir=$1
  for d in "$dir"/*/; do
    [[ -f "$d/node.toml" ]] && echo "${d%/}"
  done
  return 0
}

case "$cmd" in
  start)
    scenario=${2:-commit-mekong}
    dir=${3:-./liaison-scenario}
    bin=$(liaison_bin)
    "$bin" demo --scenario "$scenario" --root "$dir" --prepare --base-port "${BASE_PORT:-7700}" >/dev/null
    for d in $(node_dirs "$dir"); do
      nohup "$bin" --dir "$d" run >>"$d/node.log" 2>&1 &
      echo $! >"$d/node.pid"
    done
    # Cards, hub directories, agreements and records, through each node's API.
    "$bin" demo --scenario "$scenario" --root "$dir" --attach
    echo
    echo "Running. Logs: $dir/<node>/node.log. Stop with: $0 stop $dir"
    ;;
  status)
    dir=${2:-./liaison-scenario}
    bin=$(liaison_bin)
    for d in $(node_dirs "$dir"); do
      echo "== $(basename "$d")"
      "$bin" --dir "$d" status || true
    done
    ;;
  stop)
    dir=${2:-./liaison-scenario}
    for d in $(node_dirs "$dir"); do
      [[ -f "$d/node.pid" ]] || continue
      pid=$(cat "$d/node.pid")
      kill -TERM "$pid" 2>/dev/null || true
    done
    for d in $(node_dirs "$dir"); do
      [[ -f "$d/node.pid" ]] || continue
      pid=$(cat "$d/node.pid")
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        echo "$(basename "$d") (pid $pid) did not stop" >&2
        exit 1
      fi
      rm -f "$d/node.pid"
    done
    echo "stopped"
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
