// The estimate report of a generated HLS project (estimate.md): per kernel
// call of the decode step, trip counts, target and estimated II, cycles
// and microseconds at a clock, DSP slices, on-chip bytes and bytes moved
// per token; then the step's totals against the budgets of three boards
// (Alveo U280, a VU9P as on AWS F1, Kria KV260) and the roofline tokens/s
// their memory allows. Every figure is an estimate of Lathe's analytical
// model, stated as such in the report with its assumptions: none comes
// from Vitis HLS (docs/hls.md).
#pragma once

#include "codegen/HLS/EmitHlsProject.h"

#include <string>

namespace lathe::codegen {

struct HlsEstimateOptions {
  /// The kernel clock the cycles are converted at.
  double clockMHz = 300.0;
};

/// The report, in Markdown.
std::string hlsEstimateReport(const HlsProject &project, const HlsEstimateOptions &options = {});

} // namespace lathe::codegen
