#include "compiler/Frontend/Llama2cCheckpoint.h"

#include "runtime/artifact/FileHeader.h"
#include "runtime/artifact/ParameterFile.h"

#include <array>
#include <cstring>

namespace lathe::frontend {

namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

int32_t readInt32LE(const uint8_t *p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) |
                              static_cast<uint32_t>(p[1]) << 8 |
                              static_cast<uint32_t>(p[2]) << 16 |
                              static_cast<uint32_t>(p[3]) << 24);
}

std::string describeHeader(const LlamaConfig &c) {
  return "dim " + std::to_string(c.dim) + ", hidden " +
         std::to_string(c.hidden) + ", " + std::to_string(c.layers) +
         " layers, " + std::to_string(c.heads) + " heads, " +
         std::to_string(c.kvHeads) + " kv heads, vocab " +
         std::to_string(c.vocab) +
         (c.tiedEmbedding ? "" : " with separate classifier") + ", seq len " +
         std::to_string(c.context);
}

/// Hands out consecutive float32 tensors from the weight area. Sizes were
/// checked against the file size before the first call, so it never runs
/// past the end.
class TensorCursor {
public:
  explicit TensorCursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  TensorView take(std::vector<int64_t> shape) {
    TensorView v;
    v.type = ElementType::F32;
    v.shape = std::move(shape);
    size_t n = static_cast<size_t>(v.numElements()) * sizeof(float);
    v.bytes = bytes_.subspan(offset_, n);
    offset_ += n;
    return v;
  }
  void skip(size_t bytes) { offset_ += bytes; }
  size_t offset() const { return offset_; }

private:
  std::span<const uint8_t> bytes_;
  size_t offset_ = kHeaderBytes;
};

} // namespace

Expected<LlamaCheckpoint> readLlama2cCheckpoint(const std::string &path) {
  auto file = MappedFile::open(path);
  if (!file)
    return file.error();
  std::span<const uint8_t> bytes = (*file)->bytes();
  if (bytes.size() < kHeaderBytes)
    return Error(path + ": file is " + std::to_string(bytes.size()) +
                 " bytes, smaller than the " + std::to_string(kHeaderBytes) +
                 "-byte llama2.c header");

  // A llama2.c header has no magic, so another kind of file reads as
  // absurd dimensions: name the kinds a user may pass here by mistake.
  auto startsWith = [&](const char *magic, size_t n) {
    return std::memcmp(bytes.data(), magic, n) == 0;
  };
  if (startsWith(artifact::kMagic, sizeof artifact::kMagic))
    return Error(path + ": a Lathe artifact, not a checkpoint (llama2.c .bin or a Hugging Face "
                        "folder)");
  if (startsWith(artifact::kParameterMagic, sizeof artifact::kParameterMagic))
    return Error(path + ": a Lathe parameter file, not a checkpoint (llama2.c .bin or a Hugging "
                        "Face folder)");
  if (startsWith("GGUF", 4))
    return Error(path + ": a GGUF file, not a llama2.c checkpoint (lathe-compile reads GGUFs; "
                        "their weights go into the artifact)");

  std::array<int64_t, 7> h;
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = readInt32LE(bytes.data() + 4 * i);

  LlamaCheckpoint ckpt;
  LlamaConfig &c = ckpt.config;
  c.dim = h[0];
  c.hidden = h[1];
  c.layers = h[2];
  c.heads = h[3];
  c.kvHeads = h[4];
  // int64 so that -INT32_MIN does not overflow; validateConfig rejects it.
  c.vocab = h[5] < 0 ? -h[5] : h[5];
  c.tiedEmbedding = h[5] >= 0;
  c.context = h[6];
  if (c.heads > 0 && c.dim % c.heads != 0)
    return Error(path + ": dim " + std::to_string(c.dim) +
                 " is not divisible by the number of heads " + std::to_string(c.heads));
  c.headDim = c.heads > 0 ? c.dim / c.heads : 0;
  c.normEps = 1e-5f;
  c.ropeTheta = 10000.0f;
  c.rope = RopeLayout::Interleaved;
  if (Status s = validateConfig(c, path); !s)
    return s.error();

  // Count floats with overflow checks: each size is below 2^31, but sums of
  // products like layers * hidden * dim can still pass 2^64 bytes.
  const uint64_t dim = c.dim, hidden = c.hidden, layers = c.layers,
                 vocab = c.vocab, seq = c.context, headDim = c.headDim,
                 kvDim = c.kvDim();
  const uint64_t perLayer[][2] = {
      {1, dim},          // rms_att
      {dim, dim},        // wq
      {kvDim, dim},      // wk
      {kvDim, dim},      // wv
      {dim, dim},        // wo
      {1, dim},          // rms_ffn
      {hidden, dim},     // w1
      {dim, hidden},     // w2
      {hidden, dim},     // w3
  };
  bool overflow = false;
  uint64_t floats = 0, layerFloats = 0, t;
  for (const auto &[a, b] : perLayer) {
    overflow |= __builtin_mul_overflow(a, b, &t);
    overflow |= __builtin_add_overflow(layerFloats, t, &layerFloats);
  }
  overflow |= __builtin_mul_overflow(layerFloats, layers, &floats);
  const uint64_t once[][2] = {
      {vocab, dim},                      // token_embedding
      {1, dim},                          // rms_final
      {seq, headDim},                    // freq_cis_real + freq_cis_imag
      {c.tiedEmbedding ? 0 : vocab, dim} // wcls
  };
  for (const auto &[a, b] : once) {
    overflow |= __builtin_mul_overflow(a, b, &t);
    overflow |= __builtin_add_overflow(floats, t, &floats);
  }
  uint64_t expectedBytes = 0;
  overflow |= __builtin_mul_overflow(floats, sizeof(float), &expectedBytes);
  overflow |= __builtin_add_overflow(expectedBytes, kHeaderBytes,
                                     &expectedBytes);
  if (overflow)
    return Error(path + ": the header (" + describeHeader(c) +
                 ") implies a file larger than 2^64 bytes");
  if (expectedBytes != bytes.size())
    return Error(path + ": file is " + std::to_string(bytes.size()) +
                 " bytes but the header (" + describeHeader(c) +
                 ") implies " + std::to_string(expectedBytes) + " bytes");

  TensorCursor cur(bytes);
  const int64_t d = c.dim, kv = c.kvDim();
  ckpt.embedding = cur.take({c.vocab, d});
  ckpt.layers.resize(c.layers);
  // llama2.c stores each kind of weight for all layers together.
  for (auto &l : ckpt.layers) l.attnNorm = cur.take({d});
  for (auto &l : ckpt.layers) l.wq = cur.take({d, d});
  for (auto &l : ckpt.layers) l.wk = cur.take({kv, d});
  for (auto &l : ckpt.layers) l.wv = cur.take({kv, d});
  for (auto &l : ckpt.layers) l.wo = cur.take({d, d});
  for (auto &l : ckpt.layers) l.ffnNorm = cur.take({d});
  for (auto &l : ckpt.layers) l.w1 = cur.take({c.hidden, d});
  for (auto &l : ckpt.layers) l.w2 = cur.take({d, c.hidden});
  for (auto &l : ckpt.layers) l.w3 = cur.take({c.hidden, d});
  ckpt.finalNorm = cur.take({d});
  // freq_cis_real and freq_cis_imag, [seq_len][head_dim/2] each.
  cur.skip(static_cast<size_t>(c.context * c.headDim) * sizeof(float));
  if (!c.tiedEmbedding)
    ckpt.classifier = cur.take({c.vocab, d});
  if (cur.offset() != bytes.size())
    return Error(path + ": internal error: read " +
                 std::to_string(cur.offset()) + " of " +
                 std::to_string(bytes.size()) + " bytes");

  ckpt.storage.push_back(file.take());
  if (Status s = validateCheckpoint(ckpt, path); !s)
    return s.error();
  return ckpt;
}

} // namespace lathe::frontend
