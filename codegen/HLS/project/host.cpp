// The host program of a generated HLS project: runs the synthesized
// lathe_hls_step on an FPGA card through XRT (libxrt-dev), one decode step
// per token, as the testbench runs it in C simulation, and prints the
// greedy ids after the prompt.
//
//   host.out XCLBIN WEIGHTS ROPE_TABLES PROMPT_IDS N [DEVICE]
//
// XCLBIN is the linked design (v++ --link of the kernel that
// `vitis_hls -f run_hls.tcl` synthesized, exported as a .xo).
#include "host_common.h"
#include "lathe_model.h"

#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::vector<char> readAll(const std::string &path, size_t expected) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof())
    throw std::runtime_error(path + ": cannot read");
  if (bytes.size() != expected)
    throw std::runtime_error(path + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                             std::to_string(expected) + " (regenerate the project)");
  return bytes;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    std::fprintf(stderr, "host: usage: host.out XCLBIN WEIGHTS ROPE_TABLES PROMPT_IDS N [DEVICE]\n");
    return 1;
  }
  try {
    std::vector<int32_t> prompt;
    if (!lathe_host::parseIds(argv[4], LATHE_HLS_VOCAB, prompt))
      throw std::runtime_error("PROMPT_IDS: expected ids below " +
                               std::to_string(LATHE_HLS_VOCAB) + " separated by commas");
    long n = 0;
    if (!lathe_host::parseCount(argv[5], n))
      throw std::runtime_error(std::string("N: expected a count >= 0, got '") + argv[5] + "'");
    if (!lathe_host::fitsContext(prompt.size(), n, LATHE_HLS_CONTEXT))
      throw std::runtime_error("the prompt and N tokens pass the context of " +
                               std::to_string(LATHE_HLS_CONTEXT));
    xrt::device device(argc == 7 ? std::atoi(argv[6]) : 0);
    const xrt::uuid uuid = device.load_xclbin(argv[1]);
    xrt::kernel kernel(device, uuid, "lathe_hls_step");
    const std::vector<char> weights = readAll(argv[2], LATHE_HLS_WEIGHT_BYTES);
    const std::vector<char> tables = readAll(argv[3], LATHE_HLS_TABLE_DOUBLES * sizeof(double));
    // One buffer per memory interface, in the top function's argument order.
    xrt::bo weightBo(device, weights.size(), kernel.group_id(0));
    xrt::bo tableBo(device, tables.size(), kernel.group_id(1));
    xrt::bo cacheBo(device, LATHE_HLS_CACHE_FLOATS * sizeof(float), kernel.group_id(2));
    xrt::bo logitBo(device, LATHE_HLS_VOCAB * sizeof(float), kernel.group_id(5));
    weightBo.write(weights.data());
    weightBo.sync(XCL_BO_SYNC_BO_TO_DEVICE);
    tableBo.write(tables.data());
    tableBo.sync(XCL_BO_SYNC_BO_TO_DEVICE);
    std::vector<float> logits(LATHE_HLS_VOCAB, 0.0f);
    int32_t position = 0;
    auto step = [&](int32_t token) {
      xrt::run run = kernel(weightBo, tableBo, cacheBo, token, position++, logitBo);
      run.wait();
      logitBo.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
      logitBo.read(logits.data());
    };
    for (int32_t id : prompt)
      step(id);
    std::string line;
    for (long i = 0; i < n; ++i) {
      const int32_t next = lathe_host::argmax(logits);
      line += (i ? " " : "") + std::to_string(next);
      if (i + 1 < n)
        step(next);
    }
    std::printf("%s\n", line.c_str());
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "host: %s\n", e.what());
    return 1;
  }
}
