// The SIMD store step of compressed KV caches against the scalar reference
// (kernels::storeKV, i.e. formats::encodeKvRow) on every Highway target this
// machine runs: the same bytes, scales and exponents included, for random
// rows at many magnitudes, values on rounding ties, saturating and extreme
// values, zero blocks and blocks holding NaN or infinity, with blocks that
// do and do not hold whole vectors.
#include "runtime/backends/cpu/CpuDevice.h"
#include "runtime/backends/cpu/kernels/KvStore.h"

#include "runtime/formats/KvFormat.h"
#include "runtime/kernels/ReferenceKernels.h"
#include "test/unit/runtime/backends/cpu/kernels/SimdTestSupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe::kernels::simd {
namespace {

using testing::targetName;

class KvStoreTest : public testing::PerTarget {};

/// Stores `rows` rows of `width` values (keys x, values -x) into rows given
/// in reverse order both ways and compares every byte.
void expectSameBytes(const char *spec, int64_t headDim, int64_t width,
                     const std::vector<float> &x) {
  SCOPED_TRACE(std::string(spec) + " width " + std::to_string(width));
  const Expected<formats::KvFormat> resolved =
      formats::resolveKvFormat(*formats::parseKvFormat(spec), headDim);
  ASSERT_TRUE(resolved) << resolved.error().message();
  // Without a window (bfp4 has one by default): a windowed cache stores f32
  // rows, WindowedCachesStoreWindowRows.
  formats::KvFormat format = *resolved;
  format.window = 0;
  const int64_t count = static_cast<int64_t>(x.size()) / width;
  std::vector<float> v(x.size());
  for (size_t i = 0; i < x.size(); ++i) v[i] = -x[i];
  std::vector<int32_t> rows(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; ++t) rows[size_t(t)] = static_cast<int32_t>(count - 1 - t);
  const size_t bytes = size_t(count) * formats::kvRowBytes(format, width);
  std::vector<uint8_t> refKeys(bytes, 0xEE), refValues(bytes, 0xEE), keys(bytes, 0x11),
      values(bytes, 0x11);
  kernels::storeKV(x.data(), v.data(), rows,
                   {refKeys.data(), refValues.data(), count, width, format});
  simd::storeKV(x.data(), v.data(), rows, {keys.data(), values.data(), count, width, format});
  ASSERT_EQ(keys, refKeys);
  ASSERT_EQ(values, refValues);
}

TEST_P(KvStoreTest, RandomRowsMatchTheCodec) {
  uint32_t seed = 1;
  for (const char *spec : {"int8", "bfp8:block=16", "bfp8:block=48", "bfp8:block=3",
                           "bfp4:block=16", "bfp4:block=24", "bfp4:block=2", "bfp4:block=48"})
    for (float sigma : {1e-30f, 1e-3f, 1.0f, 77.0f, 1e20f}) {
      std::vector<float> x = testing::randomVector(8 * 96, seed++, sigma);
      x[3] *= 50.0f; // an outlier
      expectSameBytes(spec, 48, 96, x);
    }
  // int8 with head_dim 7 and 64: blocks of odd and of whole-vector size.
  expectSameBytes("int8", 7, 14, testing::randomVector(5 * 14, 90));
  expectSameBytes("int8", 64, 128, testing::randomVector(5 * 128, 91));
}

// Values exactly on rounding ties: half-integers -6.5 .. 7.5 are x.5 steps
// when the step is 1: int8 with a 127 in the block (scale 1), bfp8 with a
// 100.5 in each block of 16 (e = 6, step 2^(6-6)), bfp4 as they are (max
// 7.5: e = 2, step 2^(2-2)), where 7.5 also rounds up to 8 and saturates.
TEST_P(KvStoreTest, TiesAndSaturationMatchTheCodec) {
  for (const char *spec : {"int8", "bfp8:block=16", "bfp4:block=16"}) {
    std::vector<float> x(4 * 48);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = float(int(i % 15) - 7) + 0.5f;
    for (size_t b = 0; b < x.size(); b += 16) {
      if (spec[0] == 'i' && b % 48 == 0) x[b] = 127.0f;
      if (spec[3] == '8') x[b + 5] = 100.5f;
    }
    expectSameBytes(spec, 48, 48, x);
  }
}

TEST_P(KvStoreTest, ExtremeZeroAndNonFiniteBlocksMatchTheCodec) {
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (const char *spec : {"int8", "bfp8:block=4", "bfp4:block=4"}) {
    const std::vector<float> x = {big,  -big, tiny, 1.0f,  0, 0, 0, 0,
                                  std::nanf(""), 1, 2, 3,
                                  -std::numeric_limits<float>::infinity(), 1, 1, 1,
                                  3e-39f, -1e-45f, 1e-40f, 0, 1e30f, -2e30f, 5e29f, 1e29f};
    expectSameBytes(spec, 4, 24, x);
  }
}

// The paged cache seals a block leaving a window through its device: the
// CPU device's vectorized encoder must write the codec's bytes (the
// default, backend::Device::encodeKvRows), windowed formats included.
TEST(KvStoreSealTest, TheCpuDeviceSealsBlocksAsTheCodec) {
  cpu::CpuDevice &device = cpu::CpuDevice::instance();
  for (const char *spec : {"int8:window=8", "bfp8:block=16:window=4", "bfp4:block=16",
                           "bfp4:block=16:window=0"}) {
    SCOPED_TRACE(spec);
    const formats::KvFormat format =
        *formats::resolveKvFormat(*formats::parseKvFormat(spec), 48);
    const int64_t width = 96, count = 16;
    std::vector<float> keys = testing::randomVector(size_t(count * width), 7, 3.0f);
    std::vector<float> values = testing::randomVector(size_t(count * width), 8, 0.5f);
    keys[5] = std::numeric_limits<float>::infinity(); // a poisoned block
    values[200] = std::nanf("");
    const size_t bytes = size_t(count) * formats::kvRowBytes(format, width);
    std::vector<uint8_t> refKeys(bytes, 0xEE), refValues(bytes, 0xEE), gotKeys(bytes, 0x11),
        gotValues(bytes, 0x11);
    device.backend::Device::encodeKvRows(format, width, count, keys.data(), values.data(),
                                         refKeys.data(), refValues.data());
    device.encodeKvRows(format, width, count, keys.data(), values.data(), gotKeys.data(),
                        gotValues.data());
    EXPECT_EQ(gotKeys, refKeys);
    EXPECT_EQ(gotValues, refValues);
  }
}

// Windowed caches (KIVI int4, int2; int8, bfp with window=R): a step stores
// f32 rows into the window (the paged cache quantizes whole blocks later),
// leaving the quantized arrays alone; row r of the view is window row r -
// windowRow.
TEST_P(KvStoreTest, WindowedCachesStoreWindowRows) {
  for (const char *spec : {"int4", "int2:group=16", "bfp4", "int8:window=2", "bfp8:window=1"}) {
    SCOPED_TRACE(spec);
    const formats::KvFormat format =
        *formats::resolveKvFormat(*formats::parseKvFormat(spec), 48);
    const int64_t width = 96, windowRow = 64;
    const std::vector<float> k = testing::randomVector(3 * width, 5, 1.0f);
    const std::vector<float> v = testing::randomVector(3 * width, 6, 1.0f);
    std::vector<float> windowKeys(8 * width, -1.0f), windowValues(8 * width, -1.0f);
    std::vector<uint8_t> keys(16, 0x5A), values(16, 0x5A);
    const std::vector<int32_t> rows = {70, 64, 66};
    simd::storeKV(k.data(), v.data(), rows,
                  {keys.data(), values.data(), 72, width, format, windowKeys.data(),
                   windowValues.data(), windowRow});
    for (size_t t = 0; t < rows.size(); ++t)
      for (int64_t i = 0; i < width; ++i) {
        ASSERT_EQ(windowKeys[size_t(rows[t] - windowRow) * width + i], k[t * width + i]);
        ASSERT_EQ(windowValues[size_t(rows[t] - windowRow) * width + i], v[t * width + i]);
      }
    EXPECT_EQ(windowKeys[1 * width], -1.0f); // row 65 untouched
    EXPECT_EQ(keys, std::vector<uint8_t>(16, 0x5A));
    EXPECT_EQ(values, std::vector<uint8_t>(16, 0x5A));
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, KvStoreTest,
                         ::testing::Values(int64_t{HWY_AVX3}, int64_t{HWY_AVX2},
                                           int64_t{HWY_EMU128}),
                         targetName);

} // namespace
} // namespace lathe::kernels::simd
