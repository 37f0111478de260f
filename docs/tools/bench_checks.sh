#!/bin/bash
# The engine's checks on vs off, alternating on fresh volumes, one line per run: RocksDB (temp
# dir), Redis and PostgreSQL from `cargo xtask services up`.
#
#   CHECKS=perm (default): permission checks on vs off (URL option permissions=1/0);
#   CHECKS=all: permission checks and directory statistics on vs both off (the "off" volume
#               is formatted with `meta format --no-dir-stats`);
#   CHECKS=quota: as all, plus a directory quota on the run's directory on the "on" side
#               (`meta bench --quota`): #16's three checks vs none.
#
# Usage: [CHECKS=perm|all|quota] bench_checks.sh [FILES] [ROUNDS]
# Env: ENV_FILE (default /tmp/env.sh: the `env` lines of the services state file as exports),
#      META_BIN (default ${CARGO_TARGET_DIR:-target}/release/meta).
set -euo pipefail
FILES=${1:-20000}
ROUNDS=${2:-3}
CHECKS=${CHECKS:-perm}
case $CHECKS in
  perm | all | quota) ;;
  *) echo "CHECKS must be perm, all or quota, not '$CHECKS'" >&2; exit 2 ;;
esac
# shellcheck disable=SC1090
source "${ENV_FILE:-/tmp/env.sh}"
META_BIN=${META_BIN:-${CARGO_TARGET_DIR:-target}/release/meta}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fresh key / table prefix per invocation: PostgreSQL tables reused from an earlier run
# hold that run's dead rows, and creates into them were measured 4-5x slower.
run=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  for p in 1 0; do
    for b in rocks redis postgres; do
      case $b in
        rocks) url="rocksdb://$work/r$round$p?permissions=$p" ;;
        redis) url="${META_TEST_REDIS_URL}?prefix=pb$CHECKS$run$round$p&permissions=$p" ;;
        postgres) url="${META_TEST_POSTGRES_URL}?table_prefix=pb$CHECKS$run$round${p}_&permissions=$p" ;;
      esac
      stats=on
      quota=()
      if [ "$CHECKS" != perm ] && [ "$p" = 0 ]; then
        "$META_BIN" --url "$url" format --no-dir-stats >/dev/null
        stats=off
      fi
      if [ "$CHECKS" = quota ] && [ "$p" = 1 ]; then
        quota=(--quota)
      fi
      "$META_BIN" --url "$url" bench --files "$FILES" --dirs 16 --tasks 16 \
        --caller 1000:1000 --json "${quota[@]}" |
        python3 -c "
import json, sys
r = json.load(sys.stdin)
ph = {p['phase']: p['ops_per_sec'] for p in r['runs'][0]['phases']}
print('$b permissions=$p dir_stats=$stats quota=${#quota[@]} round=$round create=%.0f unlink=%.0f rename=%.0f'
      % (ph['create'], ph['unlink'], ph['rename']))
"
    done
  done
done
