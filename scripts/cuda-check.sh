#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, from the repository root, after
# scripts/cuda-prepare.sh filled .device/ on the build machine:
#   0. the compressed KV encoder against the CPU's codec, byte for byte
#      (kv-encode-check);
#   1. CudaBackendTest on every artifact (GPU against the CPU's reference
#      kernels; batched, tree and rollback steps);
#   2. greedy ids of every reference prompt, GPU against reference kernels,
#      for the stories15M artifacts (equal for float activations; int8 ones
#      are reported, as a near-tie may go either way: CudaBackendTest
#      checks them);
#   3. lathe-bench on the GPU (128-token prompt, 128 greedy tokens).
# Exits 1 if a check fails.
set -uo pipefail
dir=${1:-.device}
export LD_LIBRARY_PATH=$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for part in "$dir"/artifacts-*.tar.xz; do # the parts carried this call
  [ -f "$part" ] && (cd "$dir" && tar xJf "$(basename "$part")")
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
status=0
# The compressed KV encoder against the CPU's codec, byte for byte.
[ -x "$dir/bin/kv-encode-check" ] && { "$dir/bin/kv-encode-check" || status=1; }
LATHE_CUDA_ARTIFACTS=$dir/artifacts "$dir/bin/CudaBackendTest" --gtest_brief=1 || status=1
prompts=$(python3 -c "
import json
for p in json.load(open('$dir/stories15M_reference.json'))['prompts']:
    print(','.join(map(str, p['prompt_ids'])))")
for a in "$dir"/artifacts/stories15M-*.lathe; do
  same=0 total=0 int8=0
  # A cuda artifact refuses the other activation precision than its own.
  "$dir/bin/lathe-run" "$a" --prompt-ids 1 -n 1 --float-activations >/dev/null 2>&1 || int8=1
  for ids in $prompts; do
    gpu=$("$dir/bin/lathe-run" "$a" --prompt-ids "$ids" -n 48 --print-ids 2>/dev/null)
    ref=$("$dir/bin/lathe-run" "$a" --prompt-ids "$ids" -n 48 --print-ids --kernels=reference 2>/dev/null)
    total=$((total + 1))
    if [ -n "$gpu" ] && [ "$gpu" = "$ref" ]; then same=$((same + 1)); else
      echo "MISMATCH $(basename "$a") prompt $ids"; echo "  gpu: $gpu"; echo "  ref: $ref"
      [ "$int8" = 1 ] || status=1; fi
  done
  echo "$(basename "$a"): greedy ids equal to the reference kernels' on $same of $total prompts (48 tokens each)$([ "$int8" = 1 ] && echo ', int8 activations')"
done
for a in "$dir"/artifacts/stories15M-*.lathe; do
  "$dir/bin/lathe-bench" "$a" --repeat 10 || status=1
done
exit $status
