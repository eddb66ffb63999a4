// The C testbench of a generated HLS project (lathe-compile --target=hls):
// runs the top function, lathe_hls_step, one token at a time over the
// prompt, then greedily for N tokens, and prints the generated ids on one
// line. `make csim PROMPT_IDS=1,2,3 N=20` builds and runs it; Vitis HLS runs
// it under csim_design (run_hls.tcl). The testbench itself is not
// synthesized, so it may use the standard library.
//
//   csim WEIGHTS ROPE_TABLES PROMPT_IDS N
#include "host_common.h"
#include "lathe_model.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "csim: %s\n", message.c_str());
  return 1;
}

bool readFile(const char *path, std::vector<unsigned char> &out, size_t expected) {
  FILE *f = std::fopen(path, "rb");
  if (!f)
    return false;
  out.assign(expected, 0);
  const size_t got = expected ? std::fread(out.data(), 1, expected, f) : 0;
  const bool atEnd = std::fgetc(f) == EOF;
  std::fclose(f);
  return got == expected && atEnd;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 5)
    return fail("usage: csim WEIGHTS ROPE_TABLES PROMPT_IDS N (ids comma-separated)");
  std::vector<unsigned char> weights, tables;
  if (!readFile(argv[1], weights, LATHE_HLS_WEIGHT_BYTES))
    return fail(std::string(argv[1]) + ": cannot read " + std::to_string(LATHE_HLS_WEIGHT_BYTES) +
                " bytes of weights (regenerate the project)");
  if (!readFile(argv[2], tables, LATHE_HLS_TABLE_DOUBLES * sizeof(double)))
    return fail(std::string(argv[2]) + ": cannot read the rotary tables (regenerate the project)");
  std::vector<int32_t> prompt;
  if (!lathe_host::parseIds(argv[3], LATHE_HLS_VOCAB, prompt))
    return fail(std::string("PROMPT_IDS: expected ids below ") + std::to_string(LATHE_HLS_VOCAB) +
                " separated by commas, got '" + argv[3] + "'");
  long n = 0;
  if (!lathe_host::parseCount(argv[4], n))
    return fail(std::string("N: expected a count >= 0, got '") + argv[4] + "'");
  if (!lathe_host::fitsContext(prompt.size(), n, LATHE_HLS_CONTEXT))
    return fail("the prompt and N tokens pass the context of " +
                std::to_string(LATHE_HLS_CONTEXT));

  std::vector<float> cache(LATHE_HLS_CACHE_FLOATS, 0.0f), logits(LATHE_HLS_VOCAB, 0.0f);
  const double *rope = reinterpret_cast<const double *>(tables.data());
  int32_t position = 0;
  for (int32_t id : prompt)
    lathe_hls_step(weights.data(), rope, cache.data(), id, position++, logits.data());
  std::string line;
  for (long i = 0; i < n; ++i) {
    const int32_t next = lathe_host::argmax(logits);
    line += (i ? " " : "") + std::to_string(next);
    if (i + 1 < n)
      lathe_hls_step(weights.data(), rope, cache.data(), next, position++, logits.data());
  }
  std::printf("%s\n", line.c_str());
  return 0;
}
