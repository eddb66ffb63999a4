#include "compiler/Frontend/GgmlBlocks.h"

#include "compiler/Frontend/Gguf.h"
#include "runtime/formats/ElementType.h"
#include "runtime/formats/RowCodec.h"

#include <cmath>
#include <cstring>
#include <string>

namespace lathe::frontend {

namespace {

float half(const uint8_t *p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16ToFloat(h);
}

GgmlType typeOf(uint32_t t) { return static_cast<GgmlType>(t); }

// ggml-quants.c get_scale_min_k4: the 6-bit scale and min of sub-block j
// of a Q4_K/Q5_K super-block.
void scaleMinK4(int j, const uint8_t *q, uint8_t &d, uint8_t &m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// One block of each type at `b`, its values to `y`: ggml's
// dequantize_row_* loops, one block at a time.
void blockQ4_0(const uint8_t *b, float *y) {
  const float d = half(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = ((b[2 + j] & 0x0F) - 8) * d;
    y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
  }
}

void blockQ4_1(const uint8_t *b, float *y) {
  const float d = half(b), m = half(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = (b[4 + j] & 0x0F) * d + m;
    y[j + 16] = (b[4 + j] >> 4) * d + m;
  }
}

void blockQ5_0(const uint8_t *b, float *y) {
  const float d = half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < 16; ++j) {
    const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = (((b[6 + j] & 0x0F) | h0) - 16) * d;
    y[j + 16] = (((b[6 + j] >> 4) | h1) - 16) * d;
  }
}

void blockQ5_1(const uint8_t *b, float *y) {
  const float d = half(b), m = half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  for (int j = 0; j < 16; ++j) {
    const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = ((b[8 + j] & 0x0F) | h0) * d + m;
    y[j + 16] = ((b[8 + j] >> 4) | h1) * d + m;
  }
}

void blockQ8_0(const uint8_t *b, float *y) {
  const float d = half(b);
  for (int j = 0; j < 32; ++j)
    y[j] = static_cast<int8_t>(b[2 + j]) * d;
}

// block_q2_K: scales[16], qs[64], d, dmin.
void blockQ2_K(const uint8_t *b, float *y) {
  const uint8_t *scales = b, *q = b + 16;
  const float d = half(b + 80), min = half(b + 82);
  int is = 0;
  for (int n = 0; n < 256; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc = scales[is++];
      float dl = d * (sc & 0xF), ml = min * (sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l] >> shift) & 3) - ml;
      sc = scales[is++];
      dl = d * (sc & 0xF), ml = min * (sc >> 4);
      for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l + 16] >> shift) & 3) - ml;
      shift += 2;
    }
    q += 32;
  }
}

// block_q3_K: hmask[32], qs[64], scales[12], d.
void blockQ3_K(const uint8_t *b, float *y) {
  const uint8_t *hm = b, *q = b + 32;
  const float dAll = half(b + 108);
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  uint32_t aux[4];
  std::memcpy(aux, b + 96, 12);
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  int8_t scales[16];
  std::memcpy(scales, aux, 16);
  int is = 0;
  uint8_t m = 1;
  for (int n = 0; n < 256; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      float dl = dAll * (scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
      dl = dAll * (scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * (((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
      shift += 2;
      m <<= 1;
    }
    q += 32;
  }
}

// block_q4_K: d, dmin, scales[12], qs[128].
void blockQ4_K(const uint8_t *b, float *y) {
  const float d = half(b), min = half(b + 2);
  const uint8_t *scales = b + 4, *q = b + 16;
  int is = 0;
  for (int j = 0; j < 256; j += 64) {
    uint8_t sc, m;
    scaleMinK4(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = min * m;
    scaleMinK4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

// block_q5_K: d, dmin, scales[12], qh[32], qs[128].
void blockQ5_K(const uint8_t *b, float *y) {
  const float d = half(b), min = half(b + 2);
  const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < 256; j += 64) {
    uint8_t sc, m;
    scaleMinK4(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = min * m;
    scaleMinK4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 <<= 2;
    u2 <<= 2;
  }
}

// block_q6_K: ql[128], qh[64], scales[16] (int8), d.
void blockQ6_K(const uint8_t *b, float *y) {
  const uint8_t *ql = b, *qh = b + 128;
  const int8_t *sc = reinterpret_cast<const int8_t *>(b + 192);
  const float d = half(b + 208);
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int8_t q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int8_t q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

using BlockDecoder = void (*)(const uint8_t *, float *);

BlockDecoder blockDecoder(uint32_t type) {
  switch (typeOf(type)) {
  case GgmlType::Q4_0: return blockQ4_0;
  case GgmlType::Q4_1: return blockQ4_1;
  case GgmlType::Q5_0: return blockQ5_0;
  case GgmlType::Q5_1: return blockQ5_1;
  case GgmlType::Q8_0: return blockQ8_0;
  case GgmlType::Q2_K: return blockQ2_K;
  case GgmlType::Q3_K: return blockQ3_K;
  case GgmlType::Q4_K: return blockQ4_K;
  case GgmlType::Q5_K: return blockQ5_K;
  case GgmlType::Q6_K: return blockQ6_K;
  default: return nullptr;
  }
}

} // namespace

std::optional<formats::FormatSpec> losslessFormat(uint32_t ggmlType) {
  formats::FormatSpec spec;
  spec.blockSize = 32;
  spec.symmetric = true;
  if (typeOf(ggmlType) == GgmlType::Q8_0)
    spec.kind = formats::FormatKind::INT8;
  else if (typeOf(ggmlType) == GgmlType::Q4_0)
    spec.kind = formats::FormatKind::INT4;
  else
    return std::nullopt;
  return spec;
}

Status repackGgmlBlocks(uint32_t ggmlType, std::span<const uint8_t> in, int64_t rows,
                        int64_t cols, std::span<uint8_t> out) {
  const std::optional<formats::FormatSpec> spec = losslessFormat(ggmlType);
  const std::optional<GgmlBlockLayout> layout = ggmlBlockLayout(ggmlType);
  if (!spec || !layout || cols % 32 != 0)
    return Error(ggmlTypeName(ggmlType) + " rows of " + std::to_string(cols) +
                 " values have no lossless Lathe format");
  const int64_t blocks = cols / 32;
  const size_t rowBytes = formats::packedRowBytes(*spec, cols);
  const size_t groupBytes = formats::rowBlockBytes(*spec, cols);
  if (in.size() != size_t(rows * blocks * layout->bytes) || out.size() != rows * rowBytes)
    return Error(ggmlTypeName(ggmlType) + ": " + std::to_string(in.size()) + " bytes in, " +
                 std::to_string(out.size()) + " out do not fit " + std::to_string(rows) +
                 " rows of " + std::to_string(cols) + " values");
  const bool q8 = typeOf(ggmlType) == GgmlType::Q8_0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < blocks; ++k) {
      const uint8_t *b = in.data() + (r * blocks + k) * layout->bytes;
      uint8_t *g = out.data() + r * rowBytes + k * groupBytes;
      const float scale = half(b);
      if (!std::isfinite(scale))
        return Error("row " + std::to_string(r) + ", block " + std::to_string(k) +
                     " has a non-finite scale");
      std::memcpy(g, &scale, 4);
      if (q8) {
        std::memcpy(g + 4, b + 2, 32);
        continue;
      }
      // Value i of the block sits in the low nibble of byte i (i < 16) or
      // the high nibble of byte i - 16; Lathe puts it in nibble i % 2 of
      // byte i / 2. XOR 8 turns n (value n - 8) into n - 8 in two's
      // complement.
      auto nibble = [&](int i) {
        const uint8_t byte = b[2 + (i & 15)];
        return static_cast<uint8_t>(((i < 16 ? byte : byte >> 4) & 0x0F) ^ 0x08);
      };
      for (int i = 0; i < 32; i += 2)
        g[4 + i / 2] = static_cast<uint8_t>(nibble(i) | nibble(i + 1) << 4);
    }
  }
  return Status::ok();
}

bool canDequantizeGgml(uint32_t ggmlType) {
  switch (typeOf(ggmlType)) {
  case GgmlType::F32:
  case GgmlType::F16:
  case GgmlType::BF16: return true;
  default: return blockDecoder(ggmlType) != nullptr;
  }
}

void dequantizeGgml(uint32_t ggmlType, std::span<const uint8_t> in, std::span<float> out) {
  const size_t n = out.size();
  switch (typeOf(ggmlType)) {
  case GgmlType::F32: std::memcpy(out.data(), in.data(), 4 * n); return;
  case GgmlType::F16:
  case GgmlType::BF16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, in.data() + 2 * i, 2);
      out[i] = typeOf(ggmlType) == GgmlType::F16 ? f16ToFloat(h) : bf16ToFloat(h);
    }
    return;
  default: break;
  }
  const BlockDecoder decode = blockDecoder(ggmlType);
  const GgmlBlockLayout layout = *ggmlBlockLayout(ggmlType);
  for (size_t b = 0; b < n / size_t(layout.values); ++b)
    decode(in.data() + b * layout.bytes, out.data() + b * layout.values);
}

} // namespace lathe::frontend
