#include "compiler/Driver/KvFlag.h"

#include <string>

namespace lathe::compiler {

Expected<formats::KvFormat> parseKvFlag(std::string_view text) {
  Expected<formats::KvFormat> f = formats::parseKvFormat(text);
  if (!f)
    return Error("--kv=" + std::string(text) + ": " + f.error().message());
  return f;
}

Expected<formats::KvFormat> resolveKvFlag(std::string_view text, formats::KvFormat format,
                                          int64_t headDim) {
  Expected<formats::KvFormat> f = formats::resolveKvFormat(format, headDim);
  if (!f)
    return Error("--kv=" + std::string(text) + ": " + f.error().message());
  return f;
}

} // namespace lathe::compiler
