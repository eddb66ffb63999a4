#!/bin/bash
# Builds scripts/cuda-attention-check.cu in the variants that compare the
# one-token attention's kernel paths, into DIR (default .device/att) beside
# a go.sh that runs the ones named (all by default) on the GPU machine:
#   scripts/cuda-attention-variants.sh [DIR]   (here, with nvcc)
#   bash DIR/go.sh [VARIANT...]                (there)
# Variants (LATHE_CUDA_KEYS_AS_ROWS, CudaKeysAsRows.cuh): default (as the
# runtime builds it), heads (0: every block with the heads as the mma's
# rows) and keys (2: the keys for blocks of at most 8 heads); default3
# (3 splits of a token's rows); nibbles (bfp4 widened into the fragments,
# CudaTokenAttentionNibbles.cuh); h128 and h128-heads (heads of 128); one
# and one-heads (one sequence).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.device/att}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p "$DIR"
build() { # name, defines...
  local name=$1; shift
  "$NVCC" -std=c++20 -O3 -gencode arch=compute_90a,code=sm_90a -I . "$@" \
    scripts/cuda-attention-check.cu -o "$DIR/$name"
}
build default
build heads -DLATHE_CUDA_KEYS_AS_ROWS=0
build keys -DLATHE_CUDA_KEYS_AS_ROWS=2
build default3 -DSPLITS=3
build nibbles -DLATHE_CUDA_NIBBLE_FRAGMENTS=1
build h128 -DHEAD_DIM=128
build h128-heads -DHEAD_DIM=128 -DLATHE_CUDA_KEYS_AS_ROWS=0
build one -DSEQUENCES=1
build one-heads -DSEQUENCES=1 -DLATHE_CUDA_KEYS_AS_ROWS=0
cat > "$DIR/go.sh" <<'GO'
#!/bin/bash
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(default heads keys default3 nibbles h128 h128-heads one one-heads)
for v in "${variants[@]}"; do echo "== $v"; ./"$v" 2>&1 | tail -12; done
GO
chmod +x "$DIR/go.sh"
