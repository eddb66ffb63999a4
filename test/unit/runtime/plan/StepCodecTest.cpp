// The generic step codec: every step kind round-trips through its flat
// form (kind, integer fields, float fields), and malformed flat steps are
// refused with a message instead of building a step with garbage.
#include "runtime/plan/StepCodec.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lathe::plan {
namespace {

std::vector<Step> everyKind() {
  return {EmbeddingStep{0, 1},
          RmsNormStep{1, 2, 3, 1e-5f},
          MatMulStep{3, 4, 5, Activations::Int8},
          MatMulsStep{5, {6, 7, 8}, {9, 10, 11}, Activations::Float},
          RopeStep{2, 3, 48, 10000.0f, RopeLayout::RotateHalf, 8.0f, 1.0f, 4.0f, 8192},
          RopeStep{2, 3, 4, 10000.0f, RopeLayout::Interleaved, 0.0f, 0.0f, 0.0f, 0, {1, 0, 0, 1}},
          AttentionStep{1, 2, 3, 4, 5, 32, 8, 64, Activations::Bf16},
          SiluMulStep{1, 2, 3},
          AddStep{4, 5, 6},
          AddRmsNormStep{1, 2, 3, 4, 5, 1e-6f},
          LogitsStep{7, 0, 8, Activations::Int8},
          BiasAddStep{3, 9, 4}};
}

TEST(StepCodecTest, EveryKindRoundTrips) {
  std::vector<Step> steps = everyKind();
  EXPECT_EQ(steps.size(), std::variant_size_v<Step> + 1) << "a step kind has no case here";
  for (const Step &step : steps) {
    FlatStep flat = flatten(step);
    EXPECT_EQ(flat.kind, stepName(step));
    EXPECT_FALSE(stepFields(flat.kind).empty());
    Expected<Step> back = unflatten(flat.kind, flat.ints, flat.floats);
    ASSERT_TRUE(back) << flat.kind << ": " << back.error().message();
    FlatStep again = flatten(*back);
    EXPECT_EQ(again.ints, flat.ints) << flat.kind;
    EXPECT_EQ(again.floats, flat.floats) << flat.kind;
  }
}

TEST(StepCodecTest, FieldsFollowTheDeclaredOrder) {
  FlatStep rope =
      flatten(RopeStep{2, 3, 48, 500000.0f, RopeLayout::RotateHalf, 32.0f, 1.0f, 4.0f, 8192});
  EXPECT_EQ(rope.ints, (std::vector<int64_t>{2, 3, 48, 1, 8192, 0}));
  EXPECT_EQ(rope.floats, (std::vector<float>{500000.0f, 32.0f, 1.0f, 4.0f}));
  // A list is its length, then its items.
  FlatStep group = flatten(MatMulsStep{5, {6, 7}, {9, 10}, Activations::Int8});
  EXPECT_EQ(group.ints, (std::vector<int64_t>{5, 2, 6, 7, 2, 9, 10, 1}));
  // So is a list of numbers (a rope's pair order).
  FlatStep ordered =
      flatten(RopeStep{2, 3, 4, 1e4f, RopeLayout::Interleaved, 0, 0, 0, 0, {1, 0}});
  EXPECT_EQ(ordered.ints, (std::vector<int64_t>{2, 3, 4, 0, 0, 2, 1, 0}));
}

TEST(StepCodecTest, MalformedStepsAreRefused) {
  auto error = [](std::string_view kind, std::vector<int64_t> ints, std::vector<float> floats) {
    Expected<Step> s = unflatten(kind, ints, floats);
    return s ? std::string() : s.error().message();
  };
  EXPECT_NE(error("conv2d", {}, {}).find("unknown kernel kind 'conv2d'"), std::string::npos);
  EXPECT_NE(error("add", {1, 2}, {}).find("too few integer fields"), std::string::npos);
  EXPECT_NE(error("add", {1, 2, 3, 4}, {}).find("too many fields"), std::string::npos);
  EXPECT_NE(error("rms_norm", {1, 2, 3}, {}).find("too few float fields"), std::string::npos);
  EXPECT_NE(error("add", {1, -2, 3}, {}).find("out of range"), std::string::npos);
  EXPECT_NE(error("add", {1, int64_t(1) << 33, 3}, {}).find("out of range"), std::string::npos);
  EXPECT_NE(error("rope", {1, 2, 48, 2}, {1e4f}).find("unknown enum value 2"), std::string::npos);
  EXPECT_NE(error("rope", {1, 2, 4, 0, 0, 5, 1}, {1e4f, 0, 0, 0}).find("runs past the fields"),
            std::string::npos);
  EXPECT_NE(error("matmuls", {1, 1000, 2}, {}).find("runs past the fields"), std::string::npos);
  EXPECT_NE(error("matmul", {1, 2, 3, 7}, {}).find("unknown enum value 7"), std::string::npos);
  EXPECT_TRUE(stepFields("conv2d").empty());
}

} // namespace
} // namespace lathe::plan
