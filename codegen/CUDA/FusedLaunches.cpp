#include "codegen/CUDA/FusedLaunches.h"

#include <algorithm>
#include <variant>

namespace lathe::codegen {
namespace {

/// The activation buffers a step reads and writes.
struct BufferUse {
  std::vector<uint32_t> reads, writes;
};

template <class... F> struct Overloaded : F... {
  using F::operator()...;
};
template <class... F> Overloaded(F...) -> Overloaded<F...>;

BufferUse bufferUse(const plan::Step &step) {
  return std::visit(
      Overloaded{
          [](const plan::EmbeddingStep &s) { return BufferUse{{}, {s.output}}; },
          [](const plan::RmsNormStep &s) { return BufferUse{{s.input}, {s.output}}; },
          [](const plan::MatMulStep &s) { return BufferUse{{s.input}, {s.output}}; },
          [](const plan::MatMulsStep &s) { return BufferUse{{s.input}, s.outputs}; },
          [](const plan::RopeStep &s) { return BufferUse{{s.input}, {s.output}}; },
          [](const plan::AttentionStep &s) {
            return BufferUse{{s.queries, s.keys, s.values}, {s.output}};
          },
          [](const plan::SiluMulStep &s) { return BufferUse{{s.gate, s.up}, {s.output}}; },
          [](const plan::AddStep &s) { return BufferUse{{s.lhs, s.rhs}, {s.output}}; },
          [](const plan::AddRmsNormStep &s) {
            return BufferUse{{s.lhs, s.rhs}, {s.sum, s.output}};
          },
          [](const plan::LogitsStep &s) { return BufferUse{{s.input}, {s.output}}; },
          [](const plan::BiasAddStep &s) { return BufferUse{{s.input}, {s.output}}; },
      },
      step);
}

bool contains(const std::vector<uint32_t> &v, uint32_t b) {
  return std::find(v.begin(), v.end(), b) != v.end();
}

class Fuser {
public:
  explicit Fuser(const plan::KernelPlan &plan) : plan_(plan) {
    for (const plan::Step &s : plan.steps)
      uses_.push_back(bufferUse(s));
  }

  /// No step after `step` reads `buffer` before one writes it, and it is
  /// not the plan's result.
  bool deadAfter(uint32_t buffer, size_t step) const {
    for (size_t i = step + 1; i < uses_.size(); ++i) {
      if (contains(uses_[i].reads, buffer))
        return false;
      if (contains(uses_[i].writes, buffer))
        return true;
    }
    return buffer != plan_.logits;
  }

  template <class T> const T *at(size_t i) const {
    return i < plan_.steps.size() ? std::get_if<T>(&plan_.steps[i]) : nullptr;
  }

  /// A product step's input and the buffers its launch writes.
  bool product(size_t i, uint32_t &input, std::vector<uint32_t> &writes) const {
    if (const auto *m = at<plan::MatMulStep>(i))
      input = m->input;
    else if (const auto *m = at<plan::MatMulsStep>(i))
      input = m->input;
    else if (const auto *l = at<plan::LogitsStep>(i))
      input = l->input;
    else
      return false;
    writes = uses_[i].writes;
    return true;
  }

  const plan::KernelPlan &plan_;
  std::vector<BufferUse> uses_;
};

} // namespace

FusedLaunches fuseLaunches(const plan::KernelPlan &plan,
                           std::span<const plan::TensorInfo> tensors,
                           bool (*normRowsFit)(uint64_t width)) {
  const size_t n = plan.steps.size();
  FusedLaunches out;
  out.absorbed.assign(n, false);
  out.normOf.assign(n, std::nullopt);
  out.residualOf.assign(n, std::nullopt);
  out.addDone.assign(n, false);
  out.ropeOf.assign(n, std::nullopt);
  out.gatedOf.assign(n, std::nullopt);
  Fuser fuser(plan);

  // Gate and up products whose outputs only the silu_mul after them reads:
  // the product writes silu(g) * u, never g and u. Its input must not be
  // the silu_mul's output.
  for (size_t i = 0; i + 1 < n; ++i) {
    const auto *m = fuser.at<plan::MatMulsStep>(i);
    const auto *g = fuser.at<plan::SiluMulStep>(i + 1);
    if (!m || !g || m->outputs.size() != 2 || g->gate != m->outputs[0] ||
        g->up != m->outputs[1] || g->gate == g->up || g->output == m->input ||
        plan.bufferWidths[m->outputs[0]] != plan.bufferWidths[m->outputs[1]] ||
        !fuser.deadAfter(g->gate, i + 1) || !fuser.deadAfter(g->up, i + 1))
      continue;
    out.gatedOf[i] = i + 1;
    out.absorbed[i + 1] = true;
  }

  // A matmul's output that only the add_rms_norm after it adds in: the
  // matmul writes the sum. Its own input must not be the sum (other warps
  // of the launch still read it); the other addend may be (each output
  // element is read and written by the same thread).
  for (size_t i = 0; i + 1 < n; ++i) {
    const auto *m = fuser.at<plan::MatMulStep>(i);
    const auto *a = fuser.at<plan::AddRmsNormStep>(i + 1);
    if (!m || !a || (a->lhs != m->output && a->rhs != m->output) || a->lhs == a->rhs ||
        a->sum == m->input || !fuser.deadAfter(m->output, i + 1))
      continue;
    out.residualOf[i] = FusedAdd{i + 1, a->lhs == m->output ? a->rhs : a->lhs, a->sum};
    out.addDone[i + 1] = true;
  }

  // A norm whose output only the product after it reads: the product
  // normalizes its input itself. No block of the product may write the
  // norm's input, which every block reads.
  for (size_t i = 0; i + 1 < n; ++i) {
    FusedNorm norm{i, 0, 0, 0};
    uint32_t normOutput = 0;
    if (const auto *r = fuser.at<plan::RmsNormStep>(i)) {
      norm = {i, r->input, r->gain, r->epsilon};
      normOutput = r->output;
    } else if (const auto *a = fuser.at<plan::AddRmsNormStep>(i); a && out.addDone[i]) {
      norm = {i, a->sum, a->gain, a->epsilon};
      normOutput = a->output;
    } else {
      continue;
    }
    uint32_t input = 0;
    std::vector<uint32_t> writes;
    // Only norms of whole rows: a gain shorter than the row (per-head
    // norms) normalizes slices, which the products' prologue does not.
    const uint64_t width = plan.bufferWidths[normOutput];
    if (!fuser.product(i + 1, input, writes) || input != normOutput || !normRowsFit(width) ||
        !fuser.deadAfter(normOutput, i + 1) || norm.gain >= tensors.size() ||
        tensors[norm.gain].shape != std::vector<int64_t>{int64_t(width)})
      continue;
    if (out.residualOf[i + 1]) // it writes the sum instead of its output
      writes = {out.residualOf[i + 1]->sum};
    if (out.gatedOf[i + 1]) // it writes the silu_mul's output instead of its own
      writes = {std::get<plan::SiluMulStep>(plan.steps[*out.gatedOf[i + 1]]).output};
    if (contains(writes, norm.input))
      continue;
    out.normOf[i + 1] = norm;
    out.absorbed[i] = true;
  }

  // rope(queries), rope(keys), attention: one kernel rotates both and
  // stores the key and value rows. Its blocks read and write disjoint
  // buffers of the two ropes and the values. (A compressed cache's rows
  // are encoded a block of values at a time, by a store kernel of their
  // own.)
  for (size_t i = 0; i + 2 < n && !plan.kvFormat.compressed(); ++i) {
    const auto *q = fuser.at<plan::RopeStep>(i);
    const auto *k = fuser.at<plan::RopeStep>(i + 1);
    const auto *att = fuser.at<plan::AttentionStep>(i + 2);
    if (!q || !k || !att || q->output != att->queries || k->output != att->keys ||
        q->headDim != k->headDim || q->headDim != att->headDim || q->theta != k->theta ||
        q->scaling() != k->scaling() || q->layout != k->layout || q->pairOrder != k->pairOrder)
      continue;
    const std::vector<uint32_t> qBuffers{q->input, q->output};
    if (contains(qBuffers, k->input) || contains(qBuffers, k->output) ||
        contains(qBuffers, att->values) || k->input == att->values ||
        k->output == att->values)
      continue;
    out.ropeOf[i + 2] = i;
    out.absorbed[i] = out.absorbed[i + 1] = true;
  }

  // The q/k/v product right before such a rope pair: for a single token
  // it writes the ropes' outputs and the cache rows instead of the ropes'
  // inputs. Those must be dead after the ropes (or be their outputs), and
  // the launch's input (which other warps still read) none of its writes.
  out.ropeProductOf.assign(n, std::nullopt);
  for (size_t i = 0; i + 3 < n; ++i) {
    const auto *m = fuser.at<plan::MatMulsStep>(i);
    if (!m || !out.ropeOf[i + 3] || *out.ropeOf[i + 3] != i + 1)
      continue;
    const auto &q = std::get<plan::RopeStep>(plan.steps[i + 1]);
    const auto &k = std::get<plan::RopeStep>(plan.steps[i + 2]);
    const auto &att = std::get<plan::AttentionStep>(plan.steps[i + 3]);
    const uint32_t input = out.normOf[i] ? out.normOf[i]->input : m->input;
    const auto deadOrRotated = [&](const plan::RopeStep &r) {
      return r.input == r.output || fuser.deadAfter(r.input, i + 2);
    };
    if (m->outputs != std::vector<uint32_t>{q.input, k.input, att.values} ||
        plan.bufferWidths[q.input] != plan.bufferWidths[q.output] ||
        plan.bufferWidths[k.input] != plan.bufferWidths[k.output] || !deadOrRotated(q) ||
        !deadOrRotated(k) || q.output == input || k.output == input)
      continue;
    out.ropeProductOf[i] = i + 3;
  }
  return out;
}

} // namespace lathe::codegen
