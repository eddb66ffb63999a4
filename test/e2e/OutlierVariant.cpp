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

namespace {

/// The first `count` entries of a partial Fisher-Yates shuffle of [0, n):
/// a uniform draw without repeats. splitmix64 rather than <random>'s
/// distributions, whose outputs differ between standard libraries.
std::vector<int64_t> drawDistinct(int64_t n, int64_t count, uint64_t &state) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = 0; i < count; ++i) {
    uint64_t left = static_cast<uint64_t>(n - i);
    std::swap(order[i], order[i + static_cast<int64_t>(splitmix64Next(state) % left)]);
  }
  order.resize(static_cast<size_t>(count));
  return order;
}

Status checkExponents(const std::vector<int> &exponents) {
  if (exponents.empty())
    return Error("outlier variant: no exponents given");
  for (int e : exponents)
    if (e == 0)
      return Error("outlier variant: an exponent of 0 would change nothing");
  return Status::ok();
}

/// Multiplies the float32 at `p` by 2^exponent, checking that the new value
/// scales back to the old one exactly: otherwise the variant would not
/// compute the original's function. On failure names `what` and leaves the
/// value as it was.
Status scaleValue(uint8_t *p, int exponent, const std::string &what) {
  float v;
  std::memcpy(&v, p, sizeof v);
  const float scaled = std::ldexp(v, exponent);
  if (!std::isfinite(scaled) || std::ldexp(scaled, -exponent) != v)
    return Error(what + " = " + std::to_string(v) + " cannot be scaled by 2^" +
                 std::to_string(exponent) + " and back exactly");
  std::memcpy(p, &scaled, sizeof scaled);
  return Status::ok();
}

/// Multiplies column `c` of the row-major [rows, cols] float32 tensor
/// `tensor` by 2^exponent, exactly (scaleValue).
Status scaleColumn(std::span<uint8_t> tensor, int64_t cols, int64_t c, int exponent,
                   const std::string &what) {
  const int64_t rows = static_cast<int64_t>(tensor.size() / sizeof(float)) / cols;
  for (int64_t r = 0; r < rows; ++r)
    if (Status s = scaleValue(tensor.data() + (r * cols + c) * sizeof(float), exponent,
                              what + (rows > 1 ? "[" + std::to_string(r) + "]" : "") + "[" +
                                  std::to_string(c) + "]");
        !s)
      return s;
  return Status::ok();
}

/// Multiplies row `r` of the row-major [rows, cols] float32 tensor `tensor`
/// by 2^exponent, exactly (scaleValue).
Status scaleRow(std::span<uint8_t> tensor, int64_t cols, int64_t r, int exponent,
                const std::string &what) {
  for (int64_t c = 0; c < cols; ++c)
    if (Status s = scaleValue(tensor.data() + (r * cols + c) * sizeof(float), exponent,
                              what + "[" + std::to_string(r) + "][" + std::to_string(c) + "]");
        !s)
      return s;
  return Status::ok();
}

/// `bytes` is a copy of the file `ckpt` maps; returns where `v` lies in it.
std::span<uint8_t> inCopy(std::vector<uint8_t> &bytes, const frontend::LlamaCheckpoint &ckpt,
                          const TensorView &v) {
  const uint8_t *file = ckpt.storage.front()->bytes().data();
  return std::span<uint8_t>(bytes).subspan(static_cast<size_t>(v.bytes.data() - file),
                                          v.bytes.size());
}

Status writeFile(const std::string &destination, const std::vector<uint8_t> &bytes) {
  std::ofstream out(destination, std::ios::binary);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out)
    return Error(destination + ": cannot write: " + std::strerror(errno));
  return Status::ok();
}

} // namespace

Expected<std::vector<OutlierChannel>> chooseOutlierChannels(int64_t dim,
                                                            const OutlierVariantSpec &spec) {
  if (spec.channels < 1 || spec.channels > dim)
    return Error("outlier variant: " + std::to_string(spec.channels) +
                 " channels asked for, the model has " + std::to_string(dim));
  if (Status s = checkExponents(spec.exponents); !s)
    return s.error();
  uint64_t state = spec.seed;
  std::vector<OutlierChannel> chosen;
  for (int64_t c : drawDistinct(dim, spec.channels, state))
    chosen.push_back({c, spec.exponents[chosen.size() % spec.exponents.size()]});
  return chosen;
}

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
    auto inCopy = [&](const TensorView &v) { return test::inCopy(bytes, *ckpt, v); };

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

  if (Status s = writeFile(destination, bytes); !s)
    return s.error();
  return channels;
}

std::pair<int64_t, int64_t> ropePairChannels(const frontend::LlamaConfig &config, int64_t pair) {
  const int64_t half = config.headDim / 2;
  const int64_t head = pair / half, i = pair % half;
  if (config.rope == frontend::RopeLayout::Interleaved)
    return {head * config.headDim + 2 * i, head * config.headDim + 2 * i + 1};
  return {head * config.headDim + i, head * config.headDim + i + half};
}

std::vector<int64_t> queryRowsOf(const frontend::LlamaConfig &config, int64_t keyRow) {
  // Query head h reads KV head h / group (attention's grouped-query layout).
  const int64_t group = config.heads / config.kvHeads;
  const int64_t kvHead = keyRow / config.headDim, d = keyRow % config.headDim;
  std::vector<int64_t> rows;
  for (int64_t h = kvHead * group; h < (kvHead + 1) * group; ++h)
    rows.push_back(h * config.headDim + d);
  return rows;
}

Expected<std::vector<OutlierKeyPair>> chooseOutlierKeyPairs(const frontend::LlamaConfig &config,
                                                            const OutlierKeySpec &spec) {
  const int64_t available = config.kvDim() / 2;
  if (spec.pairs < 1 || spec.pairs > available)
    return Error("outlier variant: " + std::to_string(spec.pairs) +
                 " key channel pairs a layer asked for, the model has " +
                 std::to_string(available));
  if (Status s = checkExponents(spec.exponents); !s)
    return s.error();
  uint64_t state = spec.seed;
  std::vector<OutlierKeyPair> chosen;
  for (int64_t l = 0; l < config.layers; ++l) {
    std::vector<int64_t> pairs = drawDistinct(available, spec.pairs, state);
    for (size_t i = 0; i < pairs.size(); ++i) {
      auto [first, second] = ropePairChannels(config, pairs[i]);
      chosen.push_back({l, first, second, spec.exponents[i % spec.exponents.size()]});
    }
  }
  return chosen;
}

Expected<std::vector<OutlierKeyPair>> writeOutlierKeyVariant(const std::string &source,
                                                             const std::string &destination,
                                                             const OutlierKeySpec &spec) {
  std::vector<uint8_t> bytes;
  std::vector<OutlierKeyPair> pairs;
  {
    auto ckpt = frontend::readLlama2cCheckpoint(source);
    if (!ckpt)
      return ckpt.error();
    const frontend::LlamaConfig &config = ckpt->config;
    auto chosen = chooseOutlierKeyPairs(config, spec);
    if (!chosen)
      return Error(source + ": " + chosen.error().message());
    pairs = chosen.take();
    std::span<const uint8_t> file = ckpt->storage.front()->bytes();
    bytes.assign(file.begin(), file.end());
    const int64_t dim = config.dim;
    for (const OutlierKeyPair &p : pairs) {
      const frontend::LlamaLayerWeights &w = ckpt->layers[static_cast<size_t>(p.layer)];
      const std::string layer = source + ": layer " + std::to_string(p.layer) + " ";
      for (int64_t keyRow : {p.first, p.second}) {
        if (Status s = scaleRow(inCopy(bytes, *ckpt, w.wk), dim, keyRow, p.exponent, layer + "wk");
            !s)
          return s.error();
        if (!spec.scaleQueries)
          continue;
        for (int64_t queryRow : queryRowsOf(config, keyRow))
          if (Status s = scaleRow(inCopy(bytes, *ckpt, w.wq), dim, queryRow, -p.exponent,
                                  layer + "wq");
              !s)
            return s.error();
      }
    }
  } // unmaps `source` before `destination`, which may be the same file, is written

  if (Status s = writeFile(destination, bytes); !s)
    return s.error();
  return pairs;
}

} // namespace lathe::test
