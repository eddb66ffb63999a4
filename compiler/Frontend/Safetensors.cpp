#include "compiler/Frontend/Safetensors.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

namespace lathe::frontend {

namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; a header length
// beyond that is a corrupt or hostile file, not a large model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr char kMetadataKey[] = "__metadata__";

std::optional<ElementType> parseDtype(std::string_view dtype) {
  if (dtype == "F32") return ElementType::F32;
  if (dtype == "F16") return ElementType::F16;
  if (dtype == "BF16") return ElementType::BF16;
  return std::nullopt;
}

const char *dtypeName(ElementType t) {
  switch (t) {
  case ElementType::F32: return "F32";
  case ElementType::F16: return "F16";
  case ElementType::BF16: return "BF16";
  }
  return "?";
}

/// A JSON integer >= 0, or nullopt. nlohmann stores non-negative literals as
/// unsigned and negative ones as signed.
std::optional<uint64_t> asUnsigned(const json &j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  return std::nullopt;
}

/// Parses one tensor entry and checks it against the data area.
Expected<TensorView> parseTensor(const std::string &prefix, const json &entry,
                                 std::span<const uint8_t> data) {
  if (!entry.is_object())
    return Error(prefix + " is not a JSON object");
  auto dtypeIt = entry.find("dtype");
  if (dtypeIt == entry.end() || !dtypeIt->is_string())
    return Error(prefix + " has no string \"dtype\"");
  const std::string &dtype = dtypeIt->get_ref<const std::string &>();
  std::optional<ElementType> type = parseDtype(dtype);
  if (!type)
    return Error(prefix + " has dtype " + dtype +
                 "; only F32, F16 and BF16 are supported");

  auto shapeIt = entry.find("shape");
  if (shapeIt == entry.end() || !shapeIt->is_array())
    return Error(prefix + " has no \"shape\" array");
  TensorView view;
  view.type = *type;
  uint64_t nbytes = elementSize(*type);
  for (const json &d : *shapeIt) {
    std::optional<uint64_t> dim = asUnsigned(d);
    if (!dim || *dim > static_cast<uint64_t>(
                           std::numeric_limits<int64_t>::max()))
      return Error(prefix + " has a shape entry " + d.dump() +
                   " that is not a non-negative integer");
    if (__builtin_mul_overflow(nbytes, *dim, &nbytes))
      return Error(prefix + " has shape " + shapeIt->dump() +
                   " whose size overflows 64 bits");
    view.shape.push_back(static_cast<int64_t>(*dim));
  }

  auto offIt = entry.find("data_offsets");
  if (offIt == entry.end() || !offIt->is_array() || offIt->size() != 2)
    return Error(prefix + " has no two-element \"data_offsets\" array");
  std::optional<uint64_t> begin = asUnsigned((*offIt)[0]);
  std::optional<uint64_t> end = asUnsigned((*offIt)[1]);
  if (!begin || !end)
    return Error(prefix + " has data_offsets " + offIt->dump() +
                 " that are not non-negative integers");
  if (*begin > *end)
    return Error(prefix + " has data_offsets " + offIt->dump() +
                 " that end before they begin");
  if (*end > data.size())
    return Error(prefix + " has data_offsets " + offIt->dump() +
                 " that run past the end of the data area (" +
                 std::to_string(data.size()) + " bytes)");
  if (*end - *begin != nbytes)
    return Error(prefix + " spans " + std::to_string(*end - *begin) +
                 " bytes but dtype " + dtype + " and shape " +
                 shapeIt->dump() + " need " + std::to_string(nbytes));
  view.bytes = data.subspan(*begin, nbytes);
  return view;
}

} // namespace

Expected<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  auto mapped = MappedFile::open(path);
  if (!mapped)
    return mapped.error();
  std::span<const uint8_t> bytes = (*mapped)->bytes();
  if (bytes.size() < 8)
    return Error(path + ": file is " + std::to_string(bytes.size()) +
                 " bytes, too small for the 8-byte safetensors header length");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) headerLen = headerLen << 8 | bytes[i];
  if (headerLen > bytes.size() - 8)
    return Error(path + ": header length " + std::to_string(headerLen) +
                 " runs past the end of the file (" +
                 std::to_string(bytes.size()) + " bytes)");
  if (headerLen > kMaxHeaderBytes)
    return Error(path + ": header length " + std::to_string(headerLen) +
                 " exceeds the " + std::to_string(kMaxHeaderBytes) +
                 "-byte limit");

  const char *first = reinterpret_cast<const char *>(bytes.data() + 8);
  json header = json::parse(first, first + headerLen, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded())
    return Error(path + ": header is not valid JSON");
  if (!header.is_object())
    return Error(path + ": header is not a JSON object");

  SafetensorsFile st;
  st.path_ = path;
  std::span<const uint8_t> data = bytes.subspan(8 + headerLen);
  for (const auto &[name, entry] : header.items()) {
    if (name == kMetadataKey) {
      if (!entry.is_object())
        return Error(path + ": \"__metadata__\" is not a JSON object");
      for (const auto &[key, value] : entry.items()) {
        if (!value.is_string())
          return Error(path + ": metadata entry '" + key +
                       "' is not a string");
        st.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    auto view = parseTensor(path + ": tensor '" + name + "'", entry, data);
    if (!view)
      return view.error();
    st.tensors_.emplace(name, view.take());
  }
  st.file_ = mapped.take();
  return st;
}

std::optional<TensorView> SafetensorsFile::lookup(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    return std::nullopt;
  return it->second;
}

Status writeSafetensors(
    const std::string &path,
    const std::vector<std::pair<std::string, TensorView>> &tensors,
    const std::map<std::string, std::string> &metadata) {
  json header = json::object();
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (const auto &[name, view] : tensors) {
    if (name == kMetadataKey)
      return Error(path + ": '" + name + "' is reserved for metadata");
    if (!seen.insert(name).second)
      return Error(path + ": tensor '" + name + "' is listed twice");
    uint64_t nbytes = elementSize(view.type);
    for (int64_t d : view.shape)
      if (d < 0 || __builtin_mul_overflow(nbytes, static_cast<uint64_t>(d),
                                          &nbytes))
        return Error(path + ": tensor '" + name + "' has an invalid shape");
    if (nbytes != view.bytes.size())
      return Error(path + ": tensor '" + name + "' has " +
                   std::to_string(view.bytes.size()) +
                   " bytes but its shape needs " + std::to_string(nbytes));
    header[name] = {{"dtype", dtypeName(view.type)},
                    {"shape", view.shape},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty())
    header[kMetadataKey] = metadata;

  // `replace` keeps dump() from throwing on names that are not UTF-8.
  std::string text =
      header.dump(-1, ' ', false, json::error_handler_t::replace);
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(text.size() >> (8 * i));

  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return Error(path + ": cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(len, 1, 8, f) == 8 &&
            std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const auto &[name, view] : tensors) {
    if (!ok) break;
    // Empty tensors may have a null data pointer, which fwrite must not see.
    ok = view.bytes.empty() ||
         std::fwrite(view.bytes.data(), 1, view.bytes.size(), f) ==
         view.bytes.size();
  }
  int err = ok ? 0 : errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok)
    return Error(path + ": write failed: " + std::strerror(err));
  return Status::ok();
}

} // namespace lathe::frontend
