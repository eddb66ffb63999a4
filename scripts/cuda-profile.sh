#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and Nsight Compute: the time and DRAM
# bytes of every kernel of one decode step of an artifact, launch by launch
# (graphs off; ncu serializes kernels, so programmatic dependent launch does
# not overlap them here). Kernel i is lathe_cuda_kernel_<i> of
# `lathe-compile ... --emit=cuda`, whose comment names its steps.
#
#   scripts/cuda-profile.sh ART LAUNCHES_PER_STEP [OUT.csv]
set -euo pipefail
art=${1:?usage: cuda-profile.sh ART LAUNCHES_PER_STEP [OUT.csv]}
launches=${2:?launches per step}
out=${3:-/dev/stdout}
dir=$(dirname "$(dirname "$art")")
export LD_LIBRARY_PATH=$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The prompt's step and the first decode step skipped: the second decode step.
LATHE_CUDA_GRAPHS=0 ncu --clock-control none --csv \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum \
  --launch-skip $((2 * launches)) --launch-count "$launches" \
  "$dir/bin/lathe-run" "$art" --prompt-ids 1,2,3,4,5,6,7,8 -n 4 --print-ids --ignore-eos > "$out"
