#!/usr/bin/env bash
# CPU throughput of stories15M builds: prompt (128-token prefill) and
# generation (128 greedy tokens) tokens/s on 1 and 2 threads, median of
# --repeat runs, as a Markdown table. Peers (llama.cpp, llama2.c) are built
# outside this repository; give a script that benchmarks them in PEERS=... to
# run it in the same session, right after Lathe's rows.
#
#   scripts/bench-cpu.sh [MODEL_DIR] [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model_dir=${1:-$HOME/.cache/lathe/models/stories15M}
build=${2:-$root/build}
repeat=${REPEAT:-5}
# Default flags first (quantized builds: 8-bit classifier, int8
# activations); int4:classifier is the 4-bit-classifier variant.
quants=(
  none
  bfp8:block=32
  int8:group=32
  int4:group=32
  int4:group=32:classifier
  mxfp4
  bfp4:block=32
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| build | threads | prompt 128 tok/s | generation 128 tok/s |"
echo "|---|--:|--:|--:|"
for q in "${quants[@]}"; do
  out="$tmp/m.lathe"
  "$build/bin/lathe-compile" "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" \
    --target=cpu --quant="$q" -q -o "$out"
  modes=("")
  [ "$q" = none ] || modes+=("--float-activations")
  for mode in "${modes[@]}"; do
    for t in 1 2; do
      r=$("$build/bin/lathe-bench" "$out" --threads "$t" --repeat "$repeat" $mode)
      pp=$(echo "$r" | sed -n 's/^prompt .*median \([0-9.]*\).*/\1/p')
      tg=$(echo "$r" | sed -n 's/^generation .*median \([0-9.]*\).*/\1/p')
      echo "| lathe $q${mode:+ $mode} | $t | $pp | $tg |"
    done
  done
done
if [ -n "${PEERS:-}" ]; then
  echo
  echo "Peers ($PEERS), same session:"
  bash "$PEERS"
fi
