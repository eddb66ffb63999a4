#!/usr/bin/env bash
# Issue 20's weight bar in one command: do 4-bit builds survive outlier
# channels? Writes outlier variants of stories15M (lathe-outlier-variant:
# RMSNorm gains of a few channels divided by 2^e, the weight columns reading
# them multiplied by 2^e, so FP32 output stays bit-identical), compiles every
# default 4-bit build of the clean model and of each variant, with default
# options (per-channel equalization on) and with :no-equalize, scores them
# all with lathe-eval against the clean FP32 build on text that build
# sampled (scripts/sample-text.sh, seed 1: 64 sequences, ~15k tokens), and
# prints a Markdown table of KL(P_fp32 || P_build) per token, mean, with the
# worst variant-to-clean ratio of each build; then whether every default
# build stays within 1.5x of its clean KL. Each build runs as it does by
# default (int8 activations, 8-bit classifier).
#
#   scripts/outlier-table.sh [--text SAMPLED.txt] [--work DIR] [MODEL_DIR] [BUILD_DIR]
#
# --text: score on this text instead of sampling it (it should come from
# sample-text.sh on the FP32 build of MODEL_DIR). --work: work in DIR
# instead of a temporary folder, and leave the FP32 build, the sampled text
# and the variants there (each model's builds are removed once scored).
# MODEL_DIR defaults to ~/.cache/lathe/models/stories15M, BUILD_DIR to the
# repository's build/. LATHE_COMPILE, LATHE_EVAL, LATHE_RUN and
# LATHE_OUTLIER_VARIANT override the tools in BUILD_DIR/bin.
set -euo pipefail

# Every 4-bit --quant with its default options. Plain bfp4 and mxfp4_e2m1
# are bfp4:block=32 and mxfp4 under other names; plain int4 is group 128.
quants=(
  int4:group=32
  int4
  bfp4:block=32
  bfp4:block=16
  mxfp4
  mixed:bits=4.5
)

# Outlier variants, "SEED CHANNELS EXPONENTS" (lathe-outlier-variant's
# --seed, --channels, --exponents): issue 20's 4 channels at 2^5, larger
# scales on other channels, and gains scaled both ways (a negative e makes
# the gain, not the columns, the outlier). All are among the variants
# OutlierVariantsTest checks bit-identical in FP32.
variants=(
  "1 4 5"
  "2 4 8"
  "3 4 8"
  "4 4 5,-5,8,-8"
)

bound=1.5

script=outlier-table.sh
source "$(dirname "${BASH_SOURCE[0]}")/quality-table-setup.sh"

build() { # SOURCE QUANT OUT
  "$compile" "$1" --tokenizer "$tokenizer" --target=cpu --quant="$2" -q -o "$3" \
    2>"$work/compile.err" || die "lathe-compile $1 --quant=$2 failed: $(head -n 1 "$work/compile.err")"
}

start=$(date +%s)
build "$model" none "$work/fp32.lathe"
if [ -z "$text" ]; then
  text=$work/sampled.txt
  LATHE_RUN=$run "$root/scripts/sample-text.sh" "$work/fp32.lathe" "$text" 1
fi

# Models in column order: the clean checkpoint, then each variant.
sources=("$model")
labels=(clean)
legend=()
for i in "${!variants[@]}"; do
  read -r seed channels exponents <<<"${variants[$i]}"
  out=$work/variant$i.bin
  "$outlier" "$model" "$out" --seed "$seed" --channels "$channels" --exponents="$exponents" \
    >"$work/variant$i.log" 2>&1 \
    || die "lathe-outlier-variant --seed $seed --exponents=$exponents failed: $(head -n 1 "$work/variant$i.log")"
  sources+=("$out")
  labels+=("v$((i + 1))")
  legend+=("v$((i + 1)): --seed $seed --channels $channels --exponents=$exponents")
done

# kl[m,b]: mean KL of model m's build b; b indexes quants (default options)
# then the same quants with :no-equalize.
declare -A kl
builds=("${quants[@]}")
for q in "${quants[@]}"; do builds+=("$q:no-equalize"); done
for m in "${!sources[@]}"; do
  artifacts=()
  # A variant's FP32 build must score KL 0 against the clean one: the
  # rescaling is exact, or the table measures something else.
  if [ "$m" -gt 0 ]; then
    build "${sources[$m]}" none "$work/m$m-fp32.lathe"
    artifacts+=("$work/m$m-fp32.lathe")
  fi
  for b in "${!builds[@]}"; do
    log "${labels[$m]}: --quant=${builds[$b]} ($(( $(date +%s) - start )) s)"
    build "${sources[$m]}" "${builds[$b]}" "$work/m$m-b$b.lathe"
    artifacts+=("$work/m$m-b$b.lathe")
  done
  log "${labels[$m]}: scoring ${#artifacts[@]} builds ($(( $(date +%s) - start )) s)"
  # CSV rows in argument order after the reference's own row; kl_mean is
  # the sixth field (no build or format name here holds a comma).
  mapfile -t rows < <("$eval_tool" --reference "$work/fp32.lathe" --text "$text" --csv \
    "${artifacts[@]}" 2>"$work/eval.err" | tail -n +3 | cut -d, -f6)
  [ "${#rows[@]}" -eq "${#artifacts[@]}" ] \
    || die "lathe-eval on ${labels[$m]} failed: $(head -n 1 "$work/eval.err")"
  if [ "$m" -gt 0 ]; then
    [ "${rows[0]}" = 0 ] \
      || die "${labels[$m]}: its FP32 build has KL ${rows[0]} to the clean one, not 0"
    rows=("${rows[@]:1}")
  fi
  for b in "${!builds[@]}"; do kl[$m,$b]=${rows[$b]}; done
  [ "$m" -gt 0 ] || scored=$(grep -o '[0-9]* sequences, [0-9]* predicted tokens' "$work/eval.err")
  rm -f "$work"/m"$m"-*.lathe
done

nq=${#quants[@]}
nm=${#sources[@]}
# worst b: the largest variant/clean ratio of build b.
worst() {
  local b=$1 m w=0
  for ((m = 1; m < nm; m++)); do
    w=$(awk -v a="${kl[$m,$b]}" -v c="${kl[0,$b]}" -v w="$w" 'BEGIN { r = a / c; print (r > w ? r : w) }')
  done
  echo "$w"
}
cell() { awk -v x="$1" 'BEGIN { printf (x < 1 ? "%.4f" : "%.2f"), x }'; }
ratio() { awk -v x="$1" 'BEGIN { printf "%.2fx", x }'; }

echo "KL(P_fp32 || P_build) per token, mean, on $(basename "$text") ($scored); $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, $(( $(date +%s) - start )) s."
echo "Variants (lathe-outlier-variant): $(IFS=';'; echo "${legend[*]}" | sed 's/;/; /g'). Each one's FP32 build scores KL 0 against the clean FP32 build. off: built with :no-equalize."
echo
header="| build | clean"
rule="|---|--:"
for ((m = 1; m < nm; m++)); do header+=" | ${labels[$m]}"; rule+="|--:"; done
header+=" | worst / clean | clean, off"
rule+="|--:|--:"
for ((m = 1; m < nm; m++)); do header+=" | ${labels[$m]}, off"; rule+="|--:"; done
header+=" | worst / clean, off |"
rule+="|--:|"
echo "$header"
echo "$rule"
misses=()
for ((b = 0; b < nq; b++)); do
  line="| ${quants[$b]}"
  for ((m = 0; m < nm; m++)); do line+=" | $(cell "${kl[$m,$b]}")"; done
  w=$(worst "$b")
  line+=" | $(ratio "$w")"
  for ((m = 0; m < nm; m++)); do line+=" | $(cell "${kl[$m,$((b + nq))]}")"; done
  line+=" | $(ratio "$(worst $((b + nq)))") |"
  echo "$line"
  awk -v w="$w" -v k="$bound" 'BEGIN { exit !(w <= k) }' || misses+=("${quants[$b]} ($(ratio "$w"))")
done
echo
if [ "${#misses[@]}" -eq 0 ]; then
  echo "Bound: every default build's KL on every variant is within ${bound}x of the clean model's."
else
  echo "Bound: NOT met (variant KL above ${bound}x clean): ${misses[*]}."
fi
