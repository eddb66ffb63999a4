// The --kv flag of lathe-compile: the element type of the KV cache.
//
//   --kv=f32    (the default)
//   --kv=f16 | --kv=bf16   half the memory and the bytes attention reads
#pragma once

#include "runtime/formats/ElementType.h"
#include "runtime/support/Expected.h"

#include <string_view>

namespace lathe::compiler {

/// "f32", "f16" or "bf16"; anything else is an Error quoting the text:
/// "--kv=f8: expected f32, f16 or bf16".
Expected<ElementType> parseKvFlag(std::string_view text);

} // namespace lathe::compiler
