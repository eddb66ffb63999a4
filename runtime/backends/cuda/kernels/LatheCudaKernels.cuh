// The device kernels every model's generated CUDA code instantiates
// (codegen/CUDA/EmitCudaModel.cpp): one template per kind of plan step,
// with the shapes, the weight formats and the buffer indices of the step as
// template arguments, so that nvcc sees constants everywhere. The generated
// file defines one extern "C" __global__ function per launch that calls one
// (or, fused, several) of these; runtime/backends/cuda/CudaExecutable.cpp
// launches them in order.
//
// Numerics follow the reference kernels (runtime/kernels/ReferenceKernels.h):
// RMSNorm sums squares in double, RoPE angles are computed in double,
// products and attention accumulate in float (in another order, so results
// agree with the CPU to float rounding, not bit for bit). Packed weights are
// decoded in registers; no float copy of a weight is ever made.
#pragma once

#include "CudaArgmax.cuh"
#include "CudaAttention.cuh"
#include "CudaCommon.cuh"
#include "CudaElementwise.cuh"
#include "CudaFlashAttention.cuh"
#include "CudaFormats.cuh"
#include "CudaMma.cuh"
#include "CudaProductInputs.cuh"
#include "CudaProducts.cuh"
#include "CudaTiledProducts.cuh"
#include "CudaStagedTiles.cuh"
#include "CudaTma.cuh"
#include "CudaTokenAttentionMma.cuh"
#include "CudaTokenAttentionNibbles.cuh"
#include "CudaWgmmaAttention.cuh"
#include "CudaWgmmaTiles.cuh"
#include "CudaWindowedKv.cuh"
