// Tests for the GGUF readers: the container (Gguf.h), ggml's blocks
// (GgmlBlocks.h), the llama checkpoint (GgufCheckpoint.h) and the tokenizer
// (GgufTokenizer.h). Files are written by the test's own GGUF writer
// (GgufWriter.h); files made by llama.cpp are tested in
// test/e2e/GgufModelTest.cpp where LATHE_GGUF_DIR points at them.
#include "compiler/Frontend/GgmlBlocks.h"
#include "compiler/Frontend/Gguf.h"
#include "compiler/Frontend/GgufCheckpoint.h"
#include "compiler/Frontend/GgufTokenizer.h"
#include "runtime/formats/RowCodec.h"
#include "test/unit/TempFolder.h"
#include "test/unit/compiler/Frontend/GgufWriter.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

namespace lathe::frontend {
namespace {

namespace fs = std::filesystem;
using test::GgufWriter;

const test::TempFolder kTemp("gguf");

std::string tempFile(const std::string &name) { return kTemp.file(name); }

std::string writeBytes(const std::string &name, const std::string &bytes) {
  std::string path = tempFile(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

std::vector<float> randomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

// ---------------------------------------------------------------------------
// The container
// ---------------------------------------------------------------------------

GgufWriter smallFile() {
  GgufWriter w;
  w.addString("general.architecture", "llama");
  w.addU32("llama.block_count", 2);
  w.addF32("some.float", 0.5f);
  w.addBool("some.flag", true);
  w.addStrings("some.strings", {"a", "bc"});
  w.addF32s("some.floats", {1.0f, 2.5f});
  std::vector<float> values = randomFloats(64, 1);
  w.addTensor("t.f32", {32, 2}, test::kGgmlF32, test::floatBytes(values));
  w.addTensor("t.q8", {32, 2}, test::kGgmlQ8_0, test::quantizeQ8_0(values));
  return w;
}

TEST(GgufFile, ReadsMetadataAndTensors) {
  std::string path = writeBytes("small.gguf", smallFile().bytes());
  Expected<GgufFile> f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(**f->string("general.architecture"), "llama");
  EXPECT_EQ(**f->integer("llama.block_count"), 2);
  EXPECT_EQ(**f->number("some.float"), 0.5);
  EXPECT_TRUE(**f->boolean("some.flag"));
  ASSERT_NE(f->find("some.strings"), nullptr);
  EXPECT_EQ(f->find("some.strings")->strings, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(f->find("some.floats")->numbers, (std::vector<double>{1.0, 2.5}));
  EXPECT_FALSE(*f->integer("missing.key"));
  // A value of the wrong type is an error naming the key.
  Expected<std::optional<int64_t>> wrong = f->integer("general.architecture");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("'general.architecture' is string"), std::string::npos);

  const GgufTensor *t = f->tensor("t.q8");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape(), (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(t->bytes.size(), 2u * 34);
  // Tensor data starts at a multiple of 32 from the data section.
  EXPECT_EQ(t->offset % 32, 0u);
}

TEST(GgufFile, AcceptsVersion2) {
  std::string path = writeBytes("v2.gguf", smallFile().bytes(2));
  Expected<GgufFile> f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->version(), 2u);
}

void expectError(const std::string &bytes, const std::string &needle) {
  std::string path = writeBytes("bad.gguf", bytes);
  Expected<GgufFile> f = GgufFile::open(path);
  ASSERT_FALSE(f) << "expected: " << needle;
  EXPECT_NE(f.error().message().find(needle), std::string::npos) << f.error().message();
  EXPECT_EQ(f.error().message().rfind(path, 0), 0u) << "the message names the file";
  EXPECT_EQ(f.error().message().find('\n'), std::string::npos) << "one line";
}

TEST(GgufFile, RefusesBadMagicAndVersions) {
  expectError("GGML\3\0\0\0", "not a GGUF file");
  expectError("", "not a GGUF file");
  std::string v1 = smallFile().bytes(3);
  v1[4] = 1;
  expectError(v1, "GGUF version 1 is not supported");
  std::string bigEndian = smallFile().bytes(3);
  bigEndian[4] = 0, bigEndian[7] = 3;
  expectError(bigEndian, "GGUF version 50331648 is not supported");
}

// Every prefix of a valid file that cuts into its last tensor is refused
// with one line, never read past.
TEST(GgufFile, RefusesEveryTruncation) {
  const std::string whole = smallFile().bytes();
  const size_t end = whole.size() - (96 - 68); // t.q8's 68 bytes, padded to 96
  for (size_t n = 0; n < end; ++n) {
    std::string path = writeBytes("cut.gguf", whole.substr(0, n));
    Expected<GgufFile> f = GgufFile::open(path);
    ASSERT_FALSE(f) << "accepted a file cut at " << n << " of " << whole.size() << " bytes";
    EXPECT_EQ(f.error().message().find('\n'), std::string::npos);
  }
}

// Flipping each byte of the header either still parses or gives one line.
TEST(GgufFile, SurvivesEveryFlippedHeaderByte) {
  const std::string whole = smallFile().bytes();
  const size_t header = whole.size() - 64 * 4 - 2 * 34 - 28; // the data section and padding
  for (size_t i = 0; i < header; ++i) {
    std::string bytes = whole;
    bytes[i] = char(bytes[i] ^ 0xFF);
    std::string path = writeBytes("flip.gguf", bytes);
    Expected<GgufFile> f = GgufFile::open(path);
    if (!f)
      EXPECT_EQ(f.error().message().find('\n'), std::string::npos);
  }
}

TEST(GgufFile, RefusesTensorPastTheEnd) {
  const std::string whole = smallFile().bytes();
  expectError(whole.substr(0, whole.size() - 40),
              "tensor 't.q8' (Q8_0, 68 bytes) at offset ");
  expectError(whole.substr(0, whole.size() - 40), "runs past the end of the file");
}

TEST(GgufFile, RefusesUnknownTypesAndDuplicates) {
  GgufWriter w;
  w.addTensor("t", {32}, 77, std::vector<uint8_t>(32));
  expectError(w.bytes(), "tensor 't' has unknown ggml type 77");

  GgufWriter rows;
  rows.addTensor("t", {48}, test::kGgmlQ8_0, std::vector<uint8_t>(64));
  expectError(rows.bytes(), "rows of 48 values, not a whole number of Q8_0 blocks of 32");

  GgufWriter dup;
  dup.addU32("k", 1);
  dup.addU32("k", 2);
  expectError(dup.bytes(), "metadata key 'k' appears twice");
}

// ---------------------------------------------------------------------------
// ggml's blocks
// ---------------------------------------------------------------------------

// The mapping's promise: Lathe's decode of the repacked rows is ggml's
// dequantized values, bit for bit (docs/gguf.md). Random rows, plus blocks
// that reach the corners: code -8 with a negative scale (a positive value
// of largest magnitude), all zeros, and the int8 code -128 (which ggml's
// quantizer never writes but a file may hold).
void expectLossless(uint32_t type, const std::vector<uint8_t> &blocks, int64_t rows, int64_t cols) {
  std::optional<formats::FormatSpec> spec = losslessFormat(type);
  ASSERT_TRUE(spec);
  const size_t rowBytes = formats::packedRowBytes(*spec, cols);
  std::vector<uint8_t> packed(rows * rowBytes);
  Status s = repackGgmlBlocks(type, blocks, rows, cols, packed);
  ASSERT_TRUE(s) << s.error().message();
  std::vector<float> ggml(rows * cols), lathe(cols);
  dequantizeGgml(type, blocks, ggml);
  for (int64_t r = 0; r < rows; ++r) {
    formats::dequantizeRow(*spec, std::span(packed).subspan(r * rowBytes, rowBytes), lathe);
    ASSERT_EQ(std::memcmp(lathe.data(), ggml.data() + r * cols, 4 * cols), 0) << "row " << r;
  }
}

TEST(GgmlBlocks, Q8_0AndQ4_0DecodeBitIdentically) {
  const int64_t rows = 7, cols = 96;
  std::vector<float> x = randomFloats(rows * cols, 2, 0.05f);
  x[5] = 1.0f;  // a positive maximum: Q4_0's d < 0
  x[40] = -1.0f; // a negative one: d > 0
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f); // a zero block
  expectLossless(test::kGgmlQ8_0, test::quantizeQ8_0(x), rows, cols);
  std::vector<uint8_t> q4 = test::quantizeQ4_0(x);
  expectLossless(test::kGgmlQ4_0, q4, rows, cols);
  // The first block holds n = 0 (code -8) under a negative scale.
  EXPECT_EQ(q4[2 + 5] & 0x0F, 0);
  EXPECT_LT(f16ToFloat(uint16_t(q4[0] | q4[1] << 8)), 0.0f);

  // Every code of both types, in a file-made block.
  std::vector<uint8_t> q8(34);
  q8[0] = 0x00, q8[1] = 0x3C; // d = 1
  for (int j = 0; j < 32; ++j)
    q8[2 + j] = uint8_t(j * 8); // 0, 8, ..., 248: -128 among them
  expectLossless(test::kGgmlQ8_0, q8, 1, 32);
  std::vector<uint8_t> q4all(18);
  q4all[0] = 0x00, q4all[1] = 0xB8; // d = -0.5
  for (int j = 0; j < 16; ++j)
    q4all[2 + j] = uint8_t(j | (15 - j) << 4);
  expectLossless(test::kGgmlQ4_0, q4all, 1, 32);
  std::vector<float> v(32);
  dequantizeGgml(test::kGgmlQ4_0, q4all, v);
  EXPECT_EQ(v[0], 4.0f);   // (0 - 8) * -0.5
  EXPECT_EQ(v[16], -3.5f); // (15 - 8) * -0.5
}

TEST(GgmlBlocks, RefusesNonFiniteScales) {
  std::vector<uint8_t> q8(34);
  q8[0] = 0x00, q8[1] = 0x7C; // +inf
  std::vector<uint8_t> packed(36);
  Status s = repackGgmlBlocks(test::kGgmlQ8_0, q8, 1, 32, packed);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("row 0, block 0 has a non-finite scale"), std::string::npos);
}

// K-quants follow ggml's reference formulas; a few values worked out by
// hand from the block layouts (ggml-common.h). The decoders were also
// compared with libggml's own decoding (llama-quantize --allow-requantize to
// F32) on every tensor of llama-quantize's Q3_K_M, Q4_K_M, Q5_K_M, Q6_K,
// Q4_1, Q5_0 and Q5_1 files of stories15M: equal bit for bit (docs/gguf.md;
// Q2_K, which those files do not contain, only here).
TEST(GgmlBlocks, KQuantsFollowGgmlFormulas) {
  // Q4_K: d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
  std::vector<uint8_t> q4k(144, 0);
  q4k[0] = 0x00, q4k[1] = 0x3C;  // d = 1
  q4k[2] = 0x00, q4k[3] = 0x38;  // dmin = 0.5
  q4k[4 + 0] = 2, q4k[4 + 4] = 3; // sub-block 0: scale 2, min 3
  q4k[4 + 1] = 5, q4k[4 + 5] = 1; // sub-block 1: scale 5, min 1
  q4k[16 + 0] = 0x97;             // value 0: 7, value 32: 9
  std::vector<float> y(256);
  dequantizeGgml(test::kGgmlQ4_K, q4k, y);
  EXPECT_EQ(y[0], 2 * 7 - 0.5f * 3);
  EXPECT_EQ(y[1], -0.5f * 3);
  EXPECT_EQ(y[32], 5 * 9 - 0.5f * 1);

  // Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8
  // scales, d; value = d * scale * (q - 32).
  std::vector<uint8_t> q6k(210, 0);
  q6k[208] = 0x00, q6k[209] = 0x3C; // d = 1
  for (int i = 0; i < 16; ++i)
    q6k[192 + i] = uint8_t(i + 1);
  q6k[0] = 0x35;   // values 0 (low nibble 5) and 64 (high nibble 3)
  q6k[128] = 0x0E; // high bits of value 0: 2, of value 32: 3
  dequantizeGgml(test::kGgmlQ6_K, q6k, y);
  EXPECT_EQ(y[0], 1 * ((5 | 2 << 4) - 32));
  EXPECT_EQ(y[32], 3 * ((0 | 3 << 4) - 32));
  EXPECT_EQ(y[64], 5 * (3 - 32));
  EXPECT_EQ(y[255], 16 * -32);
}

// ---------------------------------------------------------------------------
// The llama checkpoint
// ---------------------------------------------------------------------------

/// A tiny llama GGUF: dim 64, hidden 256, 2 layers, 4 heads (2 kv), 300
/// tokens; tensor types mixed as `types` says (default: Q4_0 matrices, a
/// Q8_0 classifier, F32 norms, one F16, one BF16 and one Q6_K matrix).
struct TinyModel {
  int64_t dim = 64, hidden = 256, layers = 2, heads = 4, kvHeads = 2, vocab = 300;
  bool tied = false;
  std::string arch = "llama";
  uint32_t q6Type = test::kGgmlQ6_K;
  uint32_t blockCount = 0; // the metadata's layer count, where it should lie (0: layers)
  std::vector<std::pair<std::string, std::vector<float>>> values; // for checks

  std::vector<uint8_t> encode(uint32_t type, const std::vector<float> &x) const {
    if (type == test::kGgmlQ8_0)
      return test::quantizeQ8_0(x);
    if (type == test::kGgmlQ4_0)
      return test::quantizeQ4_0(x);
    if (type == test::kGgmlF16 || type == test::kGgmlBF16) {
      std::vector<uint8_t> out(x.size() * 2);
      for (size_t i = 0; i < x.size(); ++i) {
        uint16_t h = type == test::kGgmlF16 ? floatToF16(x[i]) : floatToBf16(x[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return out;
    }
    if (type == test::kGgmlQ6_K) { // blocks of zero codes: value -32 * scale * d
      std::vector<uint8_t> out(x.size() / 256 * 210, 0);
      for (size_t b = 0; b < x.size() / 256; ++b) {
        out[b * 210 + 208] = 0x00, out[b * 210 + 209] = 0x20; // d = 2^-7
        for (int i = 0; i < 16; ++i)
          out[b * 210 + 192 + i] = 1;
      }
      return out;
    }
    return test::floatBytes(x);
  }

  GgufWriter writer() {
    GgufWriter w;
    w.addString("general.architecture", arch);
    w.addU32("llama.context_length", 128);
    w.addU32("llama.embedding_length", uint32_t(dim));
    w.addU32("llama.feed_forward_length", uint32_t(hidden));
    w.addU32("llama.attention.head_count", uint32_t(heads));
    w.addU32("llama.attention.head_count_kv", uint32_t(kvHeads));
    w.addU32("llama.block_count", blockCount ? blockCount : uint32_t(layers));
    w.addU32("llama.rope.dimension_count", uint32_t(dim / heads));
    w.addF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.addF32("llama.rope.freq_base", 500000.0f);
    uint32_t seed = 10;
    auto add = [&](const std::string &name, int64_t rows, int64_t cols, uint32_t type) {
      std::vector<float> x = randomFloats(rows * cols, seed++, 0.1f);
      std::vector<uint64_t> dims = {uint64_t(cols)};
      if (rows > 1)
        dims.push_back(uint64_t(rows));
      w.addTensor(name, dims, type, encode(type, x));
      values.emplace_back(name, x);
    };
    const int64_t kv = dim / heads * kvHeads;
    add("token_embd.weight", vocab, dim, test::kGgmlQ4_0);
    for (int64_t l = 0; l < layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      add(p + "attn_norm.weight", 1, dim, test::kGgmlF32);
      add(p + "attn_q.weight", dim, dim, test::kGgmlQ4_0);
      add(p + "attn_k.weight", kv, dim, test::kGgmlQ8_0);
      add(p + "attn_v.weight", kv, dim, test::kGgmlF16);
      add(p + "attn_output.weight", dim, dim, test::kGgmlBF16);
      add(p + "ffn_norm.weight", 1, dim, test::kGgmlF32);
      add(p + "ffn_gate.weight", hidden, dim, test::kGgmlQ4_0);
      add(p + "ffn_down.weight", dim, hidden, q6Type);
      add(p + "ffn_up.weight", hidden, dim, test::kGgmlQ4_0);
    }
    add("output_norm.weight", 1, dim, test::kGgmlF32);
    if (!tied)
      add("output.weight", vocab, dim, test::kGgmlQ8_0);
    return w;
  }
};

TEST(GgufCheckpoint, ReadsConfigAndMapsTypes) {
  TinyModel m;
  std::string path = tempFile("tiny.gguf");
  ASSERT_TRUE(m.writer().write(path));
  Expected<LlamaCheckpoint> ckpt = readGgufCheckpoint(path);
  ASSERT_TRUE(ckpt) << ckpt.error().message();
  const LlamaConfig &c = ckpt->config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden, 256);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.kvHeads, 2);
  EXPECT_EQ(c.headDim, 16);
  EXPECT_EQ(c.vocab, 300);
  EXPECT_EQ(c.context, 128);
  EXPECT_FLOAT_EQ(c.normEps, 1e-5f);
  EXPECT_EQ(c.ropeTheta, 500000.0f);
  EXPECT_EQ(c.rope, RopeLayout::Interleaved);
  EXPECT_FALSE(c.tiedEmbedding);

  const LlamaLayerWeights &l = ckpt->layers[1];
  ASSERT_TRUE(l.wq.packed && ckpt->embedding.packed && ckpt->classifier->packed && l.wk.packed);
  EXPECT_EQ(formats::formatName(*l.wq.packed), "int4:group=32");
  EXPECT_EQ(formats::formatName(*l.wk.packed), "int8:group=32");
  EXPECT_EQ(formats::formatName(*ckpt->classifier->packed), "int8:group=32");
  EXPECT_FALSE(l.wv.packed);
  EXPECT_EQ(l.wv.type, ElementType::F16);
  EXPECT_EQ(l.wo.type, ElementType::BF16);
  EXPECT_EQ(l.attnNorm.type, ElementType::F32);
  // Q6_K decoded to f32: every value -32 * 1 * 2^-7.
  EXPECT_FALSE(l.w2.packed);
  ASSERT_EQ(l.w2.type, ElementType::F32);
  float first;
  std::memcpy(&first, l.w2.bytes.data(), 4);
  EXPECT_EQ(first, -0.25f);
  ASSERT_EQ(ckpt->notes.size(), 1u);
  EXPECT_NE(ckpt->notes[0].find("2 Q6_K tensors (first blk.0.ffn_down.weight) decoded to f32"),
            std::string::npos)
      << ckpt->notes[0];
  EXPECT_EQ(ckpt->provenance, "GGUF v3 llama: 5 F32 as f32, 2 F16 as f16, 7 Q4_0 as int4:group=32, "
                              "3 Q8_0 as int8:group=32, 2 Q6_K as f32, 2 BF16 as bf16");
  // An f32 norm is a view into the mapped file, not a copy.
  const std::span<const uint8_t> file = ckpt->storage.front()->bytes();
  EXPECT_TRUE(l.attnNorm.bytes.data() >= file.data() &&
              l.attnNorm.bytes.data() < file.data() + file.size());
}

TEST(GgufCheckpoint, TiedEmbeddingWithoutOutput) {
  TinyModel m;
  m.tied = true;
  std::string path = tempFile("tied.gguf");
  ASSERT_TRUE(m.writer().write(path));
  Expected<LlamaCheckpoint> ckpt = readGgufCheckpoint(path);
  ASSERT_TRUE(ckpt) << ckpt.error().message();
  EXPECT_TRUE(ckpt->config.tiedEmbedding);
  EXPECT_FALSE(ckpt->classifier);
}

void expectCheckpointError(GgufWriter w, const std::string &needle) {
  std::string path = tempFile("bad-model.gguf");
  ASSERT_TRUE(w.write(path));
  Expected<LlamaCheckpoint> ckpt = readGgufCheckpoint(path);
  ASSERT_FALSE(ckpt) << "expected: " << needle;
  EXPECT_NE(ckpt.error().message().find(needle), std::string::npos) << ckpt.error().message();
  EXPECT_EQ(ckpt.error().message().rfind(path, 0), 0u);
}

TEST(GgufCheckpoint, RefusesWhatItCannotImport) {
  TinyModel qwen;
  qwen.arch = "qwen2";
  expectCheckpointError(qwen.writer(), "architecture 'qwen2' is not supported");

  TinyModel iq;
  iq.q6Type = 16; // IQ2_XXS: blocks of 256 values, 66 bytes
  GgufWriter w = iq.writer();
  expectCheckpointError(w, "tensor 'blk.0.ffn_down.weight' has type IQ2_XXS, which Lathe does "
                           "not import");

  // A corrupt layer count fails at the first layer the file lacks, before
  // anything is sized by it (a fuzzer's finding: the layer tables of such a
  // count took hundreds of gigabytes).
  TinyModel many;
  many.blockCount = 0x7fffffff;
  expectCheckpointError(many.writer(), "tensor 'blk.2.attn_norm.weight'");

  TinyModel extra;
  GgufWriter e = extra.writer();
  e.addTensor("blk.0.attn_q.bias", {64}, test::kGgmlF32, std::vector<uint8_t>(256));
  expectCheckpointError(e, "tensor 'blk.0.attn_q.bias' is not part of a llama model");

  GgufWriter empty;
  empty.addString("general.architecture", "llama");
  expectCheckpointError(empty, "metadata 'llama.embedding_length' is missing");
}

// ---------------------------------------------------------------------------
// The tokenizer
// ---------------------------------------------------------------------------

TEST(GgufTokenizer, SentencePieceBecomesALlama2cVocabulary) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores(3, 0.0f);
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char piece[7];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    tokens.push_back(piece), scores.push_back(0.0f), types.push_back(6);
  }
  for (const char *p : {"\u2581", "h", "i", "hi", "\u2581hi"}) {
    tokens.push_back(p), scores.push_back(-float(tokens.size())), types.push_back(1);
  }
  GgufWriter w;
  w.addString("tokenizer.ggml.model", "llama");
  w.addStrings("tokenizer.ggml.tokens", tokens);
  w.addF32s("tokenizer.ggml.scores", scores);
  w.addI32s("tokenizer.ggml.token_type", types);
  w.addU32("tokenizer.ggml.bos_token_id", 1);
  w.addU32("tokenizer.ggml.eos_token_id", 2);
  std::string path = tempFile("spm.gguf");
  ASSERT_TRUE(w.write(path));
  Expected<TextTokenizer> t = openGgufTokenizer(path);
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_NE(t->llama2c(), nullptr);
  EXPECT_EQ(t->llama2c()->vocabulary().pieces[259], " ");
  EXPECT_EQ(t->llama2c()->vocabulary().pieces[1], "\n<s>\n");
  // BOS, then " hi" merged; "!" falls back to its byte token.
  EXPECT_EQ(*t->encode("hi!", true), (std::vector<int32_t>{1, 263, 3 + '!'}));
  EXPECT_EQ(t->decode(std::vector<int32_t>{1, 263, 3 + '!'}), "hi!");

  w.addBool("tokenizer.ggml.add_eos_token", true);
  ASSERT_TRUE(w.write(path));
  Expected<TextTokenizer> eos = openGgufTokenizer(path);
  ASSERT_FALSE(eos);
  EXPECT_NE(eos.error().message().find("adds EOS"), std::string::npos);
}

TEST(GgufTokenizer, RefusesOtherModels) {
  GgufWriter w;
  w.addString("tokenizer.ggml.model", "bert");
  w.addStrings("tokenizer.ggml.tokens", {"a"});
  std::string path = tempFile("bert.gguf");
  ASSERT_TRUE(w.write(path));
  Expected<TextTokenizer> t = openGgufTokenizer(path);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("tokenizer model 'bert' is not supported"),
            std::string::npos);

  GgufWriter none;
  none.addString("general.architecture", "llama");
  ASSERT_TRUE(none.write(path));
  Expected<TextTokenizer> n = openGgufTokenizer(path);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message().find("holds no tokenizer"), std::string::npos);
}

/// The GGUF llama.cpp's convert_hf_to_gguf.py writes for a Hugging Face
/// byte-level BPE tokenizer.json: tokens by id (added tokens by their
/// content), merges as "a b", token types (control for special added
/// tokens, user-defined for the others), the pre-tokenizer's name.
std::string bpeGgufFrom(const fs::path &tokenizerJson, const std::string &pre) {
  std::ifstream in(tokenizerJson);
  nlohmann::json j = nlohmann::json::parse(in);
  const auto &model = j["model"];
  size_t size = 0;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    size = std::max(size, it.value().get<size_t>() + 1);
  for (const auto &a : j["added_tokens"])
    size = std::max(size, a["id"].get<size_t>() + 1);
  std::vector<std::string> tokens(size);
  std::vector<int32_t> types(size, 1);
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    tokens[it.value().get<size_t>()] = it.key();
  for (const auto &a : j["added_tokens"]) {
    size_t id = a["id"];
    tokens[id] = a["content"];
    types[id] = a["special"].get<bool>() ? 3 : 4;
  }
  for (size_t id = 0; id < size; ++id)
    if (tokens[id].empty())
      tokens[id] = "[PAD" + std::to_string(id) + "]", types[id] = 5;
  std::vector<std::string> merges;
  for (const auto &m : model["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>());
  GgufWriter w;
  w.addString("tokenizer.ggml.model", "gpt2");
  w.addString("tokenizer.ggml.pre", pre);
  w.addStrings("tokenizer.ggml.tokens", tokens);
  w.addI32s("tokenizer.ggml.token_type", types);
  w.addStrings("tokenizer.ggml.merges", merges);
  w.addU32("tokenizer.ggml.eos_token_id", 151645);
  w.addU32("tokenizer.ggml.padding_token_id", 151643);
  w.addU32("tokenizer.ggml.bos_token_id", 151643);
  w.addBool("tokenizer.ggml.add_bos_token", false);
  std::string path = tempFile("qwen3-tokenizer.gguf");
  EXPECT_TRUE(w.write(path));
  return path;
}

// The GPT-2 BPE path against Hugging Face's own ids: the qwen3
// tokenizer.json written into a GGUF as llama.cpp's converter writes it,
// read back, and run on every text of test/data/tokenizers/expected.json.
TEST(GgufTokenizer, Qwen3ByteLevelBpeMatchesHuggingFace) {
  const char *dir = std::getenv("LATHE_TOKENIZER_DIR");
  fs::path json = fs::path(dir ? dir : "") / "qwen3" / "tokenizer.json";
  if (!dir || !fs::exists(json))
    GTEST_SKIP() << "LATHE_TOKENIZER_DIR has no qwen3/tokenizer.json (scripts/fetch-tokenizers.sh)";
  std::ifstream in(std::string(LATHE_TEST_DATA_DIR) + "/tokenizers/expected.json");
  nlohmann::json expected = nlohmann::json::parse(in);
  Expected<TextTokenizer> t = openGgufTokenizer(bpeGgufFrom(json, "qwen2"));
  ASSERT_TRUE(t) << t.error().message();
  const HFTokenizer *hf = t->hf();
  ASSERT_NE(hf, nullptr);
  size_t cases = 0;
  for (const auto &c : expected["tokenizers"]["qwen3"]["tokenizers"]) {
    const std::string text = c["text"];
    EXPECT_EQ(*hf->encode(text, true), c["ids"].get<std::vector<int32_t>>()) << nlohmann::json(text).dump();
    EXPECT_EQ(*hf->encode(text, false), c["ids_no_special"].get<std::vector<int32_t>>());
    EXPECT_EQ(hf->decode(c["ids"].get<std::vector<int32_t>>()), c["decoded"].get<std::string>());
    ++cases;
  }
  EXPECT_GT(cases, 20u);
}

} // namespace
} // namespace lathe::frontend
