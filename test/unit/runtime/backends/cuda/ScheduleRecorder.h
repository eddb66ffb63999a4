// What the tests of the CUDA host schedule (CudaScheduleAbiTest,
// EmitCudaScheduleTest) hand a schedule: a launcher that records the
// launches it is given, and the facts of a step.
#pragma once

#include "runtime/backends/cuda/schedule/CudaScheduleAbi.h"

#include <cstdint>
#include <vector>

namespace lathe::test {

/// A launcher that records what it is handed; fails the call numbered
/// `failAt` (from 0), if any.
struct ScheduleRecorder {
  std::vector<LatheCudaLaunchCall> calls;
  int failAt = -1;
  LatheCudaLauncher launcher{this, &ScheduleRecorder::record, 0};
  static int record(void *context, const LatheCudaLaunchCall *call) {
    auto &r = *static_cast<ScheduleRecorder *>(context);
    r.calls.push_back(*call);
    return int(r.calls.size()) - 1 == r.failAt ? 1 : 0;
  }
};

/// A step of `rows` tokens, all returning logits, every launch in range, on
/// an H100-sized GPU with the wgmma code loaded.
inline LatheCudaStepFacts scheduleStep(int64_t rows) {
  LatheCudaStepFacts s{};
  s.rows = rows;
  s.logitTokens = rows;
  s.queryTiles = rows;
  s.attentionSplits = LATHE_CUDA_ATTENTION_MAX_SPLITS;
  s.wgmmaSplits = LATHE_CUDA_WGMMA_MAX_SPLITS;
  s.multiprocessors = 132;
  s.wgmmaCode = 1;
  s.first = 0;
  s.end = INT32_MAX;
  return s;
}

} // namespace lathe::test
