#!/usr/bin/env bash
# Prepares .device/ for scripts/cuda-check.sh on a machine with a GPU: the
# runtime tools and CudaBackendTest built here (with the shared libraries
# they need that a GPU machine may lack), and artifacts compiled with
# --target=cuda: the tiny test model (f32, f16/bf16 KV caches, asymmetric
# INT4), small grouped-query models (bf16, INT8, every BFP/MX/FP6 format, a
# wide feed-forward layer; int8 activations, and float for a few),
# stories15M (INT8 and INT4, group 32), compressed
# KV caches (int8, bfp8, bfp4), and speed
# models (Llama
# 3.2 1B in bf16, INT8, INT4 and FP6 4+2, TinyLlama 1.1B in bf16; random
# weights).
# About 60 MB packed in two parts; the speed models take a minute or two each to compile.
#
#   [SPEED_MODELS=0] [ARTIFACTS=0] scripts/cuda-prepare.sh [MODEL_DIR] [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model_dir=${1:-$HOME/.cache/lathe/models/stories15M}
build=${2:-$root/build}
out=$root/.device
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/artifacts"
cp "$build/bin/lathe-run" "$build/bin/lathe-bench" "$build/test/unit/CudaBackendTest" "$out/bin/"
for lib in libfmt.so.9 libhwy.so.1; do
  cp "$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')" "$out/lib/"
done
compile() { "$build/bin/lathe-compile" "$@" --target=cuda -q; }
# The GPU's compressed KV encoder against the CPU's codec, byte for byte.
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
"$nvcc" -std=c++20 -O2 -gencode arch=compute_90a,code=sm_90a -I "$root" \
  "$root/scripts/cuda-kv-encode-check.cu" "$root"/runtime/formats/{KvFormat,Bfp,IntGroup}.cpp \
  -o "$out/bin/kv-encode-check"
cp "$root/test/data/stories15M_reference.json" "$out/"
# ARTIFACTS=0 leaves the correctness artifacts out (a speed run only).
if [ "${ARTIFACTS:-1}" != 0 ]; then
tiny=$root/test/lit/tools/Inputs/tiny-llama.mlir
compile "$tiny" -o "$out/artifacts/tiny-f32.lathe"
compile "$tiny" --kv=bf16 -o "$out/artifacts/tiny-kvbf16.lathe"
compile "$tiny" --kv=f16 --quant=int4:group=32:asym -o "$out/artifacts/tiny-int4asym-kvf16.lathe"
# Grouped-query attention, head_dim 64, rotate-half RoPE, bf16, untied.
gqa=$root/test/data/gqa-test-config.json
compile "$gqa" --synthetic-weights -o "$out/artifacts/gqa-bf16.lathe"
# The same for sm_90 without its "a" features: an H100/H200 then runs the
# staged tiles in place of wgmma and TMA (lathe_cuda_wgmma_code 0).
"$build/bin/lathe-compile" "$gqa" --synthetic-weights --kv=bf16 --target=cuda:sm_90 -q \
  -o "$out/artifacts/gqa-kvbf16-sm90.lathe"
compile "$gqa" --synthetic-weights --quant=int8:group=32 --kv=bf16 -o "$out/artifacts/gqa-int8-kvbf16.lathe"
# A long context: decoding after a 1100-token prompt splits each token's
# rows over 5 blocks of the one-token attention (CudaAttention.cuh).
compile "$gqa" --synthetic-weights --context 2048 -o "$out/artifacts/gqa-long-bf16.lathe"
compile "$gqa" --synthetic-weights --context 2048 --kv=bfp4 -o "$out/artifacts/gqa-long-kvbfp4.lathe"
# Long rows: an 8192-wide down projection, several batches of loads per row.
wide=$root/test/data/wide-ffn-test-config.json
compile "$wide" --synthetic-weights -o "$out/artifacts/wide-bf16.lathe"
compile "$wide" --synthetic-weights --quant=int8:group=32 -o "$out/artifacts/wide-int8.lathe"
# Rows of whole spans: INT8/INT4, MXINT8 and BFP8/BFP4 weights in the GPU's lane layout
# (CudaWeightLayouts.h) in every product, the tied classifier and the embedding.
lanes=$root/test/data/lanes-test-config.json
# MXINT8 and BFP8/BFP4 take it too: whole models, and MXINT8 as the
# classifier of fp6_4p2 and mxfp4 builds.
# FP6 4+2 takes the FP6 lane layout, per channel and in groups.
for q in int4:group=32 int4:group=128 int8:group=32 int8:group=64 mxint8 fp6_4p2 mxfp4_e2m1 \
         bfp4 bfp8:block=16 fp6_4p2:group=32 fp6_4p2:group=128; do
  compile "$lanes" --synthetic-weights --quant="$q" -o "$out/artifacts/lanes-${q//[:=]/-}.lathe"
done
# Quantized builds take int8 activations by default (CudaProductInputs.cuh,
# checked against the CPU's integer kernels); the float products of the
# same formats too.
for q in int4:group=32 int8:group=32 mxfp4_e2m1; do
  compile "$lanes" --synthetic-weights --quant="$q" --activations=float \
    -o "$out/artifacts/lanes-${q//[:=]/-}-float.lathe"
done
compile "$gqa" --synthetic-weights --quant=int8:group=32 --activations=float \
  -o "$out/artifacts/gqa-int8-float.lathe"
# Builds of bf16 weights round their products' inputs to bf16 by default
# (FP6's products too, beside its MXINT8 classifier's int8); float as asked.
compile "$gqa" --synthetic-weights --activations=float -o "$out/artifacts/gqa-bf16-float.lathe"
compile "$gqa" --synthetic-weights --quant=fp6_4p2 --activations=float \
  -o "$out/artifacts/gqa-fp6_4p2-float.lathe"
# Every other packed format, decoded by runtime/backends/cuda/kernels/CudaFormats.cuh.
for q in bfp4 bfp8:block=16 mxfp4_e2m1 mxfp6_e3m2 mxfp6_e2m3 mxfp8_e4m3 mxfp8_e5m2 mxint8 \
         fp6_4p2 fp6_4p2:group=32; do
  compile "$gqa" --synthetic-weights --quant="$q" -o "$out/artifacts/gqa-${q//[:=]/-}.lathe"
done
for q in int8:group=32 int4:group=32; do
  compile "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" --quant="$q" \
    -o "$out/artifacts/stories15M-${q%%:*}.lathe"
done
compile "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" --quant=int4:group=32 \
  --activations=float -o "$out/artifacts/stories15M-int4-float.lathe"
# Int8 activations over a bf16 cache: a value's rounding may move its code
# at a step's first position too.
compile "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" --quant=int4:group=32 \
  --kv=bf16 -o "$out/artifacts/stories15M-int4-kvbf16.lathe"
# Compressed KV caches (int8, bfp8, bfp4 rows; the bfp ones with key
# channels reordered): grouped-query heads of 64 and stories15M's 48.
compile "$tiny" --kv=bfp4 -o "$out/artifacts/tiny-kvbfp4.lathe"
compile "$gqa" --synthetic-weights --kv=bfp4 -o "$out/artifacts/gqa-kvbfp4.lathe"
compile "$gqa" --synthetic-weights --kv=bfp8:block=16 -o "$out/artifacts/gqa-kvbfp8.lathe"
compile "$gqa" --synthetic-weights --kv=int8 --quant=int8:group=32 -o "$out/artifacts/gqa-int8-kvint8.lathe"
# Windowed caches, sealed on the GPU (CudaWindowedKv.cuh): KIVI int4 and
# int2, row formats with a window; the tiny model's heads of 4 take the
# channel-by-channel KIVI path.
for kv in int4 int2 bfp4:window=16; do
  compile "$gqa" --synthetic-weights --kv=$kv -o "$out/artifacts/gqa-kv${kv//[:=]/-}.lathe"
done
compile "$gqa" --synthetic-weights --kv=int8:window=8 --quant=int8:group=32 \
  -o "$out/artifacts/gqa-int8-kvint8-window-8.lathe"
compile "$tiny" --kv=int4 -o "$out/artifacts/tiny-kvint4.lathe"
compile "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" --quant=int8:group=32 \
  --kv=bfp4 -o "$out/artifacts/stories15M-int8-kvbfp4.lathe"
compile "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" --quant=int4:group=32 \
  --kv=int8 -o "$out/artifacts/stories15M-int4-kvint8.lathe"
# Layer groups (lathe-compile --prefill-groups): a prompt run one group at a
# time on the GPU, decodes in between (CudaBackendTest).
compile "$gqa" --synthetic-weights --prefill-groups=2 -o "$out/artifacts/gqa-groups2-bf16.lathe"
compile "$model_dir/stories15M.bin" --tokenizer "$model_dir/tokenizer.bin" --quant=int8:group=32 \
  --prefill-groups=3 -o "$out/artifacts/stories15M-int8-groups3.lathe"
# Each Hugging Face decoder family's small random checkpoint, the folders
# test/e2e/ArchitecturesTest.cpp checks against transformers on the CPU.
python3 "$root/scripts/make-arch-reference.py" --write-folders "$out/arch"
for folder in "$out"/arch/*/; do
  compile "$folder" -o "$out/artifacts/arch-$(basename "$folder").lathe"
done
rm -rf "$out/arch"
# The device tool carries 64 MiB at most: the artifacts travel packed
# (about half their size: random weights) in three parts of 17-32 MB, the
# small models, stories15M's INT4 builds and its INT8 builds, which
# cuda-check.sh unpacks; carry the binaries with one part a call.
(cd "$out" && mkdir -p part2/artifacts part3/artifacts &&
  mv artifacts/stories15M-int4* part2/artifacts/ && mv artifacts/stories15M-* part3/artifacts/ &&
  tar cf - artifacts | xz -1 -T2 > artifacts-1.tar.xz &&
  (cd part2 && tar cf - artifacts) | xz -1 -T2 > artifacts-2.tar.xz &&
  (cd part3 && tar cf - artifacts) | xz -1 -T2 > artifacts-3.tar.xz && rm -rf artifacts part2 part3)
fi
# SPEED_MODELS=0 leaves the speed models out (a correctness run only).
[ "${SPEED_MODELS:-1}" = 0 ] && { du -sh "$out"; exit 0; }
# Speed models: real sizes, random weights made at load (scripts/cuda-speed.sh),
# with a bf16 KV cache, as the peers keep theirs (PyTorch's static cache in
# bf16, llama.cpp's in f16).
mkdir -p "$out/speed"
# (TinyLlama in bf16 only: the device tool carries 64 MiB at most; the
# folder travels as speed.tar.xz, which cuda-speed.sh unpacks.)
for spec in llama-3.2-1b:none llama-3.2-1b:int8:group=32 llama-3.2-1b:int4:group=32 \
             llama-3.2-1b:fp6_4p2 tinyllama-1.1b:none; do
  m=${spec%%:*} q=${spec#*:}
  compile "$root/scripts/speed-models/$m.json" --synthetic-weights --quant="$q" --kv=bf16 \
    -o "$out/speed/$m-${q%%:*}.lathe"
done
# The bf16 model with float activations (three tensor-core parts a token
# value), for comparison in the same run.
compile "$root/scripts/speed-models/llama-3.2-1b.json" --synthetic-weights --kv=bf16 \
  --activations=float -o "$out/speed/llama-3.2-1b-none-float.lathe"
(cd "$out" && tar cf - speed | xz -1 -T2 > speed.tar.xz && rm -rf speed)
du -sh "$out"
