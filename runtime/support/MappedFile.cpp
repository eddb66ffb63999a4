#include "runtime/support/MappedFile.h"

#include "runtime/support/HugePages.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lathe {
namespace {

/// Reads the `size` bytes of `fd` into fresh huge-page memory, then makes
/// it read-only.
Expected<HugePageRegion> readIntoHugePages(int fd, size_t size, const std::string &path) {
  const HugePageRegion region = mapHugePages(size);
  if (!region.data)
    return Error(path + ": cannot allocate " + std::to_string(size) +
                 " bytes to load it: " + std::strerror(errno));
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, region.data + done, size - done,
                              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      std::string msg = path + ": cannot read: " +
                        (n < 0 ? std::strerror(errno) : "the file shrank while being read");
      unmapHugePages(region);
      return Error(msg);
    }
    done += static_cast<size_t>(n);
  }
  ::mprotect(region.data, region.length, PROT_READ);
  return region;
}

} // namespace

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string &path,
                                                       FileMemory memory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string msg = path + ": cannot stat: " + std::strerror(errno);
    ::close(fd);
    return Error(msg);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error(path + ": not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::shared_ptr<MappedFile>(new MappedFile(path, nullptr, 0, nullptr, 0));
  }
  if (memory == FileMemory::Mapped) {
    void *p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string msg = path + ": cannot map: " + std::strerror(errno);
      ::close(fd);
      return Error(msg);
    }
    ::close(fd);
    return std::shared_ptr<MappedFile>(
        new MappedFile(path, static_cast<const uint8_t *>(p), size, p, size));
  }
  auto copy = readIntoHugePages(fd, size, path);
  ::close(fd);
  if (!copy)
    return copy.error();
  return std::shared_ptr<MappedFile>(
      new MappedFile(path, copy->data, size, copy->data, copy->length));
}

Expected<std::string> readTextFile(const std::string &path) {
  auto file = MappedFile::open(path);
  if (!file)
    return file.error();
  std::span<const uint8_t> bytes = (*file)->bytes();
  return std::string(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

MappedFile::~MappedFile() {
  if (mapping_)
    ::munmap(mapping_, mappingSize_);
}

} // namespace lathe
