#include "compiler/Driver/KvFlag.h"

#include <string>

namespace lathe::compiler {

Expected<ElementType> parseKvFlag(std::string_view text) {
  for (ElementType t : {ElementType::F32, ElementType::F16, ElementType::BF16})
    if (text == elementTypeName(t))
      return t;
  return Error("--kv=" + std::string(text) + ": expected f32, f16 or bf16");
}

} // namespace lathe::compiler
