// Reader for GGUF, ggml's model file (versions 2 and 3; the layout is
// ggml/docs/gguf.md): "GGUF", uint32 version, uint64 tensor count, uint64
// metadata count; the metadata as (string key, uint32 type, value); one
// (name, uint32 n_dims, uint64 dims[n_dims], uint32 ggml type, uint64
// offset) per tensor; then, at a multiple of general.alignment (default 32),
// the data section the offsets index into. All little-endian; a string is
// a uint64 length and that many bytes. Plain C++, no MLIR: what the file
// means for a model is GgufCheckpoint.h's business, its tokenizer
// GgufTokenizer.h's.
#pragma once

#include "runtime/support/Expected.h"
#include "runtime/support/MappedFile.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::frontend {

/// ggml tensor types (ggml.h's enum ggml_type) that have a block layout.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
  IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
  IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
};

/// "Q4_0", "BF16", ... or "type 77" for an id ggml does not define.
std::string ggmlTypeName(uint32_t type);

/// Values per block and bytes per block of a ggml type (1 and the element
/// size for F32, F16, ...); nullopt for ids ggml does not define.
struct GgmlBlockLayout {
  int64_t values = 0;
  int64_t bytes = 0;
};
std::optional<GgmlBlockLayout> ggmlBlockLayout(uint32_t type);

/// The kinds of metadata values (gguf_type).
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

/// One metadata value. Scalars are kept in `integer` (every integer type
/// and bool) or `real` (F32, F64); arrays of numbers in `numbers`, arrays
/// of strings in `strings`. Arrays of arrays are read past, not kept.
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType elementType = GgufValueType::U8; // arrays only
  int64_t integer = 0; // U64 values above INT64_MAX wrap, and are refused by users
  double real = 0;
  std::string string;
  std::vector<double> numbers;
  std::vector<std::string> strings;
  uint64_t arraySize = 0;

  bool isInteger() const;
  bool isNumber() const { return isInteger() || type == GgufValueType::F32 || type == GgufValueType::F64; }
  bool isStringArray() const {
    return type == GgufValueType::Array && elementType == GgufValueType::String;
  }
  bool isNumberArray() const;
  /// "u32", "string", "array of f32", ... for messages.
  std::string typeName() const;
};

/// A tensor's description and bytes, checked at open to lie inside the file.
struct GgufTensor {
  std::string name;
  /// ggml order: dims[0] is the length of a row (the fastest-varying index).
  std::vector<int64_t> dims;
  uint32_t type = 0;
  uint64_t offset = 0; // from the start of the data section
  std::span<const uint8_t> bytes;

  int64_t numElements() const;
  /// Row-major shape, outermost first: dims reversed ([rows, cols]).
  std::vector<int64_t> shape() const;
};

class GgufFile {
public:
  /// Maps and parses `path`. A bad magic, an unsupported version, a value
  /// or tensor running past the end of the file, a duplicate key or tensor
  /// name, an unknown tensor type, or a tensor whose rows are not whole
  /// blocks is an Error naming the file.
  static Expected<GgufFile> open(const std::string &path);

  uint32_t version() const { return version_; }
  const std::string &path() const { return path_; }
  const std::map<std::string, GgufValue, std::less<>> &metadata() const { return metadata_; }
  const std::vector<GgufTensor> &tensors() const { return tensors_; }
  /// The metadata value called `key`, or null.
  const GgufValue *find(std::string_view key) const;
  /// The tensor called `name`, or null.
  const GgufTensor *tensor(std::string_view name) const;
  const std::shared_ptr<MappedFile> &storage() const { return file_; }

  /// Typed lookups for readers: an absent key gives nullopt, a value of
  /// the wrong type an Error naming the file and the key.
  Expected<std::optional<int64_t>> integer(std::string_view key) const;
  Expected<std::optional<double>> number(std::string_view key) const;
  Expected<std::optional<std::string>> string(std::string_view key) const;
  Expected<std::optional<bool>> boolean(std::string_view key) const;

private:
  GgufFile() = default;

  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensorIndex_;
};

/// A key or tensor name from a file as messages show it: control bytes
/// become \xNN, so that a message stays one line.
std::string printableName(std::string_view name);

/// Whether `path` is to be read as GGUF: a file that starts with the magic,
/// or whose name ends in ".gguf" (so that a damaged one gets GGUF's
/// messages rather than another reader's).
bool isGgufFile(const std::string &path);

} // namespace lathe::frontend
