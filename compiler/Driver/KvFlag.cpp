#include "compiler/Driver/KvFlag.h"

#include <optional>
#include <string>

namespace lathe::compiler {

Expected<formats::KvFormat> parseKvFlag(std::string_view text) {
  Expected<formats::KvFormat> f = formats::parseKvFormat(text);
  if (!f)
    return Error("--kv=" + std::string(text) + ": " + f.error().message());
  return f;
}

Expected<KvFlag> parseKvSpec(std::string_view text) {
  // Split off reorder / no-reorder wherever they stand among the options.
  std::string rest;
  std::optional<bool> reorder;
  std::string_view option;
  for (size_t start = 0;; start += option.size() + 1) {
    const size_t end = text.find(':', start);
    option = text.substr(start, end == std::string_view::npos ? std::string_view::npos
                                                              : end - start);
    if (start > 0 && (option == "reorder" || option == "no-reorder")) {
      if (reorder)
        return Error("--kv=" + std::string(text) + ": reorder given twice");
      reorder = option == "reorder";
    } else {
      rest += (start == 0 ? "" : ":") + std::string(option);
    }
    if (end == std::string_view::npos)
      break;
  }
  Expected<formats::KvFormat> format = formats::parseKvFormat(rest);
  if (!format)
    return Error("--kv=" + std::string(text) + ": " + format.error().message());
  const bool bfp = format->kind == formats::KvKind::Bfp8 || format->kind == formats::KvKind::Bfp4;
  if (reorder && !bfp)
    return Error("--kv=" + std::string(text) + ": " + (*reorder ? "reorder" : "no-reorder") +
                 " applies to bfp8 and bfp4 (the kinds whose key channels share exponents)");
  return KvFlag{*format, reorder.value_or(bfp)};
}

Expected<formats::KvFormat> resolveKvFlag(std::string_view text, formats::KvFormat format,
                                          int64_t headDim) {
  Expected<formats::KvFormat> f = formats::resolveKvFormat(format, headDim);
  if (!f)
    return Error("--kv=" + std::string(text) + ": " + f.error().message());
  return f;
}

} // namespace lathe::compiler
