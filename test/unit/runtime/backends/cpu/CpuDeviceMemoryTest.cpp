#include "runtime/support/AvailableMemory.h"

#include "runtime/backends/cpu/CpuDevice.h"

#include <gtest/gtest.h>

namespace lathe {
namespace {

TEST(AvailableMemory, ReadsMemAvailableOnLinux) {
  std::optional<size_t> available = availableMemoryBytes();
  ASSERT_TRUE(available) << "/proc/meminfo has no MemAvailable";
  EXPECT_GT(*available, size_t(0));
}

// Overcommit would grant a mapping larger than the memory left, and the
// process would die touching it: the CPU device refuses it up front with
// the figure, and allocates what fits.
TEST(AvailableMemory, CpuDeviceRefusesMoreThanIsAvailable) {
  std::optional<size_t> available = availableMemoryBytes();
  ASSERT_TRUE(available);
  auto tooMuch = cpu::CpuDevice::instance().allocate(*available + (size_t(1) << 30));
  ASSERT_FALSE(tooMuch);
  EXPECT_NE(tooMuch.error().message().find("out of memory: "), std::string::npos)
      << tooMuch.error().message();
  EXPECT_NE(tooMuch.error().message().find(" MiB available"), std::string::npos);
  auto fits = cpu::CpuDevice::instance().allocate(size_t(80) << 20);
  ASSERT_TRUE(fits) << fits.error().message();
  EXPECT_EQ((*fits)->size(), size_t(80) << 20);
  EXPECT_EQ((*fits)->hostData()[(size_t(80) << 20) - 1], 0);
}

// A KV cache is mapped whole and backed as it fills, so the kernel does not
// count it as taken yet: the device counts its untouched pages as promised,
// and a later request that would need them is refused. Nothing here touches
// the big buffer, so the test takes no memory.
TEST(AvailableMemory, UntouchedBuffersCountAsTaken) {
  std::optional<size_t> available = availableMemoryBytes();
  ASSERT_TRUE(available);
  cpu::CpuDevice &device = cpu::CpuDevice::instance();
  const size_t share = *available / 10 * 6;
  EXPECT_TRUE(device.checkAvailable(share));
  auto first = device.allocate(share);
  ASSERT_TRUE(first) << first.error().message();
  Status second = device.checkAvailable(share);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("out of memory: "), std::string::npos);
  first->reset();
  EXPECT_TRUE(device.checkAvailable(share)) << "a freed buffer no longer counts";
}

} // namespace
} // namespace lathe
