// A small GGUF writer for tests (CI cannot fetch llama.cpp or its files):
// metadata, tensors, and ggml's reference quantizers for Q8_0 and Q4_0
// (ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref, which
// llama-quantize runs when no importance matrix is given), so that a test
// can write the files llama.cpp's converter and quantizer would write.
#pragma once

#include "runtime/formats/ElementType.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace lathe::test {

class GgufWriter {
public:
  // Metadata value types (gguf_type).
  enum : uint32_t { U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9 };

  void addU32(const std::string &key, uint32_t v) { scalar(key, U32, &v, 4); }
  void addI32(const std::string &key, int32_t v) { scalar(key, I32, &v, 4); }
  void addF32(const std::string &key, float v) { scalar(key, F32, &v, 4); }
  void addBool(const std::string &key, bool v) {
    uint8_t b = v;
    scalar(key, Bool, &b, 1);
  }
  void addString(const std::string &key, const std::string &v) {
    keyAndType(key, String);
    str(meta_, v);
    ++kvCount_;
  }
  void addStrings(const std::string &key, const std::vector<std::string> &v) {
    keyAndType(key, Array);
    pod(meta_, String);
    pod(meta_, uint64_t(v.size()));
    for (const std::string &s : v)
      str(meta_, s);
    ++kvCount_;
  }
  void addF32s(const std::string &key, const std::vector<float> &v) { array(key, F32, v); }
  void addI32s(const std::string &key, const std::vector<int32_t> &v) { array(key, I32, v); }

  /// A tensor: `dims` in ggml order (dims[0] is the row length), `type` a
  /// ggml type id, `bytes` its data.
  void addTensor(const std::string &name, std::vector<uint64_t> dims, uint32_t type,
                 std::vector<uint8_t> bytes) {
    tensors_.push_back({name, std::move(dims), type, std::move(bytes)});
  }

  /// The whole file. Tensor data is aligned to 32 bytes (general.alignment's
  /// default), as gguf.c writes it.
  std::string bytes(uint32_t version = 3) const {
    std::string out = "GGUF";
    pod(out, version);
    pod(out, uint64_t(tensors_.size()));
    pod(out, kvCount_);
    out += meta_;
    uint64_t offset = 0;
    for (const Tensor &t : tensors_) {
      str(out, t.name);
      pod(out, uint32_t(t.dims.size()));
      for (uint64_t d : t.dims)
        pod(out, d);
      pod(out, t.type);
      pod(out, offset);
      offset += (t.bytes.size() + 31) / 32 * 32;
    }
    out.resize((out.size() + 31) / 32 * 32, '\0');
    for (const Tensor &t : tensors_) {
      out.append(reinterpret_cast<const char *>(t.bytes.data()), t.bytes.size());
      out.resize((out.size() + 31) / 32 * 32, '\0');
    }
    return out;
  }

  bool write(const std::string &path, uint32_t version = 3) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    std::string b = bytes(version);
    f.write(b.data(), std::streamsize(b.size()));
    return f.good();
  }

private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::vector<uint8_t> bytes;
  };
  template <typename T> static void pod(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
  }
  static void str(std::string &out, const std::string &s) {
    pod(out, uint64_t(s.size()));
    out += s;
  }
  void keyAndType(const std::string &key, uint32_t type) {
    str(meta_, key);
    pod(meta_, type);
  }
  void scalar(const std::string &key, uint32_t type, const void *v, size_t n) {
    keyAndType(key, type);
    meta_.append(static_cast<const char *>(v), n);
    ++kvCount_;
  }
  template <typename T> void array(const std::string &key, uint32_t type, const std::vector<T> &v) {
    keyAndType(key, Array);
    pod(meta_, type);
    pod(meta_, uint64_t(v.size()));
    for (T x : v)
      pod(meta_, x);
    ++kvCount_;
  }

  std::string meta_;
  uint64_t kvCount_ = 0;
  std::vector<Tensor> tensors_;
};

// ggml type ids.
inline constexpr uint32_t kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8,
                          kGgmlQ4_K = 12, kGgmlQ6_K = 14, kGgmlBF16 = 30;

/// ggml's quantize_row_q8_0_ref: d = max|x| / 127 as fp16, q = roundf(x / d).
inline std::vector<uint8_t> quantizeQ8_0(std::span<const float> x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float *v = x.data() + 32 * b;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j)
      amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t h = floatToF16(d);
    out.push_back(uint8_t(h)), out.push_back(uint8_t(h >> 8));
    for (int j = 0; j < 32; ++j)
      out.push_back(uint8_t(int8_t(std::roundf(v[j] * id))));
  }
  return out;
}

/// ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8
/// as fp16, n = min(15, (int8)(x / d + 8.5)); values j and j + 16 share a
/// byte (low, high nibble).
inline std::vector<uint8_t> quantizeQ4_0(std::span<const float> x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float *v = x.data() + 32 * b;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(v[j]))
        amax = std::fabs(v[j]), max = v[j];
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t h = floatToF16(d);
    out.push_back(uint8_t(h)), out.push_back(uint8_t(h >> 8));
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo = std::min<uint8_t>(15, uint8_t(int8_t(v[j] * id + 8.5f)));
      const uint8_t hi = std::min<uint8_t>(15, uint8_t(int8_t(v[16 + j] * id + 8.5f)));
      out.push_back(uint8_t(lo | hi << 4));
    }
  }
  return out;
}

inline std::vector<uint8_t> floatBytes(std::span<const float> x) {
  std::vector<uint8_t> out(x.size() * 4);
  std::memcpy(out.data(), x.data(), out.size());
  return out;
}

} // namespace lathe::test
