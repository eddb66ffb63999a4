// The CUDA target's host schedule end to end without a GPU: generated from
// a plan's launches through EmitC (codegen/CUDA/EmitCudaSchedule.cpp),
// built with the system C++ compiler, loaded from memory as the runtime
// loads it (runtime/backends/cuda/schedule/CudaSchedule.h) and run for
// steps of several sizes against a launcher that records; and damaged
// copies refused with one line each.
#include "codegen/CUDA/EmitCudaSchedule.h"
#include "runtime/backends/cuda/schedule/CudaSchedule.h"
#include "test/unit/runtime/backends/cuda/ScheduleRecorder.h"

#include <gtest/gtest.h>

#include <functional>

namespace lathe::codegen {
namespace {

using namespace plan;

/// One grouped product of input 0 (1024 wide) into 384 and 64 rows, bf16
/// weights and activations: a split launch, then the product's (wgmma
/// tiles from LATHE_CUDA_WGMMA_MIN_TOKENS tokens on).
KernelPlan products() {
  KernelPlan plan;
  plan.bufferWidths = {1024, 384, 64};
  plan.steps = {MatMulsStep{0, {0, 1}, {1, 2}, Activations::Bf16}};
  plan.logits = 2;
  return plan;
}
const std::vector<TensorInfo> kWeights = {TensorInfo{"w", ElementType::BF16, {384, 1024}},
                                          TensorInfo{"w", ElementType::BF16, {64, 1024}}};

using Recorder = test::ScheduleRecorder;
LatheCudaStepFacts step(int64_t rows) { return test::scheduleStep(rows); }

class EmitCudaScheduleTest : public ::testing::Test {
protected:
  void SetUp() override {
    Expected<CudaModelCode> code = emitCudaModel(plan_, kWeights);
    ASSERT_TRUE(code) << code.error().message();
    code_ = code.take();
    Expected<std::string> source = emitCudaSchedule(plan_, code_);
    ASSERT_TRUE(source) << source.error().message();
    source_ = source.take();
    Expected<NativeCode> built = buildCudaSchedule(source_, planHash(plan_));
    ASSERT_TRUE(built) << built.error().message();
    plan_.native = built.take();
  }
  /// The message loading a copy of the plan that `damage` changed gives,
  /// or "" where it loads.
  std::string refusal(const std::function<void(KernelPlan &, int32_t &)> &damage) {
    KernelPlan copy = plan_;
    int32_t launches = int32_t(code_.launches.size());
    damage(copy, launches);
    auto loaded = cuda::CudaSchedule::load(copy, "model.lathe", launches);
    return loaded ? "" : loaded.error().message();
  }

  KernelPlan plan_ = products();
  CudaModelCode code_;
  std::string source_;
};

TEST_F(EmitCudaScheduleTest, OneCallPerLaunchWithItsConstants) {
  ASSERT_EQ(code_.launches.size(), 2u);
  EXPECT_EQ(code_.launches[0].grid, LATHE_CUDA_GRID_SPLIT);
  EXPECT_EQ(code_.kStages[1], 1024 / LATHE_CUDA_TMA_BOX_K);
  EXPECT_NE(source_.find("// launch 0: step 0 (matmuls)\n  lathe_cuda_schedule_split("),
            std::string::npos)
      << source_;
  EXPECT_NE(source_.find("lathe_cuda_schedule_product("), std::string::npos);
  EXPECT_NE(source_.find("lathe_cuda_schedule_launch_count() {\n  return 2;"), std::string::npos);
}

TEST_F(EmitCudaScheduleTest, TheBuiltScheduleRunsEachStepsLaunches) {
  auto loaded = cuda::CudaSchedule::load(plan_, "model.lathe", 2);
  ASSERT_TRUE(loaded) << loaded.error().message();
  // One token: no split, the product on the CUDA cores.
  Recorder one;
  (*loaded)->run(step(1), one.launcher);
  ASSERT_EQ(one.calls.size(), 1u);
  EXPECT_EQ(one.calls[0].launch, 1);
  EXPECT_EQ(one.calls[0].kernel, LATHE_CUDA_KERNEL_STEP);
  // 64 tokens: the split rows, then the wgmma tiles (3 + 1 blocks of 128
  // rows, k split over the idle SMs).
  Recorder wide;
  (*loaded)->run(step(64), wide.launcher);
  ASSERT_EQ(wide.calls.size(), 2u);
  EXPECT_EQ(wide.calls[0].launch, 0);
  EXPECT_EQ(wide.calls[0].grid[0], 64u);
  EXPECT_EQ(wide.calls[1].kernel, LATHE_CUDA_KERNEL_WIDE);
  EXPECT_EQ(wide.calls[1].grid[0], 4u);
  EXPECT_EQ(wide.calls[1].grid[2], uint32_t(LATHE_CUDA_WGMMA_MAX_SPLITS));
  EXPECT_EQ(wide.calls[1].threads, uint32_t(LATHE_CUDA_WGMMA_THREADS));
  EXPECT_EQ(wide.calls[1].args, code_.launches[1].wgmmaArgs);
  // A range of the launches (a layer group's).
  Recorder range;
  LatheCudaStepFacts second = step(64);
  second.first = 1;
  (*loaded)->run(second, range.launcher);
  ASSERT_EQ(range.calls.size(), 1u);
  EXPECT_EQ(range.calls[0].launch, 1);
}

TEST_F(EmitCudaScheduleTest, DamagedSchedulesAreRefused) {
  EXPECT_EQ(refusal([](KernelPlan &, int32_t &) {}), "") << "an intact copy loads";
  EXPECT_EQ(refusal([](KernelPlan &p, int32_t &) { p.native.reset(); }),
            "model.lathe: it holds no CUDA host schedule; recompile the model");
  EXPECT_NE(refusal([](KernelPlan &p, int32_t &) { p.native->abiVersion += 1; })
                .find("its CUDA host schedule uses ABI version"),
            std::string::npos);
  EXPECT_NE(refusal([](KernelPlan &p, int32_t &) { p.native->isa = "x86-64-v9"; })
                .find("built for x86-64-v9, which this CPU does not support"),
            std::string::npos);
  EXPECT_NE(refusal([](KernelPlan &p, int32_t &) { p.native->planHash ^= 1; })
                .find("generated for another kernel plan"),
            std::string::npos);
  EXPECT_NE(refusal([](KernelPlan &p, int32_t &) { p.native->object.resize(40); })
                .find("not a shared object"),
            std::string::npos);
  EXPECT_EQ(refusal([](KernelPlan &, int32_t &launches) { launches += 1; }),
            "model.lathe: corrupt: its CUDA host schedule and its GPU code differ in launches");
}

} // namespace
} // namespace lathe::codegen
