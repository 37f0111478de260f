#!/bin/bash
# The engine's checks on vs off, alternating on fresh volumes (each round in the reverse
# order of the one before), one line per run: RocksDB (temp dir), Redis and PostgreSQL from
# `cargo xtask services up` (with psql installed, each PostgreSQL run's tables are dropped
# right after it); optionally an earlier build's "on" side in the same rounds (OLD_BIN).
#
#   CHECKS=perm (default): permission checks on vs off (URL option permissions=1/0);
#   CHECKS=all: permission checks and directory statistics on vs both off (the "off" volume
#               is formatted with `meta format --no-dir-stats`);
#   CHECKS=quota: as all, plus a directory quota on the run's directory on the "on" side
#               (`meta bench --quota`): #16's three checks vs none.
#
# Usage: [CHECKS=perm|all|quota] bench_checks.sh [FILES] [ROUNDS]
# Env: ENV_FILE (default /tmp/env.sh: the `env` lines of the services state file as exports;
#        read only when BACKENDS names a server),
#      META_BIN (default ${CARGO_TARGET_DIR:-target}/release/meta),
#      BACKENDS (default "rocks redis postgres"),
#      OLD_BIN (optional: an earlier build, run on the "on" side after META_BIN; its lines
#        say bin=old).
# RocksDB only, two builds: BACKENDS=rocks OLD_BIN=... CHECKS=quota bench_checks.sh 20000 10
set -euo pipefail
FILES=${1:-20000}
ROUNDS=${2:-3}
CHECKS=${CHECKS:-perm}
case $CHECKS in
  perm | all | quota) ;;
  *) echo "CHECKS must be perm, all or quota, not '$CHECKS'" >&2; exit 2 ;;
esac
BACKENDS=${BACKENDS:-rocks redis postgres}
if [ "$BACKENDS" != rocks ]; then
  # shellcheck disable=SC1090
  source "${ENV_FILE:-/tmp/env.sh}"
fi
META_BIN=${META_BIN:-${CARGO_TARGET_DIR:-target}/release/meta}
OLD_BIN=${OLD_BIN:-}
sides=(1)
[ -n "$OLD_BIN" ] && sides+=(old)
sides+=(0)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fresh key / table prefix per invocation: PostgreSQL tables reused from an earlier run
# hold that run's dead rows, and creates into them were measured 4-5x slower.
run=$(date +%s)
# Each round runs the sides in the order of the one before reversed (ABBA...): a run
# slows the one after it (PostgreSQL's autovacuum of the tables it leaves, the page cache),
# and a fixed order would charge that to whichever side always comes later.
order=("${sides[@]}")
for round in $(seq 1 "$ROUNDS"); do
  if [ "$round" -gt 1 ]; then
    rev=()
    for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done
    order=("${rev[@]}")
  fi
  for side in "${order[@]}"; do
    bin=$META_BIN
    name=new
    p=$side
    if [ "$side" = old ]; then
      bin=$OLD_BIN
      name=old
      p=1
    fi
    for b in $BACKENDS; do
      case $b in
        rocks) url="rocksdb://$work/r$round$side?permissions=$p" ;;
        redis) url="${META_TEST_REDIS_URL}?prefix=pb$CHECKS$run$round$side&permissions=$p" ;;
        postgres) url="${META_TEST_POSTGRES_URL}?table_prefix=pb$CHECKS$run$round${side}_&permissions=$p" ;;
        *) echo "BACKENDS: unknown backend '$b' (rocks, redis, postgres)" >&2; exit 2 ;;
      esac
      stats=on
      quota=()
      if [ "$CHECKS" != perm ] && [ "$p" = 0 ]; then
        "$bin" --url "$url" format --no-dir-stats >/dev/null
        stats=off
      fi
      if [ "$CHECKS" = quota ] && [ "$p" = 1 ]; then
        quota=(--quota)
      fi
      "$bin" --url "$url" bench --files "$FILES" --dirs 16 --tasks 16 \
        --caller 1000:1000 --json "${quota[@]}" |
        python3 -c "
import json, sys
r = json.load(sys.stdin)
ph = {p['phase']: p['ops_per_sec'] for p in r['runs'][0]['phases']}
print('$b permissions=$p dir_stats=$stats quota=${#quota[@]} round=$round bin=$name create=%.0f unlink=%.0f rename=%.0f'
      % (ph['create'], ph['unlink'], ph['rename']))
"
      if [ "$b" = postgres ] && command -v psql >/dev/null; then
        # The run's tables go at once, so that their autovacuum does not run during the next.
        echo "SELECT format('DROP TABLE %s', string_agg(tablename, ', ')) FROM pg_tables
          WHERE starts_with(tablename, 'pb$CHECKS$run$round${side}_') \\gexec" |
          psql -q "$META_TEST_POSTGRES_URL" >/dev/null
      fi
    done
  done
done
