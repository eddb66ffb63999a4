// Fuzzes lathe-compile's --quant and --kv parsers (compiler/Driver/QuantFlag.h,
// KvFlag.h) on the same text: an Error, or options that are valid and whose
// format prints as a name that parses back to the same format.
#include "compiler/Driver/KvFlag.h"
#include "compiler/Driver/QuantFlag.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

[[noreturn]] void fail(std::string_view text, const char *what) {
  std::fprintf(stderr, "'%.*s': %s\n", static_cast<int>(text.size()), text.data(), what);
  std::abort();
}

void checkFormat(std::string_view text, const lathe::formats::FormatSpec &spec) {
  using namespace lathe::formats;
  if (!validateFormatSpec(spec))
    fail(text, "the parser accepted a format that validateFormatSpec refuses");
  lathe::Expected<FormatSpec> again = parseFormatSpec(formatName(spec));
  if (!again || !(*again == spec))
    fail(text, "formatName of the parsed format does not parse back to it");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  using namespace lathe::compiler;
  lathe::Expected<QuantOptions> quant = parseQuantFlag(text);
  if (quant) {
    if (quant->format)
      checkFormat(text, *quant->format);
    if (quant->mixedBits && !(*quant->mixedBits > 0))
      fail(text, "mixed:bits= accepted a budget that is not positive");
    if (std::optional<lathe::formats::FormatSpec> classifier = quant->classifierFormat())
      checkFormat(text, *classifier);
  }
  lathe::Expected<lathe::formats::KvFormat> kv = parseKvFlag(text);
  if (kv) {
    // Resolved against a head_dim its block divides, the canonical name
    // parses back to the same format.
    const int64_t headDim = kv->block > 0 ? int64_t{kv->block} * 2 : 64;
    lathe::Expected<lathe::formats::KvFormat> resolved = resolveKvFlag(text, *kv, headDim);
    if (resolved) {
      lathe::Expected<lathe::formats::KvFormat> again =
          parseKvFlag(lathe::formats::kvFormatName(*resolved));
      lathe::Expected<lathe::formats::KvFormat> same =
          again ? resolveKvFlag(text, *again, headDim) : again;
      if (!same || !(*same == *resolved))
        fail(text, "--kv: the name of the resolved format does not parse back to it");
    }
  }
  return 0;
}
