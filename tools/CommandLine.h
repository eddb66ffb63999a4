// How every Lathe tool reads its command line: --help prints the usage and
// exits 0; anything CLI11 refuses is one line on stderr, "<tool>: <what>
// (see --help)", and exit status 1 (the lit tests check both).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>

namespace lathe::tools {

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
  return std::nullopt;
}

} // namespace lathe::tools
