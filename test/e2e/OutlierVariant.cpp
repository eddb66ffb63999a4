#include "test/e2e/OutlierVariant.h"

#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "runtime/sampling/Sampler.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <numeric>
#include <span>
#include <utility>

namespace lathe::test {

using frontend::TensorView;

Expected<std::vector<OutlierChannel>> chooseOutlierChannels(int64_t dim,
                                                            const OutlierVariantSpec &spec) {
  if (spec.channels < 1 || spec.channels > dim)
    return Error("outlier variant: " + std::to_string(spec.channels) +
                 " channels asked for, the model has " + std::to_string(dim));
  if (spec.exponents.empty())
    return Error("outlier variant: no exponents given");
  for (int e : spec.exponents)
    if (e == 0)
      return Error("outlier variant: an exponent of 0 would change nothing");

  // A partial Fisher-Yates shuffle: the first `channels` entries are a
  // uniform draw without repeats. splitmix64 rather than <random>'s
  // distributions, whose outputs differ between standard libraries.
  std::vector<int64_t> order(static_cast<size_t>(dim));
  std::iota(order.begin(), order.end(), 0);
  uint64_t state = spec.seed;
  std::vector<OutlierChannel> chosen;
  for (int64_t i = 0; i < spec.channels; ++i) {
    uint64_t left = static_cast<uint64_t>(dim - i);
    std::swap(order[i], order[i + static_cast<int64_t>(splitmix64Next(state) % left)]);
    chosen.push_back({order[i], spec.exponents[i % spec.exponents.size()]});
  }
  return chosen;
}

namespace {

/// Multiplies column `c` of the row-major [rows, cols] float32 tensor
/// `tensor` by 2^exponent, checking that every new value scales back to the
/// old one exactly: otherwise the variant would not compute the original's
/// function.
Status scaleColumn(std::span<uint8_t> tensor, int64_t cols, int64_t c, int exponent,
                   const std::string &what) {
  const int64_t rows = static_cast<int64_t>(tensor.size() / sizeof(float)) / cols;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t *p = tensor.data() + (r * cols + c) * sizeof(float);
    float v;
    std::memcpy(&v, p, sizeof v);
    const float scaled = std::ldexp(v, exponent);
    if (!std::isfinite(scaled) || std::ldexp(scaled, -exponent) != v)
      return Error(what + (rows > 1 ? "[" + std::to_string(r) + "]" : "") + "[" +
                   std::to_string(c) + "] = " + std::to_string(v) + " cannot be scaled by 2^" +
                   std::to_string(exponent) + " and back exactly");
    std::memcpy(p, &scaled, sizeof scaled);
  }
  return Status::ok();
}

} // namespace

Expected<std::vector<OutlierChannel>> writeOutlierVariant(const std::string &source,
                                                          const std::string &destination,
                                                          const OutlierVariantSpec &spec) {
  std::vector<uint8_t> bytes;
  std::vector<OutlierChannel> channels;
  {
    // The reader validates the file and knows where every tensor lies;
    // the variant edits a copy of the whole file at those offsets, so the
    // header, the RoPE tables and every untouched tensor stay as they were.
    auto ckpt = frontend::readLlama2cCheckpoint(source);
    if (!ckpt)
      return ckpt.error();
    auto chosen = chooseOutlierChannels(ckpt->config.dim, spec);
    if (!chosen)
      return Error(source + ": " + chosen.error().message());
    channels = chosen.take();
    std::span<const uint8_t> file = ckpt->storage.front()->bytes();
    bytes.assign(file.begin(), file.end());
    auto inCopy = [&](const TensorView &v) {
      return std::span<uint8_t>(bytes).subspan(static_cast<size_t>(v.bytes.data() - file.data()),
                                              v.bytes.size());
    };

    const int64_t dim = ckpt->config.dim;
    // One norm and the weights that read its output, in one layer.
    auto rescale = [&](const std::string &layer, const OutlierChannel &ch,
                       const TensorView &norm, const char *normName,
                       std::initializer_list<std::pair<const TensorView &, const char *>> readers)
        -> Status {
      // A gain vector is a [1, dim] tensor whose column c is gain[c].
      if (Status s = scaleColumn(inCopy(norm), dim, ch.channel, -ch.exponent, layer + normName);
          !s)
        return s;
      if (!spec.scaleColumns)
        return Status::ok();
      for (const auto &[weight, name] : readers)
        if (Status s = scaleColumn(inCopy(weight), dim, ch.channel, ch.exponent, layer + name); !s)
          return s;
      return Status::ok();
    };
    for (size_t l = 0; l < ckpt->layers.size(); ++l) {
      const frontend::LlamaLayerWeights &w = ckpt->layers[l];
      const std::string layer = source + ": layer " + std::to_string(l) + " ";
      for (const OutlierChannel &ch : channels) {
        if (Status s = rescale(layer, ch, w.attnNorm, "rms_att",
                               {{w.wq, "wq"}, {w.wk, "wk"}, {w.wv, "wv"}});
            !s)
          return s.error();
        if (Status s = rescale(layer, ch, w.ffnNorm, "rms_ffn", {{w.w1, "w1"}, {w.w3, "w3"}}); !s)
          return s.error();
      }
    }
  } // unmaps `source` before `destination`, which may be the same file, is written

  std::ofstream out(destination, std::ios::binary);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out)
    return Error(destination + ": cannot write: " + std::strerror(errno));
  return channels;
}

} // namespace lathe::test
