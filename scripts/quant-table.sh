#!/usr/bin/env bash
# Compiles stories15M once per weight format and prints lathe-eval's table of
# bits per weight, size, perplexity and KL divergence from the FP32 build on
# test/data/corpus.txt. A format this lathe-compile does not know (it exits 1)
# gets a "not available" row instead of stopping the table.
#
#   scripts/quant-table.sh [MODEL_DIR] [BUILD_DIR]
#
# MODEL_DIR defaults to ~/.cache/lathe/models/stories15M, BUILD_DIR to the
# repository's build/.
# LATHE_COMPILE and LATHE_EVAL override BUILD_DIR/bin/lathe-compile and
# BUILD_DIR/bin/lathe-eval.
set -euo pipefail

# One --quant value per line, in table order. The first is the reference the
# others are measured against.
quants=(
  none
  int8:group=32
  fp6_4p2
  mxfp6_e3m2
  mxint8
  mxfp8_e4m3
  bfp8:block=32
  bfp4:block=32
  bfp4:block=32:reorder
  bfp4:block=16
  bfp4:block=16:reorder
  mxfp4
  mxfp4:reorder
  int4:group=32
  mixed:bits=4.5
  mixed:bits=4.5:reorder
  mixed:bits=5.0
)

die() { echo "quant-table.sh: $*" >&2; exit 1; }

[ $# -le 2 ] || die "usage: scripts/quant-table.sh [MODEL_DIR] [BUILD_DIR]"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model_dir=${1:-$HOME/.cache/lathe/models/stories15M}
build_dir=${2:-$root/build}
compile=${LATHE_COMPILE:-$build_dir/bin/lathe-compile}
eval_tool=${LATHE_EVAL:-$build_dir/bin/lathe-eval}
text=$root/test/data/corpus.txt

for f in "$model_dir/stories15M.bin" "$model_dir/tokenizer.bin" "$text"; do
  [ -f "$f" ] || die "$f: no such file"
done
for tool in "$compile" "$eval_tool"; do
  [ -x "$tool" ] || die "$tool: not an executable (build it, or set LATHE_COMPILE / LATHE_EVAL)"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The artifact's file stem becomes its row name in lathe-eval's table.
label() { if [ "$1" = none ]; then echo fp32; else echo "$1"; fi; }

built=()      # artifacts, in table order
available=()  # per quant: 1 if compiled
for q in "${quants[@]}"; do
  out=$work/$(label "$q").lathe
  rc=0
  "$compile" "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" \
    --target=cpu --quant="$q" -q -o "$out" 2>"$work/compile.err" || rc=$?
  if [ "$rc" -eq 0 ]; then
    built+=("$out")
    available+=(1)
  elif [ "$rc" -eq 1 ] && [ "${#built[@]}" -gt 0 ]; then
    echo "quant-table.sh: --quant=$q not available: $(head -n 1 "$work/compile.err")" >&2
    available+=(0)
  else
    die "lathe-compile --quant=$q failed (exit $rc): $(head -n 1 "$work/compile.err")"
  fi
done

# The reference is also the first build scored, so that lathe-eval's rows
# after its own reference row line up one to one with "built".
table=$("$eval_tool" --reference "${built[0]}" --text "$text" "${built[@]}")
mapfile -t lines <<<"$table"
printf '%s\n' "${lines[0]}" "${lines[1]}"
row=3
for i in "${!quants[@]}"; do
  if [ "${available[$i]}" -eq 1 ]; then
    printf '%s\n' "${lines[$row]}"
    row=$((row + 1))
  else
    printf '| %s | not available | | | | | |\n' "$(label "${quants[$i]}")"
  fi
done
