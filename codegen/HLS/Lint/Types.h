// What the lint's declaration rules look for in a type (stl-container,
// function-pointer) and what the interface rule counts as a memory port.
#pragma once

#include <clang-c/Index.h>

#include <string>

namespace lathe::hls::lint {

/// The forbidden std type `type` is or holds (through pointers, references,
/// arrays and template arguments), e.g. "std::vector"; "" if none.
std::string stlTypeIn(CXType type, int depth = 0);

/// Whether `type` is or holds a pointer to a function or member function.
bool holdsFunctionPointer(CXType type, int depth = 0);

/// A pointer (not to a function), an array, or a reference to one.
bool isPointerOrArray(CXType type);

} // namespace lathe::hls::lint
