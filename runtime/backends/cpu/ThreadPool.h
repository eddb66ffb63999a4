// A small persistent thread pool for the runtime's parallel kernels. A decode
// step dispatches ~50 short jobs per token (one per matmul), so a dispatch
// must cost microseconds, not the tens of microseconds of waking sleeping
// threads: idle workers spin (with a pause instruction) for a short while
// before they sleep on an atomic wait, and the calling thread works too.
// Chunks are claimed, not assigned: a worker that the OS has descheduled
// (the cores are shared) leaves its chunk to whoever is free, instead of
// stalling the whole step until it runs again.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lathe::threading {

/// The cores this process may run on (its CPU affinity mask, so taskset and
/// cpusets count; else std::thread::hardware_concurrency()), at least 1.
int defaultThreadCount();

class ThreadPool {
public:
  /// `threads` >= 1 (smaller values are treated as 1): the calling thread
  /// takes part in every parallelFor, so the pool starts threads - 1 workers.
  explicit ThreadPool(int threads);
  /// Stops and joins the workers. Must not run concurrently with parallelFor.
  ~ThreadPool();

  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  /// Threads taking part in a parallelFor, the caller included.
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  /// Splits [begin, end) into min(size(), end - begin) contiguous chunks of
  /// near-equal length (the first ones one longer), calls fn(chunkBegin,
  /// chunkEnd) once per chunk, and returns when every call has returned.
  /// The caller runs chunk 0, then every thread claims chunks until none
  /// is left, so normally every thread runs one. An empty range calls
  /// nothing. fn must not throw; it runs concurrently with itself on
  /// disjoint chunks. Calls from several threads at once are serialized; fn
  /// must not call parallelFor on the same pool.
  void parallelFor(int64_t begin, int64_t end,
                   const std::function<void(int64_t, int64_t)> &fn);

private:
  struct Job {
    const std::function<void(int64_t, int64_t)> *fn = nullptr;
    int64_t begin = 0, end = 0;
  };

  void workerLoop();
  /// Runs chunk `chunk` of the current job (split into `chunks`).
  void runChunk(int64_t chunk, int64_t chunks);
  /// Claims and runs chunks of dispatch `epoch` until none is left.
  void runChunks(uint32_t epoch);

  std::vector<std::thread> workers_;
  Job job_;
  // One word for the dispatch in flight: [epoch:32][chunks:16][next:16].
  // Claiming chunk `next` is a compare-exchange that also checks the epoch,
  // so a worker that wakes late can never claim a chunk of a later job.
  // Release/acquire on it publishes job_; job_ is rewritten only after all
  // chunks of the previous job are done, so a claimed chunk reads a stable
  // job_. The epoch is 32 bits so that atomic wait maps onto a futex.
  std::atomic<uint64_t> state_{0};
  std::atomic<uint32_t> epoch_{0}; // the epoch of state_, for waiting on
  std::atomic<int32_t> done_{0};   // chunks of the current job finished
  std::atomic<bool> stop_{false};
  std::mutex dispatch_;
};

} // namespace lathe::threading
