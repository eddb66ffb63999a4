#include "codegen/HLS/HlsEstimate.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <set>

namespace lathe::codegen {
namespace {

// The model's assumptions, printed in the report: latencies (cycles) of
// the floating-point operators on the kernels' recurrences, and DSP48E2
// slices per operator, typical of Vitis HLS's full-DSP operators on
// UltraScale+ near 300 MHz. A loop whose iterations add into one double
// (a dot product's accumulators, a softmax's sum) cannot start an
// iteration before the previous add is done: its II is the add's latency.
constexpr int kDoubleAddLatency = 7;
constexpr int kPipelineDepth = 12; // cycles to fill and drain a pipelined loop
constexpr int kDsqrtDivCycles = 60; // RMSNorm's sqrt and divide, once a row
constexpr int kDmulDsp = 11, kDaddDsp = 3, kFmulDsp = 3, kFaddDsp = 2, kExpDsp = 7;
// Int8-activation products (productsInt8): a block's BLOCK int8 x int8
// multiplies per iteration, summed in an integer tree, then one fmaf into
// the row's float sum, whose latency bounds the block loop's II. Two
// products share a DSP48E2 when they share an operand (AMD WP486's packing:
// two rows' weights against one activation code), so at two or more rows
// at once; one per slice otherwise. The fmaf as a float multiply and add.
constexpr int kFmaLatency = 8;
constexpr int kFdivLatency = 16; // quantizing x: 127 / max and max / 127, a block each
constexpr int kFmaDsp = kFmulDsp + kFaddDsp;
// A local array's bank (block RAM) serves two accesses per cycle; the
// parallel accesses #plan.hls_array_partition spreads over banks bound the
// II of the loops that make them.
constexpr int64_t kBankPorts = 2;

/// A board's budget (datasheet figures, not measurements).
struct Board {
  const char *name, *part, *memory;
  double gbPerSecond;
  int64_t dsp;
  uint64_t bramBytes, uramBytes, memoryBytes;
};

constexpr uint64_t kBram36 = 4608, kUram = 36864; // bytes per block
constexpr uint64_t kGiB = uint64_t(1) << 30;
const Board kBoards[] = {
    {"Alveo U280", "xcu280-fsvh2892-2L-e", "HBM2, 8 GB", 460.0, 9024, 2016 * kBram36,
     960 * kUram, 8 * kGiB},
    {"VU9P (AWS F1)", "xcvu9p-flgb2104-2-i", "DDR4, 4 x 16 GB", 68.0, 6840, 2160 * kBram36,
     960 * kUram, 64 * kGiB},
    {"Kria KV260", "xck26-sfvc784-2LV-c", "DDR4, 4 GB", 19.2, 1248, 144 * kBram36, 64 * kUram,
     4 * kGiB},
};

/// On-chip bytes by memory: an array of kUramArrayBytes or more is one
/// that would be bound to UltraRAM (BIND_STORAGE impl=uram), the rest
/// stays in block RAM (Vitis HLS's default).
constexpr uint64_t kUramArrayBytes = 64 * 1024;
struct OnChip {
  uint64_t bram = 0, uram = 0;
  void add(uint64_t bytes, uint64_t copies = 1) {
    (bytes >= kUramArrayBytes ? uram : bram) += bytes * copies;
  }
  uint64_t total() const { return bram + uram; }
};

/// What one call costs.
struct Cost {
  std::string what;  // kernel and shape
  std::string trips; // the trip counts of its main loops
  std::string ii;    // target / estimated II of those loops
  double cycles = 0;
  int64_t dsp = 0;         // of its instance (0 when an earlier call has it)
  OnChip onChip;           // local arrays of its instance (none likewise)
  double bytes = 0;        // off-chip bytes read and written per token
};

std::string count(double n) {
  if (n >= 1e9)
    return fmt::format("{:.2f} G", n / 1e9);
  if (n >= 1e6)
    return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1e4)
    return fmt::format("{:.1f} k", n / 1e3);
  return fmt::format("{:.0f}", n);
}

std::string bytes(double n) {
  if (n >= 1e9)
    return fmt::format("{:.2f} GB", n / 1e9);
  if (n >= 1e6)
    return fmt::format("{:.2f} MB", n / 1e6);
  if (n >= 1e3)
    return fmt::format("{:.1f} kB", n / 1e3);
  return fmt::format("{:.0f} B", n);
}

/// DSP slices a product's weight decode takes, by format.
int64_t decodeDsp(const std::string &format) {
  if (format == "f32" || format == "f16" || format == "bf16")
    return 0;
  if (format.rfind("int", 0) == 0)
    return kFmulDsp; // code * scale
  if (format.rfind("bfp", 0) == 0)
    return kDmulDsp; // mantissa * 2^e
  if (format.rfind("fp6", 0) == 0)
    return kDmulDsp + kFmulDsp; // element value, times the group's scale
  return 2 * kDmulDsp; // MX: element value, times the block's scale
}

/// A dot product of n: n / 4 iterations at the accumulators' recurrence
/// (or the II, if larger), then the three adds of the sums.
double dotCycles(int64_t n, int64_t ii = 1) {
  return double((n + 3) / 4) * double(std::max<int64_t>(ii, kDoubleAddLatency)) +
         kPipelineDepth + 3 * kDoubleAddLatency;
}
constexpr int64_t kDotDsp = 4 * kDmulDsp + 4 * kDaddDsp;

/// The II a loop reaches when `accesses` of its iteration go to one bank
/// of a local array: a block RAM bank has two ports.
int64_t portIi(int64_t accesses) { return (accesses + kBankPorts - 1) / kBankPorts; }

Cost cost(const HlsKernelCall &c, int64_t context, int64_t position) {
  Cost k;
  const std::string shape = fmt::format("{} x {}", c.rows, c.cols);
  // The target II (#plan.hls_loop), and what a loop that adds into a
  // double reaches.
  const int64_t ii = std::max<int64_t>(c.ii, 1);
  const int64_t accumulate = std::max<int64_t>(ii, kDoubleAddLatency);
  switch (c.kind) {
  case HlsKernelCall::Kind::MatVec: {
    // UNROLL rows at once, each lane with its own decode and dot hardware,
    // writing and reading its decoded row: lanes that share a bank of the
    // decoded rows (#plan.hls_array_partition) share its two ports, a
    // write per decode iteration and four reads per dot iteration each.
    const int64_t unroll = std::max<int64_t>(c.unroll, 1);
    const int64_t lanesPerBank = (unroll + c.banks - 1) / std::max<int64_t>(c.banks, 1);
    const int64_t decodeIi = std::max(c.ii, portIi(lanesPerBank));
    const int64_t dotIi = std::max({c.ii, int64_t(kDoubleAddLatency), portIi(4 * lanesPerBank)});
    k.what = fmt::format("matvec {} {}{}{}", shape, c.format,
                         c.unroll > 1 ? fmt::format(", {} rows at once", c.unroll) : "",
                         c.dataflow ? ", dataflow" : "");
    k.trips = fmt::format("{} rows x ({} decode + {} dot)", c.rows, c.cols, (c.cols + 3) / 4);
    k.ii = fmt::format("{}/{}, {}/{}", c.ii, decodeIi, c.ii, dotIi);
    // Per row group: the decode, then the dot products; with dataflow the
    // group's decode overlaps the previous group's dots, so the slower
    // stage sets the pace and the other runs once more at the end.
    const double decode = double(c.cols) * double(decodeIi) + kPipelineDepth;
    const double dot = dotCycles(c.cols, dotIi);
    const double groups = double(c.rows / unroll);
    k.cycles = c.dataflow ? groups * std::max(decode, dot) + std::min(decode, dot)
                          : groups * (decode + dot);
    k.dsp = (kDotDsp + decodeDsp(c.format)) * c.unroll;
    // A decoded row per lane; dataflow double-buffers them (ping-pong).
    k.onChip.add(4 * uint64_t(c.cols), uint64_t(c.unroll) * (c.dataflow ? 2 : 1));
    k.bytes = double(c.weightBytes);
    break;
  }
  case HlsKernelCall::Kind::MatVecInt8: {
    const int64_t blocks = (c.cols + c.block - 1) / c.block;
    // A block iteration reads the block's codes of x: the rows at once
    // read the same ones (one read each), spread over the banks the
    // partition of `codes` gives a block.
    const int64_t readsPerBank = (c.block + c.banks - 1) / std::max<int64_t>(c.banks, 1);
    const int64_t loopIi = std::max({c.ii, int64_t(kFmaLatency), portIi(readsPerBank)});
    k.what = fmt::format("matvec int8 {} {}{}", shape, c.format,
                         c.unroll > 1 ? fmt::format(", {} rows at once", c.unroll) : "");
    k.trips = fmt::format("{} x ({} amax + {} round), {} rows x {} blocks of {}", blocks,
                          c.block, c.block, c.rows, blocks, c.block);
    k.ii = fmt::format("{}/{}, {}/{}", c.ii, c.ii, c.ii, loopIi);
    k.cycles = double(blocks) * (2.0 * double(c.block) * double(c.ii) + 2 * kPipelineDepth +
                                 kFdivLatency) +
               double(c.rows / std::max<int64_t>(c.unroll, 1)) *
                   (double(blocks) * double(loopIi) + kPipelineDepth);
    const int64_t macsPerDsp = c.unroll >= 2 ? 2 : 1;
    k.dsp = (c.block * c.unroll + macsPerDsp - 1) / macsPerDsp +
            (kFmaDsp + kFmulDsp) * c.unroll + kFmulDsp + 2 * kFaddDsp;
    k.onChip.add(uint64_t(blocks * c.block) + 4 * uint64_t(blocks)); // codes and scales
    k.bytes = double(c.weightBytes);
    break;
  }
  case HlsKernelCall::Kind::Embedding:
    k.what = fmt::format("embedding {} {}", c.cols, c.format);
    k.trips = fmt::format("{}", c.cols);
    k.ii = fmt::format("{}/{}", ii, ii);
    k.cycles = double(c.cols) * double(ii) + kPipelineDepth;
    k.dsp = decodeDsp(c.format);
    k.bytes = double(c.weightBytes);
    break;
  case HlsKernelCall::Kind::RmsNorm:
  case HlsKernelCall::Kind::AddRmsNorm: {
    const bool add = c.kind == HlsKernelCall::Kind::AddRmsNorm;
    k.what = fmt::format("{} {}", add ? "add + rms_norm" : "rms_norm",
                         c.rows > 1 ? shape : std::to_string(c.cols));
    k.trips = fmt::format("{}{} x ({} squares + {} scale)", add ? fmt::format("{} add, ", c.cols) : "",
                          c.rows, (c.cols + 3) / 4, c.cols);
    k.ii = fmt::format("{}/{}, {}/{}", ii, accumulate, ii, ii);
    k.cycles = double(c.rows) * (dotCycles(c.cols, ii) + double(c.cols) * double(ii) +
                                 kPipelineDepth + kDsqrtDivCycles) +
               (add ? double(c.cols) * double(ii) + kPipelineDepth : 0);
    k.dsp = kDotDsp + 2 * kFmulDsp + (add ? kFaddDsp : 0);
    break;
  }
  case HlsKernelCall::Kind::Rope:
    k.what = fmt::format("rope {} (head {})", c.cols, c.headDim);
    k.trips = fmt::format("{} pairs", c.cols / 2);
    k.ii = fmt::format("{}/{}", ii, ii);
    k.cycles = double(c.cols / 2) * double(ii) + kPipelineDepth;
    k.dsp = 4 * kDmulDsp + 2 * kDaddDsp;
    // Its cos and sin row: one double of each per pair of a head group.
    k.bytes = double(c.heads) * double(c.headDim / 2) * 2 * 8;
    break;
  case HlsKernelCall::Kind::Attention: {
    const int64_t rows = position + 1;
    k.what = fmt::format("attention {} heads ({} KV) x {}", c.heads, c.kvHeads, c.headDim);
    k.trips = fmt::format("{} heads x {} rows x ({} key + {} dot + {} softmax + {} value)",
                          c.heads, rows, c.headDim, (c.headDim + 3) / 4, 1, c.headDim);
    // Key loads, the score's dot, the softmax (one iteration a row, its
    // sum a double), the weighted values.
    k.ii = fmt::format("{}/{}, {}/{}, {}/{}, {}/{}", ii, ii, ii, accumulate, ii, accumulate, ii,
                       ii);
    const double perHead =
        double(rows) * (double(c.headDim) * double(ii) + dotCycles(c.headDim, ii) +
                        double(accumulate) + double(c.headDim) * double(ii)) +
        3 * kPipelineDepth + double(c.headDim);
    k.cycles = double(c.heads) * perHead + double(c.kvHeads * c.headDim) * double(ii);
    k.dsp = kDotDsp + kExpDsp + kDaddDsp + kDmulDsp + kDaddDsp;
    k.onChip.add(4 * uint64_t(context)); // the scores
    k.onChip.add(4 * uint64_t(c.headDim));
    k.onChip.add(8 * uint64_t(c.headDim));
    // Every head reads its KV head's keys and values (f32) at each row;
    // the token's key and value are written once.
    k.bytes = double(c.heads) * double(rows) * double(c.headDim) * 4 * 2 +
              double(c.kvHeads * c.headDim) * 4 * 2;
    break;
  }
  case HlsKernelCall::Kind::SiluMul:
    k.what = fmt::format("silu_mul {}", c.cols);
    k.trips = std::to_string(c.cols);
    k.ii = fmt::format("{}/{}", ii, ii);
    k.cycles = double(c.cols) * double(ii) + 3 * kPipelineDepth;
    k.dsp = kExpDsp + kFaddDsp + kFmulDsp;
    break;
  case HlsKernelCall::Kind::BiasAdd:
  case HlsKernelCall::Kind::Add:
    k.what = fmt::format("{} {}", c.kind == HlsKernelCall::Kind::Add ? "add" : "bias_add", c.cols);
    k.trips = std::to_string(c.cols);
    k.ii = fmt::format("{}/{}", ii, ii);
    k.cycles = double(c.cols) * double(ii) + kPipelineDepth;
    k.dsp = kFaddDsp;
    break;
  }
  return k;
}

} // namespace

std::string hlsEstimateReport(const HlsProject &project, const HlsEstimateOptions &options) {
  const plan::ModelConfig &config = project.config;
  // Attention is counted at the middle of the context: the mean over a
  // generation that fills it.
  const int64_t position = std::max<int64_t>(config.context / 2, 0);
  const double mhz = options.clockMHz;
  std::string out = fmt::format(
      "# Estimate: '{}', one decode step (lathe-compile --target=hls)\n\n"
      "**Every figure below is an estimate** of Lathe's analytical model of the generated\n"
      "kernels (codegen/HLS/HlsEstimate.cpp), not a result of Vitis HLS: run\n"
      "`vitis_hls -f run_hls.tcl` for the tool's own report. Clock {:.0f} MHz; attention\n"
      "at position {} of a context of {} (the mean over a generation that fills it).\n\n"
      "Assumptions: a loop that adds into a double (a dot product's four accumulators, the\n"
      "softmax's sum) runs at the double adder's latency, {} cycles, as its II, or at its\n"
      "target II (#plan.hls_loop) if larger; every other loop at its target II, or at what\n"
      "the ports of a local array allow: a bank serves {} accesses a cycle, and the arrays'\n"
      "partitions (#plan.hls_array_partition) set how many banks the parallel accesses share\n"
      "(a float product's rows at once write and read a row each of its decoded rows, four\n"
      "reads per dot iteration; an int8 product's block loop reads a block of x's codes);\n"
      "{} cycles to fill and drain each pipelined loop; the kernels run one after another;\n"
      "within a float product with dataflow (#plan.hls_dataflow) a row group's decode\n"
      "overlaps the previous group's dot products, the slower stage setting the pace, its\n"
      "decoded rows double-buffered; DSP48E2 slices per operator: double multiply {},\n"
      "double add {}, float multiply {}, float add {}, exp {};\n"
      "int8-activation products: a weight block per iteration of the block loop (its int8\n"
      "multiplies unrolled into an integer tree), at the II of the float fma that adds it\n"
      "into the row's sum, {} cycles; two int8 multiplies per DSP48E2 when two or more rows\n"
      "run at once (AMD WP486's packing shares the activation code), one otherwise; the fma\n"
      "as a float multiply and add; quantizing x takes two passes over each block and\n"
      "{} cycles of divides; the AXI port is assumed to deliver a block per iteration.\n"
      "Each template instance or generated product function is one piece of hardware that\n"
      "its calls share. Off-chip bytes: the weights each call reads (the embedding one\n"
      "row), the rotary tables' rows, the f32 KV rows attention reads and writes, the\n"
      "logits written.\n\n",
      config.name, mhz, position, config.context, kDoubleAddLatency, kBankPorts, kPipelineDepth,
      kDmulDsp,
      kDaddDsp, kFmulDsp, kFaddDsp, kExpDsp, kFmaLatency, kFdivLatency);

  out += "| # | kernel | trip counts | II target/est. | cycles (est.) | us (est.) | DSP "
         "(est.) | on-chip (est.) | off-chip bytes (est.) |\n"
         "|--:|---|---|---|--:|--:|--:|--:|--:|\n";
  std::set<std::string> instances;
  double cycles = 0, offChip = 0;
  int64_t dsp = 0;
  OnChip onChip;
  for (uint64_t array : project.arrayBytes)
    onChip.add(array);
  for (size_t i = 0; i < project.calls.size(); ++i) {
    const HlsKernelCall &c = project.calls[i];
    Cost k = cost(c, config.context, position);
    if (!instances.insert(c.instance).second)
      k.dsp = 0, k.onChip = {}; // the instance's hardware is counted once
    // The logits go out over their own interface.
    if (i + 1 == project.calls.size() && (c.kind == HlsKernelCall::Kind::MatVec ||
                                          c.kind == HlsKernelCall::Kind::MatVecInt8))
      k.bytes += 4.0 * double(c.rows);
    cycles += k.cycles;
    offChip += k.bytes;
    dsp += k.dsp;
    onChip.bram += k.onChip.bram;
    onChip.uram += k.onChip.uram;
    out += fmt::format("| {} | {} | {} | {} | {} | {:.1f} | {} | {} | {} |\n", i + 1, k.what,
                       k.trips, k.ii, count(k.cycles), k.cycles / mhz, k.dsp ? std::to_string(k.dsp) : "-",
                       k.onChip.total() ? bytes(double(k.onChip.total())) : "-",
                       bytes(k.bytes));
  }
  const double stepUs = cycles / mhz;
  const double designTps = stepUs > 0 ? 1e6 / stepUs : 0;
  out += fmt::format(
      "\n**Step (est.)**: {} cycles, {:.0f} us at {:.0f} MHz: **{:.1f} tokens/s** for this "
      "design. {} DSP slices, {} on chip ({} of activation buffers, {} of gains and biases, "
      "the rest the kernels' local arrays; {} in block RAM, {} in UltraRAM: arrays of 64 KiB "
      "or more), {} moved off chip per token ({} of weights).\n\n",
      count(cycles), stepUs, mhz, designTps, dsp, bytes(double(onChip.total())),
      bytes(double(project.bufferBytes)), bytes(double(project.constantBytes)),
      bytes(double(onChip.bram)), bytes(double(onChip.uram)), bytes(offChip),
      bytes(double(project.weights.size())));

  out += "| board (est.) | part | memory | peak GB/s | roofline tokens/s | this design "
         "tokens/s | DSP used | block RAM used | UltraRAM used | weights fit |\n"
         "|---|---|---|--:|--:|--:|--:|--:|--:|---|\n";
  for (const Board &b : kBoards) {
    const double roofline = offChip > 0 ? b.gbPerSecond * 1e9 / offChip : 0;
    const uint64_t needed =
        project.weights.size() + project.ropeTables.size() * 8 + project.cacheFloats * 4;
    out += fmt::format(
        "| {} | {} | {} | {:.1f} | {:.0f} | {:.1f} | {} of {} ({:.1f}%) | {} of {} ({:.1f}%) | {} "
        "of {} ({:.1f}%) | {} ({} of {}) |\n",
        b.name, b.part, b.memory, b.gbPerSecond, roofline, std::min(designTps, roofline), dsp,
        b.dsp, 100.0 * double(dsp) / double(b.dsp), bytes(double(onChip.bram)),
        bytes(double(b.bramBytes)), 100.0 * double(onChip.bram) / double(b.bramBytes),
        bytes(double(onChip.uram)), bytes(double(b.uramBytes)),
        100.0 * double(onChip.uram) / double(b.uramBytes),
        needed <= b.memoryBytes ? "yes" : "no", bytes(double(needed)),
        bytes(double(b.memoryBytes)));
  }
  out += "\nBoard figures are datasheet budgets (DSP48E2 slices; 36 Kb block RAM and 288 Kb "
         "UltraRAM blocks; the memory's peak bandwidth), not measurements. \"Roofline\" is the "
         "peak bandwidth divided by the bytes moved per token: the bound a design that streams "
         "its weights at full bandwidth could reach; \"this design\" is the smaller of that and "
         "the estimated step above. \"Weights fit\" counts the weights, the rotary tables and "
         "the KV cache of a full context.\n";
  return out;
}

} // namespace lathe::codegen
