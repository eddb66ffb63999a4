// MappedFile in both of its modes: the bytes are the file's, huge-page
// copies start on a 2 MiB boundary and are read-only, and every failure is a
// message naming the path.
#include "runtime/support/MappedFile.h"

#include "runtime/support/HugePages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace lathe {
namespace {

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/lathe-mappedfile-" + std::to_string(::getpid()) + "-" + name;
}

std::vector<uint8_t> writeRandomFile(const std::string &path, size_t size) {
  std::vector<uint8_t> bytes(size);
  std::mt19937 rng(static_cast<uint32_t>(size));
  for (uint8_t &b : bytes) b = static_cast<uint8_t>(rng());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(size));
  return bytes;
}

TEST(MappedFileTest, BothModesHoldTheFileBytes) {
  // Smaller than a page, not a multiple of 2 MiB, and larger than one.
  for (size_t size : {size_t{1}, size_t{5000}, size_t{(3u << 20) + 17}}) {
    const std::string path = tempPath(std::to_string(size));
    const std::vector<uint8_t> bytes = writeRandomFile(path, size);
    for (FileMemory memory : {FileMemory::Mapped, FileMemory::HugePages}) {
      auto file = MappedFile::open(path, memory);
      ASSERT_TRUE(file) << file.error().message();
      ASSERT_EQ((*file)->size(), size);
      EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), (*file)->bytes().begin()));
      if (memory == FileMemory::HugePages)
        EXPECT_EQ(reinterpret_cast<uintptr_t>((*file)->bytes().data()) % (2u << 20), 0u);
    }
    std::remove(path.c_str());
  }
}

TEST(MappedFileTest, EmptyFileGivesEmptyBytes) {
  const std::string path = tempPath("empty");
  writeRandomFile(path, 0);
  for (FileMemory memory : {FileMemory::Mapped, FileMemory::HugePages}) {
    auto file = MappedFile::open(path, memory);
    ASSERT_TRUE(file);
    EXPECT_EQ((*file)->size(), 0u);
    EXPECT_TRUE((*file)->bytes().empty());
  }
  std::remove(path.c_str());
}

TEST(MappedFileTest, FailuresNameThePath) {
  for (FileMemory memory : {FileMemory::Mapped, FileMemory::HugePages}) {
    auto missing = MappedFile::open("/nonexistent/lathe-model.lathe", memory);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("/nonexistent/lathe-model.lathe: cannot open"),
              std::string::npos);
    auto directory = MappedFile::open(::testing::TempDir(), memory);
    ASSERT_FALSE(directory);
    EXPECT_NE(directory.error().message().find("not a regular file"), std::string::npos);
  }
}

TEST(MappedFileTest, HugePageCopyIsReadOnly) {
  const std::string path = tempPath("readonly");
  writeRandomFile(path, 4096);
  auto file = MappedFile::open(path, FileMemory::HugePages);
  ASSERT_TRUE(file);
  uint8_t *p = const_cast<uint8_t *>((*file)->bytes().data());
  EXPECT_DEATH(p[0] ^= 1, "");
  std::remove(path.c_str());
}

// The memory behind huge-page copies and repacked panels: 2 MiB-aligned,
// zero-filled, writable, rounded up to whole huge pages.
TEST(HugePagesTest, RegionsAreAlignedAndZeroed) {
  for (size_t bytes : {size_t{1}, size_t{2} << 20, (size_t{5} << 20) + 3}) {
    const HugePageRegion region = mapHugePages(bytes);
    ASSERT_NE(region.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(region.data) % (2u << 20), 0u);
    EXPECT_EQ(region.length % (2u << 20), 0u);
    EXPECT_GE(region.length, bytes);
    EXPECT_EQ(region.data[0], 0);
    EXPECT_EQ(region.data[bytes - 1], 0);
    region.data[bytes - 1] = 7;
    unmapHugePages(region);
  }
  EXPECT_EQ(mapHugePages(0).data, nullptr);
  auto shared = allocateHugePages(100);
  ASSERT_NE(shared, nullptr);
  shared.get()[99] = 1;
}

} // namespace
} // namespace lathe
