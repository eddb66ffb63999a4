// Per-channel equalization (lathe-equalize-channels, issue 20) end to end on
// stories15M:
// - its power-of-two scales, folded into gains and weights, leave the FP32
//   model's logits bit-identical (the pass forced on, nothing quantized);
// - with it (lathe-compile's default), a 4-bit build of an outlier variant
//   (test/e2e/OutlierVariant.h: a few channels rescaled exactly by 2^5) is
//   about as close to FP32 as the same build of the clean model, in every
//   4-bit family, where without it the variant's build collapses;
// - :no-equalize brings that old behaviour back.
// KL divergence from FP32 is measured as in QuantizedModelTest, on a quarter
// of its sampled text (16 of the 64 sequences, ~3.7k tokens) to keep the
// test short: the gaps it checks are tenfold, far beyond what a smaller
// sample moves.
#include "test/e2e/CalibratedImport.h"
#include "test/e2e/KLDivergence.h"
#include "test/e2e/OutlierVariant.h"

#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"

#include <cstring>
#include <filesystem>
#include <map>

namespace lathe::test {
namespace {

std::string stories15M() { return modelDir() + "/stories15M.bin"; }

TEST(EqualizeChannelsTest, FoldedScalesLeaveFp32LogitsBitIdentical) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  mlir::MLIRContext context;
  auto models = importCalibratedPair(context);
  ASSERT_TRUE(models);
  auto &original = models->original, &equalized = models->calibrated;
  mlir::PassManager pm(&context);
  EqualizeChannelsOptions options;
  options.format = "int4:group=32";
  pm.addPass(createEqualizeChannels(options));
  ASSERT_TRUE(mlir::succeeded(pm.run(*equalized)));

  InMemoryModel a = lowerInMemory(*original), b = lowerInMemory(*equalized);
  ASSERT_TRUE(a.artifact && b.artifact);
  // Per layer the two norm gains and the five weights that read them, and
  // the up/down and value/output pairs: far more than a few.
  EXPECT_GT(changedTensors(a, b), 12u) << "the pass chose the identity almost everywhere";

  // No tolerance: a product w * 2^-e * (x * 2^e) is w * x to the bit, and so
  // is every sum of such products, on the SIMD and the reference kernels.
  SessionOptions reference;
  reference.kernels = KernelPath::Reference;
  for (const SessionOptions &path : {SessionOptions{}, reference})
    for (const auto &p : loadReference()["prompts"]) {
      std::vector<int32_t> prompt = p["prompt_ids"];
      auto sa = Session::create(a.artifact, path), sb = Session::create(b.artifact, path);
      ASSERT_TRUE(sa && sb);
      auto la = sa->forward(prompt, /*allLogits=*/true);
      ASSERT_TRUE(la);
      std::vector<float> first(la->begin(), la->end());
      auto lb = sb->forward(prompt, /*allLogits=*/true);
      ASSERT_TRUE(lb);
      ASSERT_EQ(first.size(), lb->size());
      EXPECT_EQ(std::memcmp(first.data(), lb->data(), first.size() * sizeof(float)), 0)
          << "prompt of " << prompt.size() << " tokens, "
          << (path.kernels == KernelPath::Reference ? "reference" : "default") << " kernels";
    }
}

/// The FP32 build, a quarter of the text it samples, and the outlier
/// variant on disk; KL of each (model, --quant) measured once.
class EqualizedKLTest : public ::testing::TestWithParam<const char *> {
protected:
  // The parameterized and the plain cases are two suites: each sets up
  // what the other's teardown removed, and shares the rest.
  static void SetUpTestSuite() {
    if (!haveModel())
      return;
    if (!fp32_) {
      fp32_ = compileAndLoad(stories15M(), "eq-fp32");
      if (!fp32_)
        return;
      std::vector<std::vector<int32_t>> all = sampleText(fp32_);
      for (size_t i = 0; i < all.size(); i += 4)
        text_.push_back(std::move(all[i]));
    }
    // Issue 20's variant: 4 channels, gains / 2^5, columns * 2^5.
    variant_ = tempPath("eq-outlier.bin");
    auto channels = writeOutlierVariant(stories15M(), variant_, OutlierVariantSpec{});
    EXPECT_TRUE(channels) << channels.error().message();
  }
  static void TearDownTestSuite() {
    if (!variant_.empty())
      std::filesystem::remove(variant_);
  }
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
    ASSERT_NE(fp32_, nullptr);
    ASSERT_EQ(text_.size(), 16u);
    ASSERT_TRUE(std::filesystem::exists(variant_));
  }

  /// Mean KL from FP32 of `model` ("clean" or "variant") built with `quant`.
  static double kl(const std::string &model, const std::string &quant) {
    auto key = std::make_pair(model, quant);
    if (auto it = measured_.find(key); it != measured_.end())
      return it->second;
    std::string name = "eq-" + model + "-" + quant;
    for (char &ch : name)
      if (!isalnum(static_cast<unsigned char>(ch)) && ch != '-')
        ch = '_';
    auto a = compileAndLoad(model == "clean" ? stories15M() : variant_, name, quant);
    if (!a)
      return INFINITY;
    int64_t tokens = 0;
    double value = meanKL(text_, fp32_, a, &tokens);
    EXPECT_GT(tokens, 3000);
    std::filesystem::remove(tempPath(name + ".lathe"));
    std::printf("[ measured ] %s %s: KL %.5f over %lld tokens\n", model.c_str(), quant.c_str(),
                value, static_cast<long long>(tokens));
    return measured_[key] = value;
  }

  static std::shared_ptr<const artifact::Artifact> fp32_;
  static std::vector<std::vector<int32_t>> text_;
  static std::string variant_;
  static std::map<std::pair<std::string, std::string>, double> measured_;
};
std::shared_ptr<const artifact::Artifact> EqualizedKLTest::fp32_;
std::vector<std::vector<int32_t>> EqualizedKLTest::text_;
std::string EqualizedKLTest::variant_;
std::map<std::pair<std::string, std::string>, double> EqualizedKLTest::measured_;

// The bar of issue 20: the quality of a 4-bit build barely depends on an
// exact rescaling. Measured on the full text (docs/quantization.md), the
// variant's KL is 1.01-1.03x the clean model's; 1.25x leaves room for the
// smaller sample, and is still far below a collapse (10-20x).
TEST_P(EqualizedKLTest, OutlierVariantScoresLikeTheCleanModel) {
  const std::string quant = GetParam();
  const double clean = kl("clean", quant), variant = kl("variant", quant);
  EXPECT_LT(variant, 1.25 * clean) << quant;
  EXPECT_GT(clean, 0.0) << quant << ": identical to FP32, so nothing was quantized";
}

INSTANTIATE_TEST_SUITE_P(FourBitFormats, EqualizedKLTest,
                         ::testing::Values("int4:group=32", "bfp4:block=32", "mxfp4",
                                           "mixed:bits=4.5"),
                         [](const auto &info) {
                           std::string name = info.param;
                           for (char &ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           return name;
                         });

// :no-equalize is the old pipeline: the variant's build collapses (KL 2.66
// against 0.15 on the full text), and the clean model's is no better than
// with equalization (0.150 against 0.117).
TEST_F(EqualizedKLTest, NoEqualizeRestoresTheOldBehaviour) {
  const double on = kl("clean", "int4:group=32");
  const double offClean = kl("clean", "int4:group=32:no-equalize");
  const double offVariant = kl("variant", "int4:group=32:no-equalize");
  EXPECT_GT(offVariant, 5 * offClean);
  EXPECT_GE(offClean, on);
}

} // namespace
} // namespace lathe::test
