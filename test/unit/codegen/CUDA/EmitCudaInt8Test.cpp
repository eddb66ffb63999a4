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

/// The one line an int8 product of an input k wide refuses weights in
/// formats a and b with ("compiled" where it takes them).
std::string int8Error(const char *a, const char *b, int64_t k) {
  Expected<CudaModelCode> code = emitCudaModel(products(k, 64, Activations::Int8),
                                             {weight(a, 64, k), weight(b, 64, k)});
  return code ? "compiled" : code.error().message();
}

TEST(EmitCudaInt8Test, InputsRoundedPerBlockOfTheWeights) {
  const std::vector<TensorInfo> tensors = {weight("int4:group=32", 64, 1024),
                                           weight("int8:group=32", 64, 1024)};
  Expected<CudaModelCode> int8 = emitCudaModel(products(1024, 64, Activations::Int8), tensors);
  ASSERT_TRUE(int8) << int8.error().message();
  EXPECT_NE(int8->device.find("lathe_cuda::Int8Input<32, lathe_cuda::PlainInput>{}"), std::string::npos);
  Expected<CudaModelCode> floats = emitCudaModel(products(1024, 64, Activations::Float), tensors);
  ASSERT_TRUE(floats) << floats.error().message();
  EXPECT_EQ(floats->device.find("Int8Input"), std::string::npos);
  EXPECT_NE(floats->device.find("lathe_cuda::PlainInput{}"), std::string::npos);
}

TEST(EmitCudaInt8Test, BlocksOfOneInputMustAgree) {
  EXPECT_EQ(int8Error("int4:group=32", "bfp4:block=16", 1024),
            "step 0 (matmuls): int8 activations: the products of one input take blocks of 32 "
            "and 16 values; the cuda target rounds an input one way (compile with "
            "--activations=float)");
  // Float activations take them together.
  EXPECT_TRUE(emitCudaModel(products(1024, 64, Activations::Float),
                            {weight("int4:group=32", 64, 1024), weight("bfp4:block=16", 64, 1024)}));
}

TEST(EmitCudaInt8Test, RowsWiderThanTheGpuHoldsAreRefused) {
  EXPECT_EQ(int8Error("int8:group=32", "int8:group=32", cudaMaxInt8Width() + 1024),
            "step 0 (matmuls): int8 activations of rows of 9216 values: the cuda target takes "
            "multiples of 8 up to 8192 (compile with --activations=float)");
}

TEST(EmitCudaInt8Test, WeightsWithoutIntegerCodesAreRefused) {
  EXPECT_EQ(int8Error("fp6_4p2", "fp6_4p2", 1024),
            "step 0 (matmuls): int8 activations: weight 0 has no integer codes");
}

} // namespace
} // namespace lathe::codegen
