// A one-layer model built by hand, with its f32 weights and its cpu kernel
// plan, for tests that need an artifact without the compiler.
#pragma once

#include "runtime/artifact/ArtifactWriter.h"

#include <cmath>
#include <string>
#include <vector>

namespace lathe::test {

// A one-layer model: dim 8, 2 heads of 4, 1 KV head, FFN 16, vocab 12.
struct TinyModel {
  using ArtifactContents = artifact::ArtifactContents;
  using TensorData = artifact::TensorData;
  std::vector<std::vector<float>> storage;
  ArtifactContents contents;

  uint32_t add(const std::string &name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i)
      values[i] = std::sin(0.37f * float(i) + float(storage.size())) * 0.5f;
    storage.push_back(std::move(values));
    auto &v = storage.back();
    contents.tensors.push_back(TensorData{
        plan::TensorInfo{name, ElementType::F32, shape, std::nullopt},
        {reinterpret_cast<const uint8_t *>(v.data()), v.size() * sizeof(float)}});
    return static_cast<uint32_t>(contents.tensors.size() - 1);
  }

  TinyModel() {
    storage.reserve(16);
    plan::ModelConfig &c = contents.config;
    c = plan::ModelConfig{8, 16, 1, 2, 1, 4, 12, 6, 1e-5f, 10000.0f, "tiny"};
    uint32_t emb = add("tok_embeddings", {12, 8}), g1 = add("attention_norm", {8}),
             wq = add("wq", {8, 8}), wk = add("wk", {4, 8}), wv = add("wv", {4, 8}),
             wo = add("wo", {8, 8}), g2 = add("ffn_norm", {8}), w1 = add("w1", {16, 8}),
             w3 = add("w3", {16, 8}), w2 = add("w2", {8, 16}), gf = add("norm", {8});
    plan::KernelPlan p;
    // b0 x, b1 h, b2 q, b3 k, b4 v, b5 attn, b6 gate, b7 up, b8 logits
    p.bufferWidths = {8, 8, 8, 4, 4, 8, 16, 16, 12};
    p.steps = {plan::EmbeddingStep{emb, 0},
               plan::RmsNormStep{0, g1, 1, 1e-5f},
               plan::MatMulStep{1, wq, 2},
               plan::MatMulStep{1, wk, 3},
               plan::MatMulStep{1, wv, 4},
               plan::RopeStep{2, 2, 4, 10000.0f, plan::RopeLayout::Interleaved},
               plan::RopeStep{3, 3, 4, 10000.0f, plan::RopeLayout::Interleaved},
               plan::AttentionStep{2, 3, 4, 5, 0, 2, 1, 4},
               plan::MatMulStep{5, wo, 1},
               plan::AddStep{0, 1, 0},
               plan::RmsNormStep{0, g2, 1, 1e-5f},
               plan::MatMulStep{1, w1, 6},
               plan::MatMulStep{1, w3, 7},
               plan::SiluMulStep{6, 7, 6},
               plan::MatMulStep{6, w2, 1},
               plan::AddStep{0, 1, 0},
               plan::RmsNormStep{0, gf, 1, 1e-5f},
               plan::LogitsStep{1, emb, 8}};
    p.logits = 8;
    p.kvLayers = 1;
    p.kvWidth = 4;
    contents.schedules.push_back(p);
    contents.producer = "ArtifactTest";
  }
};

} // namespace lathe::test
