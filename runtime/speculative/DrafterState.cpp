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
  uint64_t pairSlots;
  uint64_t payloadBytes; // everything between the header and the checksum
};
static_assert(sizeof(Header) == 48, "the header layout is part of the format");

template <class T> void put(std::vector<uint8_t> &out, const std::vector<T> &values) {
  const auto *p = reinterpret_cast<const uint8_t *>(values.data());
  out.insert(out.end(), p, p + values.size() * sizeof(T));
}

/// Reads values one after another from a checked buffer.
struct Reader {
  const uint8_t *p;
  template <class T> void get(T *values, size_t count) {
    std::memcpy(values, p, count * sizeof(T));
    p += count * sizeof(T);
  }
};

} // namespace

/// The one place that sees the drafter's and the table's insides.
struct DrafterStateAccess {
  static Status write(const TreeDrafter &d, const std::string &path) {
    const TokenRecycling &r = d.recycling_;
    std::vector<uint8_t> payload;
    put(payload, r.table_);
    put(payload, r.probabilities_);
    put(payload, r.pairTags_);
    put(payload, r.pairIds_);
    put(payload, r.pairProbabilities_);
    put(payload, d.drafted_);
    put(payload, d.accepted_);
    Header h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.version = kVersion;
    h.buckets = uint32_t(d.drafted_.size());
    h.vocab = r.vocab_;
    h.k = r.k_;
    h.pairSlots = TokenRecycling::kPairSlots;
    h.payloadBytes = payload.size();
    std::vector<uint8_t> file(sizeof h);
    std::memcpy(file.data(), &h, sizeof h);
    file.insert(file.end(), payload.begin(), payload.end());
    const uint64_t sum = artifact::checksum(file);
    file.resize(file.size() + sizeof sum);
    std::memcpy(file.data() + file.size() - sizeof sum, &sum, sizeof sum);

    const std::string temporary = path + ".tmp";
    {
      std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
      if (out)
        out.write(reinterpret_cast<const char *>(file.data()), std::streamsize(file.size()));
      if (out)
        out.flush();
      if (!out) {
        const std::string reason = std::strerror(errno);
        std::remove(temporary.c_str());
        return Error(fmt::format("cannot write {}: {}", temporary, reason));
      }
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
      const std::string reason = std::strerror(errno);
      std::remove(temporary.c_str());
      return Error(fmt::format("cannot write {}: {}", path, reason));
    }
    return Status::ok();
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
    const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    if (in.bad())
      return Error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    Header h{};
    if (file.size() < sizeof h || std::memcmp(file.data(), kMagic, sizeof kMagic) != 0)
      return Error(fmt::format("{}: not a drafter state file (as lathe-run --draft-state "
                               "writes)",
                               path));
    std::memcpy(&h, file.data(), sizeof h);
    if (h.version != kVersion)
      return Error(fmt::format("{}: drafter state version {}; this build reads version {}",
                               path, h.version, kVersion));
    TokenRecycling &r = d.recycling_;
    // Sizes from the header, each checked before it is multiplied.
    const bool shapeOk = h.vocab > 0 && h.vocab <= (int64_t{1} << 31) && h.k > 0 &&
                         h.k <= 1024 && h.pairSlots == TokenRecycling::kPairSlots &&
                         h.buckets == d.drafted_.size();
    const uint64_t rows = shapeOk ? uint64_t(h.vocab) * uint64_t(h.k) : 0;
    const uint64_t pairRows = shapeOk ? h.pairSlots * uint64_t(h.k) : 0;
    const uint64_t expected = rows * 8 + h.pairSlots * 8 + pairRows * 8 + uint64_t(h.buckets) * 16;
    if (!shapeOk || h.payloadBytes != expected ||
        file.size() != sizeof h + expected + sizeof(uint64_t))
      return Error(fmt::format("{}: damaged or cut short (its sizes do not add up to its "
                               "length)",
                               path));
    uint64_t stored;
    std::memcpy(&stored, file.data() + file.size() - sizeof stored, sizeof stored);
    if (artifact::checksum({file.data(), file.size() - sizeof stored}) != stored)
      return Error(fmt::format("{}: damaged (checksum mismatch)", path));
    if (h.vocab != r.vocab_)
      return Error(fmt::format("{}: drafter state of a {}-token vocabulary; this model has {}",
                               path, h.vocab, r.vocab_));

    Reader reader{file.data() + sizeof h};
    const size_t k = size_t(h.k), ours = size_t(r.k_), keep = std::min(k, ours);
    std::vector<int32_t> ids(static_cast<size_t>(rows));
    std::vector<float> ps(static_cast<size_t>(rows));
    reader.get(ids.data(), ids.size());
    reader.get(ps.data(), ps.size());
    std::vector<uint64_t> tags(h.pairSlots);
    reader.get(tags.data(), tags.size());
    std::vector<int32_t> pairIds(h.pairSlots * k);
    std::vector<float> pairPs(h.pairSlots * k);
    reader.get(pairIds.data(), pairIds.size());
    reader.get(pairPs.data(), pairPs.size());
    std::vector<double> drafted(h.buckets), accepted(h.buckets);
    reader.get(drafted.data(), drafted.size());
    reader.get(accepted.data(), accepted.size());
    // An id outside the vocabulary would be drafted as a token: refuse the
    // file rather than check every draft.
    auto idsValid = [&](const std::vector<int32_t> &v) {
      return std::all_of(v.begin(), v.end(), [&](int32_t id) { return id >= -1 && id < h.vocab; });
    };
    auto probabilitiesValid = [](const std::vector<float> &v) {
      return std::all_of(v.begin(), v.end(), [](float p) { return p >= 0.0f && p <= 1.0f; });
    };
    auto countsValid = [&] {
      for (size_t b = 0; b < drafted.size(); ++b)
        if (!(drafted[b] >= 0 && accepted[b] >= 0 && accepted[b] <= drafted[b]))
          return false;
      return true;
    };
    if (!idsValid(ids) || !idsValid(pairIds) || !probabilitiesValid(ps) ||
        !probabilitiesValid(pairPs) || !countsValid())
      return Error(fmt::format("{}: damaged (a successor outside the vocabulary, or a "
                               "probability or acceptance count out of range)",
                               path));

    // Rows of the file's k successors into rows of the table's own width:
    // each keeps its best min(k, ours), the rest unknown.
    auto narrow = [&](const std::vector<int32_t> &fromIds, const std::vector<float> &fromPs,
                      size_t count, std::vector<int32_t> &toIds, std::vector<float> &toPs) {
      std::fill(toIds.begin(), toIds.end(), -1);
      std::fill(toPs.begin(), toPs.end(), 0.0f);
      for (size_t row = 0; row < count; ++row) {
        std::copy_n(fromIds.begin() + row * k, keep, toIds.begin() + row * ours);
        std::copy_n(fromPs.begin() + row * k, keep, toPs.begin() + row * ours);
      }
    };
    narrow(ids, ps, size_t(h.vocab), r.table_, r.probabilities_);
    narrow(pairIds, pairPs, h.pairSlots, r.pairIds_, r.pairProbabilities_);
    r.pairTags_ = std::move(tags);
    d.drafted_ = std::move(drafted);
    d.accepted_ = std::move(accepted);
    return true;
  }
};

Status writeDrafterState(const TreeDrafter &drafter, const std::string &path) {
  return DrafterStateAccess::write(drafter, path);
}

Expected<bool> readDrafterState(const std::string &path, TreeDrafter &drafter) {
  return DrafterStateAccess::read(path, drafter);
}

} // namespace lathe::speculative
