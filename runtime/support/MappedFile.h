// A whole file's bytes in memory, read-only. Model checkpoints are mapped
// (never copied); artifacts that a session runs may instead be read into
// anonymous memory backed by transparent huge pages: a decode step streams
// every weight, and with 4 KiB pages of a mapped file the TLB misses cost
// a third of the read bandwidth (docs/benchmarks.md).
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lathe {

/// How MappedFile holds a file.
enum class FileMemory {
  /// mmap of the file: nothing is copied, pages are shared with the page
  /// cache and other processes.
  Mapped,
  /// A copy in 2 MiB-aligned anonymous memory with MADV_HUGEPAGE (where the
  /// kernel grants huge pages: transparent_hugepage set to madvise or
  /// always), then made read-only.
  HugePages,
};

class MappedFile {
public:
  /// Maps or reads `path` read-only. Fails with a message naming the path
  /// when the file cannot be opened, mapped or read, or memory runs out. An
  /// empty file gives an empty span.
  static Expected<std::shared_ptr<MappedFile>> open(const std::string &path,
                                                    FileMemory memory = FileMemory::Mapped);

  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

private:
  MappedFile(std::string path, const uint8_t *data, size_t size, void *mapping,
             size_t mappingSize)
      : path_(std::move(path)), data_(data), size_(size), mapping_(mapping),
        mappingSize_(mappingSize) {}

  std::string path_;
  const uint8_t *data_;
  size_t size_;
  void *mapping_;      // what munmap releases (null for an empty file)
  size_t mappingSize_;
};

/// The whole file as a string (calibration text, perplexity corpora), with
/// the same messages as MappedFile::open.
Expected<std::string> readTextFile(const std::string &path);

} // namespace lathe
