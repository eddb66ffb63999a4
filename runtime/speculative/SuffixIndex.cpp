#include "runtime/speculative/SuffixIndex.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace lathe::speculative {

SuffixIndex::SuffixIndex(int64_t capacity) : capacity_(std::max<int64_t>(capacity, 1)) {}

void SuffixIndex::add(std::span<const int32_t> text) {
  ++added_;
  if (static_cast<int64_t>(text.size()) > capacity_)
    text = text.last(static_cast<size_t>(capacity_));
  if (held_ + static_cast<int64_t>(text.size()) > capacity_) {
    // Drop the oldest texts down to three quarters of the capacity (less
    // this text), then rebuild: each rebuild pays for many adds.
    std::vector<std::span<const int32_t>> kept = contents();
    int64_t keep = held_;
    size_t first = 0;
    while (first < kept.size() &&
           keep + static_cast<int64_t>(text.size()) > capacity_ * 3 / 4) {
      keep -= static_cast<int64_t>(kept[first].size());
      ++first;
    }
    std::vector<int32_t> tokens;
    std::vector<int64_t> starts;
    for (size_t i = first; i < kept.size(); ++i) {
      starts.push_back(static_cast<int64_t>(tokens.size()));
      tokens.insert(tokens.end(), kept[i].begin(), kept[i].end());
      tokens.push_back(-1);
    }
    tokens_ = std::move(tokens);
    starts_ = std::move(starts);
    held_ = keep;
    byPair_.clear();
    index(0);
  }
  const int64_t from = static_cast<int64_t>(tokens_.size());
  starts_.push_back(from);
  tokens_.insert(tokens_.end(), text.begin(), text.end());
  tokens_.push_back(-1);
  held_ += static_cast<int64_t>(text.size());
  index(from);
}

void SuffixIndex::index(int64_t from) {
  for (int64_t p = std::max<int64_t>(from, 0) + 2; p <= static_cast<int64_t>(tokens_.size()); ++p) {
    const int32_t a = tokens_[size_t(p - 2)], b = tokens_[size_t(p - 1)];
    if (a >= 0 && b >= 0)
      byPair_[tokenPairKey(a, b)].push_back(static_cast<int32_t>(p));
  }
}

std::vector<std::span<const int32_t>> SuffixIndex::contents() const {
  std::vector<std::span<const int32_t>> out;
  for (size_t i = 0; i < starts_.size(); ++i) {
    const int64_t end =
        i + 1 < starts_.size() ? starts_[i + 1] - 1 : static_cast<int64_t>(tokens_.size()) - 1;
    out.emplace_back(tokens_.data() + starts_[i], size_t(end - starts_[i]));
  }
  return out;
}

std::span<const int32_t> SuffixIndex::newest() const {
  if (starts_.empty())
    return {};
  // The last text runs to its separator, the last entry of tokens_.
  return {tokens_.data() + starts_.back(), tokens_.size() - 1 - size_t(starts_.back())};
}

void SuffixIndex::occurrences(std::span<const int32_t> suffix, int64_t length,
                              const std::function<bool(std::span<const int32_t>)> &visit) const {
  if (suffix.size() < 2 || length < 0)
    return;
  const auto it = byPair_.find(tokenPairKey(suffix[suffix.size() - 2], suffix.back()));
  if (it == byPair_.end())
    return;
  const std::vector<int32_t> &positions = it->second;
  const int64_t n = static_cast<int64_t>(suffix.size());
  int32_t scanned = 0;
  for (auto p = positions.rbegin(); p != positions.rend() && scanned < kMaxScan; ++p, ++scanned) {
    const int64_t end = *p;
    if (end < n || !std::equal(suffix.begin(), suffix.end(), tokens_.begin() + (end - n)))
      continue;
    int64_t stop = end;
    while (stop < static_cast<int64_t>(tokens_.size()) && stop - end < length &&
           tokens_[size_t(stop)] >= 0)
      ++stop;
    if (!visit(std::span<const int32_t>(tokens_.data() + end, size_t(stop - end))))
      return;
  }
}

Expected<std::vector<std::vector<int32_t>>> readTextsFile(const std::string &path, int64_t vocab) {
  std::vector<std::vector<int32_t>> texts;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return Error(fmt::format("cannot read {}: it is a directory", path));
  errno = 0;
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT)
      return texts;
    return Error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    std::vector<int32_t> text;
    const char *p = line.data(), *end = line.data() + line.size();
    while (true) {
      while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        ++p;
      if (p == end)
        break;
      int64_t id = -1;
      const auto [next, ec] = std::from_chars(p, end, id);
      if (ec != std::errc() || id < 0 || id >= vocab || (next < end && *next != ' ' &&
                                                         *next != '\t' && *next != '\r'))
        return Error(fmt::format("{}:{}: expected token ids below {} separated by spaces, got "
                                 "'{}'",
                                 path, number, vocab,
                                 std::string(p, std::find(p, end, ' '))));
      text.push_back(static_cast<int32_t>(id));
      p = next;
    }
    if (!text.empty())
      texts.push_back(std::move(text));
  }
  if (in.bad())
    return Error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  return texts;
}

Status appendTextToFile(const std::string &path, std::span<const int32_t> text) {
  // A file whose last line has no newline (written by hand, or cut short)
  // gets one first, so that the new text starts a line of its own instead
  // of gluing its first id onto the last one.
  bool endsInNewline = true;
  if (std::ifstream in(path, std::ios::binary | std::ios::ate); in && in.tellg() > 0) {
    in.seekg(-1, std::ios::end);
    endsInNewline = in.get() == '\n';
  }
  std::ofstream out(path, std::ios::app);
  if (!out)
    return Error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  std::string line;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i)
      line += ' ';
    line += std::to_string(text[i]);
  }
  if (!endsInNewline)
    out << '\n';
  out << line << '\n';
  out.flush();
  if (!out)
    return Error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  return Status::ok();
}

} // namespace lathe::speculative
