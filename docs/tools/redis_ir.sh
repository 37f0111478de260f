#!/bin/bash
# What a create and an unlink cost the Redis server in executed instructions (Ir), counted by
# valgrind's callgrind: the same number on every run of the same code, where the server's
# CPU time on this VM moves by +-20 % between runs (docs/benchmarks.md). For comparing two
# versions of the Lua library, or the engine's checks on and off, to within a percent.
#
# Each configuration runs `examples/server_cost.rs` against a fresh `redis-server` started
# under callgrind (a throw-away process on a loopback port, stopped at the end), TASKS tasks in
# TASKS directories, `max_inflight=1` so that every call carries TASKS ops whatever the timing
# (under callgrind the server is ~50x slower, and the batch shape would otherwise follow it):
# once with no file (the setup alone), once up to the creates, once up to the renames, once
# up to the unlinks. create = (creates run - setup) / FILES, unlink = (unlinks run - renames
# run) / FILES.
#
#   CONFIGS (default "off on"): off = permissions, statistics and quotas off; on = all three
#     (one quota on the run's directory; the ops run as uid 1000); perm, stats, statsq =
#     permission checks only, statistics only, statistics and the quota.
#   REDIS_BIN (default redis-server): a build with symbols gives callgrind_annotate a
#     per-function profile of the kept outputs (KEEP=dir).
#   TASKS (default 16): tasks, each in its own directory; with `max_inflight=1` every call
#     carries TASKS ops (`meta bench` at 16 tasks averages about 4 ops per call on loopback).
#   COST_BIN (default ${CARGO_TARGET_DIR:-target}/release/examples/server_cost).
#
# Usage: [CONFIGS=...] redis_ir.sh [FILES]     (FILES: default 4000, ~15 s per run)
# Needs valgrind (apt) and `cargo build --release -p meta-redis --example server_cost`.
set -euo pipefail
FILES=${1:-4000}
TASKS=${TASKS:-16}
if ! [[ $TASKS =~ ^[1-9][0-9]*$ ]]; then
  echo "TASKS must be a positive whole number, not '$TASKS'" >&2
  exit 2
fi
FILES=$((FILES / TASKS * TASKS)) # (server_cost runs FILES / tasks per task)
CONFIGS=${CONFIGS:-off on}
REDIS_BIN=${REDIS_BIN:-redis-server}
COST_BIN=${COST_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/server_cost}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt install valgrind)" >&2; exit 2; }
[ -x "$COST_BIN" ] || { echo "$COST_BIN is missing: cargo build --release -p meta-redis --example server_cost" >&2; exit 2; }
work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

# One server_cost run under a fresh callgrind'ed server, stopped on every path (this runs
# in a `$(...)` subshell, where the EXIT trap does not); prints the server's total Ir.
run() {
  local label=$1
  shift
  local port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$label" "$REDIS_BIN" --port "$port" \
    --save '' --appendonly no --dir "$work" >"$work/valgrind.$label.log" 2>&1 &
  local vpid=$!
  local up=
  for _ in $(seq 1 120); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then up=1; break; fi
    sleep 0.5
  done
  local failed=
  if [ -z "$up" ]; then
    failed="redis-server under callgrind did not start (see $work/valgrind.$label.log)"
  elif ! "$COST_BIN" --url "redis://127.0.0.1:$port/0" --tasks "$TASKS" --dirs "$TASKS" "$@" \
    >"$work/out.$label" 2>&1; then
    failed="server_cost failed: $(tail -n 3 "$work/out.$label")"
  fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$vpid" 2>/dev/null || true
  wait "$vpid" || true
  if [ -n "$failed" ]; then
    echo "$label: $failed" >&2
    exit 1
  fi
  callgrind_annotate "$work/cg.$label" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

echo "| configuration | Ir per create | Ir per unlink |"
echo "|---|---|---|"
for c in $CONFIGS; do
  case $c in
    off) args=(--dir-stats false --opts 'permissions=0&max_inflight=1') ;;
    on) args=(--quota true --opts 'max_inflight=1') ;;
    perm) args=(--dir-stats false --opts 'max_inflight=1') ;;
    stats) args=(--opts 'permissions=0&max_inflight=1') ;;
    statsq) args=(--quota true --opts 'permissions=0&max_inflight=1') ;;
    *) echo "CONFIGS: unknown configuration '$c' (off, on, perm, stats, statsq)" >&2; exit 2 ;;
  esac
  setup=$(run "$c.setup" --files 0 --until create "${args[@]}")
  create=$(run "$c.create" --files "$FILES" --until create "${args[@]}")
  rename=$(run "$c.rename" --files "$FILES" --until rename "${args[@]}")
  unlink=$(run "$c.unlink" --files "$FILES" --until unlink "${args[@]}")
  echo "| $c | $(((create - setup) / FILES)) | $(((unlink - rename) / FILES)) |"
done
