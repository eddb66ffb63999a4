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
  // Split off [no-]reorder and [no-]equalize wherever they stand among the
  // options.
  std::string rest;
  std::optional<bool> reorder, equalize;
  std::string_view option;
  for (size_t start = 0;; start += option.size() + 1) {
    const size_t end = text.find(':', start);
    option = text.substr(start, end == std::string_view::npos ? std::string_view::npos
                                                              : end - start);
    const bool negated = option.substr(0, 3) == "no-";
    const std::string_view name = negated ? option.substr(3) : option;
    if (start > 0 && (name == "reorder" || name == "equalize")) {
      std::optional<bool> &choice = name == "reorder" ? reorder : equalize;
      if (choice)
        return Error("--kv=" + std::string(text) + ": " + std::string(name) + " given twice");
      choice = !negated;
    } else {
      rest += (start == 0 ? "" : ":") + std::string(option);
    }
    if (end == std::string_view::npos)
      break;
  }
  Expected<formats::KvFormat> format = formats::parseKvFormat(rest);
  if (!format)
    return Error("--kv=" + std::string(text) + ": " + format.error().message());
  // Reordering needs blocks within a head; equalizing, one scale or
  // exponent shared by channels of unlike sizes (int8's is the head's).
  const bool bfp = format->kind == formats::KvKind::Bfp8 || format->kind == formats::KvKind::Bfp4;
  const bool shared = bfp || format->kind == formats::KvKind::Int8;
  if (reorder && !bfp)
    return Error("--kv=" + std::string(text) + ": " + (*reorder ? "" : "no-") +
                 "reorder applies to bfp8 and bfp4 (the kinds whose key channels share "
                 "exponents)");
  if (equalize && !shared)
    return Error("--kv=" + std::string(text) + ": " + (*equalize ? "" : "no-") +
                 "equalize applies to int8, bfp8 and bfp4 (the kinds whose key channels share "
                 "a scale or an exponent)");
  return KvFlag{*format, reorder.value_or(bfp), equalize.value_or(shared)};
}

Expected<formats::KvFormat> resolveKvFlag(std::string_view text, formats::KvFormat format,
                                          int64_t headDim) {
  Expected<formats::KvFormat> f = formats::resolveKvFormat(format, headDim);
  if (!f)
    return Error("--kv=" + std::string(text) + ": " + f.error().message());
  return f;
}

} // namespace lathe::compiler
