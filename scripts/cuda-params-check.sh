#!/usr/bin/env bash
# Parameter files on a GPU host (issue 18's weights apart from code), from
# the repository root after scripts/cuda-prepare-params.sh filled .device/
# on the build machine with artifacts compiled from config.json files
# alone (--external-weights):
#   1. checkpoints made here by transformers (random weights, bf16
#      safetensors): stories15M's shape and the Llama-3.2-1B shape;
#   2. lathe-pack packs every artifact's parameter file from them, timed;
#   3. CudaBackendTest on the stories15M-shaped artifacts (GPU against the
#      CPU's reference kernels, both reading the packed file);
#   4. lathe-bench: the Llama-3.2-1B build with packed weights against the
#      speed model of the same build (synthetic weights), alternating.
# Exits 1 if a check fails.
set -uo pipefail
dir=${1:-.device}
export LD_LIBRARY_PATH=$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
p=$dir/params
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
status=0
step() { echo "== $*"; }
step "checkpoints by transformers"
/usr/bin/time -f "%e s" python3 scripts/make-random-hf.py "$p/stories15M.json" "$p/s15-hf" || status=1
/usr/bin/time -f "%e s" python3 scripts/make-random-hf.py scripts/speed-models/llama-3.2-1b.json \
  "$p/l1b-hf" || status=1
du -sh "$p/s15-hf" "$p/l1b-hf"
step "lathe-pack"
for a in "$p"/check/s15-*.lathe; do "$dir/bin/lathe-pack" "$a" "$p/s15-hf" || status=1; done
for a in "$p"/l1b-*-packed.lathe; do "$dir/bin/lathe-pack" "$a" "$p/l1b-hf" || status=1; done
step "CudaBackendTest on the packed stories15M-shaped builds"
LATHE_CUDA_ARTIFACTS=$p/check "$dir/bin/CudaBackendTest" --gtest_brief=1 || status=1
step "greedy ids, GPU against the reference kernels (float activations only must agree)"
for a in "$p"/check/s15-*.lathe; do
  gpu=$("$dir/bin/lathe-run" "$a" --prompt-ids 1,9038,2501 -n 24 --print-ids 2>&1)
  ref=$("$dir/bin/lathe-run" "$a" --prompt-ids 1,9038,2501 -n 24 --print-ids --kernels=reference 2>&1)
  echo "$(basename "$a"): gpu $gpu"
  echo "$(basename "$a"): ref $ref"
done
step "lathe-bench, packed weights against synthetic ones"
for round in 1 2; do
  for a in "$p"/l1b-*.lathe; do
    "$dir/bin/lathe-bench" "$a" --repeat 5 || status=1
  done
done
exit $status
