#!/usr/bin/env bash
# llama.cpp's CUDA backend as a benchmark peer on the GPU machine
# (docs/benchmarks.md), from a source tarball of a fetched mirror carried
# there (never part of Lathe):
#   scripts/llama-cpp-cuda-peer.sh build SRC.tar.xz   build llama-bench and
#                                                     llama-quantize (sm_90a)
#   scripts/llama-cpp-cuda-peer.sh bench [CONFIG...]  random-weight F16 GGUFs
#       of the speed models' shapes (scripts/make-speed-gguf.py), Q8_0 and
#       Q4_0 from llama-quantize, then llama-bench: tg128 (decode) and
#       pp512 and pp2048 (prefill), all layers on the GPU, 5 repetitions.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${LLAMA_CPP_WORK:-/tmp/llama-cpp-peer}
case "${1:-}" in
build)
  mkdir -p "$work" && tar xJf "$2" -C "$work"
  cmake -S "$work/llama.cpp" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DGGML_NATIVE=ON > "$work/configure.log"
  cmake --build "$work/build" --target llama-bench llama-quantize -j"$(nproc)" > "$work/build.log"
  echo "llama.cpp built: $(cd "$work/llama.cpp" && cat .git-commit 2>/dev/null || echo source tarball)"
  ;;
bench)
  shift
  configs=("$@")
  [ ${#configs[@]} -eq 0 ] && configs=("$root"/scripts/speed-models/*.json)
  bin=$work/build/bin
  for config in "${configs[@]}"; do
    m=$(basename "$config" .json)
    PYTHONPATH=$work/llama.cpp/gguf-py python3 "$root/scripts/make-speed-gguf.py" "$config" \
      "$work/$m-f16.gguf" > /dev/null
    for q in Q8_0 Q4_0; do
      "$bin/llama-quantize" "$work/$m-f16.gguf" "$work/$m-${q,,}.gguf" "$q" > /dev/null 2>&1
    done
    for q in f16 q8_0 q4_0; do
      echo "== llama.cpp CUDA $m $q"
      "$bin/llama-bench" -m "$work/$m-$q.gguf" -ngl 99 -p 512,2048 -n 128 -r 5 -o md 2>/dev/null |
        grep -E "^\| (model|llama)"
    done
    rm -f "$work/$m"-*.gguf
  done
  ;;
*)
  echo "usage: $0 build SRC.tar.xz | bench [CONFIG...]" >&2
  exit 1
  ;;
esac
