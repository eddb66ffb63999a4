#!/usr/bin/env bash
# Model-sampled text for quantization quality (KL divergence to FP32 needs
# >= 10k tokens; the 208-token reference corpus cannot separate 4-bit
# formats): the FP32 build continues 64 story openings at temperature 1 for
# 230 tokens each, all decoded together (lathe-run --prompts), one sequence
# per line: about 15k tokens, each line within the 256-token context.
#
#   scripts/sample-text.sh FP32.lathe OUT.txt [SEED]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/sample-text.sh FP32.lathe OUT.txt [SEED]" >&2; exit 1; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run=${LATHE_RUN:-$root/build/bin/lathe-run}
seed=${3:-1}
openers=("Once upon a time" "One day" "Yesterday" "In a small town" "Every morning"
         "Long ago" "On a sunny day" "After school")
subjects=("a little girl" "a big dog" "Tom" "a tiny bird" "Lily" "an old man" "a red ball"
          "two friends")
prompts=$(mktemp)
trap 'rm -f "$prompts"' EXIT
for o in "${openers[@]}"; do
  for s in "${subjects[@]}"; do
    echo "$o $s" >> "$prompts"
  done
done
# A newline inside a sequence comes out as \n: a space keeps it one line.
"$run" "$1" --prompts "$prompts" -n 230 --temperature 1 --seed "$seed" --ignore-eos \
  | sed 's/\\n/ /g' > "$2"
echo "$2: $(wc -l < "$2") lines, $(wc -w < "$2") words" >&2
