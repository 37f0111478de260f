#!/bin/bash
# RocksDB only: all of #16's checks off vs permission checks, directory statistics and one
# directory quota on the path, with one or two builds side by side, alternating on fresh
# volumes in a temp dir; one line per run.
#
# Usage: bench_rocks_quota.sh [ROUNDS] [FILES]
# Env: NEW_BIN (default ${CARGO_TARGET_DIR:-target}/release/meta),
#      OLD_BIN (optional: an earlier build, run with the quota after NEW_BIN in each round).
set -euo pipefail
ROUNDS=${1:-10}
FILES=${2:-20000}
NEW_BIN=${NEW_BIN:-${CARGO_TARGET_DIR:-target}/release/meta}
OLD_BIN=${OLD_BIN:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
configs=(off new)
[ -n "$OLD_BIN" ] && configs+=(old)
for round in $(seq 1 "$ROUNDS"); do
  for cfg in "${configs[@]}"; do
    bin=$NEW_BIN
    perms=1
    quota=(--quota)
    url="rocksdb://$work/$cfg$round"
    case $cfg in
      off)
        perms=0
        quota=()
        "$bin" --url "$url?permissions=0" format --no-dir-stats >/dev/null
        ;;
      old) bin=$OLD_BIN ;;
    esac
    "$bin" --url "$url?permissions=$perms" bench --files "$FILES" --dirs 16 --tasks 16 \
      --caller 1000:1000 --json "${quota[@]}" |
      python3 -c "
import json, sys
r = json.load(sys.stdin)
ph = {p['phase']: p['ops_per_sec'] for p in r['runs'][0]['phases']}
print('$cfg round=$round create=%.0f unlink=%.0f rename=%.0f'
      % (ph['create'], ph['unlink'], ph['rename']))
"
  done
done
