#include "compiler/Frontend/Gguf.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace lathe::frontend {

namespace {

struct TypeInfo {
  GgmlType type;
  const char *name;
  int64_t values, bytes;
};

// ggml's type_traits (ggml.c): block sizes from ggml-common.h.
constexpr TypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},      {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},      {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q8_1, "Q8_1", 32, 36},
    {GgmlType::Q2_K, "Q2_K", 256, 84},     {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},    {GgmlType::Q8_K, "Q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66}, {GgmlType::IQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},  {GgmlType::IQ3_S, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82},   {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::I8, "I8", 1, 1},            {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},          {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},          {GgmlType::IQ1_M, "IQ1_M", 256, 56},
    {GgmlType::BF16, "BF16", 1, 2},        {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},
};

const TypeInfo *typeInfo(uint32_t type) {
  for (const TypeInfo &t : kTypes)
    if (static_cast<uint32_t>(t.type) == type)
      return &t;
  return nullptr;
}

// GGUF's own limit on dimensions (GGML_MAX_DIMS).
constexpr uint32_t kMaxDims = 4;

/// Reads the file front to back; every read is checked against the end, so
/// a truncated or lying header is an error, never a read out of bounds.
class Cursor {
public:
  Cursor(std::span<const uint8_t> bytes, const std::string &source)
      : bytes_(bytes), source_(source) {}

  size_t position() const { return pos_; }

  Error truncated(const std::string &what) const {
    return Error(source_ + ": truncated GGUF file: " + what + " at offset " +
                 std::to_string(pos_) + " runs past the end of the file (" +
                 std::to_string(bytes_.size()) + " bytes)");
  }

  template <typename T> Expected<T> read(const std::string &what) {
    if (bytes_.size() - pos_ < sizeof(T))
      return truncated(what);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  Expected<std::string> string(const std::string &what) {
    Expected<uint64_t> length = read<uint64_t>(what + " (its length)");
    if (!length)
      return length.error();
    if (*length > bytes_.size() - pos_)
      return Error(source_ + ": truncated GGUF file: " + what + " of " + std::to_string(*length) +
                   " bytes at offset " + std::to_string(pos_) + " runs past the end of the file (" +
                   std::to_string(bytes_.size()) + " bytes)");
    std::string s(reinterpret_cast<const char *>(bytes_.data() + pos_), *length);
    pos_ += *length;
    return s;
  }

  /// Steps over n fixed-size items.
  Status skip(uint64_t n, size_t size, const std::string &what) {
    if (n > (bytes_.size() - pos_) / size)
      return truncated(what);
    pos_ += n * size;
    return Status::ok();
  }

private:
  std::span<const uint8_t> bytes_;
  const std::string &source_;
  size_t pos_ = 0;
};

size_t scalarSize(GgufValueType t) {
  switch (t) {
  case GgufValueType::U8:
  case GgufValueType::I8:
  case GgufValueType::Bool: return 1;
  case GgufValueType::U16:
  case GgufValueType::I16: return 2;
  case GgufValueType::U32:
  case GgufValueType::I32:
  case GgufValueType::F32: return 4;
  case GgufValueType::U64:
  case GgufValueType::I64:
  case GgufValueType::F64: return 8;
  default: return 0;
  }
}

std::string valueTypeName(GgufValueType t) {
  switch (t) {
  case GgufValueType::U8: return "u8";
  case GgufValueType::I8: return "i8";
  case GgufValueType::U16: return "u16";
  case GgufValueType::I16: return "i16";
  case GgufValueType::U32: return "u32";
  case GgufValueType::I32: return "i32";
  case GgufValueType::F32: return "f32";
  case GgufValueType::Bool: return "bool";
  case GgufValueType::String: return "string";
  case GgufValueType::Array: return "array";
  case GgufValueType::U64: return "u64";
  case GgufValueType::I64: return "i64";
  case GgufValueType::F64: return "f64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(t));
}

/// A scalar of type t at the cursor, as an integer or a double.
Status readScalar(Cursor &in, GgufValueType t, int64_t &integer, double &real,
                  const std::string &what) {
  auto get = [&](auto tag) -> Status {
    using T = decltype(tag);
    Expected<T> v = in.read<T>(what);
    if (!v)
      return v.error();
    if constexpr (std::is_floating_point_v<T>)
      real = *v;
    else
      integer = static_cast<int64_t>(*v), real = static_cast<double>(*v);
    return Status::ok();
  };
  switch (t) {
  case GgufValueType::U8: return get(uint8_t{});
  case GgufValueType::I8: return get(int8_t{});
  case GgufValueType::U16: return get(uint16_t{});
  case GgufValueType::I16: return get(int16_t{});
  case GgufValueType::U32: return get(uint32_t{});
  case GgufValueType::I32: return get(int32_t{});
  case GgufValueType::F32: return get(float{});
  case GgufValueType::Bool: return get(uint8_t{});
  case GgufValueType::U64: return get(uint64_t{});
  case GgufValueType::I64: return get(int64_t{});
  case GgufValueType::F64: return get(double{});
  default: return Error("not a scalar");
  }
}

bool knownValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }

} // namespace

std::string ggmlTypeName(uint32_t type) {
  const TypeInfo *t = typeInfo(type);
  return t ? t->name : "type " + std::to_string(type);
}

std::optional<GgmlBlockLayout> ggmlBlockLayout(uint32_t type) {
  const TypeInfo *t = typeInfo(type);
  if (!t)
    return std::nullopt;
  return GgmlBlockLayout{t->values, t->bytes};
}

bool GgufValue::isInteger() const {
  switch (type) {
  case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16:
  case GgufValueType::I16: case GgufValueType::U32: case GgufValueType::I32:
  case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::Bool: return true;
  default: return false;
  }
}

bool GgufValue::isNumberArray() const {
  return type == GgufValueType::Array && scalarSize(elementType) > 0;
}

std::string GgufValue::typeName() const {
  if (type == GgufValueType::Array)
    return "array of " + valueTypeName(elementType);
  return valueTypeName(type);
}

int64_t GgufTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::shape() const { return {dims.rbegin(), dims.rend()}; }

const GgufValue *GgufFile::find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensor *GgufFile::tensor(std::string_view name) const {
  auto it = tensorIndex_.find(name);
  return it == tensorIndex_.end() ? nullptr : &tensors_[it->second];
}

Expected<std::optional<int64_t>> GgufFile::integer(std::string_view key) const {
  const GgufValue *v = find(key);
  if (!v)
    return std::optional<int64_t>();
  if (!v->isInteger() || v->type == GgufValueType::Bool ||
      (v->type == GgufValueType::U64 && v->integer < 0))
    return Error(path_ + ": metadata '" + std::string(key) + "' is " + v->typeName() +
                 ", expected an integer that fits 63 bits");
  return std::optional<int64_t>(v->integer);
}

Expected<std::optional<double>> GgufFile::number(std::string_view key) const {
  const GgufValue *v = find(key);
  if (!v)
    return std::optional<double>();
  if (!v->isNumber() || v->type == GgufValueType::Bool)
    return Error(path_ + ": metadata '" + std::string(key) + "' is " + v->typeName() +
                 ", expected a number");
  return std::optional<double>(v->real);
}

Expected<std::optional<std::string>> GgufFile::string(std::string_view key) const {
  const GgufValue *v = find(key);
  if (!v)
    return std::optional<std::string>();
  if (v->type != GgufValueType::String)
    return Error(path_ + ": metadata '" + std::string(key) + "' is " + v->typeName() +
                 ", expected a string");
  return std::optional<std::string>(v->string);
}

Expected<std::optional<bool>> GgufFile::boolean(std::string_view key) const {
  const GgufValue *v = find(key);
  if (!v)
    return std::optional<bool>();
  if (v->type != GgufValueType::Bool)
    return Error(path_ + ": metadata '" + std::string(key) + "' is " + v->typeName() +
                 ", expected a bool");
  return std::optional<bool>(v->integer != 0);
}

Expected<GgufFile> GgufFile::open(const std::string &path) {
  Expected<std::shared_ptr<MappedFile>> mapped = MappedFile::open(path);
  if (!mapped)
    return mapped.error();
  GgufFile file;
  file.path_ = path;
  file.file_ = mapped.take();
  const std::span<const uint8_t> bytes = file.file_->bytes();
  const std::string &source = file.path_;
  Cursor in(bytes, source);

  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0)
    return Error(source + ": not a GGUF file (it does not start with the magic \"GGUF\")");
  (void)in.read<uint32_t>("magic");
  Expected<uint32_t> version = in.read<uint32_t>("the version");
  if (!version)
    return version.error();
  // Version 1 counted with uint32; 2 and 3 (3 adds big-endian files, told
  // apart only by the byte order of this very field) are the same layout.
  if (*version != 2 && *version != 3)
    return Error(source + ": GGUF version " + std::to_string(*version) +
                 " is not supported (Lathe reads versions 2 and 3, little-endian)");
  file.version_ = *version;
  Expected<uint64_t> tensorCount = in.read<uint64_t>("the tensor count");
  if (!tensorCount)
    return tensorCount.error();
  Expected<uint64_t> kvCount = in.read<uint64_t>("the metadata count");
  if (!kvCount)
    return kvCount.error();
  // Each entry takes at least 8 bytes, so the counts are bounded by the
  // file before anything is reserved for them.
  if (*tensorCount > bytes.size() / 8 || *kvCount > bytes.size() / 8)
    return Error(source + ": truncated GGUF file: it claims " + std::to_string(*tensorCount) +
                 " tensors and " + std::to_string(*kvCount) + " metadata entries in " +
                 std::to_string(bytes.size()) + " bytes");

  for (uint64_t i = 0; i < *kvCount; ++i) {
    const std::string entry = "metadata entry " + std::to_string(i);
    Expected<std::string> key = in.string(entry + " (its key)");
    if (!key)
      return key.error();
    const std::string what = "metadata '" + printableName(*key) + "'";
    Expected<uint32_t> type = in.read<uint32_t>(what + " (its type)");
    if (!type)
      return type.error();
    if (!knownValueType(*type))
      return Error(source + ": " + what + " has unknown value type " + std::to_string(*type));
    GgufValue value;
    value.type = static_cast<GgufValueType>(*type);
    if (value.type == GgufValueType::String) {
      Expected<std::string> s = in.string(what);
      if (!s)
        return s.error();
      value.string = s.take();
    } else if (value.type == GgufValueType::Array) {
      Expected<uint32_t> elementType = in.read<uint32_t>(what + " (its element type)");
      if (!elementType)
        return elementType.error();
      Expected<uint64_t> count = in.read<uint64_t>(what + " (its length)");
      if (!count)
        return count.error();
      if (!knownValueType(*elementType))
        return Error(source + ": " + what + " is an array of unknown value type " +
                     std::to_string(*elementType));
      value.elementType = static_cast<GgufValueType>(*elementType);
      value.arraySize = *count;
      if (value.elementType == GgufValueType::String) {
        if (*count > (bytes.size() - in.position()) / 8)
          return in.truncated(what + " (" + std::to_string(*count) + " strings)");
        value.strings.reserve(*count);
        for (uint64_t k = 0; k < *count; ++k) {
          Expected<std::string> s = in.string(what + " element " + std::to_string(k));
          if (!s)
            return s.error();
          value.strings.push_back(s.take());
        }
      } else if (value.elementType == GgufValueType::Array) {
        // Arrays of arrays: no llama key uses them; step over each.
        for (uint64_t k = 0; k < *count; ++k) {
          Expected<uint32_t> innerType = in.read<uint32_t>(what + " element " + std::to_string(k));
          Expected<uint64_t> innerCount = in.read<uint64_t>(what + " element " + std::to_string(k));
          if (!innerType || !innerCount)
            return innerType ? innerCount.error() : innerType.error();
          size_t size = scalarSize(static_cast<GgufValueType>(*innerType));
          if (size == 0)
            return Error(source + ": " + what + " nests arrays of " +
                         valueTypeName(static_cast<GgufValueType>(*innerType)) +
                         ", which Lathe does not read");
          if (Status s = in.skip(*innerCount, size, what); !s)
            return s.error();
        }
      } else {
        const size_t size = scalarSize(value.elementType);
        if (*count > (bytes.size() - in.position()) / size)
          return in.truncated(what + " (" + std::to_string(*count) + " elements)");
        value.numbers.resize(*count);
        for (uint64_t k = 0; k < *count; ++k) {
          int64_t integer = 0;
          if (Status s = readScalar(in, value.elementType, integer, value.numbers[k], what); !s)
            return s.error();
        }
      }
    } else {
      if (Status s = readScalar(in, value.type, value.integer, value.real, what); !s)
        return s.error();
    }
    if (!file.metadata_.emplace(*key, std::move(value)).second)
      return Error(source + ": metadata key '" + printableName(*key) + "' appears twice");
  }

  uint64_t alignment = 32;
  if (const GgufValue *a = file.find("general.alignment")) {
    if (!a->isInteger() || a->integer <= 0 || a->integer > (1 << 30) ||
        (a->integer & (a->integer - 1)) != 0)
      return Error(source + ": general.alignment must be a power of two, got " +
                   (a->isInteger() ? std::to_string(a->integer) : a->typeName()));
    alignment = static_cast<uint64_t>(a->integer);
  }

  file.tensors_.reserve(*tensorCount);
  for (uint64_t i = 0; i < *tensorCount; ++i) {
    GgufTensor t;
    Expected<std::string> name = in.string("tensor " + std::to_string(i) + " (its name)");
    if (!name)
      return name.error();
    t.name = name.take();
    const std::string what = "tensor '" + printableName(t.name) + "'";
    Expected<uint32_t> nDims = in.read<uint32_t>(what + " (its rank)");
    if (!nDims)
      return nDims.error();
    if (*nDims == 0 || *nDims > kMaxDims)
      return Error(source + ": " + what + " has " + std::to_string(*nDims) +
                   " dimensions (GGUF allows 1 to 4)");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < *nDims; ++d) {
      Expected<uint64_t> dim = in.read<uint64_t>(what + " (its dimensions)");
      if (!dim)
        return dim.error();
      if (*dim == 0 || *dim > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) ||
          __builtin_mul_overflow(elements, *dim, &elements) ||
          elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 8))
        return Error(source + ": " + what + " has dimension " + std::to_string(*dim) +
                     ", which is zero or too large");
      t.dims.push_back(static_cast<int64_t>(*dim));
    }
    Expected<uint32_t> type = in.read<uint32_t>(what + " (its type)");
    if (!type)
      return type.error();
    t.type = *type;
    Expected<uint64_t> offset = in.read<uint64_t>(what + " (its offset)");
    if (!offset)
      return offset.error();
    t.offset = *offset;
    std::optional<GgmlBlockLayout> layout = ggmlBlockLayout(t.type);
    if (!layout)
      return Error(source + ": " + what + " has unknown ggml type " + std::to_string(t.type));
    if (t.dims[0] % layout->values != 0)
      return Error(source + ": " + what + " has rows of " + std::to_string(t.dims[0]) +
                   " values, not a whole number of " + ggmlTypeName(t.type) + " blocks of " +
                   std::to_string(layout->values));
    if (t.offset % alignment != 0)
      return Error(source + ": " + what + " starts at data offset " + std::to_string(t.offset) +
                   ", not a multiple of the alignment " + std::to_string(alignment));
    if (!file.tensorIndex_.emplace(t.name, file.tensors_.size()).second)
      return Error(source + ": tensor name '" + printableName(t.name) + "' appears twice");
    file.tensors_.push_back(std::move(t));
  }

  const uint64_t dataStart = (in.position() + alignment - 1) / alignment * alignment;
  for (GgufTensor &t : file.tensors_) {
    const GgmlBlockLayout layout = *ggmlBlockLayout(t.type);
    // elements <= 2^60 and bytes per block / values per block <= 4.
    const uint64_t size = static_cast<uint64_t>(t.numElements() / layout.values * layout.bytes);
    if (dataStart > bytes.size() || t.offset > bytes.size() - dataStart ||
        size > bytes.size() - dataStart - t.offset)
      return Error(source + ": tensor '" + printableName(t.name) + "' (" + ggmlTypeName(t.type) + ", " +
                   std::to_string(size) + " bytes) at offset " + std::to_string(dataStart) +
                   " + " + std::to_string(t.offset) + " runs past the end of the file (" +
                   std::to_string(bytes.size()) + " bytes)");
    t.bytes = bytes.subspan(dataStart + t.offset, size);
  }
  return file;
}

std::string printableName(std::string_view name) {
  std::string out;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

bool isGgufFile(const std::string &path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0)
    return true;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

} // namespace lathe::frontend
