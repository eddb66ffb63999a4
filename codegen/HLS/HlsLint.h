// The synthesizability lint of the HLS backend (issue 23): parses C++ meant
// for Vitis HLS with libclang and finds the constructs Vitis HLS rejects or
// cannot give static bounds to. It links libclang only, no MLIR, so that the
// tool and its tests link fast. docs/hls.md lists the rules.
#pragma once

#include "runtime/support/Expected.h"

#include <string>
#include <vector>

namespace lathe::hls {

/// One construct Vitis HLS rejects, printed as
/// "FILE:LINE:COL: error: REASON [RULE]".
struct LintFinding {
  std::string file; // as the caller named it
  unsigned line = 0;
  unsigned column = 0;
  std::string rule; // "dynamic-memory", "recursion", ... (kLintRules)
  std::string reason;

  std::string format() const;
};

/// The rule names, in the order docs/hls.md describes them.
inline constexpr const char *kLintRules[] = {
    "dynamic-memory", "recursion",        "stl-container",  "virtual-function", "function-pointer",
    "unbounded-loop", "interface-pragma", "pragma-keyword", "pragma-option"};

struct LintOptions {
  std::vector<std::string> files;
  /// Top functions whose pointer/array parameters need INTERFACE pragmas.
  /// Empty: every function defined with extern "C" linkage.
  std::vector<std::string> tops;
  /// Extra include folders (-I), for headers such as ap_int.h.
  std::vector<std::string> includeDirs;
};

/// Lints every file as C++17 and returns the findings, sorted by file (in
/// the order given), line and column. Constructs in included headers are
/// not reported. Error: a file that is missing or does not parse (clang's
/// first error), or a --top that no file defines.
Expected<std::vector<LintFinding>> lintFiles(const LintOptions &options);

} // namespace lathe::hls
