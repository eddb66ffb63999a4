// The CPU backend's three ways to run a plan agree: the generated code, the
// interpreted plan on the SIMD kernels, and the scalar reference kernels; on
// 1 and 2 threads. And the generated code is really in use.
#include "test/e2e/ModelFixture.h"
#include "runtime/artifact/ArtifactWriter.h"

#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <functional>
#include <cmath>

namespace lathe::test {
namespace {

/// The logits of a prompt's prefill (every position) and of 4 greedy decode
/// steps after it, concatenated.
std::vector<float> logitsOf(std::shared_ptr<const artifact::Artifact> a,
                            const SessionOptions &options, const std::vector<int32_t> &prompt,
                            bool expectNative) {
  auto session = Session::create(a, options);
  EXPECT_TRUE(session) << session.error().message();
  if (!session)
    return {};
  EXPECT_EQ(session->usesNativeCode(), expectNative);
  auto logits = session->forward(prompt, /*allLogits=*/true);
  EXPECT_TRUE(logits);
  std::vector<float> all(logits->begin(), logits->end());
  const int64_t vocab = a->config().vocab;
  int32_t next = static_cast<int32_t>(
      std::max_element(all.end() - vocab, all.end()) - (all.end() - vocab));
  for (int step = 0; step < 4; ++step) {
    auto decoded = session->forward(std::span<const int32_t>(&next, 1));
    EXPECT_TRUE(decoded);
    all.insert(all.end(), decoded->begin(), decoded->end());
    next = static_cast<int32_t>(std::max_element(decoded->begin(), decoded->end()) -
                                decoded->begin());
  }
  return all;
}

TEST(CpuBackendTest, GeneratedInterpretedAndReferenceAgree) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  for (const char *quant : {"none", "bfp4:block=32", "int4:group=32", "int8:group=64:asym",
                            "mxfp4", "mxint8", "fp6_4p2"}) {
    auto a = compileAndLoad(modelDir() + "/stories15M.bin", "cpu", quant);
    ASSERT_NE(a, nullptr);
    ASSERT_TRUE(a->schedule("cpu")->native) << "no generated code in the artifact";
    std::vector<int32_t> prompt = loadReference()["prompts"][2]["prompt_ids"];

    // Float activations: the reference numerics, which the kernels must
    // match (quantized builds default to int8 activations).
    SessionOptions generated, interpreted, reference;
    generated.int8Activations = interpreted.int8Activations = reference.int8Activations = false;
    interpreted.nativeCode = false;
    reference.kernels = KernelPath::Reference;

    std::vector<float> ref = logitsOf(a, reference, prompt, /*expectNative=*/false);
    for (int threads : {1, 2}) {
      generated.threads = interpreted.threads = threads;
      std::vector<float> gen = logitsOf(a, generated, prompt, /*expectNative=*/true);
      std::vector<float> interp = logitsOf(a, interpreted, prompt, /*expectNative=*/false);
      ASSERT_EQ(gen.size(), ref.size());
      ASSERT_EQ(interp.size(), ref.size());
      double num = 0, den = 0;
      for (size_t i = 0; i < gen.size(); ++i) {
        // Same kernels, same order: generated and interpreted agree exactly
        // up to the compiler's choices in the element-wise loops.
        ASSERT_NEAR(gen[i], interp[i], 1e-5f * (1 + std::fabs(interp[i]))) << quant << " " << i;
        num += (gen[i] - ref[i]) * double(gen[i] - ref[i]);
        den += double(ref[i]) * ref[i];
      }
      // float32 sums against float64 sums over K <= 768: ~1e-6 relative.
      EXPECT_LT(std::sqrt(num / den), 1e-5) << quant << ", " << threads << " threads";
    }
  }
}

TEST(CpuBackendTest, Int8ActivationsStayCloseOnDecode) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  for (const char *quant :
       {"int8:group=32:classifier", "int4:group=32:classifier", "mxfp4:classifier",
        "bfp4:block=32:classifier", "mixed:bits=4.5"}) {
    auto a = compileAndLoad(modelDir() + "/stories15M.bin", "int8act", quant);
    ASSERT_NE(a, nullptr);
    std::vector<int32_t> prompt = loadReference()["prompts"][0]["prompt_ids"];
    // Quantized builds run int8 activations by default (recorded in the
    // plan at compile time); float activations stay available.
    ASSERT_TRUE(plan::usesInt8Activations(*a->schedule("cpu"))) << quant;
    SessionOptions exact, int8;
    exact.int8Activations = false;
    auto s1 = Session::create(a, exact), s2 = Session::create(a, int8);
    ASSERT_TRUE(s1 && s2);
    EXPECT_FALSE(*s1->executable().options().int8Activations);
    EXPECT_TRUE(*s2->executable().options().int8Activations);
    // The prompt runs as a prefill, then one decode step; the int8 session
    // rounds each matmul input per block in both.
    ASSERT_TRUE(s1->forward(prompt) && s2->forward(prompt));
    int32_t next = 29892;
    auto l1 = s1->forward(std::span<const int32_t>(&next, 1));
    ASSERT_TRUE(l1);
    std::vector<float> ref(l1->begin(), l1->end());
    auto l2 = s2->forward(std::span<const int32_t>(&next, 1));
    ASSERT_TRUE(l2);
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      num += ((*l2)[i] - ref[i]) * double((*l2)[i] - ref[i]);
      den += double(ref[i]) * ref[i];
    }
    // int8 activations with a scale per block of 32: ~2^-8 relative per
    // input, ~1% on the logits after 6 layers; the greedy choice holds.
    EXPECT_LT(std::sqrt(num / den), 2e-2) << quant;
    // And the integer path really ran: rounding the inputs moves the logits
    // (a float fallback would agree to ~1e-6), and the executable says the
    // decode step's 43 products (7 per layer and the classifier) took int8
    // inputs where their formats have integer codes (all but MXFP6/FP6 in
    // the mixed build), and none did in the float session.
    EXPECT_GT(std::sqrt(num / den), 1e-4) << quant;
    const auto int8Products = s2->executable().lastStepProducts();
    const auto floatProducts = s1->executable().lastStepProducts();
    EXPECT_EQ(int8Products.int8 + int8Products.floats, 43) << quant;
    EXPECT_EQ(floatProducts.int8, 0) << quant;
    EXPECT_EQ(floatProducts.floats, 43) << quant;
    if (std::string(quant) != "mixed:bits=4.5")
      EXPECT_EQ(int8Products.int8, 43) << quant;
    else
      EXPECT_GT(int8Products.int8, 0) << quant;
    EXPECT_EQ(std::max_element(ref.begin(), ref.end()) - ref.begin(),
              std::max_element(l2->begin(), l2->end()) - l2->begin())
        << quant;
    // The reference kernels run the plan's int8 activations too: the
    // inputs rounded as the integer kernels round them, then multiplied
    // exactly. Their sums differ from the integer kernels' in the last
    // bits (about 1e-7), and where that moves an input across a rounding
    // boundary of the int8 grid the two round it to neighbouring codes,
    // after which every later input differs by int8 rounding's own size:
    // such a flip is not rare, since a step rounds some 10^4 inputs, each
    // within 1e-7 of a boundary with odds of a few 1e-5 (1 or 2 of the 14
    // inputs below flip on an AVX-512 machine, 1 to 5 were seen on AVX2).
    // So each build runs 14 two-token inputs, and the integer kernels must
    // agree with the rounded reference to float sums (1e-5) on at least 4
    // of them, and there be far closer than float activations are on any:
    // a reference that did not round (1e-2 away everywhere) fails, and so
    // does a kernel wrong on most inputs, while 11 of 14 flipping by chance
    // would take about 1 in 700 even at AVX2's worst odds (5 in 14).
    SessionOptions rounded, exactRef;
    rounded.kernels = exactRef.kernels = KernelPath::Reference;
    exactRef.int8Activations = false;
    // Each input's first token is its own: a flip at a shared first token
    // (all of them began with BOS before) repeats in every input, through
    // the second position's attention to it. It did, for the MXFP4
    // classifier on the AVX-512 panel kernel: one value of BOS's row 1.2e-7
    // short of a halfway point (-32.4999988 against the reference's
    // -32.5000032, layer 4's down projection) put all 14 inputs 2.7e-3
    // apart.
    std::vector<std::vector<int32_t>> inputs;
    const nlohmann::json reference = loadReference();
    for (const auto &p : reference["prompts"]) {
      const std::vector<int32_t> ids = p["prompt_ids"];
      inputs.push_back({ids[2], ids[3]});
    }
    for (int32_t token : {450, 1200, 3000, 4700, 7000, 11000, 15000, 22000, 31000})
      inputs.push_back({token, 263});
    std::vector<std::unique_ptr<Session>> sessions;
    for (const SessionOptions &o : {int8, rounded, exactRef}) {
      auto s = Session::create(a, o);
      ASSERT_TRUE(s);
      sessions.push_back(std::make_unique<Session>(std::move(*s)));
    }
    std::vector<double> nearOnes, farOnes;
    for (const auto &two : inputs) {
      std::vector<float> rows[3];
      for (int i = 0; i < 3; ++i) {
        sessions[i]->reset();
        auto l = sessions[i]->forward(two);
        ASSERT_TRUE(l);
        rows[i].assign(l->begin(), l->end());
      }
      EXPECT_TRUE(*sessions[1]->executable().options().int8Activations);
      EXPECT_EQ(sessions[1]->executable().lastStepProducts().int8, int8Products.int8) << quant;
      double d1 = 0, d2 = 0, norm = 0;
      for (size_t k = 0; k < rows[0].size(); ++k) {
        d1 += (rows[0][k] - rows[1][k]) * double(rows[0][k] - rows[1][k]);
        d2 += (rows[0][k] - rows[2][k]) * double(rows[0][k] - rows[2][k]);
        norm += double(rows[2][k]) * rows[2][k];
      }
      nearOnes.push_back(std::sqrt(d1 / norm));
      farOnes.push_back(std::sqrt(d2 / norm));
    }
    const double nearest = *std::min_element(nearOnes.begin(), nearOnes.end());
    const double nearestFloat = *std::min_element(farOnes.begin(), farOnes.end());
    const auto agreeing = std::count_if(nearOnes.begin(), nearOnes.end(),
                                        [](double d) { return d < 1e-5; });
    std::printf("[ measured ] %s: integer kernels vs the rounded reference %.2e at best, %td of "
                "%zu inputs within 1e-5; vs float %.2e at best\n",
                quant, nearest, agreeing, nearOnes.size(), nearestFloat);
    EXPECT_GE(agreeing, 4) << quant;
    EXPECT_LT(nearest, nearestFloat / 100) << quant;
  }
}

// Bf16 activations (--activations=bf16, the cuda target's default where int8
// is not taken) round every product's input to bf16 on each CPU path: the
// generated code, the interpreted plan and the reference kernels agree on
// the rounded numerics, which differ from float's.
TEST(CpuBackendTest, Bf16ActivationsRoundEveryProductInput) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  compiler::CompileOptions options;
  options.input = modelDir() + "/stories15M.bin";
  options.tokenizer = modelDir() + "/tokenizer.bin";
  options.activations = "bf16";
  auto a = compileAndLoad(options, "bf16act");
  auto f = compileAndLoad(modelDir() + "/stories15M.bin", "bf16act-float");
  ASSERT_TRUE(a && f);
  int bf16 = 0, others = 0;
  plan::forEachProduct(*a->schedule("cpu"), [&](uint32_t, plan::Activations act) {
    (act == plan::Activations::Bf16 ? bf16 : others) += 1;
  });
  EXPECT_EQ(bf16, 43); // 7 products a layer and the classifier
  EXPECT_EQ(others, 0);
  SessionOptions generated, interpreted, reference;
  interpreted.nativeCode = false;
  reference.kernels = KernelPath::Reference;
  // At the second token of each reference prompt (its first logits after
  // BOS). The generated code and the interpreted plan run the same kernels
  // in the same order: the same floats. The reference kernels sum in
  // double; where that moves a sum's last bit across a rounding boundary,
  // an input rounds to the neighbouring bf16 (2^-8 of it) and the step
  // drifts from then on (2.3e-3 on 2 of the 5 prompts, 2026-12-02), where
  // the others agree as float sums do (1e-7).
  std::vector<double> apart, fromFloat;
  const nlohmann::json prompts = loadReference()["prompts"];
  for (const auto &p : prompts) {
    const std::vector<int32_t> ids = p["prompt_ids"];
    const std::vector<int32_t> two(ids.begin(), ids.begin() + 2);
    std::vector<std::vector<float>> rows;
    for (const SessionOptions &o : {reference, generated, interpreted}) {
      auto session = Session::create(a, o);
      ASSERT_TRUE(session) << session.error().message();
      auto logits = session->forward(two);
      ASSERT_TRUE(logits);
      rows.emplace_back(logits->begin(), logits->end());
      const auto counts = session->executable().lastStepProducts();
      EXPECT_EQ(counts.bf16, 43);
      EXPECT_EQ(counts.floats + counts.int8, 0);
    }
    EXPECT_TRUE(Session::create(a, generated)->usesNativeCode());
    EXPECT_LT(relativeL2(rows[2], rows[1]), 1e-6);
    apart.push_back(relativeL2(rows[1], rows[0]));
    auto plain = Session::create(f, reference);
    ASSERT_TRUE(plain);
    auto logits = plain->forward(two);
    ASSERT_TRUE(logits);
    fromFloat.push_back(relativeL2(std::vector<float>(logits->begin(), logits->end()), rows[0]));
  }
  std::sort(apart.begin(), apart.end());
  std::sort(fromFloat.begin(), fromFloat.end());
  const double far = fromFloat[fromFloat.size() / 2];
  std::printf("[ measured ] bf16 activations: SIMD kernels %.2e to %.2e from the reference "
              "kernels, the reference %.2e from float's (median of %zu prompts)\n",
              apart.front(), apart.back(), far, apart.size());
  EXPECT_LT(apart.front(), 1e-6); // where no input flips
  EXPECT_LT(apart.back(), 2e-2);  // where one does: bf16 noise, not a wrong row
  EXPECT_GT(far, 1e-4);           // the rounding really happened
  EXPECT_LT(far, 2e-2);

  // Attention rounds its queries too (AttentionStep::activations): the same
  // artifact with float queries in every attention step moves the logits
  // of a whole prompt by bf16 noise, on the reference kernels and the SIMD
  // ones alike.
  artifact::ArtifactContents contents;
  contents.config = a->config();
  contents.vocabulary = a->vocabulary();
  for (size_t i = 0; i < a->tensors().size(); ++i)
    contents.tensors.push_back({a->tensors()[i], a->tensorData(i)});
  contents.schedules = a->schedules();
  int attentions = 0;
  for (plan::KernelPlan &schedule : contents.schedules)
    for (plan::Step &step : schedule.steps)
      if (auto *at = std::get_if<plan::AttentionStep>(&step)) {
        EXPECT_EQ(at->activations, plan::Activations::Bf16);
        at->activations = plan::Activations::Float;
        ++attentions;
      }
  EXPECT_GE(attentions, 6); // a layer's each
  auto floatQueries = artifact::Artifact::fromContents(contents, "float queries");
  ASSERT_TRUE(floatQueries) << floatQueries.error().message();
  const std::vector<int32_t> ids = prompts[0]["prompt_ids"];
  for (const SessionOptions &o : {reference, interpreted}) {
    std::vector<std::vector<float>> last;
    for (const auto &artifact : {a, *floatQueries}) {
      auto session = Session::create(artifact, o);
      ASSERT_TRUE(session) << session.error().message();
      auto logits = session->forward(ids);
      ASSERT_TRUE(logits);
      last.emplace_back(logits->begin(), logits->end());
    }
    const double moved = relativeL2(last[0], last[1]);
    std::printf("[ measured ] bf16 queries move the last logits of a %zu-token prompt by %.2e\n",
                ids.size(), moved);
    EXPECT_GT(moved, 1e-5);
    EXPECT_LT(moved, 2e-2);
  }
}

// Greedy steps over a float32 classifier screen it with an int8 copy
// (ScreenedArgmax) instead of computing every logit: the ids are every
// logit's argmax, step after step, in the generated code and the
// interpreted plan. A build whose classifier takes bf16 inputs computes
// every logit (the screening would see other inputs than the product).
TEST(CpuBackendTest, GreedyStepsPickTheArgmaxOfEveryLogit) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto f = compileAndLoad(modelDir() + "/stories15M.bin", "greedy-float");
  compiler::CompileOptions options;
  options.input = modelDir() + "/stories15M.bin";
  options.tokenizer = modelDir() + "/tokenizer.bin";
  options.activations = "bf16";
  auto b = compileAndLoad(options, "greedy-bf16");
  ASSERT_TRUE(f && b);
  const nlohmann::json prompts = loadReference()["prompts"];
  for (const auto &[a, name] : {std::pair{f, "float"}, std::pair{b, "bf16"}})
    for (bool native : {true, false}) {
      SessionOptions o;
      o.nativeCode = native;
      int screened = 0;
      for (const auto &p : prompts) {
        auto full = Session::create(a, o), greedy = Session::create(a, o);
        ASSERT_TRUE(full && greedy);
        const std::vector<int32_t> prompt = p["prompt_ids"];
        auto logits = full->forward(prompt);
        auto id = greedy->forwardGreedy(prompt);
        ASSERT_TRUE(logits && id);
        for (int step = 0; step < 40; ++step) {
          const int32_t expected = argmax(*logits);
          ASSERT_EQ(*id, expected) << name << (native ? " generated" : " interpreted") << ", step " << step;
          logits = full->forward(std::span<const int32_t>(&expected, 1));
          id = greedy->forwardGreedy(std::span<const int32_t>(&expected, 1));
          ASSERT_TRUE(logits && id);
        }
        screened = 0;
        for (uint32_t t = 0; t < a->tensors().size(); ++t)
          screened += greedy->executable().greedyWeightBytes(t).has_value();
      }
      // The float build screens where the machine has the panel kernel.
      EXPECT_LE(screened, std::string(name) == "float" ? 1 : 0) << name;
      std::printf("[ measured ] %s activations, %s: classifier %s\n", name,
                  native ? "generated code" : "interpreted plan",
                  screened ? "screened" : "computed in full");
    }
}

TEST(CpuBackendTest, ThreadsAreValidated) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto a = compileAndLoad(modelDir() + "/stories15M.bin", "threads");
  ASSERT_NE(a, nullptr);
  SessionOptions options;
  options.threads = -1;
  auto s = Session::create(a, options);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("--threads"), std::string::npos);
  options.threads = 0; // every core this process may use
  auto all = Session::create(a, options);
  ASSERT_TRUE(all);
  options.threads = 2;
  auto two = Session::create(a, options);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->threads(), std::min(2, all->threads()));
  // No oversubscription: spinning workers beyond the cores only slow decode.
  options.threads = 1000;
  auto many = Session::create(a, options);
  ASSERT_TRUE(many);
  EXPECT_EQ(many->threads(), all->threads());
}

// docs/artifact.md: generated code is refused, with a line that says what
// to do, when the CPU lacks its ISA, its ABI version differs from the
// runtime's, or it was generated for another plan (also as the loaded code
// itself reports it); --no-native-code still runs the plan.
TEST(CpuBackendTest, MismatchedGeneratedCodeIsRefused) {
  compiler::CompileOptions options; // the tiny model: no model file, no tokenizer
  options.input = std::string(LATHE_SOURCE_ROOT) + "/test/lit/tools/Inputs/tiny-llama.mlir";
  options.output = tempPath("native.lathe");
  std::string ignored;
  llvm::raw_string_ostream out(ignored);
  Status compiled = compiler::compile(options, out);
  ASSERT_TRUE(compiled) << compiled.error().message();
  auto loadedTiny = artifact::Artifact::load(options.output);
  ASSERT_TRUE(loadedTiny) << loadedTiny.error().message();
  std::shared_ptr<const artifact::Artifact> a = *loadedTiny;
  auto rewrite = [&](const std::function<void(plan::NativeCode &)> &damage) {
    artifact::ArtifactContents contents;
    contents.config = a->config();
    for (size_t i = 0; i < a->tensors().size(); ++i)
      contents.tensors.push_back({a->tensors()[i], a->tensorData(i)});
    contents.schedules = a->schedules();
    damage(*contents.schedules[0].native);
    contents.producer = a->producer();
    const std::string path = tempPath("native-damaged.lathe");
    Status written = artifact::writeArtifact(contents, path);
    EXPECT_TRUE(written) << written.error().message();
    auto loaded = artifact::Artifact::load(path);
    EXPECT_TRUE(loaded) << loaded.error().message();
    return loaded ? *loaded : nullptr;
  };
  auto refused = [&](std::shared_ptr<const artifact::Artifact> damaged) {
    auto session = Session::create(damaged);
    if (session)
      return std::string();
    SessionOptions interpret;
    interpret.nativeCode = false;
    auto fallback = Session::create(damaged, interpret);
    EXPECT_TRUE(fallback) << "--no-native-code must still run";
    return session.error().message();
  };
  EXPECT_NE(refused(rewrite([](plan::NativeCode &n) { n.isa = "x86-64-v9"; }))
                .find("built for x86-64-v9, which this CPU does not support"),
            std::string::npos);
  EXPECT_NE(refused(rewrite([](plan::NativeCode &n) { n.abiVersion += 1; }))
                .find("uses ABI version"),
            std::string::npos);
  EXPECT_NE(refused(rewrite([](plan::NativeCode &n) { n.planHash ^= 1; }))
                .find("generated for another kernel plan"),
            std::string::npos);
  EXPECT_NE(refused(rewrite([](plan::NativeCode &n) { n.object.resize(40); }))
                .find("not a shared object"),
            std::string::npos);
  EXPECT_EQ(refused(rewrite([](plan::NativeCode &) {})), "") << "an intact copy runs";
}

} // namespace
} // namespace lathe::test
