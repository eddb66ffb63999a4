// How the CUDA target's generated code hands the wgmma tiles their weights
// (CudaWgmmaTiles.cuh): each bf16 weight of a launch whose products all
// take whole 64-value stages is listed in lathe_cuda_tma_weights (its
// tensor, k, rows and row bytes: what the runtime encodes a TMA tensor map
// from), the launch's call names each map, and its kernel has the three
// warpgroups (LATHE_CUDA_WGMMA_THREADS) that load and multiply. Other
// products list nothing.
#include "codegen/CUDA/EmitCudaModel.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lathe::codegen {
namespace {

using namespace plan;

TensorInfo bf16Weight(int64_t n, int64_t k) { return TensorInfo{"w", ElementType::BF16, {n, k}}; }

/// One grouped product of input 0 (k wide) into buffers 1 and 2, with bf16
/// activations (the wgmma tiles' operands).
KernelPlan products(int64_t k, int64_t n0, int64_t n1) {
  KernelPlan plan;
  plan.bufferWidths = {uint64_t(k), uint64_t(n0), uint64_t(n1)};
  plan.steps = {MatMulsStep{0, {0, 1}, {1, 2}, Activations::Bf16}};
  plan.logits = 2;
  return plan;
}

TEST(EmitCudaWgmmaTest, WeightsOfWholeStagesGetTensorMaps) {
  Expected<CudaModelCode> code =
      emitCudaModel(products(1024, 384, 64), {bf16Weight(384, 1024), bf16Weight(64, 1024)});
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_NE(code->device.find("lathe_cuda_tma_weight_count = 2;"), std::string::npos);
  // {tensor, k, rows, row bytes}
  EXPECT_NE(code->device.find("{0, 1024, 384, 2048},\n    {1, 1024, 64, 2048},"), std::string::npos)
      << code->device;
  EXPECT_NE(code->device.find("lathe_cuda::tensorMap(f, a["), std::string::npos);
  // LATHE_CUDA_WGMMA_THREADS: two multiplying warpgroups and a loading one.
  EXPECT_NE(code->device.find("__launch_bounds__(384, 1) lathe_cuda_wgmma_0"), std::string::npos);
  // 384 rows: three blocks of LATHE_CUDA_WGMMA_ROWS, then the second weight's.
  EXPECT_NE(code->device.find("if (block.x < 3)"), std::string::npos);
  EXPECT_NE(code->device.find("block.x - 3, block.y"), std::string::npos);
}

TEST(EmitCudaWgmmaTest, OtherProductsListNoWeights) {
  // Rows of 96 values: the staged tiles' 32-value stages, not wgmma's 64.
  Expected<CudaModelCode> staged =
      emitCudaModel(products(96, 64, 64), {bf16Weight(64, 96), bf16Weight(64, 96)});
  ASSERT_TRUE(staged) << staged.error().message();
  EXPECT_NE(staged->device.find("lathe_cuda_tma_weight_count = 0;"), std::string::npos);
  EXPECT_EQ(staged->device.find("wgmmaProduct"), std::string::npos);
  // f32 weights: no staged tiles at all.
  Expected<CudaModelCode> floats = emitCudaModel(
      products(1024, 64, 64), {TensorInfo{"w", ElementType::F32, {64, 1024}},
                               TensorInfo{"w", ElementType::F32, {64, 1024}}});
  ASSERT_TRUE(floats) << floats.error().message();
  EXPECT_NE(floats->device.find("lathe_cuda_tma_weight_count = 0;"), std::string::npos);
}

/// Attention of 4 heads of 64 (2 KV heads) into buffer 3, then the output
/// product of it into buffer 4 (128 rows), both of `activations`.
KernelPlan attentionThenProduct(Activations activations) {
  KernelPlan plan;
  plan.bufferWidths = {256, 128, 128, 256, 128};
  plan.steps = {AttentionStep{0, 1, 2, 3, 0, 4, 2, 64, activations},
                MatMulStep{3, 0, 4, activations}};
  plan.logits = 4;
  return plan;
}

/// The args table's values (lathe_cuda_args), in order.
std::vector<int> argsTable(const std::string &device) {
  const size_t at = device.find("lathe_cuda_args[");
  const size_t open = device.find('{', at), close = device.find('}', open);
  std::vector<int> values;
  std::string text = device.substr(open + 1, close - open - 1);
  for (size_t p = 0; p < text.size();) {
    size_t used = 0;
    values.push_back(std::stoi(text.substr(p), &used));
    p = text.find_first_of("-0123456789", p + used);
  }
  return values;
}

TEST(EmitCudaWgmmaTest, AttentionWritesTheOutputProductsTokenRows) {
  Expected<CudaModelCode> code =
      emitCudaModel(attentionThenProduct(Activations::Bf16), {bf16Weight(128, 256)});
  ASSERT_TRUE(code) << code.error().message();
  // Launches: the KV store, attention, the product: no split launch.
  ASSERT_EQ(code->launches.size(), 3u);
  EXPECT_EQ(code->launches[1].grid, LATHE_CUDA_GRID_PER_HEAD);
  EXPECT_EQ(code->launches[2].grid, LATHE_CUDA_GRID_PRODUCT);
  const int32_t rowsFrom = code->launches[2].wideMinTokens;
  EXPECT_GT(rowsFrom, 0);
  EXPECT_GT(code->launches[2].wgmma, 0);
  // Attention's last argument (after the store's keys, values and layer,
  // its queries, output and layer): from how many tokens on the product's
  // wgmma tiles read its rows.
  EXPECT_NE(code->device.find("lathe_cuda_attention_arrivals, a[3]);"), std::string::npos);
  const std::vector<int> args = argsTable(code->device);
  ASSERT_GE(args.size(), 7u);
  EXPECT_EQ(args[6], rowsFrom);

  // Float activations: the tiles take three parts a value, which the split
  // launch writes, and attention none (0).
  Expected<CudaModelCode> floats =
      emitCudaModel(attentionThenProduct(Activations::Float), {bf16Weight(128, 256)});
  ASSERT_TRUE(floats) << floats.error().message();
  ASSERT_EQ(floats->launches.size(), 4u);
  EXPECT_EQ(floats->launches[2].grid, LATHE_CUDA_GRID_SPLIT);
  const std::vector<int> floatArgs = argsTable(floats->device);
  ASSERT_GE(floatArgs.size(), 7u);
  EXPECT_EQ(floatArgs[6], 0);
}

} // namespace
} // namespace lathe::codegen
