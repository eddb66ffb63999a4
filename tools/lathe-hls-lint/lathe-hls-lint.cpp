// lathe-hls-lint: finds the constructs Vitis HLS rejects in C++ files meant
// for it (codegen/HLS/HlsLint.h; docs/hls.md lists the rules). Findings go
// to stdout, one a line, "FILE:LINE:COL: error: REASON [RULE]", and make the
// exit status 1; a clean run prints nothing and exits 0. Bad input (a
// missing file, one that does not parse): one line on stderr, exit 1.
#include "codegen/HLS/HlsLint.h"
#include "tools/CommandLine.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  CLI::App app{"Report the constructs Vitis HLS rejects in C++ FILEs: dynamic memory, "
               "recursion, STL containers, virtual functions and function pointers, loops "
               "without static bounds, top-function pointers without INTERFACE pragmas, "
               "unknown pragmas and pragma options (docs/hls.md)"};
  lathe::hls::LintOptions options;
  app.add_option("FILE", options.files, "C++ files to lint (parsed as C++17)")->required();
  app.add_option("--top", options.tops,
                 "a top function, whose pointer/array parameters need INTERFACE pragmas "
                 "(repeatable; default: every extern \"C\" function)")
      ->allow_extra_args(false); // --top NAME FILE: FILE is a file

  app.add_option("-I,--include-dir", options.includeDirs,
                 "a folder to search for included headers (repeatable)")
      ->allow_extra_args(false);
  if (std::optional<int> status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-hls-lint"))
    return *status;

  lathe::Expected<std::vector<lathe::hls::LintFinding>> findings = lathe::hls::lintFiles(options);
  if (!findings) {
    std::fprintf(stderr, "lathe-hls-lint: %s\n", findings.error().message().c_str());
    return 1;
  }
  for (const lathe::hls::LintFinding &finding : *findings)
    std::printf("%s\n", finding.format().c_str());
  return findings->empty() ? 0 : 1;
}
