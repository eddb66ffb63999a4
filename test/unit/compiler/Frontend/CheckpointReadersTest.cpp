// Tests for the checkpoint readers: llama2.c (Llama2cCheckpoint), the
// safetensors reader/writer (Safetensors) and Hugging Face folders
// (HFCheckpoint). Files are built byte by byte in a temporary folder so that
// every offset the readers produce can be checked against a known layout;
// one safetensors file, test/data/safetensors/fixture.safetensors, comes from
// the reference writer instead (test/data/safetensors/make-fixture.py).

#include "compiler/Frontend/HFCheckpoint.h"
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>

namespace lathe::frontend {
namespace {

namespace fs = std::filesystem;

class TempDir {
public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lathe-ckpt-XXXXXX").string();
    char *p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string &name) const {
    return (path_ / name).string();
  }
  const fs::path &path() const { return path_; }

private:
  fs::path path_;
};

void writeFile(const std::string &path, const void *data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
  ASSERT_TRUE(out.good()) << path;
}

void writeText(const std::string &path, const std::string &text) {
  writeFile(path, text.data(), text.size());
}

float floatAt(const TensorView &v, size_t i) {
  EXPECT_EQ(v.type, ElementType::F32);
  EXPECT_LE((i + 1) * 4, v.bytes.size());
  float f;
  std::memcpy(&f, v.bytes.data() + 4 * i, 4);
  return f;
}

using Shape = std::vector<int64_t>;

// ---------------------------------------------------------------------------
// llama2.c
// ---------------------------------------------------------------------------

/// The tiny config of the synthetic llama2.c files: head dim 4, kv dim 4.
struct TinyHeader {
  int32_t dim = 8, hidden = 16, layers = 2, heads = 2, kvHeads = 1,
          vocab = 10, seqLen = 4;
};

// Float offsets of each tensor in the weight area of the tiny file, worked
// out by hand from the llama2.c layout (embedding 10x8, then per-kind blocks
// for both layers, then the final norm, RoPE tables and wcls).
constexpr float kEmbedding = 0, kRmsAtt = 80, kWq = 96, kWk = 224, kWv = 288,
                kWo = 352, kRmsFfn = 480, kW1 = 496, kW2 = 752, kW3 = 1008,
                kRmsFinal = 1264, kFreqCis = 1272, kWcls = 1288;
constexpr size_t kTiedFloats = 1288, kUntiedFloats = 1368;

/// Header followed by `floats` float32 values, each equal to its index in
/// the weight area, so a view's first float names its offset.
std::vector<uint8_t> llama2cFile(const TinyHeader &h, size_t floats) {
  std::vector<uint8_t> bytes(28 + 4 * floats);
  const int32_t header[7] = {h.dim,     h.hidden, h.layers, h.heads,
                             h.kvHeads, h.vocab,  h.seqLen};
  std::memcpy(bytes.data(), header, 28);
  for (size_t i = 0; i < floats; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(bytes.data() + 28 + 4 * i, &f, 4);
  }
  return bytes;
}

std::string writeLlama2c(const TempDir &dir, const TinyHeader &h,
                         size_t floats, const char *name = "tiny.bin") {
  auto bytes = llama2cFile(h, floats);
  std::string path = dir.file(name);
  writeFile(path, bytes.data(), bytes.size());
  return path;
}

/// Reads a file that must fail and returns the message.
std::string llama2cError(const std::string &path) {
  auto ckpt = readLlama2cCheckpoint(path);
  EXPECT_FALSE(ckpt) << "expected an error reading " << path;
  return ckpt ? "" : ckpt.error().message();
}

TEST(Llama2cCheckpoint, SharedClassifierLayout) {
  TempDir dir;
  std::string path = writeLlama2c(dir, {}, kTiedFloats);
  auto ckpt = readLlama2cCheckpoint(path);
  ASSERT_TRUE(ckpt) << ckpt.error().message();

  const LlamaConfig &c = ckpt->config;
  EXPECT_EQ(c.dim, 8);
  EXPECT_EQ(c.hidden, 16);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 2);
  EXPECT_EQ(c.kvHeads, 1);
  EXPECT_EQ(c.vocab, 10);
  EXPECT_EQ(c.context, 4);
  EXPECT_EQ(c.headDim, 4);
  EXPECT_EQ(c.kvDim(), 4);
  EXPECT_FLOAT_EQ(c.normEps, 1e-5f);
  EXPECT_FLOAT_EQ(c.ropeTheta, 10000.0f);
  EXPECT_TRUE(c.tiedEmbedding);
  EXPECT_EQ(c.rope, RopeLayout::Interleaved);
  EXPECT_FALSE(ckpt->classifier);
  ASSERT_EQ(ckpt->layers.size(), 2u);
  EXPECT_EQ(ckpt->storage.size(), 1u);

  EXPECT_EQ(ckpt->embedding.shape, (Shape{10, 8}));
  EXPECT_EQ(floatAt(ckpt->embedding, 0), kEmbedding);
  EXPECT_EQ(floatAt(ckpt->embedding, 79), 79.0f);

  const LlamaLayerWeights &l0 = ckpt->layers[0], &l1 = ckpt->layers[1];
  EXPECT_EQ(l1.wk.shape, (Shape{4, 8}));
  EXPECT_EQ(floatAt(l1.wk, 0), kWk + 32); // one [4][8] block after layer 0
  EXPECT_EQ(floatAt(l0.wk, 0), kWk);
  EXPECT_EQ(floatAt(l0.attnNorm, 0), kRmsAtt);
  EXPECT_EQ(floatAt(l1.attnNorm, 0), kRmsAtt + 8);
  EXPECT_EQ(l1.wq.shape, (Shape{8, 8}));
  EXPECT_EQ(floatAt(l1.wq, 0), kWq + 64);
  EXPECT_EQ(floatAt(l1.wv, 0), kWv + 32);
  EXPECT_EQ(l1.wo.shape, (Shape{8, 8}));
  EXPECT_EQ(floatAt(l1.wo, 0), kWo + 64);
  EXPECT_EQ(floatAt(l1.ffnNorm, 0), kRmsFfn + 8);
  EXPECT_EQ(l1.w1.shape, (Shape{16, 8}));
  EXPECT_EQ(floatAt(l1.w1, 0), kW1 + 128);
  EXPECT_EQ(l1.w2.shape, (Shape{8, 16}));
  EXPECT_EQ(floatAt(l1.w2, 0), kW2 + 128);
  EXPECT_EQ(floatAt(l1.w3, 0), kW3 + 128);
  EXPECT_EQ(floatAt(l1.w3, 127), kRmsFinal - 1.0f);
  EXPECT_EQ(ckpt->finalNorm.shape, (Shape{8}));
  EXPECT_EQ(floatAt(ckpt->finalNorm, 0), kRmsFinal);
  EXPECT_EQ(floatAt(ckpt->finalNorm, 7), kFreqCis - 1.0f);
}

TEST(Llama2cCheckpoint, NegativeVocabMeansSeparateClassifier) {
  TempDir dir;
  TinyHeader h;
  h.vocab = -10;
  std::string path = writeLlama2c(dir, h, kUntiedFloats);
  auto ckpt = readLlama2cCheckpoint(path);
  ASSERT_TRUE(ckpt) << ckpt.error().message();
  EXPECT_EQ(ckpt->config.vocab, 10);
  EXPECT_FALSE(ckpt->config.tiedEmbedding);
  ASSERT_TRUE(ckpt->classifier);
  EXPECT_EQ(ckpt->classifier->shape, (Shape{10, 8}));
  // wcls sits after the skipped freq_cis tables and ends the file.
  EXPECT_EQ(floatAt(*ckpt->classifier, 0), kWcls);
  EXPECT_EQ(floatAt(*ckpt->classifier, 79), float(kUntiedFloats - 1));
  EXPECT_EQ(floatAt(ckpt->finalNorm, 0), kRmsFinal);
}

TEST(Llama2cCheckpoint, SizeMustMatchExactly) {
  TempDir dir;
  auto bytes = llama2cFile({}, kTiedFloats);
  std::string path = dir.file("cut.bin");
  writeFile(path, bytes.data(), bytes.size() - 1);
  std::string msg = llama2cError(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("file is 5179 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("implies 5180 bytes"), std::string::npos) << msg;

  bytes.push_back(0);
  writeFile(path, bytes.data(), bytes.size());
  msg = llama2cError(path);
  EXPECT_NE(msg.find("file is 5181 bytes"), std::string::npos) << msg;

  // A shared-classifier file of the untied size is also wrong.
  std::string big = writeLlama2c(dir, {}, kUntiedFloats, "big.bin");
  msg = llama2cError(big);
  EXPECT_NE(msg.find("implies 5180 bytes"), std::string::npos) << msg;
}

TEST(Llama2cCheckpoint, RejectsNonsenseHeaders) {
  TempDir dir;
  auto expectError = [&](TinyHeader h, const std::string &fragment) {
    std::string path = writeLlama2c(dir, h, kTiedFloats);
    std::string msg = llama2cError(path);
    EXPECT_NE(msg.find(fragment), std::string::npos)
        << "message: " << msg << "\nexpected to contain: " << fragment;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  };
  TinyHeader h;
  h.dim = 0;
  expectError(h, "dim is 0");
  h = {};
  h.layers = -3;
  expectError(h, "layers is -3");
  h = {};
  h.seqLen = 0;
  expectError(h, "seq len is 0");
  h = {};
  h.vocab = std::numeric_limits<int32_t>::min(); // |vocab| is not an int32
  expectError(h, "vocab is 2147483648");
  h = {};
  h.heads = 3; // 8 % 3 != 0
  expectError(h, "not divisible by the number of heads 3");
  h = {};
  h.kvHeads = 3; // heads 2 is not a multiple of 3
  expectError(h, "not a multiple of kv heads 3");
  h = {};
  h.dim = 6;
  h.heads = 2; // head dim 3
  expectError(h, "head dim 3");
}

TEST(Llama2cCheckpoint, AbsurdDimsOverflowCleanly) {
  TempDir dir;
  TinyHeader h;
  h.dim = 1 << 30;
  h.hidden = 1 << 30;
  h.layers = 1 << 30;
  h.vocab = -(1 << 30);
  std::string msg = llama2cError(writeLlama2c(dir, h, kTiedFloats));
  EXPECT_NE(msg.find("larger than 2^64 bytes"), std::string::npos) << msg;

  // Large but not overflowing: an honest size mismatch.
  h = {};
  h.dim = 1 << 20;
  h.vocab = 1 << 20;
  msg = llama2cError(writeLlama2c(dir, h, kTiedFloats));
  EXPECT_NE(msg.find("file is 5180 bytes but the header (dim 1048576"),
            std::string::npos)
      << msg;

  h = {};
  h.dim = std::numeric_limits<int32_t>::max() - 3; // head dim 2^30 - 2: even
  h.hidden = std::numeric_limits<int32_t>::max();
  h.layers = std::numeric_limits<int32_t>::max();
  h.kvHeads = 2;
  h.seqLen = std::numeric_limits<int32_t>::max();
  msg = llama2cError(writeLlama2c(dir, h, kTiedFloats));
  EXPECT_NE(msg.find("larger than 2^64 bytes"), std::string::npos) << msg;
}

TEST(Llama2cCheckpoint, EmptyAndMissingFiles) {
  TempDir dir;
  std::string empty = dir.file("empty.bin");
  writeFile(empty, "", 0);
  std::string msg = llama2cError(empty);
  EXPECT_NE(msg.find("file is 0 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find(empty), std::string::npos) << msg;

  std::string shortFile = dir.file("short.bin");
  writeFile(shortFile, "abcdefghij", 10);
  msg = llama2cError(shortFile);
  EXPECT_NE(msg.find("file is 10 bytes"), std::string::npos) << msg;

  std::string missing = dir.file("does-not-exist.bin");
  msg = llama2cError(missing);
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;

  msg = llama2cError(dir.path().string()); // a folder
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
}

// The real stories15M checkpoint, when the environment points at it.
TEST(Llama2cCheckpoint, Stories15M) {
  // CMake always sets the variable (to LATHE_MODEL_DIR/stories15M.bin):
  // skip when the file is not there, not only when the variable is unset.
  const char *path = std::getenv("LATHE_MODEL_BIN");
  if (!path || !std::filesystem::exists(path))
    GTEST_SKIP() << "no stories15M checkpoint at LATHE_MODEL_BIN ("
                 << (path ? path : "unset") << "); run make model";
  auto ckpt = readLlama2cCheckpoint(path);
  ASSERT_TRUE(ckpt) << ckpt.error().message();
  const LlamaConfig &c = ckpt->config;
  EXPECT_EQ(c.dim, 288);
  EXPECT_EQ(c.hidden, 768);
  EXPECT_EQ(c.layers, 6);
  EXPECT_EQ(c.heads, 6);
  EXPECT_EQ(c.kvHeads, 6);
  EXPECT_EQ(c.vocab, 32000);
  EXPECT_EQ(c.context, 256);
  EXPECT_TRUE(c.tiedEmbedding);
  EXPECT_FALSE(ckpt->classifier);
  EXPECT_EQ(ckpt->storage.at(0)->size(), 60816028u);

  std::ifstream in(path, std::ios::binary);
  in.seekg(28);
  float first;
  in.read(reinterpret_cast<char *>(&first), 4);
  ASSERT_TRUE(in.good());
  EXPECT_EQ(floatAt(ckpt->embedding, 0), first);
  EXPECT_EQ(ckpt->embedding.bytes.data(), ckpt->storage[0]->bytes().data() + 28);
}

// ---------------------------------------------------------------------------
// Safetensors
// ---------------------------------------------------------------------------

/// Owns the bytes behind TensorViews built in tests.
class TensorPool {
public:
  /// A view whose element k holds `base + k` (F32) or the raw bit pattern
  /// `base + k` (F16/BF16).
  TensorView make(Shape shape, ElementType type = ElementType::F32,
                  float base = 0) {
    TensorView v;
    v.type = type;
    v.shape = std::move(shape);
    size_t n = static_cast<size_t>(v.numElements());
    auto &buf = buffers_.emplace_back(n * elementSize(type));
    for (size_t k = 0; k < n; ++k) {
      if (type == ElementType::F32) {
        float f = base + static_cast<float>(k);
        std::memcpy(buf.data() + 4 * k, &f, 4);
      } else {
        uint16_t h = static_cast<uint16_t>(static_cast<size_t>(base) + k);
        std::memcpy(buf.data() + 2 * k, &h, 2);
      }
    }
    v.bytes = buf;
    return v;
  }

private:
  std::deque<std::vector<uint8_t>> buffers_;
};

bool sameBytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

/// A safetensors file from a raw header string; `declaredLength` overrides
/// the header length field. Byte k of the data area holds k (mod 256), so a
/// view's bytes name the offsets it was read from.
std::string rawSafetensors(const TempDir &dir, const std::string &header,
                           size_t dataBytes,
                           std::optional<uint64_t> declaredLength = {}) {
  uint64_t n = declaredLength.value_or(header.size());
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t k = 0; k < dataBytes; ++k)
    bytes.push_back(static_cast<uint8_t>(k));
  std::string path = dir.file("raw.safetensors");
  writeFile(path, bytes.data(), bytes.size());
  return path;
}

std::string safetensorsError(const std::string &path) {
  auto st = SafetensorsFile::open(path);
  EXPECT_FALSE(st) << "expected an error reading " << path;
  return st ? "" : st.error().message();
}

TEST(Safetensors, RoundTrip) {
  TempDir dir;
  TensorPool pool;
  TensorView a = pool.make({2, 3}, ElementType::F32, 1.0f);
  TensorView b = pool.make({5}, ElementType::F16, 100);
  TensorView c = pool.make({1, 2, 2}, ElementType::BF16, 200);
  TensorView scalar = pool.make({}, ElementType::F32, 42.0f);
  TensorView empty = pool.make({0, 4}, ElementType::F32);
  std::string path = dir.file("rt.safetensors");
  Status s = writeSafetensors(
      path, {{"a", a}, {"b.half", b}, {"c.bf", c}, {"s", scalar}, {"e", empty}},
      {{"format", "pt"}, {"note", "x"}});
  ASSERT_TRUE(s) << s.error().message();

  // Header padded to a multiple of 8, data packed in write order.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char *>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(fs::file_size(path), 8 + n + 24 + 10 + 8 + 4 + 0);

  auto st = SafetensorsFile::open(path);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->tensors().size(), 5u);
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_EQ(st->metadata().at("note"), "x");
  EXPECT_EQ(st->path(), path);
  EXPECT_FALSE(st->lookup("missing"));
  EXPECT_FALSE(st->lookup("__metadata__"));

  auto check = [&](const char *name, const TensorView &want) {
    auto got = st->lookup(name);
    ASSERT_TRUE(got) << name;
    EXPECT_EQ(got->type, want.type) << name;
    EXPECT_EQ(got->shape, want.shape) << name;
    EXPECT_TRUE(sameBytes(got->bytes, want.bytes)) << name;
  };
  check("a", a);
  check("b.half", b);
  check("c.bf", c);
  check("s", scalar);
  check("e", empty);
  EXPECT_EQ(floatAt(*st->lookup("a"), 5), 6.0f);
  EXPECT_EQ(floatAt(*st->lookup("s"), 0), 42.0f);
  // The views point into the mapping, which outlives the SafetensorsFile.
  auto storage = st->storage();
  EXPECT_GE(st->lookup("a")->bytes.data(), storage->bytes().data());
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  TensorPool pool;
  TensorView a = pool.make({2}, ElementType::F32);
  std::string path = dir.file("w.safetensors");
  Status s = writeSafetensors(path, {{"a", a}, {"a", a}});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("listed twice"), std::string::npos);
  s = writeSafetensors(path, {{"__metadata__", a}});
  EXPECT_FALSE(s);
  TensorView wrong = a;
  wrong.shape = {3};
  s = writeSafetensors(path, {{"a", wrong}});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("has 8 bytes but its shape needs 12"),
            std::string::npos)
      << s.error().message();
  s = writeSafetensors(dir.file("no/such/dir/x.safetensors"), {{"a", a}});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("cannot create"), std::string::npos);
}

TEST(Safetensors, AcceptsHandWrittenF16AndBF16) {
  TempDir dir;
  std::string path = rawSafetensors(
      dir,
      R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"BF16","shape":[1,3],"data_offsets":[4,10]}})",
      10);
  auto st = SafetensorsFile::open(path);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->lookup("h")->type, ElementType::F16);
  EXPECT_EQ(st->lookup("b")->type, ElementType::BF16);
  EXPECT_EQ(st->lookup("b")->shape, (Shape{1, 3}));
  EXPECT_TRUE(sameBytes(st->lookup("h")->bytes,
                        std::vector<uint8_t>{0, 1, 2, 3}));
  EXPECT_TRUE(sameBytes(st->lookup("b")->bytes,
                        std::vector<uint8_t>{4, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(st->metadata().empty());
}

/// The IEEE-754 bit pattern of `v` in a binary format with `expBits` exponent
/// bits and `mantBits` stored mantissa bits, worked out from the definition
/// (v = 1.m * 2^(e - bias), or 0.m * 2^(1 - bias) when subnormal) rather than
/// by any conversion routine in Lathe. `v` must be finite and exact in the
/// format; anything else is a test failure.
uint32_t ieeeBits(double v, int expBits, int mantBits) {
  const int bias = (1 << (expBits - 1)) - 1;
  const uint32_t sign = std::signbit(v) ? 1 : 0;
  const double a = std::fabs(v);
  uint32_t exp = 0;
  double mant = 0;
  if (a != 0) {
    int e;
    std::frexp(a, &e); // a = f * 2^e, f in [0.5, 1): a = 1.m * 2^(e - 1)
    if (e - 1 < 1 - bias) {
      mant = std::ldexp(a, mantBits + bias - 1);
    } else {
      exp = static_cast<uint32_t>(e - 1 + bias);
      mant = std::ldexp(a, mantBits - (e - 1)) - std::ldexp(1.0, mantBits);
    }
  }
  EXPECT_LT(exp, (1u << expBits) - 1) << v << " overflows the format";
  EXPECT_EQ(mant, std::floor(mant)) << v << " is not exact in the format";
  return sign << (expBits + mantBits) | exp << mantBits |
         static_cast<uint32_t>(mant);
}

TEST(Safetensors, IeeeBitsMatchesPublishedPatterns) {
  EXPECT_EQ(ieeeBits(1.0, 8, 23), 0x3f800000u);
  EXPECT_EQ(ieeeBits(-2.5, 8, 23), 0xc0200000u);
  EXPECT_EQ(ieeeBits(0x1p-149, 8, 23), 0x00000001u); // smallest subnormal
  EXPECT_EQ(ieeeBits(1.0, 5, 10), 0x3c00u);
  EXPECT_EQ(ieeeBits(65504.0, 5, 10), 0x7bffu); // largest half
  EXPECT_EQ(ieeeBits(0x1p-14, 5, 10), 0x0400u); // smallest normal half
  EXPECT_EQ(ieeeBits(0x1p-24, 5, 10), 0x0001u); // smallest subnormal half
  EXPECT_EQ(ieeeBits(-0.0, 5, 10), 0x8000u);
  EXPECT_EQ(ieeeBits(1.0, 8, 7), 0x3f80u);
  EXPECT_EQ(ieeeBits(-3.0, 8, 7), 0xc040u);
}

// test/data/safetensors/fixture.safetensors was written by the official
// safetensors package (safetensors.torch.save_file), not by Lathe, by
// test/data/safetensors/make-fixture.py; see test/data/README.md. Element i
// (row-major) of each tensor is (i - c) * 2^(2i - s), every value exact in
// its dtype. This table repeats the script's TENSORS; keep them in step.
struct FixtureTensor {
  const char *name;
  ElementType type;
  Shape shape;
  int c, s;
};
const FixtureTensor kFixture[] = {
    {"zeta.f32", ElementType::F32, {2, 3}, 2, 8},
    {"mid.f16", ElementType::F16, {3, 4}, 5, 10},
    {"alpha.bf16", ElementType::BF16, {4, 2}, 3, -100},
    {"vec.f16", ElementType::F16, {7}, 3, 24},
    {"one.f32", ElementType::F32, {1}, 7, -3},
    {"scalar.bf16", ElementType::BF16, {}, -5, 2},
    {"empty.f32", ElementType::F32, {0, 3}, 0, 0},
};

TEST(Safetensors, ReadsReferenceWriterFixture) {
  const std::string path =
      std::string(LATHE_TEST_DATA_DIR) + "/safetensors/fixture.safetensors";
  // The fixture is committed; without it this test has nothing to say, and
  // it must not pass.
  ASSERT_TRUE(fs::exists(path))
      << path << " is missing: write it with "
      << "test/data/safetensors/make-fixture.py (see test/data/README.md)";
  auto st = SafetensorsFile::open(path);
  ASSERT_TRUE(st) << st.error().message();

  // Metadata is read, and is not mistaken for a tensor.
  std::map<std::string, std::string> meta = st->metadata();
  const std::string writer = meta["writer"]; // "safetensors X.Y.Z"
  meta.erase("writer");
  EXPECT_EQ(writer.rfind("safetensors ", 0), 0u) << writer;
  EXPECT_EQ(meta, (std::map<std::string, std::string>{
                      {"format", "pt"},
                      {"source", "test/data/safetensors/make-fixture.py"}}));
  EXPECT_FALSE(st->lookup("__metadata__"));
  EXPECT_EQ(st->tensors().size(), std::size(kFixture));

  std::span<const uint8_t> file = st->storage()->bytes();
  for (const FixtureTensor &t : kFixture) {
    SCOPED_TRACE(t.name);
    auto view = st->lookup(t.name);
    ASSERT_TRUE(view);
    EXPECT_EQ(view->type, t.type);
    ASSERT_EQ(view->shape, t.shape);
    const size_t size = elementSize(t.type);
    const size_t n = static_cast<size_t>(view->numElements());
    ASSERT_EQ(view->bytes.size(), n * size);
    if (n > 0) {
      EXPECT_GE(view->bytes.data(), file.data());
      EXPECT_LE(view->bytes.data() + view->bytes.size(),
                file.data() + file.size());
    }
    const int expBits = t.type == ElementType::F16 ? 5 : 8;
    const int mantBits = t.type == ElementType::F32   ? 23
                         : t.type == ElementType::F16 ? 10
                                                      : 7;
    for (size_t i = 0; i < n; ++i) {
      const int k = static_cast<int>(i);
      const double want = (k - t.c) * std::ldexp(1.0, 2 * k - t.s);
      const uint32_t bits = ieeeBits(want, expBits, mantBits);
      uint32_t got = 0; // little-endian, whatever the host
      for (size_t b = 0; b < size; ++b)
        got |= static_cast<uint32_t>(view->bytes[i * size + b]) << (8 * b);
      EXPECT_EQ(got, bits) << "element " << i << ": want " << want
                           << " = 0x" << std::hex << bits << ", got 0x" << got;
    }
  }
}

TEST(Safetensors, RejectsMalformedFiles) {
  TempDir dir;
  struct Case {
    std::string header;
    size_t dataBytes;
    std::optional<uint64_t> declared;
    std::string fragment;
  };
  const std::string okEntry =
      R"("t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  const Case cases[] = {
      {"{}", 0, 1000, "header length 1000 runs past the end of the file (10 bytes)"},
      {"{}", 0, ~0ull, "runs past the end of the file"},
      {"{not json", 16, {}, "header is not valid JSON"},
      {"[1,2]", 16, {}, "header is not a JSON object"},
      {R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 8, {},
       "tensor 't' has data_offsets [0,16] that run past the end of the data "
       "area (8 bytes)"},
      {R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16, {},
       "tensor 't' spans 16 bytes but dtype F32 and shape [2,3] need 24"},
      {R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}})", 16, {},
       "end before they begin"},
      {R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16, {},
       "tensor 'ids' has dtype I64; only F32, F16 and BF16 are supported"},
      {R"({"t":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", 16, {},
       "shape entry -2"},
      {R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
       16, {}, "overflows 64 bits"},
      {R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}})", 16, {},
       "two-element \"data_offsets\""},
      {R"({"t":{"shape":[2,2],"data_offsets":[0,16]}})", 16, {},
       "no string \"dtype\""},
      {R"({"t":{"dtype":"F32","data_offsets":[0,16]}})", 16, {},
       "no \"shape\" array"},
      {R"({"t":[1]})", 16, {}, "tensor 't' is not a JSON object"},
      {"{" + okEntry + R"(,"__metadata__":{"k":1}})", 16, {},
       "metadata entry 'k' is not a string"},
  };
  for (const Case &c : cases) {
    std::string path = rawSafetensors(dir, c.header, c.dataBytes, c.declared);
    std::string msg = safetensorsError(path);
    EXPECT_NE(msg.find(c.fragment), std::string::npos)
        << "header: " << c.header << "\nmessage: " << msg
        << "\nexpected to contain: " << c.fragment;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }

  // Sanity: the well-formed variant of those cases reads.
  EXPECT_TRUE(SafetensorsFile::open(rawSafetensors(dir, "{" + okEntry + "}", 16)));

  std::string tiny = dir.file("tiny.safetensors");
  writeFile(tiny, "abc", 3);
  EXPECT_NE(safetensorsError(tiny).find("file is 3 bytes"), std::string::npos);
  std::string missing = dir.file("missing.safetensors");
  EXPECT_NE(safetensorsError(missing).find(missing), std::string::npos);
}

// ---------------------------------------------------------------------------
// Hugging Face folders
// ---------------------------------------------------------------------------

/// A tiny LlamaForCausalLM: hidden 8, intermediate 16, 2 layers, 4 heads,
/// 2 kv heads (head dim 2, kv dim 4), vocab 10. Each tensor's elements
/// start at a distinct base so views can be told apart.
struct HFModel {
  TensorPool pool;
  std::vector<std::pair<std::string, TensorView>> tensors;

  explicit HFModel(bool withLmHead) {
    float base = 0;
    auto add = [&](const std::string &name, Shape shape) {
      tensors.emplace_back(name, pool.make(std::move(shape),
                                           ElementType::F32, base));
      base += 1000;
    };
    add("model.embed_tokens.weight", {10, 8});
    for (int i = 0; i < 2; ++i) {
      std::string p = "model.layers." + std::to_string(i) + ".";
      add(p + "input_layernorm.weight", {8});
      add(p + "self_attn.q_proj.weight", {8, 8});
      add(p + "self_attn.k_proj.weight", {4, 8});
      add(p + "self_attn.v_proj.weight", {4, 8});
      add(p + "self_attn.o_proj.weight", {8, 8});
      add(p + "self_attn.rotary_emb.inv_freq", {1});
      add(p + "post_attention_layernorm.weight", {8});
      add(p + "mlp.gate_proj.weight", {16, 8});
      add(p + "mlp.up_proj.weight", {16, 8});
      add(p + "mlp.down_proj.weight", {8, 16});
    }
    add("model.norm.weight", {8});
    if (withLmHead)
      add("lm_head.weight", {10, 8});
  }

  const TensorView &get(const std::string &name) const {
    for (const auto &[n, v] : tensors)
      if (n == name) return v;
    ADD_FAILURE() << "no tensor " << name;
    return tensors.front().second;
  }
  void remove(const std::string &name) {
    std::erase_if(tensors, [&](const auto &t) { return t.first == name; });
  }
  void reshape(const std::string &name, Shape shape, float base) {
    for (auto &[n, v] : tensors)
      if (n == name) v = pool.make(std::move(shape), ElementType::F32, base);
  }

  /// Writes the tensors split at `split` into two shards.
  void write(const TempDir &dir, size_t split) const {
    std::vector<std::pair<std::string, TensorView>> first(
        tensors.begin(), tensors.begin() + split),
        second(tensors.begin() + split, tensors.end());
    ASSERT_TRUE(writeSafetensors(
        dir.file("model-00001-of-00002.safetensors"), first, {{"format", "pt"}}));
    ASSERT_TRUE(writeSafetensors(
        dir.file("model-00002-of-00002.safetensors"), second));
  }
};

/// config.json for HFModel. `extra` keys come last, so they override the
/// defaults above them (nlohmann keeps the last of duplicate keys).
std::string hfConfig(const std::string &extra = "",
                     const std::string &hiddenSize = R"("hidden_size": 8,)") {
  return R"({
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_act": "silu",)" +
         hiddenSize + R"(
  "intermediate_size": 16,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "vocab_size": 10,
  "max_position_embeddings": 32,
  "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0,
  "rope_scaling": null,
  "torch_dtype": "float32",)" +
         extra + R"(
  "use_cache": true
})";
}

std::string hfError(const TempDir &dir) {
  auto ckpt = readHFCheckpoint(dir.path().string());
  EXPECT_FALSE(ckpt) << "expected an error reading " << dir.path();
  return ckpt ? "" : ckpt.error().message();
}

TEST(HFCheckpoint, ShardedGQAUntied) {
  TempDir dir;
  HFModel model(/*withLmHead=*/true);
  model.write(dir, 12); // layer 1 starts in the first shard, ends in the second
  writeText(dir.file("config.json"),
            hfConfig(R"("tie_word_embeddings": false,)"));
  auto ckpt = readHFCheckpoint(dir.path().string());
  ASSERT_TRUE(ckpt) << ckpt.error().message();

  const LlamaConfig &c = ckpt->config;
  EXPECT_EQ(c.dim, 8);
  EXPECT_EQ(c.hidden, 16);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.kvHeads, 2);
  EXPECT_EQ(c.vocab, 10);
  EXPECT_EQ(c.context, 32);
  EXPECT_FLOAT_EQ(c.normEps, 1e-5f);
  EXPECT_FLOAT_EQ(c.ropeTheta, 500000.0f);
  EXPECT_FALSE(c.tiedEmbedding);
  EXPECT_EQ(c.rope, RopeLayout::RotateHalf);
  EXPECT_EQ(ckpt->storage.size(), 2u);

  auto same = [&](const TensorView &got, const std::string &name) {
    const TensorView &want = model.get(name);
    EXPECT_EQ(got.shape, want.shape) << name;
    EXPECT_TRUE(sameBytes(got.bytes, want.bytes)) << name;
  };
  same(ckpt->embedding, "model.embed_tokens.weight");
  same(ckpt->finalNorm, "model.norm.weight");
  ASSERT_TRUE(ckpt->classifier);
  same(*ckpt->classifier, "lm_head.weight");
  ASSERT_EQ(ckpt->layers.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const LlamaLayerWeights &l = ckpt->layers[i];
    std::string p = "model.layers." + std::to_string(i) + ".";
    same(l.attnNorm, p + "input_layernorm.weight");
    same(l.wq, p + "self_attn.q_proj.weight");
    same(l.wk, p + "self_attn.k_proj.weight");
    same(l.wv, p + "self_attn.v_proj.weight");
    same(l.wo, p + "self_attn.o_proj.weight");
    same(l.ffnNorm, p + "post_attention_layernorm.weight");
    same(l.w1, p + "mlp.gate_proj.weight");
    same(l.w2, p + "mlp.down_proj.weight");
    same(l.w3, p + "mlp.up_proj.weight");
  }
  EXPECT_EQ(ckpt->layers[1].wk.shape, (Shape{4, 8}));
}

TEST(HFCheckpoint, TiedWithoutLmHead) {
  TempDir dir;
  HFModel model(/*withLmHead=*/false);
  ASSERT_TRUE(writeSafetensors(dir.file("model.safetensors"), model.tensors));
  writeText(dir.file("config.json"),
            hfConfig(R"("tie_word_embeddings": true,)"));
  auto ckpt = readHFCheckpoint(dir.path().string());
  ASSERT_TRUE(ckpt) << ckpt.error().message();
  EXPECT_TRUE(ckpt->config.tiedEmbedding);
  EXPECT_FALSE(ckpt->classifier);
  EXPECT_EQ(ckpt->storage.size(), 1u);
}

TEST(HFCheckpoint, DefaultsFollowLlamaConfig) {
  // tie_word_embeddings defaults to false, so lm_head.weight is required;
  // num_key_value_heads defaults to num_attention_heads.
  TempDir dir;
  HFModel model(/*withLmHead=*/false);
  model.write(dir, 5);
  writeText(dir.file("config.json"), R"({
    "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 10, "max_position_embeddings": 32})");
  std::string msg = hfError(dir);
  EXPECT_NE(msg.find("tensor 'lm_head.weight' not found"), std::string::npos)
      << msg;

  writeText(dir.file("config.json"), R"({
    "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
    "num_hidden_layers": 2, "num_attention_heads": 4,
    "vocab_size": 10, "max_position_embeddings": 32,
    "tie_word_embeddings": true})");
  msg = hfError(dir); // kv heads default to 4: k_proj should be [8, 8]
  EXPECT_NE(msg.find("self_attn.k_proj.weight' has shape [4, 8] but "
                     "config.json implies [8, 8]"),
            std::string::npos)
      << msg;
}

TEST(HFCheckpoint, IndexSelectsShards) {
  TempDir dir;
  HFModel model(/*withLmHead=*/true);
  model.write(dir, 7);
  // A stray consolidated file holding the same tensors would be a duplicate
  // under globbing; the index names only the two shards.
  ASSERT_TRUE(writeSafetensors(dir.file("consolidated.safetensors"),
                               model.tensors));
  writeText(dir.file("config.json"), hfConfig());
  std::string msg = hfError(dir);
  EXPECT_NE(msg.find("appears in both"), std::string::npos) << msg;

  std::string index = R"({"metadata": {}, "weight_map": {)";
  for (size_t i = 0; i < model.tensors.size(); ++i)
    index += (i ? "," : "") + ("\"" + model.tensors[i].first + "\": ") +
             (i < 7 ? R"("model-00001-of-00002.safetensors")"
                    : R"("model-00002-of-00002.safetensors")");
  index += "}}";
  writeText(dir.file("model.safetensors.index.json"), index);
  auto ckpt = readHFCheckpoint(dir.path().string());
  ASSERT_TRUE(ckpt) << ckpt.error().message();
  EXPECT_EQ(ckpt->storage.size(), 2u);

  writeText(dir.file("model.safetensors.index.json"),
            R"({"weight_map": {"x": "../model.safetensors"}})");
  msg = hfError(dir);
  EXPECT_NE(msg.find("not a file in the folder"), std::string::npos) << msg;
}

TEST(HFCheckpoint, MissingTensor) {
  TempDir dir;
  HFModel model(/*withLmHead=*/true);
  model.remove("model.layers.1.mlp.up_proj.weight");
  model.write(dir, 10);
  writeText(dir.file("config.json"), hfConfig());
  std::string msg = hfError(dir);
  EXPECT_NE(msg.find("tensor 'model.layers.1.mlp.up_proj.weight' not found"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
}

TEST(HFCheckpoint, WrongShape) {
  TempDir dir;
  HFModel model(/*withLmHead=*/true);
  model.reshape("model.layers.0.self_attn.k_proj.weight", {8, 8}, 0);
  model.write(dir, 10);
  writeText(dir.file("config.json"), hfConfig());
  std::string msg = hfError(dir);
  EXPECT_NE(msg.find("model-00001-of-00002.safetensors: tensor "
                     "'model.layers.0.self_attn.k_proj.weight' has shape "
                     "[8, 8] but config.json implies [4, 8]"),
            std::string::npos)
      << msg;
}

TEST(HFCheckpoint, BadConfigs) {
  TempDir dir;
  HFModel model(/*withLmHead=*/true);
  model.write(dir, 10);
  auto expectError = [&](const std::string &config,
                         const std::string &fragment) {
    writeText(dir.file("config.json"), config);
    std::string msg = hfError(dir);
    EXPECT_NE(msg.find(fragment), std::string::npos)
        << "message: " << msg << "\nexpected to contain: " << fragment;
  };
  expectError(hfConfig("", ""), "missing required key \"hidden_size\"");
  expectError(hfConfig(R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0},)"),
              "missing required key \"original_max_position_embeddings\"");
  expectError(hfConfig(R"("rope_scaling": {"rope_type": "yarn", "factor": 8.0},)"),
              "rope scaling {\"factor\":8.0,\"rope_type\":\"yarn\"} is not supported");
  expectError(hfConfig(R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0,
              "low_freq_factor": 4.0, "high_freq_factor": 1.0,
              "original_max_position_embeddings": 8192},)"),
              "expects 0 < low_freq_factor < high_freq_factor");
  expectError(hfConfig(R"("hidden_act": "gelu",)"),
              "hidden_act \"gelu\" is not supported");
  expectError(hfConfig("", R"("hidden_size": 9,)"),
              "hidden_size 9 is not divisible by num_attention_heads 4");
  expectError(hfConfig("", R"("hidden_size": -8,)"),
              "\"hidden_size\" is -8, expected a positive integer");
  expectError(hfConfig("", R"("hidden_size": 8.5,)"),
              "\"hidden_size\" is 8.5, expected a positive integer");
  expectError(hfConfig("", R"("hidden_size": 99999999999999999999,)"),
              "expected a positive integer");
  expectError(hfConfig(R"("num_key_value_heads": 3,)"),
              "not a multiple of kv heads 3");
  // The config asks for biases and a q/k head size the files do not have.
  expectError(hfConfig(R"("attention_bias": true,)"),
              "tensor 'model.layers.0.self_attn.q_proj.bias' not found");
  expectError(hfConfig(R"("mlp_bias": true,)"), "MLP projections with biases are not supported");
  expectError(hfConfig(R"("head_dim": 4,)"),
              "'model.layers.0.self_attn.q_proj.weight' has shape [8, 8] but config.json "
              "implies [16, 8]");
  expectError(hfConfig(R"("rms_norm_eps": 0,)"), "\"rms_norm_eps\" is 0");
  expectError(R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})",
              "architecture not supported (architectures [\"GPT2LMHeadModel\"], model_type "
              "\"gpt2\"); expected one of LlamaForCausalLM, MistralForCausalLM, "
              "Qwen2ForCausalLM, Qwen3ForCausalLM");
  expectError("{\"model_type\": \"llama\",", "config.json: not valid JSON");
  expectError("", "config.json: not valid JSON");
  expectError("[]", "config.json: not a JSON object");

  // A huge layer count fails on the first missing layer, without
  // allocating for every layer up front.
  expectError(hfConfig(R"("num_hidden_layers": 2000000000,)"),
              "tensor 'model.layers.2.input_layernorm.weight' not found");

  fs::remove(dir.file("config.json"));
  std::string msg = hfError(dir);
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST(HFCheckpoint, NoShards) {
  TempDir dir;
  writeText(dir.file("config.json"), hfConfig());
  std::string msg = hfError(dir);
  EXPECT_NE(msg.find("no *.safetensors files"), std::string::npos) << msg;

  auto missing = readHFCheckpoint(dir.file("nope"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("nope"), std::string::npos);
}

} // namespace
} // namespace lathe::frontend
