// lathe-microbench: Google Benchmark timings of the matmul kernels on the
// shapes of stories15M: GEMV (T = 1, decoding), small batches (T = 2..16:
// several sequences or a speculative tree a step) and GEMM (T = 128, prefill)
// for N x K = 768 x 288 (w1/w3) and 32000 x 288 (the classifier), in
// float32, bfloat16, float16 and the packed formats; the scalar reference
// (runtime/kernels/ReferenceKernels) against the SIMD kernels
// (runtime/backends/cpu/kernels), on 1 and 2 threads of a ThreadPool.
//
// Counters: weightGB/s = weight bytes read per second (each call reads the
// matrix once, at any T); GFLOP/s = 2*T*N*K per second.
//
// draft/text:<n>/scan|indexed: drafting a speculative tree after a text
// of n tokens, its own suffix occurrences found by a scan or an index.
//
// attention/<kv>/context:<n>: one decode token's attention (the SIMD
// kernel, one thread) over stories15M's 6 layers of 6 heads of 48 with
// every cached row visible, for each KV-cache format (--kv): KVGB/s counts
// the cache bytes read.
//
// read/<size>/threads:<n>: plain read bandwidth of a buffer of that size
// split over the pool's threads (GB/s), the ceiling a memory-bound decode
// step works under: 4 MiB stays in the cores' L2, 16-64 MiB (stories15M's
// weights) in L3, 1 GiB reaches DRAM.
//
//   lathe-microbench --benchmark_filter='gemv/.*/768x288' --benchmark_repetitions=3
#include "runtime/formats/RowCodec.h"
#include "runtime/kernels/ReferenceKernels.h"
#include "runtime/backends/cpu/kernels/Attention.h"
#include "runtime/backends/cpu/kernels/Int8Matmul.h"
#include "runtime/backends/cpu/kernels/Matmul.h"
#include "runtime/backends/cpu/kernels/PanelMatmul.h"
#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/speculative/TreeDrafter.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace lathe;

struct Shape {
  int64_t N, K;
};

std::vector<float> randomVector(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v) x = dist(rng);
  return v;
}

/// One weight matrix in one storage format, and the kernels that read it.
struct Weights {
  std::string format; // "f32", "bf16", "f16" or a format name
  Shape shape;
  /// 64-byte aligned, as an artifact's tensors are (a std::vector's large
  /// storage sits 16 bytes past a page, and straddling loads would make
  /// the kernels look slower than they run on a model).
  struct AlignedBytes {
    std::vector<uint8_t> storage;
    size_t length = 0;
    void resize(size_t n) {
      storage.assign(n + 64, 0);
      length = n;
    }
    uint8_t *data() {
      const uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
      return storage.data() + ((64 - p % 64) % 64);
    }
    const uint8_t *data() const { return const_cast<AlignedBytes *>(this)->data(); }
    size_t size() const { return length; }
  } bytes;
  std::unique_ptr<formats::FormatSpec> spec; // packed formats only
  ElementType type = ElementType::F32;
  /// The same weights repacked into row panels (PanelMatmul.h), where this
  /// machine and format have the panel kernel, as the CPU backend packs them.
  kernels::simd::PanelWeights panels;

  kernels::WeightView view() const {
    return {type, bytes.data(), shape.N, shape.K, spec.get()};
  }
};

uint16_t toHalf(float f) {
  // Round-to-nearest-even float -> binary16 for normal-range values; good
  // enough for benchmark data (weights ~N(0, 0.05)).
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000;
  const int exp = static_cast<int>((b >> 23) & 0xFF) - 127 + 15;
  if (exp <= 0)
    return static_cast<uint16_t>(sign);
  uint32_t mant = b & 0x7FFFFF;
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1FFF;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    ++h;
  return static_cast<uint16_t>(h);
}

std::unique_ptr<Weights> makeWeights(const std::string &format, Shape shape) {
  auto w = std::make_unique<Weights>();
  w->format = format;
  w->shape = shape;
  const auto values = randomVector(shape.N * shape.K, 7, 0.05f);
  if (format == "f32") {
    w->bytes.resize(values.size() * 4);
    std::memcpy(w->bytes.data(), values.data(), w->bytes.size());
  } else if (format == "bf16" || format == "f16") {
    w->type = format == "bf16" ? ElementType::BF16 : ElementType::F16;
    w->bytes.resize(values.size() * 2);
    for (size_t i = 0; i < values.size(); ++i) {
      uint32_t b;
      std::memcpy(&b, &values[i], 4);
      const uint16_t h = format == "bf16" ? static_cast<uint16_t>(b >> 16) : toHalf(values[i]);
      std::memcpy(w->bytes.data() + 2 * i, &h, 2);
    }
  } else {
    auto spec = formats::parseFormatSpec(format);
    if (!spec) {
      std::fprintf(stderr, "lathe-microbench: %s\n", spec.error().message().c_str());
      return nullptr;
    }
    w->spec = std::make_unique<formats::FormatSpec>(*spec);
    const size_t rowBytes = formats::packedRowBytes(*spec, shape.K);
    w->bytes.resize(rowBytes * shape.N);
    for (int64_t n = 0; n < shape.N; ++n)
      if (!formats::quantizeRow(*spec, {values.data() + n * shape.K, size_t(shape.K)},
                                {w->bytes.data() + n * rowBytes, rowBytes}))
        return nullptr;
    if (kernels::simd::panelsSupported(*spec))
      kernels::simd::packPanels(w->bytes.data(), *spec, shape.N, shape.K, w->panels);
  }
  return w;
}

enum class Impl { Reference, Simd, SimdInt8, Panels };

/// y for columns [n0, n1) with the SIMD kernel of w's format.
void simdMatmul(const Weights &w, const float *x, int64_t T, float *y, int64_t n0,
                int64_t n1) {
  const auto [N, K] = w.shape;
  if (w.format == "f32")
    kernels::simd::matmulF32(x, T, reinterpret_cast<const float *>(w.bytes.data()), N, K,
                             y, n0, n1);
  else if (w.format == "bf16")
    kernels::simd::matmulBF16(x, T, reinterpret_cast<const uint16_t *>(w.bytes.data()), N,
                              K, y, n0, n1);
  else if (w.format == "f16")
    kernels::simd::matmulF16(x, T, reinterpret_cast<const uint16_t *>(w.bytes.data()), N,
                             K, y, n0, n1);
  else
    kernels::simd::matmulPacked(x, T, w.bytes.data(), *w.spec, N, K, y, n0, n1);
}

void runBenchmark(benchmark::State &state, const Weights &w, int64_t T, Impl impl,
                  int threads) {
  const auto [N, K] = w.shape;
  const auto x = randomVector(T * K, 11, 1.0f);
  std::vector<float> y(T * N);
  lathe::threading::ThreadPool pool(threads);
  kernels::simd::Int8Activations qx;
  for (auto _ : state) {
    switch (impl) {
    case Impl::Reference:
      kernels::matmul(x.data(), T, w.view(), y.data());
      break;
    case Impl::Simd:
      pool.parallelFor(0, N, [&](int64_t n0, int64_t n1) {
        simdMatmul(w, x.data(), T, y.data(), n0, n1);
      });
      break;
    case Impl::SimdInt8:
      // Quantizing x is part of the cost: the runtime does it once per
      // matmul input (shared by the matmuls that read the same x).
      kernels::simd::quantizeActivations(x.data(), T, K, *w.spec, qx);
      pool.parallelFor(0, N, [&](int64_t n0, int64_t n1) {
        kernels::simd::matmulPackedInt8(qx, w.bytes.data(), *w.spec, N, y.data(), n0, n1);
      });
      break;
    case Impl::Panels:
      // What the CPU backend runs for int8 activations where it can.
      kernels::simd::quantizeActivations(x.data(), T, K, *w.spec, qx,
                                         kernels::simd::CodeOrder::Columns);
      pool.parallelFor(0, w.panels.panels, [&](int64_t p0, int64_t p1) {
        kernels::simd::matmulPanels(qx, w.panels, y.data(), p0, p1);
      });
      break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["weightGB/s"] = benchmark::Counter(
      static_cast<double>(w.bytes.size()) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * T * N * K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bits/weight"] = 8.0 * static_cast<double>(w.bytes.size()) / (N * K);
}

/// Reads `bytes` bytes, split over `threads` threads, each summing its share
/// in four independent 64-bit lanes.
void runReadBenchmark(benchmark::State &state, size_t bytes, int threads) {
  std::vector<uint64_t> data(bytes / sizeof(uint64_t));
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = i;
  lathe::threading::ThreadPool pool(threads);
  std::vector<uint64_t> sums(size_t(threads) * 8);
  for (auto _ : state) {
    pool.parallelFor(0, threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const size_t begin = data.size() * size_t(t) / size_t(threads);
        const size_t end = data.size() * size_t(t + 1) / size_t(threads);
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = begin; i + 4 <= end; i += 4) {
          a += data[i];
          b += data[i + 1];
          c += data[i + 2];
          d += data[i + 3];
        }
        sums[size_t(t) * 8] = a + b + c + d;
      }
    });
    benchmark::DoNotOptimize(sums.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

/// One decode token attending to `context` cached rows in each of 6 layers
/// (stories15M: 6 heads of 48, one KV head each), keys and values stored in
/// `kv` by the store step from N(0, 1) values.
void runAttentionBenchmark(benchmark::State &state, const std::string &kv, int64_t context) {
  const int64_t layers = 6, heads = 6, dim = 48, width = heads * dim;
  auto parsed = lathe::formats::parseKvFormat(kv);
  auto format = parsed ? lathe::formats::resolveKvFormat(*parsed, dim) : parsed;
  if (!format) {
    state.SkipWithError(format.error().message().c_str());
    return;
  }
  const size_t rowBytes = lathe::formats::kvRowBytes(*format, width);
  std::vector<std::vector<uint8_t>> keys(layers), values(layers);
  const auto k = randomVector(context * width, 11, 1.0f);
  const auto v = randomVector(context * width, 12, 1.0f);
  std::vector<int32_t> rows(static_cast<size_t>(context));
  for (int64_t r = 0; r < context; ++r)
    rows[size_t(r)] = static_cast<int32_t>(r);
  std::vector<lathe::kernels::KVLayerView> views;
  // Windowed formats (KIVI; int8/bfp with window=R): the rows a sequence
  // of `context` holds once decoded there (the paged cache's
  // quantizedSlots): whole blocks (KIVI: key groups), then the f32 window.
  const int64_t group = format->kivi() ? format->keyGroup : 16;
  const int64_t quantized =
      format->windowed()
          ? std::max<int64_t>(0, std::min(context - 1, context - format->window)) / group * group
          : context;
  std::vector<std::vector<float>> window(layers);
  double bytes = double(layers * 2 * context) * double(rowBytes);
  for (int64_t l = 0; l < layers; ++l) {
    if (format->windowed()) {
      const size_t groupBytes = lathe::formats::kiviKeyGroupBytes(*format, width);
      keys[l].resize(format->kivi() ? size_t(quantized / group) * groupBytes
                                    : size_t(quantized) * rowBytes);
      values[l].resize(size_t(quantized) * rowBytes);
      for (int64_t r = 0; r < quantized; ++r) {
        if (!format->kivi())
          lathe::formats::encodeKvRow(*format, {k.data() + r * width, size_t(width)},
                                      keys[l].data() + size_t(r) * rowBytes);
        else if (r % group == 0)
          lathe::formats::encodeKiviKeys(*format, k.data() + r * width, group, width,
                                         keys[l].data() + size_t(r / group) * groupBytes);
        lathe::formats::encodeKvRow(*format, {v.data() + r * width, size_t(width)},
                                    values[l].data() + size_t(r) * rowBytes);
      }
      window[l].assign(k.begin() + quantized * width, k.end());
      window[l].insert(window[l].end(), v.begin() + quantized * width, v.end());
      views.push_back({keys[l].data(), values[l].data(), context, width, *format,
                       window[l].data(), window[l].data() + (context - quantized) * width,
                       quantized});
      continue;
    }
    keys[l].resize(size_t(context) * rowBytes);
    values[l].resize(size_t(context) * rowBytes);
    views.push_back({keys[l].data(), values[l].data(), context, width, *format});
    lathe::kernels::storeKV(k.data(), v.data(), rows, views.back());
  }
  if (format->windowed())
    bytes = double(layers) * (double(keys[0].size()) + double(values[0].size()) +
                              double(2 * (context - quantized) * width) * 4.0);
  const auto q = randomVector(width, 13, 1.0f);
  const std::vector<lathe::backend::VisibleRows> visible = {
      {rows.data(), static_cast<int32_t>(context), nullptr, 0}};
  std::vector<float> scratch(static_cast<size_t>(heads * context));
  std::vector<float> out(static_cast<size_t>(width));
  for (auto _ : state) {
    for (const lathe::kernels::KVLayerView &view : views)
      lathe::kernels::simd::attendHeads(q.data(), visible, heads, heads, dim, view, 0, heads,
                                        scratch.data(), out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["KVGB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// Weights are built on first use, so that a filtered run quantizes only
/// the matrices it times.
class WeightCache {
public:
  const Weights *get(const std::string &format, Shape shape) {
    const std::string key = format + "/" + std::to_string(shape.N) + "x" + std::to_string(shape.K);
    auto it = cache_.find(key);
    if (it == cache_.end())
      it = cache_.emplace(key, makeWeights(format, shape)).first;
    return it->second.get();
  }

private:
  std::map<std::string, std::unique_ptr<Weights>> cache_;
};

} // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  std::printf("SIMD target: %s\n", lathe::kernels::simd::simdTargetName());
  const Shape shapes[] = {{768, 288}, {32000, 288}};
  const char *formatNames[] = {
      "f32", "bf16", "f16", "int8:group=32", "int8:group=128", "int8:group=32:asym",
      "int4:group=32", "int4:group=128", "int4:group=32:asym", "bfp8:block=32",
      "bfp6:block=32", "bfp4:block=32", "mxint8", "mxfp8_e4m3", "mxfp6_e3m2",
      "mxfp4", "fp6_4p2", "fp6_4p2:group=128"};
  static WeightCache cache;
  for (size_t mib : {4, 16, 64, 1024})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("read/" + std::to_string(mib) + "MiB/threads:" + std::to_string(threads)).c_str(),
          [mib, threads](benchmark::State &s) { runReadBenchmark(s, mib << 20, threads); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
  for (const Shape &shape : shapes)
    for (const std::string format : formatNames) {
      const std::string dims = std::to_string(shape.N) + "x" + std::to_string(shape.K);
      bool int8Path = false, panelPath = false;
      if (auto spec = lathe::formats::parseFormatSpec(format)) {
        int8Path = lathe::kernels::simd::supportsInt8Activations(*spec);
        panelPath = lathe::kernels::simd::panelsSupported(*spec);
      }
      for (int64_t T : {int64_t{1}, int64_t{2}, int64_t{4}, int64_t{8}, int64_t{16}, int64_t{128}}) {
        // T = 2..16: a decode step of several sequences, or a speculative
        // tree's nodes (weights still stream from DRAM, as in a GEMV).
        const std::string prefix = (T == 1     ? "gemv/"
                                    : T == 128 ? "gemm/"
                                               : "batch" + std::to_string(T) + "/") +
                                   format + "/" + dims;
        auto add = [&](const std::string &name, Impl impl, int threads) {
          benchmark::RegisterBenchmark(
              (prefix + "/" + name + "/threads:" + std::to_string(threads)).c_str(),
              [format, shape, T, impl, threads](benchmark::State &s) {
                const Weights *w = cache.get(format, shape);
                if (!w) {
                  s.SkipWithError("could not build the weights");
                  return;
                }
                runBenchmark(s, *w, T, impl, threads);
              })
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
        };
        // The scalar reference at T = 128 on the classifier takes seconds
        // per call; its GEMV and the small GEMM show the ratio well enough.
        if (T == 1 || (T == 128 && shape.N < 1000))
          add("reference", Impl::Reference, 1);
        for (int threads : {1, 2}) {
          add("simd", Impl::Simd, threads);
          if (int8Path)
            add("simd-int8x", Impl::SimdInt8, threads);
          if (panelPath)
            add("panels-int8x", Impl::Panels, threads);
        }
      }
    }
  // bfp4: without a window, with its default one (8: the newest 16 rows
  // in f32 at either context), and every row in the window.
  for (const std::string kv : {"f32", "f16", "bf16", "int8", "bfp8", "bfp4:window=0", "bfp4",
                               "bfp4:window=256", "int4", "int2"})
    for (int64_t context : {int64_t{64}, int64_t{256}})
      benchmark::RegisterBenchmark(
          ("attention/" + kv + "/context:" + std::to_string(context)).c_str(),
          [kv, context](benchmark::State &s) { runAttentionBenchmark(s, kv, context); })
          ->Unit(benchmark::kMicrosecond);
  // Fixed costs around the kernels: quantizing one activation row for the
  // int8 path, and one ThreadPool dispatch with nothing to do.
  for (const std::string format : {"int8:group=32", "int8:group=128", "int4:group=32", "mxfp4"})
    for (int64_t K : {int64_t{288}, int64_t{768}})
      benchmark::RegisterBenchmark(
          ("quantize-activations/" + format + "/T=1/K=" + std::to_string(K)).c_str(),
          [format, K](benchmark::State &s) {
            const auto spec = lathe::formats::parseFormatSpec(format);
            const auto x = randomVector(K, 3, 1.0f);
            lathe::kernels::simd::Int8Activations q;
            for (auto _ : s) {
              lathe::kernels::simd::quantizeActivations(x.data(), 1, K, *spec, q);
              benchmark::DoNotOptimize(q.codes.data());
            }
          })
          ->Unit(benchmark::kNanosecond);
  // Drafting one speculative tree after a text of n tokens, the text's
  // own occurrences found by scanning it or through its pair index
  // (speculative::TextIndex, as generateSpeculative and the scheduler
  // keep one a sequence). The text is a chain over 2000 ids where each
  // id is followed by one of 3, so that suffixes recur as in prose.
  for (int64_t n : {int64_t{256}, int64_t{4096}, int64_t{32768}, int64_t{131072}})
    for (bool indexed : {false, true})
      benchmark::RegisterBenchmark(
          ("draft/text:" + std::to_string(n) + (indexed ? "/indexed" : "/scan")).c_str(),
          [n, indexed](benchmark::State &s) {
            namespace sp = lathe::speculative;
            const sp::TreeShape shape = *sp::parseTreeShape(sp::kDefaultTreeShape);
            sp::TreeDrafter drafter(32000, shape, {});
            std::mt19937 rng(3);
            std::vector<int32_t> successors(2000 * 3);
            for (int32_t &t : successors) t = static_cast<int32_t>(rng() % 2000);
            std::vector<int32_t> text{1};
            while (int64_t(text.size()) < n)
              text.push_back(successors[size_t(text.back()) * 3 + rng() % 3]);
            sp::TextIndex index;
            index.update(text);
            for (auto _ : s)
              benchmark::DoNotOptimize(drafter.draft(text, 64, 1, indexed ? &index : nullptr));
          })
          ->Unit(benchmark::kMicrosecond);
  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(("threadpool-dispatch/threads:" + std::to_string(threads)).c_str(),
                                 [threads](benchmark::State &s) {
                                   lathe::threading::ThreadPool pool(threads);
                                   std::atomic<int64_t> sink{0};
                                   for (auto _ : s)
                                     pool.parallelFor(0, threads, [&](int64_t a, int64_t b) {
                                       sink.fetch_add(b - a, std::memory_order_relaxed);
                                     });
                                 })
        ->Unit(benchmark::kNanosecond)
        ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
