// How the CUDA target's generated code takes a product's int8 activations
// (#plan.activations int8, CudaProductInputs.cuh): the launch's input
// wrapped to be rounded per block of the weights' format, and the cases it
// refuses with one line (blocks that differ between the products of one
// input, rows wider than the GPU holds).
#include "codegen/CUDA/EmitCudaModel.h"
#include "runtime/formats/FormatSpec.h"

#include <gtest/gtest.h>

namespace lathe::codegen {
namespace {

using namespace plan;

TensorInfo weight(const char *format, int64_t n, int64_t k) {
  Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
  EXPECT_TRUE(spec) << format;
  return TensorInfo{format, ElementType::F32, {n, k}, *spec};
}

/// One grouped product of input 0 (k wide) into buffers 1 and 2 (n wide).
KernelPlan products(int64_t k, int64_t n, Activations activations) {
  KernelPlan plan;
  plan.bufferWidths = {uint64_t(k), uint64_t(n), uint64_t(n)};
  plan.steps = {MatMulsStep{0, {0, 1}, {1, 2}, activations}};
  plan.logits = 2;
  return plan;
}

TEST(EmitCudaInt8Test, InputsRoundedPerBlockOfTheWeights) {
  const std::vector<TensorInfo> tensors = {weight("int4:group=32", 64, 1024),
                                           weight("int8:group=32", 64, 1024)};
  Expected<std::string> int8 = emitCudaModel(products(1024, 64, Activations::Int8), tensors);
  ASSERT_TRUE(int8) << int8.error().message();
  EXPECT_NE(int8->find("lathe_cuda::Int8Input<32, lathe_cuda::PlainInput>{}"), std::string::npos);
  Expected<std::string> floats = emitCudaModel(products(1024, 64, Activations::Float), tensors);
  ASSERT_TRUE(floats) << floats.error().message();
  EXPECT_EQ(floats->find("Int8Input"), std::string::npos);
  EXPECT_NE(floats->find("lathe_cuda::PlainInput{}"), std::string::npos);
}

TEST(EmitCudaInt8Test, BlocksOfOneInputMustAgree) {
  const std::vector<TensorInfo> tensors = {weight("int4:group=32", 64, 1024),
                                           weight("bfp4:block=16", 64, 1024)};
  Expected<std::string> code = emitCudaModel(products(1024, 64, Activations::Int8), tensors);
  ASSERT_FALSE(code);
  EXPECT_EQ(code.error().message(),
            "step 0 (matmuls): int8 activations: the products of one input take blocks of 32 and 16 values; the "
            "cuda target rounds an input one way (compile with --activations=float)");
  // Float activations take them together.
  EXPECT_TRUE(emitCudaModel(products(1024, 64, Activations::Float), tensors));
}

TEST(EmitCudaInt8Test, RowsWiderThanTheGpuHoldsAreRefused) {
  const int64_t wide = cudaMaxInt8Width() + 1024;
  const std::vector<TensorInfo> tensors = {weight("int8:group=32", 64, wide),
                                           weight("int8:group=32", 64, wide)};
  Expected<std::string> code = emitCudaModel(products(wide, 64, Activations::Int8), tensors);
  ASSERT_FALSE(code);
  EXPECT_EQ(code.error().message(),
            "step 0 (matmuls): int8 activations of rows of 9216 values: the cuda target takes multiples of 8 up "
            "to 8192 (compile with --activations=float)");
}

TEST(EmitCudaInt8Test, WeightsWithoutIntegerCodesAreRefused) {
  const std::vector<TensorInfo> tensors = {weight("fp6_4p2", 64, 1024),
                                           weight("fp6_4p2", 64, 1024)};
  Expected<std::string> code = emitCudaModel(products(1024, 64, Activations::Int8), tensors);
  ASSERT_FALSE(code);
  EXPECT_EQ(code.error().message(),
            "step 0 (matmuls): int8 activations: weight 0 has no integer codes");
}

} // namespace
} // namespace lathe::codegen
