// The Vitis HLS pragmas Lathe knows: each keyword with the options it takes.
// The lint (HlsLint.h) checks `#pragma HLS ...` lines against this table, and
// the HLS code generator spells its pragmas from it, so that the two cannot
// drift apart. Source: AMD UG1399 (Vitis High-Level Synthesis User Guide),
// "HLS Pragmas", 2023.2 to 2025.2.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lathe::hls {

/// The words an option takes where it takes a fixed set (`mode=m_axi`).
struct OptionValues {
  std::string_view option;
  std::span<const std::string_view> values;
};

/// One `#pragma HLS KEYWORD ...`: `options` take a value (`II=1`,
/// `port=in`), `flags` stand alone (`off`, `complete`, `m_axi`); `values`
/// lists the options whose value is one word of a fixed set.
struct PragmaSpec {
  std::string_view keyword; // upper case, as UG1399 titles it
  std::span<const std::string_view> options;
  std::span<const std::string_view> flags;
  std::span<const OptionValues> values = {};
};

/// Every pragma of the table, in alphabetical order.
std::span<const PragmaSpec> pragmaTable();

/// The pragma named `keyword` (any case), or nullptr.
const PragmaSpec *findPragma(std::string_view keyword);

/// Whether `spec` takes `key=value` / the bare word `flag` (any case).
bool takesOption(const PragmaSpec &spec, std::string_view key);
bool takesFlag(const PragmaSpec &spec, std::string_view flag);

/// The words `option` of `spec` takes, if a fixed set (empty otherwise).
std::span<const std::string_view> optionValues(const PragmaSpec &spec, std::string_view option);

/// The releases whose pragma spellings the generator knows. They differ in
/// the options that name a kind: 2022.1 and later write `mode=m_axi` and
/// `type=complete`, 2020.2 and 2021.x the bare word where UG1399 v2020.2
/// puts it (`INTERFACE m_axi port=...`, `ARRAY_PARTITION variable=a
/// complete dim=1`), which later releases still accept.
enum class HlsTool { Vitis2020_2, Vitis2023_2 };

/// "2020.2" or "2023.2"; nullopt for anything else.
std::optional<HlsTool> parseHlsTool(std::string_view name);

/// `#pragma HLS KEYWORD key=value ...` spelled from the table for `tool`:
/// the generator's one way to write a pragma. Empty when the table does
/// not have the keyword, an option, or an option's value (a generator bug
/// the caller reports).
std::string spellPragma(std::string_view keyword,
                        std::span<const std::pair<std::string_view, std::string>> options,
                        HlsTool tool = HlsTool::Vitis2023_2);

/// The known word (keyword of the table, or option/flag of `spec`) closest to
/// `word` by edit distance, if it is at most 2 edits away; "" otherwise.
std::string closestKeyword(std::string_view word);
std::string closestOption(const PragmaSpec &spec, std::string_view word);
std::string closestWord(std::span<const std::string_view> words, std::string_view word);

} // namespace lathe::hls
