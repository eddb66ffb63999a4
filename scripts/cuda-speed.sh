#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, from the repository root, after
# scripts/cuda-prepare.sh: decode and prefill speed of the speed models
# (random weights at real sizes, .device/speed/), then PyTorch on the same
# shapes in the same run (scripts/torch-decode-peer.py).
set -uo pipefail
dir=${1:-.device}
export LD_LIBRARY_PATH=$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -f "$dir/speed.tar.xz" ] && [ ! -d "$dir/speed" ] && (cd "$dir" && tar xJf speed.tar.xz)
nvidia-smi --query-gpu=name,driver_version,clocks.max.memory --format=csv,noheader
for a in "$dir"/speed/*.lathe; do
  "$dir/bin/lathe-bench" "$a" --repeat 5
done
# Prompts of 512 and 2048 tokens as one step (the tensor-core products
# and attention), as llama.cpp's pp512 and pp2048.
for a in llama-3.2-1b-none llama-3.2-1b-none-float llama-3.2-1b-int4 llama-3.2-1b-fp6_4p2 \
         tinyllama-1.1b-none; do
  for p in 512 2048; do
    "$dir/bin/lathe-bench" "$dir/speed/$a.lathe" --repeat 3 --prompt-tokens "$p" --gen-tokens 0
  done
done
# Several sequences decoding together (the batch form): 4 take the row
# products, 16 and 32 the tensor-core tiles.
for n in 4 16 32; do
  "$dir/bin/lathe-bench" "$dir/speed/llama-3.2-1b-none.lathe" --repeat 3 --sequences "$n" --prompt-tokens 16
done
for q in none-float int8 int4 fp6_4p2; do
  "$dir/bin/lathe-bench" "$dir/speed/llama-3.2-1b-$q.lathe" --repeat 3 --sequences 16 --prompt-tokens 16
done
# PEERS=0 leaves PyTorch out (several minutes a shape).
[ "${PEERS:-1}" = 0 ] && exit 0
for config in scripts/speed-models/*.json; do
  echo "== $(basename "$config")"
  timeout 400 python3 scripts/torch-decode-peer.py "$config" 2>&1 | grep -E "^torch|Error" | head -5
done
