// The KV-cache quality check the key-channel passes' tests share: KL to the
// FP32 build, on text it samples, of a stories15M build with a compressed
// KV cache, of the same build of the outlier-key variant (OutlierKeySpec's
// defaults: seed 1, 4 RoPE pairs of keys a layer x 2^5, the KV table's
// variant; the same FP32 model), and of that variant without the pass under
// test.
#pragma once

#include "test/e2e/KLDivergence.h"
#include "test/e2e/ModelFixture.h"
#include "test/e2e/OutlierVariant.h"

#include <string>
#include <vector>

namespace lathe::test {

/// {clean with `kv`, variant with `kv`, variant with `kvOff`}, or empty
/// after a failed expectation. `tag` names the temporary builds.
inline std::vector<Drift> outlierKeyDrift(const std::string &tag, const std::string &kv,
                                          const std::string &kvOff) {
  const std::string clean = modelDir() + "/stories15M.bin";
  const std::string keys = tempPath(tag + "-outlier-keys.bin");
  OutlierKeySpec spec;
  auto written = writeOutlierKeyVariant(clean, keys, spec);
  EXPECT_TRUE(written) << written.error().message();
  auto fp32 = compileAndLoad(clean, tag + "-f32");
  EXPECT_TRUE(fp32);
  const std::vector<std::shared_ptr<const artifact::Artifact>> builds = {
      compileAndLoad(clean, tag + "-clean", "none", kv),
      compileAndLoad(keys, tag + "-keys", "none", kv),
      compileAndLoad(keys, tag + "-keys-off", "none", kvOff),
  };
  for (const auto &b : builds)
    EXPECT_TRUE(b);
  if (!written || !fp32 || !builds[0] || !builds[1] || !builds[2])
    return {};
  const auto text = sampleText(fp32);
  EXPECT_FALSE(text.empty());
  if (text.empty())
    return {};
  return drift(text, fp32, builds);
}

} // namespace lathe::test
