#!/bin/bash
# `meta du` (Meta::summary: directory statistics) vs `meta du --walk` (every entry's
# attributes) on one tree of FILES empty-to-small files in DIRS directories (2 levels), imported
# into RocksDB (temp dir), Redis and PostgreSQL from `cargo xtask services up`. Prints one line
# per run with the wall time; on Redis also the commands the run sent (INFO commandstats).
#
# Usage: bench_summary.sh [FILES] [DIRS] [ROUNDS]
# Env: ENV_FILE (default /tmp/env.sh: the `env` lines of the services state file as exports),
#      META_BIN (default ${CARGO_TARGET_DIR:-target}/release/meta).
set -euo pipefail
FILES=${1:-100000}
DIRS=${2:-1000}
ROUNDS=${3:-3}
# shellcheck disable=SC1090
source "${ENV_FILE:-/tmp/env.sh}"
META_BIN=${META_BIN:-${CARGO_TARGET_DIR:-target}/release/meta}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/tree" "$FILES" "$DIRS" <<'PY'
import os, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
top = max(1, int(dirs ** 0.5))
for d in range(dirs):
    p = os.path.join(root, f"t{d % top}", f"d{d}")
    os.makedirs(p, exist_ok=True)
    for f in range(files // dirs):
        with open(os.path.join(p, f"f{f}"), "wb") as fh:
            fh.write(b"x" * (f % 7))
PY
redis_calls() {
  redis-cli -u "${META_TEST_REDIS_URL%%\?*}" INFO commandstats |
    awk -F'[=,:]' '/^cmdstat_/ {n += $3} END {print n}'
}
for b in rocks redis postgres; do
  case $b in
    rocks) url="rocksdb://$work/rocks" ;;
    redis) url="${META_TEST_REDIS_URL}?prefix=bsum$$" ;;
    postgres) url="${META_TEST_POSTGRES_URL}?table_prefix=bsum$$_" ;;
  esac
  "$META_BIN" --url "$url" import "$work/tree" >/dev/null
  for round in $(seq 1 "$ROUNDS"); do
    for mode in summary walk; do
      args=(du --json /)
      [ "$mode" = walk ] && args=(du --walk --json /)
      before=0
      [ "$b" = redis ] && before=$(redis_calls)
      start=$(date +%s.%N)
      out=$("$META_BIN" --url "$url" "${args[@]}")
      end=$(date +%s.%N)
      calls=""
      if [ "$b" = redis ]; then
        # Minus the INFO call itself.
        calls=" redis_commands=$(($(redis_calls) - before - 1))"
      fi
      printf '%s %s round=%s seconds=%.3f%s %s\n' "$b" "$mode" "$round" \
        "$(python3 -c "print($end - $start)")" "$calls" "$out"
    done
  done
done
