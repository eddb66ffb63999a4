#include "runtime/formats/BitPacking.h"

#include <gtest/gtest.h>

#include <vector>

namespace lathe::formats {
namespace {

TEST(BitPacking, FourBitCodesGoLowNibbleFirst) {
  // code 0 -> bits 0-3 of byte 0, code 1 -> bits 4-7 of byte 0, ...
  std::vector<uint8_t> bytes(2, 0);
  packBits(bytes, 0, 4, 0x3);
  packBits(bytes, 1, 4, 0xA);
  packBits(bytes, 2, 4, 0xF);
  EXPECT_EQ(bytes[0], 0xA3);
  EXPECT_EQ(bytes[1], 0x0F);
  EXPECT_EQ(unpackBits(bytes, 0, 4), 0x3u);
  EXPECT_EQ(unpackBits(bytes, 1, 4), 0xAu);
  EXPECT_EQ(unpackBits(bytes, 2, 4), 0xFu);
}

TEST(BitPacking, FourSixBitCodesFillThreeBytes) {
  // codes a=0b000001 b=0b100010 c=0b111111 d=0b010100 form the 24-bit
  // little-endian word a | b<<6 | c<<12 | d<<18
  //   = 0x01 | 0x880 | 0x3F000 | 0x500000 = 0x53F881 -> bytes 81 F8 53
  std::vector<uint8_t> bytes(3, 0);
  const uint32_t codes[4] = {0x01, 0x22, 0x3F, 0x14};
  for (size_t i = 0; i < 4; ++i)
    packBits(bytes, i, 6, codes[i]);
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0x81, 0xF8, 0x53}));
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(unpackBits(bytes, i, 6), codes[i]) << i;
}

TEST(BitPacking, TwoBitCodesFourPerByte) {
  // code i at bits 2i..2i+1: 1 | 2<<2 | 3<<4 | 0<<6 = 0x39
  std::vector<uint8_t> bytes(1, 0);
  packBits(bytes, 0, 2, 1);
  packBits(bytes, 1, 2, 2);
  packBits(bytes, 2, 2, 3);
  packBits(bytes, 3, 2, 0);
  EXPECT_EQ(bytes[0], 0x39);
}

TEST(BitPacking, OverwritingKeepsNeighbours) {
  std::vector<uint8_t> bytes(3, 0xFF);
  packBits(bytes, 1, 6, 0); // clears bits 6..11 only
  EXPECT_EQ(bytes[0], 0x3F);
  EXPECT_EQ(bytes[1], 0xF0);
  EXPECT_EQ(bytes[2], 0xFF);
}

TEST(BitPacking, EveryWidthRoundTrips) {
  for (unsigned width = 1; width <= 8; ++width) {
    const size_t count = 40;
    std::vector<uint8_t> bytes(packedBytes(count, width), 0);
    for (size_t i = 0; i < count; ++i)
      packBits(bytes, i, width, static_cast<uint32_t>(i * 37 + 11));
    for (size_t i = 0; i < count; ++i)
      EXPECT_EQ(unpackBits(bytes, i, width), (i * 37 + 11) & ((1u << width) - 1))
          << "width " << width << " index " << i;
  }
}

TEST(BitPacking, SignExtend) {
  EXPECT_EQ(signExtend(0x7, 4), 7);
  EXPECT_EQ(signExtend(0x8, 4), -8);
  EXPECT_EQ(signExtend(0xF, 4), -1);
  EXPECT_EQ(signExtend(0x20, 6), -32);
  EXPECT_EQ(signExtend(0x1F, 6), 31);
  EXPECT_EQ(signExtend(0x80, 8), -128);
  EXPECT_EQ(signExtend(0xFF0, 4), 0); // only the low 4 bits count
}

TEST(BitPacking, Float32IsLittleEndian) {
  // 0.125f = 0x3E000000
  std::vector<uint8_t> bytes(4, 0);
  storeFloat32(bytes, 0.125f);
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0x00, 0x00, 0x00, 0x3E}));
  EXPECT_EQ(loadFloat32(bytes), 0.125f);
  storeFloat32(bytes, -3.5f); // 0xC0600000
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0x00, 0x00, 0x60, 0xC0}));
}

} // namespace
} // namespace lathe::formats
