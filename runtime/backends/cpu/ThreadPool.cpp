#include "runtime/backends/cpu/ThreadPool.h"

#include <algorithm>
#include <chrono>
#if defined(__linux__)
#include <sched.h>
#endif

namespace lathe::threading {
namespace {

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long a waiting thread spins before it sleeps. Long enough to cover the
// gap between two matmuls of a decode step (a few to tens of microseconds),
// short enough that an idle pool gives its cores back quickly.
constexpr auto kSpinTime = std::chrono::microseconds(200);

/// Waits until `value` differs from `old` and returns the new value.
template <typename T> T waitWhileEquals(const std::atomic<T> &value, T old) {
  T now = value.load(std::memory_order_acquire);
  if (now != old)
    return now;
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 1;; ++i) {
    cpuRelax();
    now = value.load(std::memory_order_acquire);
    if (now != old)
      return now;
    // Reading the clock costs ~20 ns; every 64 pauses keeps it negligible.
    if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline)
      break;
  }
  while ((now = value.load(std::memory_order_acquire)) == old)
    value.wait(old, std::memory_order_acquire);
  return now;
}

constexpr uint32_t epochOf(uint64_t state) { return static_cast<uint32_t>(state >> 32); }
constexpr int64_t chunksOf(uint64_t state) { return (state >> 16) & 0xFFFF; }
constexpr int64_t nextOf(uint64_t state) { return state & 0xFFFF; }
// The chunk count lives in 16 bits.
constexpr int kMaxThreads = 0xFFFF;

} // namespace

int defaultThreadCount() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    return std::max(1, CPU_COUNT(&set));
#endif
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int threads) {
  const int workers = std::clamp(threads, 1, kMaxThreads) - 1;
  workers_.reserve(workers);
  for (int i = 0; i < workers; ++i)
    workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(dispatch_);
    stop_.store(true, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_release);
    epoch_.notify_all();
  }
  for (std::thread &worker : workers_)
    worker.join();
}

void ThreadPool::runChunk(int64_t chunk, int64_t chunks) {
  // Chunk c starts at c * base + min(c, extra): the first `extra` chunks
  // take one item more.
  const int64_t items = job_.end - job_.begin;
  const int64_t base = items / chunks, extra = items % chunks;
  const int64_t first = job_.begin + chunk * base + std::min(chunk, extra);
  (*job_.fn)(first, first + base + (chunk < extra ? 1 : 0));
  if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks)
    done_.notify_one();
}

void ThreadPool::runChunks(uint32_t epoch) {
  uint64_t state = state_.load(std::memory_order_acquire);
  while (true) {
    if (epochOf(state) != epoch || nextOf(state) >= chunksOf(state))
      return;
    if (!state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    runChunk(nextOf(state), chunksOf(state));
    state = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::workerLoop() {
  uint32_t seen = 0;
  while (true) {
    seen = waitWhileEquals(epoch_, seen);
    if (stop_.load(std::memory_order_relaxed))
      return;
    runChunks(seen);
  }
}

void ThreadPool::parallelFor(int64_t begin, int64_t end,
                             const std::function<void(int64_t, int64_t)> &fn) {
  if (begin >= end)
    return;
  const int64_t chunks = std::min<int64_t>(size(), end - begin);
  if (chunks == 1) {
    fn(begin, end);
    return;
  }
  std::lock_guard<std::mutex> lock(dispatch_);
  job_ = Job{&fn, begin, end};
  done_.store(0, std::memory_order_relaxed);
  const uint32_t epoch = epoch_.load(std::memory_order_relaxed) + 1;
  // The caller owns chunk 0 from the start (next = 1): with the same split
  // every time, each thread keeps working on the same rows, whose weights
  // stay in its own L2 when a matrix is used again.
  state_.store(static_cast<uint64_t>(epoch) << 32 | static_cast<uint64_t>(chunks) << 16 | 1u,
               std::memory_order_release);
  epoch_.store(epoch, std::memory_order_release);
  epoch_.notify_all();
  runChunk(0, chunks);
  runChunks(epoch);
  int32_t finished = done_.load(std::memory_order_acquire);
  while (finished != chunks)
    finished = waitWhileEquals(done_, finished);
}

} // namespace lathe::threading
