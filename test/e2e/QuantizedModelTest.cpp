// End to end with packed weights: stories15M compiled with --quant runs
// through the reference kernels and keeps its quality. Bounds: 6-bit and
// 8-bit formats within +1% perplexity of the float64 reference (issue 3's
// bar for FP6), but MXFP8 E4M3 within +5%: the OCP scale rule puts a block's
// largest value in [256, 512) while E4M3 stops at 448, so the spec clamps
// the top values of many blocks; 4-bit formats within +35% (they lose real accuracy; the
// bound only catches a broken format, the figures are in docs/benchmarks.md).
#include "test/e2e/ModelFixture.h"

#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <fstream>
#include <sstream>

namespace lathe::test {
namespace {

double corpusPerplexity(std::shared_ptr<const artifact::Artifact> a,
                        const SessionOptions &options = {}) {
  std::ifstream in(std::string(LATHE_TEST_DATA_DIR) + "/corpus.txt");
  std::stringstream text;
  text << in.rdbuf();
  auto tok = Tokenizer::create(a->vocabulary());
  auto session = Session::create(a, options);
  EXPECT_TRUE(tok && session);
  auto result = perplexity(*session, *tok, text.str());
  EXPECT_TRUE(result) << result.error().message();
  return result ? result->perplexity : 0;
}

struct Case {
  const char *quant;
  double maxRatio;
};

class QuantizedModelTest : public ::testing::TestWithParam<Case> {};

TEST_P(QuantizedModelTest, PerplexityStaysClose) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  Case c = GetParam();
  auto a = compileAndLoad(modelDir() + "/stories15M.bin", "q", c.quant);
  ASSERT_NE(a, nullptr);
  int packed = 0;
  for (const auto &t : a->tensors())
    packed += t.quant.has_value();
  // Every linear weight of the 6 layers, and the classifier (stories15M's
  // embedding table, tied to it).
  EXPECT_EQ(packed, 6 * 7 + 1);
  double expected = loadReference()["corpus_shared_ppl"];
  // As the build runs by default (int8 activations where the formats have
  // integer kernels).
  double ppl = corpusPerplexity(a);
  EXPECT_LT(ppl / expected, c.maxRatio) << c.quant << ": perplexity " << ppl;
  EXPECT_GT(ppl / expected, 0.9) << c.quant << ": perplexity " << ppl;

  // The SIMD kernels (run by the generated code) against the scalar
  // reference kernels: same decoded weights, float32 vs float64 sums, so
  // perplexity agrees to 1e-4 relative (issue 4's bar). Float activations:
  // the reference numerics.
  SessionOptions simd;
  simd.int8Activations = false;
  double floatPpl = corpusPerplexity(a, simd);
  SessionOptions reference;
  reference.kernels = KernelPath::Reference;
  double refPpl = corpusPerplexity(a, reference);
  EXPECT_NEAR(floatPpl / refPpl, 1.0, 1e-4) << c.quant << ": " << floatPpl << " vs " << refPpl;
}

INSTANTIATE_TEST_SUITE_P(
    Formats, QuantizedModelTest,
    ::testing::Values(Case{"int8", 1.01}, Case{"mxint8", 1.01},
                      Case{"bfp8:block=32", 1.01}, Case{"mxfp8_e4m3", 1.05},
                      Case{"fp6_4p2", 1.01}, Case{"mxfp6_e3m2", 1.01},
                      Case{"bfp4:block=32", 1.35}, Case{"mxfp4", 1.35},
                      Case{"int4:group=32", 1.35}, Case{"bfp6:block=32", 1.05},
                      Case{"mxfp6_e2m3", 1.05}, Case{"mxfp8_e5m2", 1.05},
                      Case{"int8:group=64:asym", 1.01}, Case{"int4:group=64:asym", 1.35},
                      Case{"bfp4:block=16", 1.35}),
    [](const auto &info) {
      std::string name = info.param.quant;
      for (char &ch : name)
        if (!isalnum(static_cast<unsigned char>(ch)))
          ch = '_';
      return name;
    });

} // namespace
} // namespace lathe::test
