#!/bin/bash
# Permission checks on vs off (URL option permissions=1/0), alternating on fresh volumes, one
# line per run: RocksDB (temp dir), Redis and PostgreSQL from `cargo xtask services up`.
#
# Usage: bench_permissions.sh [FILES] [ROUNDS]
# Env: ENV_FILE (default /tmp/env.sh: the `env` lines of the services state file as exports),
#      META_BIN (default ${CARGO_TARGET_DIR:-target}/release/meta).
set -euo pipefail
FILES=${1:-20000}
ROUNDS=${2:-3}
# shellcheck disable=SC1090
source "${ENV_FILE:-/tmp/env.sh}"
META_BIN=${META_BIN:-${CARGO_TARGET_DIR:-target}/release/meta}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for p in 1 0; do
    for b in rocks redis postgres; do
      case $b in
        rocks) url="rocksdb://$work/r$round$p?permissions=$p" ;;
        redis) url="${META_TEST_REDIS_URL}?prefix=pb$round$p&permissions=$p" ;;
        postgres) url="${META_TEST_POSTGRES_URL}?table_prefix=pb$round${p}_&permissions=$p" ;;
      esac
      "$META_BIN" --url "$url" bench --files "$FILES" --dirs 16 --tasks 16 \
        --caller 1000:1000 --json |
        python3 -c "
import json, sys
r = json.load(sys.stdin)
ph = {p['phase']: p['ops_per_sec'] for p in r['runs'][0]['phases']}
print('$b permissions=$p round=$round create=%.0f unlink=%.0f rename=%.0f'
      % (ph['create'], ph['unlink'], ph['rename']))
"
    done
  done
done
