#include "codegen/HLS/HlsPragmas.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

namespace lathe::hls {
namespace {

using Words = std::string_view;

// Options and flags per pragma, from each pragma's "Syntax" section of
// UG1399. Old spellings Vitis still accepts (`ARRAY_PARTITION ... complete`,
// `INTERFACE m_axi port=...`, `DEPENDENCE ... inter RAW true`) are flags.
constexpr Words kAggregateOptions[] = {"variable", "compact"};
constexpr Words kAliasOptions[] = {"ports", "distance", "offset"};
constexpr Words kAllocationOptions[] = {"instances", "limit"};
constexpr Words kAllocationFlags[] = {"function", "operation"};
constexpr Words kArrayOptions[] = {"variable", "type", "factor", "dim"};
constexpr Words kArrayPartitionFlags[] = {"off", "complete", "cyclic", "block"};
constexpr Words kArrayReshapeFlags[] = {"off", "complete", "cyclic", "block", "object"};
constexpr Words kBindOpOptions[] = {"variable", "op", "impl", "latency"};
constexpr Words kBindStorageOptions[] = {"variable", "type", "impl", "latency"};
constexpr Words kCacheOptions[] = {"port",  "lines", "depth",     "ways",
                                   "users", "burst", "write_mode"};
constexpr Words kDataflowFlags[] = {"disable_start_propagation"};
constexpr Words kDependenceOptions[] = {"variable",  "class",    "type",
                                        "direction", "distance", "dependent"};
constexpr Words kDependenceFlags[] = {"array", "pointer", "intra", "inter", "raw",
                                      "war",   "waw",     "true",  "false"};
constexpr Words kVariableOption[] = {"variable"};
constexpr Words kOffFlag[] = {"off"};
constexpr Words kInlineFlags[] = {"off", "recursive"};
// clang-format off
constexpr Words kInterfaceOptions[] = {
    "mode", "port", "bundle", "register_mode", "depth", "offset", "latency", "clock", "name",
    "storage_impl", "storage_type", "num_read_outstanding", "num_write_outstanding",
    "max_read_burst_length", "max_write_burst_length", "max_widen_bitwidth", "channel",
    "interrupt"};
// clang-format on
constexpr Words kInterfaceFlags[] = {"register",     "ap_none",    "ap_vld",        "ap_ack",
                                     "ap_hs",        "ap_ovld",    "ap_fifo",       "ap_memory",
                                     "bram",         "axis",       "s_axilite",     "m_axi",
                                     "ap_ctrl_none", "ap_ctrl_hs", "ap_ctrl_chain", "ap_stable"};
constexpr Words kLatencyOptions[] = {"min", "max"};
constexpr Words kLoopMergeFlags[] = {"force"};
constexpr Words kTripcountOptions[] = {"min", "max", "avg"};
constexpr Words kOccurrenceOptions[] = {"cycle"};
constexpr Words kPerformanceOptions[] = {"target_ti", "target_tl", "unit"};
constexpr Words kPipelineOptions[] = {"II", "style"};
constexpr Words kPipelineFlags[] = {"off", "rewind", "enable_flush"};
constexpr Words kProtocolOptions[] = {"mode"};
constexpr Words kProtocolFlags[] = {"floating", "fixed"};
constexpr Words kResetOptions[] = {"variable"};
constexpr Words kStreamOptions[] = {"variable", "depth", "type"};
constexpr Words kTopOptions[] = {"name"};
constexpr Words kUnrollOptions[] = {"factor"};
constexpr Words kUnrollFlags[] = {"region", "skip_exit_check", "off"};

// Options whose value is one word of a fixed set.
constexpr Words kInterfaceModes[] = {"ap_none",    "ap_vld",        "ap_ack",    "ap_hs",
                                     "ap_ovld",    "ap_fifo",       "ap_memory", "bram",
                                     "axis",       "s_axilite",     "m_axi",     "ap_ctrl_none",
                                     "ap_ctrl_hs", "ap_ctrl_chain", "ap_stable"};
constexpr OptionValues kInterfaceValues[] = {{"mode", kInterfaceModes}};
constexpr Words kPartitionTypes[] = {"cyclic", "block", "complete"};
constexpr OptionValues kArrayValues[] = {{"type", kPartitionTypes}};
constexpr Words kStreamTypes[] = {"fifo", "pipo", "shared", "unsync"};
constexpr OptionValues kStreamValues[] = {{"type", kStreamTypes}};
constexpr Words kPipelineStyles[] = {"stp", "frp", "flp"};
constexpr OptionValues kPipelineValues[] = {{"style", kPipelineStyles}};
constexpr Words kDependenceClasses[] = {"array", "pointer"};
constexpr Words kDependenceTypes[] = {"intra", "inter"};
constexpr Words kDependenceDirections[] = {"raw", "war", "waw"};
constexpr Words kBooleans[] = {"true", "false"};
constexpr OptionValues kDependenceValues[] = {{"class", kDependenceClasses},
                                              {"type", kDependenceTypes},
                                              {"direction", kDependenceDirections},
                                              {"dependent", kBooleans}};
constexpr Words kCompactModes[] = {"none", "bit", "byte", "auto"};
constexpr OptionValues kAggregateValues[] = {{"compact", kCompactModes}};
constexpr Words kProtocolModes[] = {"floating", "fixed"};
constexpr OptionValues kProtocolValues[] = {{"mode", kProtocolModes}};

constexpr PragmaSpec kTable[] = {
    {"AGGREGATE", kAggregateOptions, {}, kAggregateValues},
    {"ALIAS", kAliasOptions, {}},
    {"ALLOCATION", kAllocationOptions, kAllocationFlags},
    {"ARRAY_PARTITION", kArrayOptions, kArrayPartitionFlags, kArrayValues},
    {"ARRAY_RESHAPE", kArrayOptions, kArrayReshapeFlags, kArrayValues},
    {"BIND_OP", kBindOpOptions, {}},
    {"BIND_STORAGE", kBindStorageOptions, {}},
    {"CACHE", kCacheOptions, {}},
    {"DATAFLOW", {}, kDataflowFlags},
    {"DEPENDENCE", kDependenceOptions, kDependenceFlags, kDependenceValues},
    {"DISAGGREGATE", kVariableOption, {}},
    {"EXPRESSION_BALANCE", {}, kOffFlag},
    {"FUNCTION_INSTANTIATE", kVariableOption, {}},
    {"INLINE", {}, kInlineFlags},
    {"INTERFACE", kInterfaceOptions, kInterfaceFlags, kInterfaceValues},
    {"LATENCY", kLatencyOptions, {}},
    {"LOOP_FLATTEN", {}, kOffFlag},
    {"LOOP_MERGE", {}, kLoopMergeFlags},
    {"LOOP_TRIPCOUNT", kTripcountOptions, {}},
    {"OCCURRENCE", kOccurrenceOptions, kOffFlag},
    {"PERFORMANCE", kPerformanceOptions, {}},
    {"PIPELINE", kPipelineOptions, kPipelineFlags, kPipelineValues},
    {"PROTOCOL", kProtocolOptions, kProtocolFlags, kProtocolValues},
    {"RESET", kResetOptions, kOffFlag},
    {"SHARED", kVariableOption, {}},
    {"STABLE", kVariableOption, {}},
    {"STREAM", kStreamOptions, kOffFlag, kStreamValues},
    {"TOP", kTopOptions, {}},
    {"UNROLL", kUnrollOptions, kUnrollFlags},
};

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool contains(std::span<const std::string_view> words, std::string_view word) {
  return std::any_of(words.begin(), words.end(),
                     [&](std::string_view w) { return equalsIgnoringCase(w, word); });
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

template <typename Range> std::string closest(const Range &candidates, std::string_view word) {
  std::string best;
  size_t bestDistance = 3;
  for (std::string_view candidate : candidates) {
    size_t distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      bestDistance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

} // namespace

std::span<const PragmaSpec> pragmaTable() { return kTable; }

const PragmaSpec *findPragma(std::string_view keyword) {
  for (const PragmaSpec &spec : kTable)
    if (equalsIgnoringCase(spec.keyword, keyword))
      return &spec;
  return nullptr;
}

bool takesOption(const PragmaSpec &spec, std::string_view key) {
  return contains(spec.options, key);
}

bool takesFlag(const PragmaSpec &spec, std::string_view flag) { return contains(spec.flags, flag); }

std::span<const std::string_view> optionValues(const PragmaSpec &spec, std::string_view option) {
  for (const OptionValues &entry : spec.values)
    if (equalsIgnoringCase(entry.option, option))
      return entry.values;
  return {};
}

std::string closestWord(std::span<const std::string_view> words, std::string_view word) {
  return closest(words, word);
}

std::string closestKeyword(std::string_view word) {
  std::vector<std::string_view> keywords;
  for (const PragmaSpec &spec : kTable)
    keywords.push_back(spec.keyword);
  return closest(keywords, word);
}

std::string closestOption(const PragmaSpec &spec, std::string_view word) {
  std::vector<std::string_view> words(spec.options.begin(), spec.options.end());
  words.insert(words.end(), spec.flags.begin(), spec.flags.end());
  return closest(words, word);
}

std::optional<HlsTool> parseHlsTool(std::string_view name) {
  if (name == "2020.2")
    return HlsTool::Vitis2020_2;
  if (name == "2023.2")
    return HlsTool::Vitis2023_2;
  return std::nullopt;
}

namespace {

/// How 2020.2 (and 2021.x) spell an option that names a kind: as the bare
/// word, first or right after another option, as UG1399 v2020.2's syntax
/// lines write them. 2022.1 and later write `key=value` like any option
/// (and still accept these).
struct BareKind {
  std::string_view keyword, option, after; // after "": the first word
};
constexpr BareKind k2020Kinds[] = {
    {"INTERFACE", "mode", ""},                  // INTERFACE m_axi port=a ...
    {"ARRAY_PARTITION", "type", "variable"},    // ARRAY_PARTITION variable=a complete dim=1
    {"ARRAY_RESHAPE", "type", "variable"},      // ARRAY_RESHAPE variable=a cyclic factor=2
};

const BareKind *bareKind(const PragmaSpec &spec, std::string_view option, HlsTool tool) {
  if (tool != HlsTool::Vitis2020_2)
    return nullptr;
  for (const BareKind &k : k2020Kinds)
    if (k.keyword == spec.keyword && k.option == option)
      return &k;
  return nullptr;
}

} // namespace

std::string spellPragma(std::string_view keyword,
                        std::span<const std::pair<std::string_view, std::string>> options,
                        HlsTool tool) {
  const PragmaSpec *spec = findPragma(keyword);
  if (!spec)
    return "";
  std::vector<std::pair<std::string_view, std::string>> words; // option, its spelling
  const BareKind *bare = nullptr;
  std::string bareWord;
  for (const auto &[key, value] : options) {
    if (!takesOption(*spec, key) || value.empty())
      return "";
    const std::span<const std::string_view> values = optionValues(*spec, key);
    if (!values.empty() && std::find(values.begin(), values.end(), value) == values.end())
      return "";
    if (const BareKind *k = bareKind(*spec, key, tool); k && takesFlag(*spec, value)) {
      bare = k;
      bareWord = value;
      continue;
    }
    words.emplace_back(key, std::string(key) + "=" + value);
  }
  if (bare) {
    auto at = words.begin();
    if (!bare->after.empty()) {
      at = std::find_if(words.begin(), words.end(),
                        [&](const auto &w) { return w.first == bare->after; });
      if (at != words.end())
        ++at;
    }
    words.insert(at, {bare->option, bareWord});
  }
  std::string out = "#pragma HLS " + std::string(spec->keyword);
  for (const auto &w : words)
    out += " " + w.second;
  return out;
}

} // namespace lathe::hls
