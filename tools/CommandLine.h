// How every Lathe tool reads its command line: --help prints the usage and
// exits 0; anything CLI11 refuses is one line on stderr, "<tool>: <what>
// (see --help)", and exit status 1 (the lit tests check both).
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace lathe::tools {

/// CLI11 reads integers with strtoll/strtoull in base 0 and without range
/// checks: "010" was 8, "0x10" 16, "-1" for an unsigned flag 2^64-1, and
/// 2^64 was clamped silently. After parsing, every integer option's values
/// must be plain decimals in range; the first that is not is the error.
inline std::optional<std::string> checkDecimalIntegers(const CLI::App &app) {
  for (const CLI::Option *opt : app.get_options()) {
    // CLI11's type names: "INT" or "UINT", perhaps followed by a
    // validator's text after ':' or ' '.
    const std::string type = opt->get_type_name();
    const bool isUnsigned = type.starts_with("UINT");
    const std::string_view name = isUnsigned ? "UINT" : "INT";
    if (!type.starts_with(name) ||
        (type.size() > name.size() && type[name.size()] != ':' && type[name.size()] != ' '))
      continue;
    for (const std::string &value : opt->results()) {
      std::string_view digits = value;
      const bool negative = digits.starts_with('-');
      if (negative || digits.starts_with('+'))
        digits.remove_prefix(1);
      // What from_chars reads: a '-' but no '+'.
      const std::string_view number = negative ? std::string_view(value) : digits;
      const bool decimal = !digits.empty() && digits.find_first_not_of("0123456789") ==
                                                  std::string_view::npos;
      if (!decimal || (digits.size() > 1 && digits[0] == '0'))
        return opt->get_name() + ": '" + value + "' is not a decimal integer";
      if (negative && isUnsigned)
        return opt->get_name() + ": '" + value + "' is negative";
      // The widest the option can be; CLI11 checks the narrower types.
      const auto inRangeAs = [&](auto parsed) {
        return std::from_chars(number.data(), number.data() + number.size(), parsed).ec ==
               std::errc();
      };
      const bool inRange = isUnsigned ? inRangeAs(uint64_t{}) : inRangeAs(int64_t{});
      if (!inRange)
        return opt->get_name() + ": '" + value + "' is out of range";
    }
  }
  for (const CLI::App *sub : app.get_subcommands())
    if (std::optional<std::string> bad = checkDecimalIntegers(*sub))
      return bad;
  return std::nullopt;
}

/// Parses argv into `app`. std::nullopt: go on; otherwise the status the
/// tool should exit with, its message already printed.
inline std::optional<int> parseCommandLine(CLI::App &app, int argc, char **argv,
                                           const char *tool) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0)
      return app.exit(e);
    std::fprintf(stderr, "%s: %s (see --help)\n", tool, e.what());
    return 1;
  }
  if (std::optional<std::string> bad = checkDecimalIntegers(app)) {
    std::fprintf(stderr, "%s: %s (see --help)\n", tool, bad->c_str());
    return 1;
  }
  return std::nullopt;
}

} // namespace lathe::tools
