#!/bin/sh
# run-fuzzer.sh FUZZER SEEDS CORPUS CRASHES [libFuzzer flags...]
#
# Fuzzes for FUZZ_SECONDS (default 5) in one process, starting from the
# inputs in CORPUS (kept between runs, so a long run's findings are replayed
# by every later short one) and SEEDS. New inputs go to CORPUS; an input that
# crashes, leaks or times out is written as CRASHES-<kind>-<hash>, and the run
# fails. The last lines of the log carry the figures docs/reliability.md
# records (runs, time, corpus size).
set -eu
fuzzer=$1 seeds=$2 corpus=$3 crashes=$4
shift 4
mkdir -p "$seeds" "$corpus" "$(dirname "$crashes")"
exec "$fuzzer" -max_total_time="${FUZZ_SECONDS:-5}" -timeout=30 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$crashes-" "$@" "$corpus" "$seeds"
