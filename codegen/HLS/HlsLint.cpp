// lathe-hls-lint's library: parses each file with libclang and runs the
// rules (codegen/HLS/Lint/FileLinter.h) over it.
#include "codegen/HLS/HlsLint.h"

#include "codegen/HLS/Lint/FileLinter.h"

#include <clang-c/Index.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <tuple>

namespace lathe::hls {

std::string LintFinding::format() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: " + reason +
         " [" + rule + "]";
}

namespace {

using lint::FileLinter;
using lint::take;

Status checkReadable(const std::string &path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0)
    return Error(path + ": " + std::strerror(errno));
  if (S_ISDIR(info.st_mode))
    return Error(path + ": a folder, expected a C++ file");
  if (FILE *f = std::fopen(path.c_str(), "rb"))
    std::fclose(f);
  else
    return Error(path + ": " + std::strerror(errno));
  return Status::ok();
}

} // namespace

Expected<std::vector<LintFinding>> lintFiles(const LintOptions &options) {
  for (const std::string &path : options.files)
    if (Status readable = checkReadable(path); !readable)
      return readable.error();
  std::vector<std::string> arguments = {"-x", "c++", "-std=c++17"};
  for (const std::string &dir : options.includeDirs)
    arguments.push_back("-I" + dir);
  std::vector<const char *> argv;
  for (const std::string &a : arguments)
    argv.push_back(a.c_str());

  CXIndex index = clang_createIndex(/*excludeDeclarationsFromPCH=*/0, /*displayDiagnostics=*/0);
  std::vector<LintFinding> all;
  std::set<std::string> definedTops;
  std::optional<Error> failure;
  for (const std::string &path : options.files) {
    CXTranslationUnit tu = nullptr;
    CXErrorCode code =
        clang_parseTranslationUnit2(index, path.c_str(), argv.data(), static_cast<int>(argv.size()),
                                    nullptr, 0, CXTranslationUnit_DetailedPreprocessingRecord, &tu);
    if (code != CXError_Success || !tu) {
      failure = Error(path + ": libclang could not parse the file (error " +
                      std::to_string(static_cast<int>(code)) + ")");
      break;
    }
    for (unsigned i = 0, n = clang_getNumDiagnostics(tu); i < n && !failure; ++i) {
      CXDiagnostic diagnostic = clang_getDiagnostic(tu, i);
      if (clang_getDiagnosticSeverity(diagnostic) >= CXDiagnostic_Error)
        failure = Error(take(clang_formatDiagnostic(diagnostic, CXDiagnostic_DisplaySourceLocation |
                                                                    CXDiagnostic_DisplayColumn)));
      clang_disposeDiagnostic(diagnostic);
    }
    if (!failure) {
      std::vector<LintFinding> findings;
      if (!FileLinter(tu, path, findings).run(options.tops, definedTops))
        failure = Error(path + ": libclang parsed the file but cannot find it among its inputs");
      std::sort(findings.begin(), findings.end(), [](const auto &a, const auto &b) {
        return std::tie(a.line, a.column, a.rule, a.reason) <
               std::tie(b.line, b.column, b.rule, b.reason);
      });
      for (LintFinding &finding : findings)
        if (all.empty() || all.back().file != finding.file || all.back().line != finding.line ||
            all.back().column != finding.column || all.back().rule != finding.rule ||
            all.back().reason != finding.reason)
          all.push_back(std::move(finding));
    }
    clang_disposeTranslationUnit(tu);
    if (failure)
      break;
  }
  clang_disposeIndex(index);
  if (failure)
    return *failure;
  for (const std::string &top : options.tops)
    if (!definedTops.count(top))
      return Error("--top " + top + ": no given file defines a function named '" + top + "'");
  return all;
}

} // namespace lathe::hls
