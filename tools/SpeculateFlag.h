// --speculate[=SHAPE], shared by lathe-run and lathe-serve so that both
// accept and document it the same way.
#pragma once

#include "runtime/speculative/TreeShape.h"

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace lathe::tools {

struct SpeculateFlag {
  CLI::Option *option = nullptr;
  std::string value;

  CLI::Option *addTo(CLI::App &app) {
    option = app.add_option("--speculate", value,
                            "speculative decoding over a drafted token tree: --speculate=SHAPE, "
                            "the branching per depth (e.g. 4x2x2) or default (" +
                                std::string(speculative::kDefaultTreeShape) +
                                "); --speculate alone: the tree the artifact was compiled for "
                                "(lathe-compile --spec-tree), else default")
                 ->expected(0, 1)
                 ->type_name("[=SHAPE]");
    return option;
  }

  /// After parsing: unset when the flag is absent, "" for the artifact's
  /// shape (or the default), else the shape's text, checked by
  /// parseTreeShape (the error is one line).
  Expected<std::optional<std::string>> choice() const {
    if (!option || !*option)
      return std::optional<std::string>();
    // CLI11 gives an option without its value "true" (or nothing).
    const std::string text = value == "true" ? std::string() : value;
    if (!text.empty())
      if (auto shape = speculative::parseTreeShape(text); !shape)
        return Error("--speculate: " + shape.error().message());
    return std::optional<std::string>(text);
  }
};

} // namespace lathe::tools
