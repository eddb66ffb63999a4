#include "runtime/artifact/ParameterFile.h"

#include "runtime/artifact/FileHeader.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <sys/mman.h>
#include <unistd.h>

namespace lathe::artifact {
namespace {

/// Appends a value's bytes (little endian on every machine Lathe runs on).
template <typename T> void put(std::vector<uint8_t> &out, const T &v) {
  const auto *p = reinterpret_cast<const uint8_t *>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

void putString(std::vector<uint8_t> &out, const std::string &s) {
  put(out, uint64_t(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

} // namespace

std::vector<uint64_t> layoutWeights(std::span<const plan::TensorInfo> tensors,
                                    uint64_t *sectionSize) {
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const plan::TensorInfo &t : tensors) {
    offset = alignUp(offset, kSectionAlignment);
    offsets.push_back(offset);
    offset += t.storageBytes();
  }
  *sectionSize = alignUp(offset, kSectionAlignment);
  return offsets;
}

uint64_t parameterId(std::span<const plan::TensorInfo> tensors,
                     std::span<const uint64_t> offsets) {
  std::vector<uint8_t> table;
  put(table, uint64_t(tensors.size()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const plan::TensorInfo &t = tensors[i];
    putString(table, t.name);
    putString(table, t.formatName());
    put(table, uint64_t(t.shape.size()));
    for (int64_t d : t.shape)
      put(table, d);
    put(table, i < offsets.size() ? offsets[i] : ~uint64_t(0));
    put(table, t.storageBytes());
  }
  return checksum(table);
}

uint64_t boundParameterId(uint64_t tableId, std::span<const std::span<const uint8_t>> tensors) {
  std::vector<uint8_t> digest;
  put(digest, tableId);
  for (std::span<const uint8_t> t : tensors)
    put(digest, checksum(t));
  return checksum(digest);
}

std::string defaultParameterPath(const std::string &artifact) {
  return std::filesystem::path(artifact).replace_extension(".params").string();
}

Expected<ParameterFile> openParameterFile(const std::string &path, FileMemory memory,
                                          uint64_t id, uint64_t dataSize) {
  auto fail = [&](const std::string &what) { return Error(path + ": " + what); };
  Expected<std::shared_ptr<MappedFile>> file = MappedFile::open(path, memory);
  if (!file)
    return file.error();
  std::span<const uint8_t> bytes = (*file)->bytes();
  ParameterHeader h;
  if (bytes.size() < sizeof h)
    return fail(fmt::format("not a Lathe parameter file: {} bytes is shorter than the "
                            "64-byte header",
                            bytes.size()));
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, kParameterMagic, sizeof kParameterMagic) != 0)
    return fail("not a Lathe parameter file (bad magic number)");
  if (h.version != kParameterVersion)
    return fail(fmt::format("parameter file version {} is not supported (this runtime reads "
                            "version {}); pack it again with this lathe-pack",
                            h.version, kParameterVersion));
  if (h.headerSize != sizeof h || h.dataOffset < sizeof h || h.dataOffset % kSectionAlignment ||
      h.reserved[0] || h.reserved[1])
    return fail("corrupt: the header is malformed");
  if (h.parameterId != id)
    return fail("holds the weights of another model or build (its parameter id does not "
                "match the artifact's tensors): pack it for this artifact with lathe-pack");
  if (h.dataSize != dataSize)
    return fail(fmt::format("holds {} bytes of weights, the artifact needs {}", h.dataSize,
                            dataSize));
  if (h.dataOffset > bytes.size() || bytes.size() - h.dataOffset != h.dataSize)
    return fail(fmt::format("truncated or corrupt: the header describes {} bytes, the file "
                            "has {}",
                            h.dataOffset + h.dataSize, bytes.size()));
  for (uint64_t i = sizeof h; i < h.dataOffset; ++i)
    if (bytes[i] != 0)
      return fail("corrupt: non-zero bytes in the padding before the weights");
  std::span<const uint8_t> data = bytes.subspan(h.dataOffset, h.dataSize);
  if (checksum(data) != h.dataChecksum)
    return fail("corrupt: the weights' checksum does not match");
  return ParameterFile{file.take(), data};
}

Status writeParameterFile(const std::string &path, uint64_t id, uint64_t dataSize,
                          const std::function<Status(std::span<uint8_t>)> &fill) {
  if (dataSize > (uint64_t(1) << 48))
    return Error(fmt::format("{}: {} bytes of weights is more than a parameter file holds",
                             path, dataSize));
  // A name of this process's own: two packs to one output do not collide.
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  auto failErrno = [&](const std::string &what, int error) {
    return Error(fmt::format("{}: cannot {}: {}", path, what, std::strerror(error)));
  };
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Error(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  const uint64_t size = sizeof(ParameterHeader) + dataSize;
  void *map = MAP_FAILED;
  Status result = Status::ok();
  // Blocks allocated up front: a full disk is an error here, not a SIGBUS
  // while the mapping is filled.
  if (int error = ::posix_fallocate(fd, 0, off_t(size)); error != 0)
    result = failErrno("allocate " + std::to_string(size) + " bytes", error);
  else if (map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
           map == MAP_FAILED)
    result = failErrno("map the file", errno);
  if (result) {
    auto *base = static_cast<uint8_t *>(map);
    std::span<uint8_t> data(base + sizeof(ParameterHeader), dataSize);
    try {
      result = fill(data);
    } catch (const std::exception &e) {
      result = Error(path + ": " + e.what());
    }
    if (result) {
      ParameterHeader h{};
      std::memcpy(h.magic, kParameterMagic, sizeof kParameterMagic);
      h.version = kParameterVersion;
      h.headerSize = sizeof h;
      h.parameterId = id;
      h.dataOffset = sizeof h;
      h.dataSize = dataSize;
      h.dataChecksum = checksum(data);
      std::memcpy(base, &h, sizeof h);
      if (::msync(map, size, MS_SYNC) != 0)
        result = failErrno("write", errno);
    }
  }
  if (map != MAP_FAILED)
    ::munmap(map, size);
  if (::close(fd) != 0 && result)
    result = failErrno("write", errno);
  if (result && std::rename(tmp.c_str(), path.c_str()) != 0)
    result = failErrno("write", errno);
  if (!result)
    std::remove(tmp.c_str());
  return result;
}

} // namespace lathe::artifact
