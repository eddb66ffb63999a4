// The CPU backend runs the generated code of a cpu schedule only: another
// target's native code (the cuda schedule's host schedule, which the CPU's
// kernels are checked against on a GPU machine) is not its step, and the
// plan is interpreted instead of refused. A cpu schedule's broken native
// code is still refused.
#include "runtime/artifact/Artifact.h"
#include "runtime/backends/cpu/CpuExecutable.h"
#include "runtime/plan/KernelPlan.h"
#include "test/unit/TempFolder.h"
#include "test/unit/runtime/artifact/TinyModel.h"

#include <gtest/gtest.h>

namespace lathe::cpu {
namespace {

const test::TempFolder kTemp("cpu-target");

/// The tiny model with its one schedule for `target`, holding native code
/// that is no CPU step (an ELF header and zeros, another ABI).
std::shared_ptr<const artifact::Artifact> withForeignCode(const std::string &target) {
  test::TinyModel m;
  plan::KernelPlan &p = m.contents.schedules[0];
  p.target = target;
  std::vector<uint8_t> object(256, 0);
  object[0] = 0x7f, object[1] = 'E', object[2] = 'L', object[3] = 'F';
  p.native = plan::NativeCode{"generic", 1, plan::planHash(p), object};
  const std::string path = kTemp.file(target + ".lathe");
  Status written = artifact::writeArtifact(m.contents, path);
  EXPECT_TRUE(written) << written.error().message();
  auto loaded = artifact::Artifact::load(path);
  EXPECT_TRUE(loaded) << loaded.error().message();
  return loaded ? *loaded : nullptr;
}

TEST(CpuExecutableTargetTest, AnotherTargetsNativeCodeIsNotRun) {
  auto a = withForeignCode("cuda");
  ASSERT_TRUE(a);
  backend::ExecutionOptions options;
  options.target = "cuda";
  auto executable = CpuExecutable::load(a, options);
  ASSERT_TRUE(executable) << executable.error().message();
  EXPECT_FALSE((*executable)->usesNativeCode());
}

TEST(CpuExecutableTargetTest, ACpuSchedulesBrokenNativeCodeIsRefused) {
  auto a = withForeignCode("cpu");
  ASSERT_TRUE(a);
  auto executable = CpuExecutable::load(a, backend::ExecutionOptions{});
  ASSERT_FALSE(executable);
  EXPECT_NE(executable.error().message().find("its CPU code uses ABI version 1"),
            std::string::npos)
      << executable.error().message();
}

} // namespace
} // namespace lathe::cpu
