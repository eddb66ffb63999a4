#include "runtime/speculative/DrafterState.h"

#include "runtime/artifact/FileHeader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

namespace lathe::speculative {

namespace {

constexpr char kMagic[8] = {'L', 'T', 'H', 'D', 'R', 'F', 'T', '1'};
constexpr uint32_t kVersion = 1;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t buckets;
  int64_t vocab;
  int32_t k;
  uint32_t reserved;
  uint64_t pairs;        // pair-table slots stored (the occupied ones)
  uint64_t payloadBytes; // everything between the header and the checksum
};
static_assert(sizeof(Header) == 48, "the header layout is part of the format");

/// One stored pair slot: its index, its tag (the pair), then k ids and k
/// probabilities.
struct PairHead {
  uint32_t slot;
  uint32_t zero;
  uint64_t tag;
};
static_assert(sizeof(PairHead) == 16, "the pair layout is part of the format");

template <class T> void put(std::vector<uint8_t> &out, const T *values, size_t count) {
  const auto *p = reinterpret_cast<const uint8_t *>(values);
  out.insert(out.end(), p, p + count * sizeof(T));
}

/// Reads values one after another from a buffer whose size was checked.
struct Reader {
  const uint8_t *p;
  template <class T> void get(T *values, size_t count) {
    std::memcpy(values, p, count * sizeof(T));
    p += count * sizeof(T);
  }
};

Status writeFile(const std::string &path, const std::vector<uint8_t> &bytes) {
  // Through a temporary file of its own in the same folder, renamed over
  // the old file: a reader never sees half a file, a failed write leaves
  // the old one, and two writers never share a temporary.
  std::string temporary = path + ".XXXXXX";
  const int fd = ::mkstemp(temporary.data());
  if (fd < 0)
    return Error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      const std::string reason = n < 0 ? std::strerror(errno) : "nothing written";
      ::close(fd);
      std::remove(temporary.c_str());
      return Error(fmt::format("cannot write {}: {}", temporary, reason));
    }
    done += size_t(n);
  }
  if (::close(fd) != 0 || std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temporary.c_str());
    return Error(fmt::format("cannot write {}: {}", path, reason));
  }
  return Status::ok();
}

} // namespace

/// The one place that sees the drafter's and the table's insides.
struct DrafterStateAccess {
  static Status write(const TreeDrafter &d, const std::string &path) {
    const TokenRecycling &r = d.recycling_;
    const size_t k = size_t(r.k_);
    std::vector<uint8_t> payload;
    const std::vector<int32_t> none(k, -1);
    const std::vector<float> zeros(k, 0.0f);
    for (int64_t token = 0; token < r.vocab_; ++token) {
      const bool written = r.rows_.written(size_t(token));
      put(payload, written ? r.rows_.ids(size_t(token)) : none.data(), k);
      put(payload, written ? r.rows_.probabilities(size_t(token)) : zeros.data(), k);
    }
    uint64_t pairs = 0;
    for (size_t slot = 0; slot < TokenRecycling::kPairSlots; ++slot) {
      if (!r.pairs_.written(slot))
        continue;
      const PairHead head{uint32_t(slot), 0, r.pairs_.tag(slot)};
      put(payload, &head, 1);
      put(payload, r.pairs_.ids(slot), k);
      put(payload, r.pairs_.probabilities(slot), k);
      ++pairs;
    }
    put(payload, d.drafted_.data(), d.drafted_.size());
    put(payload, d.accepted_.data(), d.accepted_.size());
    Header h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.version = kVersion;
    h.buckets = uint32_t(d.drafted_.size());
    h.vocab = r.vocab_;
    h.k = r.k_;
    h.pairs = pairs;
    h.payloadBytes = payload.size();
    std::vector<uint8_t> file(sizeof h);
    std::memcpy(file.data(), &h, sizeof h);
    file.insert(file.end(), payload.begin(), payload.end());
    const uint64_t sum = artifact::checksum(file);
    put(file, &sum, 1);
    return writeFile(path, file);
  }

  static Expected<bool> read(const std::string &path, TreeDrafter &d) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      return Error(fmt::format("cannot read {}: it is a directory", path));
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (errno == ENOENT)
        return false;
      return Error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    // The header first: its sizes say how long the file must be, so a
    // wrong path (an artifact, a device) is refused without reading it.
    std::vector<uint8_t> file(sizeof(Header));
    in.read(reinterpret_cast<char *>(file.data()), std::streamsize(file.size()));
    file.resize(size_t(in.gcount()));
    const Expected<uint64_t> length = expectedLength(file, path, d);
    if (!length)
      return length.error();
    const uint64_t size = std::filesystem::file_size(path, ec);
    if (ec || size != *length)
      return Error(fmt::format("{}: damaged or cut short (its sizes do not add up to its "
                               "length)",
                               path));
    file.resize(size_t(size));
    in.read(reinterpret_cast<char *>(file.data() + sizeof(Header)),
            std::streamsize(size - sizeof(Header)));
    if (uint64_t(in.gcount()) != size - sizeof(Header))
      return Error(fmt::format("cannot read {}: {}", path,
                               in.bad() ? std::strerror(errno) : "it ended early"));
    if (Status s = decode(file, path, d); !s)
      return s.error();
    return true;
  }

  /// The file's length as its header says (`head`: its first bytes), or
  /// the error of a header that is not a state of this build.
  static Expected<uint64_t> expectedLength(const std::vector<uint8_t> &head,
                                           const std::string &path, const TreeDrafter &d) {
    Header h{};
    if (head.size() < sizeof h || std::memcmp(head.data(), kMagic, sizeof kMagic) != 0)
      return Error(fmt::format("{}: not a drafter state file (as lathe-run --draft-state "
                               "writes)",
                               path));
    std::memcpy(&h, head.data(), sizeof h);
    if (h.version != kVersion)
      return Error(fmt::format("{}: drafter state version {}; this build reads version {}",
                               path, h.version, kVersion));
    if (h.buckets != d.drafted_.size())
      return Error(fmt::format("{}: written by a build with {} kinds of draft, this one has {}",
                               path, h.buckets, d.drafted_.size()));
    // Each size bounded before it is multiplied.
    if (!(h.vocab > 0 && h.vocab <= (int64_t{1} << 31) && h.k > 0 && h.k <= 1024 &&
          h.pairs <= TokenRecycling::kPairSlots))
      return Error(fmt::format("{}: damaged (sizes out of range)", path));
    const uint64_t k = uint64_t(h.k);
    const uint64_t payload = uint64_t(h.vocab) * k * 8 + h.pairs * (sizeof(PairHead) + 8 * k) +
                             uint64_t(h.buckets) * 16;
    if (h.payloadBytes != payload)
      return Error(fmt::format("{}: damaged (sizes out of range)", path));
    return sizeof h + payload + sizeof(uint64_t);
  }

  /// Checks every part of `file` before anything of `d` changes.
  static Status decode(const std::vector<uint8_t> &file, const std::string &path,
                       TreeDrafter &d) {
    const Expected<uint64_t> length = expectedLength(file, path, d);
    if (!length)
      return length.error();
    if (file.size() != *length)
      return Error(fmt::format("{}: damaged or cut short (its sizes do not add up to its "
                               "length)",
                               path));
    Header h{};
    std::memcpy(&h, file.data(), sizeof h);
    TokenRecycling &r = d.recycling_;
    const uint64_t k = uint64_t(h.k);
    uint64_t stored;
    std::memcpy(&stored, file.data() + file.size() - sizeof stored, sizeof stored);
    if (artifact::checksum({file.data(), file.size() - sizeof stored}) != stored)
      return Error(fmt::format("{}: damaged (checksum mismatch)", path));
    if (h.vocab != r.vocab_)
      return Error(fmt::format("{}: drafter state of a {}-token vocabulary; this model has {}",
                               path, h.vocab, r.vocab_));

    // Read into fresh tables of the drafter's own width: each row keeps
    // its best min(file's k, ours) successors, the rest unknown.
    const size_t ours = size_t(r.k_), keep = std::min(size_t(k), ours);
    auto damaged = [&](const char *what) {
      return Error(fmt::format("{}: damaged ({})", path, what));
    };
    auto idOk = [&](int32_t id) { return id >= -1 && id < h.vocab; };
    auto probabilityOk = [](float p) { return p >= 0.0f && p <= 1.0f; };
    Reader reader{file.data() + sizeof h};
    std::vector<int32_t> ids(static_cast<size_t>(k));
    std::vector<float> ps(static_cast<size_t>(k));
    TokenRecycling fresh(r.vocab_, r.k_);
    for (int64_t token = 0; token < h.vocab; ++token) {
      reader.get(ids.data(), ids.size());
      reader.get(ps.data(), ps.size());
      if (!std::all_of(ids.begin(), ids.end(), idOk) ||
          !std::all_of(ps.begin(), ps.end(), probabilityOk))
        return damaged("a successor outside the vocabulary or a probability outside [0, 1]");
      if (ids[0] >= 0) // a row never written reads as unknown either way
        fresh.setRow(int32_t(token), std::span(ids).first(keep), std::span(ps).first(keep));
    }
    int64_t lastSlot = -1;
    for (uint64_t i = 0; i < h.pairs; ++i) {
      PairHead head;
      reader.get(&head, 1);
      reader.get(ids.data(), ids.size());
      reader.get(ps.data(), ps.size());
      const int32_t previous = int32_t(head.tag >> 32), token = int32_t(head.tag & 0xFFFFFFFFu);
      // The slots ascending, each holding a pair of ids that hashes to it
      // (else no lookup would ever reach it).
      if (int64_t(head.slot) <= lastSlot || head.slot >= TokenRecycling::kPairSlots ||
          head.zero != 0 || previous < 0 || previous >= h.vocab || token < 0 ||
          token >= h.vocab || r.pairSlot(previous, token) != head.slot)
        return damaged("a pair slot out of order, or not the slot of its pair");
      if (!std::all_of(ids.begin(), ids.end(), idOk) ||
          !std::all_of(ps.begin(), ps.end(), probabilityOk))
        return damaged("a successor outside the vocabulary or a probability outside [0, 1]");
      lastSlot = head.slot;
      fresh.setPairRow(head.slot, head.tag, std::span(ids).first(keep), std::span(ps).first(keep));
    }
    std::vector<double> drafted(h.buckets), accepted(h.buckets);
    reader.get(drafted.data(), drafted.size());
    reader.get(accepted.data(), accepted.size());
    for (size_t b = 0; b < drafted.size(); ++b)
      if (!(drafted[b] >= 0 && accepted[b] >= 0 && accepted[b] <= drafted[b] &&
            drafted[b] < 1e300))
        return damaged("acceptance counts out of range");

    r = std::move(fresh);
    d.drafted_ = std::move(drafted);
    d.accepted_ = std::move(accepted);
    return Status::ok();
  }
};

Status writeDrafterState(const TreeDrafter &drafter, const std::string &path) {
  return DrafterStateAccess::write(drafter, path);
}

Expected<bool> readDrafterState(const std::string &path, TreeDrafter &drafter) {
  return DrafterStateAccess::read(path, drafter);
}

} // namespace lathe::speculative
