// lathe-outlier-variant: writes an outlier-channel variant of a llama2.c
// checkpoint (test/e2e/OutlierVariant.h), for measuring by hand what such
// channels do to quantized builds (lathe-compile, then lathe-eval against
// the original's FP32 build, which the variant's FP32 build equals bit for
// bit). With --keys it writes an outlier-key variant instead: in every
// layer a few RoPE pairs of key channels (rows of wk) multiplied by 2^e and
// the rows of wq that meet them divided by 2^e, for measuring compressed KV
// caches (scripts/kv-table.sh). A test tool: built with the tests, not
// installed. Prints what it rescaled; bad input: one line on stderr, exit 1.
#include "test/e2e/OutlierVariant.h"
#include "tools/CommandLine.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-outlier-variant: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"Write a copy of a llama2.c checkpoint with a few residual channels rescaled "
               "by powers of two that cancel exactly: in every layer both RMSNorm gains of "
               "channel c divided by 2^e, the columns c of wq, wk, wv, w1 and w3 multiplied "
               "by 2^e; or, with --keys, a few key channels rescaled: in every layer RoPE "
               "pairs of rows of wk multiplied by 2^e, the rows of wq that meet them divided "
               "by 2^e"};
  std::string source, destination;
  lathe::test::OutlierVariantSpec spec;
  bool keys = false;
  app.add_option("SOURCE", source, "llama2.c checkpoint (.bin)")->required();
  app.add_option("DESTINATION", destination, "the variant to write")->required();
  app.add_flag("--keys", keys,
               "rescale key channels instead of residual channels: --channels counts RoPE "
               "pairs of key channels, drawn anew in each layer");
  app.add_option("--seed", spec.seed, "seed of the channel choice (default 1)");
  app.add_option("--channels", spec.channels,
                 "how many channels to rescale (default 4; with --keys, pairs a layer)");
  app.add_option("--exponents", spec.exponents,
                 "e per channel, cycled, e.g. --exponents=5 or --exponents=5,-8 (default 5; "
                 "a negative e makes the gain, not the columns, the outlier; with --keys the "
                 "queries, not the keys)")
      ->delimiter(',');
  if (std::optional<int> status =
          lathe::tools::parseCommandLine(app, argc, argv, "lathe-outlier-variant"))
    return *status;

  if (keys) {
    lathe::test::OutlierKeySpec keySpec;
    keySpec.seed = spec.seed;
    keySpec.pairs = spec.channels;
    keySpec.exponents = spec.exponents;
    auto pairs = lathe::test::writeOutlierKeyVariant(source, destination, keySpec);
    if (!pairs)
      return fail(pairs.error().message());
    for (const lathe::test::OutlierKeyPair &p : *pairs)
      std::printf("layer %lld: key channels %lld, %lld * 2^%d, the query rows meeting them "
                  "/ 2^%d\n",
                  static_cast<long long>(p.layer), static_cast<long long>(p.first),
                  static_cast<long long>(p.second), p.exponent, p.exponent);
    return 0;
  }
  auto channels = lathe::test::writeOutlierVariant(source, destination, spec);
  if (!channels)
    return fail(channels.error().message());
  for (const lathe::test::OutlierChannel &c : *channels)
    std::printf("channel %lld: gains / 2^%d, columns * 2^%d\n",
                static_cast<long long>(c.channel), c.exponent, c.exponent);
  return 0;
}
