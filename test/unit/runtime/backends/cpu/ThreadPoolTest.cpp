// The pool's contract: every index of [begin, end) is handed to exactly one
// call, in contiguous near-equal chunks, one chunk per thread; empty ranges
// call nothing; destruction joins workers whether or not they ever ran.
#include "runtime/backends/cpu/ThreadPool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace lathe::threading {
namespace {

TEST(ThreadPoolTest, DefaultThreadCountIsPositive) {
  EXPECT_GE(defaultThreadCount(), 1);
}

TEST(ThreadPoolTest, SizeCountsTheCaller) {
  EXPECT_EQ(ThreadPool(1).size(), 1);
  EXPECT_EQ(ThreadPool(3).size(), 3);
  EXPECT_EQ(ThreadPool(0).size(), 1);
  EXPECT_EQ(ThreadPool(-2).size(), 1);
}

TEST(ThreadPoolTest, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    for (int64_t begin : {int64_t{0}, int64_t{5}, int64_t{-3}}) {
      for (int64_t count : {0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 64, 1000, 32001}) {
        const int64_t end = begin + count;
        std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
        std::mutex mutex;
        std::vector<std::pair<int64_t, int64_t>> chunks;
        pool.parallelFor(begin, end, [&](int64_t first, int64_t last) {
          for (int64_t i = first; i < last; ++i)
            hits[static_cast<size_t>(i - begin)].fetch_add(1);
          std::lock_guard<std::mutex> lock(mutex);
          chunks.emplace_back(first, last);
        });
        for (int64_t i = 0; i < count; ++i)
          ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1)
              << "threads " << threads << " range [" << begin << ", " << end
              << ") index " << begin + i;
        // One non-empty chunk per thread (fewer when there are fewer items),
        // contiguous, lengths differing by at most one.
        const size_t want = static_cast<size_t>(std::min<int64_t>(threads, count));
        ASSERT_EQ(chunks.size(), want);
        std::sort(chunks.begin(), chunks.end());
        int64_t next = begin, shortest = count, longest = 0;
        for (auto [first, last] : chunks) {
          EXPECT_EQ(first, next);
          EXPECT_LT(first, last);
          shortest = std::min(shortest, last - first);
          longest = std::max(longest, last - first);
          next = last;
        }
        EXPECT_EQ(next, end);
        if (count > 0)
          EXPECT_LE(longest - shortest, 1);
      }
    }
  }
}

TEST(ThreadPoolTest, ReversedRangeCallsNothing) {
  ThreadPool pool(2);
  int calls = 0;
  pool.parallelFor(10, 3, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, ChunksRunOnDistinctThreads) {
  ThreadPool pool(3);
  std::mutex mutex;
  std::set<std::thread::id> ids;
  std::atomic<int> arrived{0};
  pool.parallelFor(0, 3, [&](int64_t, int64_t) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      ids.insert(std::this_thread::get_id());
    }
    // Hold every chunk until all three started: only possible if they run
    // at the same time, on three threads.
    arrived.fetch_add(1);
    while (arrived.load() < 3)
      std::this_thread::yield();
  });
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_TRUE(ids.count(std::this_thread::get_id()));
}

TEST(ThreadPoolTest, ManyShortDispatchesAndSleepingWorkers) {
  ThreadPool pool(2);
  int64_t total = 0;
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 20000; ++round) {
    pool.parallelFor(0, 10, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) sum.fetch_add(i);
    });
    total += 45;
    // Now and then let the workers fall asleep, so the wake-up path runs.
    if (round % 5000 == 4999)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(sum.load(), total);
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialized) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  auto caller = [&] {
    for (int round = 0; round < 2000; ++round)
      pool.parallelFor(0, 100, [&](int64_t first, int64_t last) {
        sum.fetch_add(last - first);
      });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(sum.load(), 2 * 2000 * 100);
}

TEST(ThreadPoolTest, DestructionJoinsWorkers) {
  // Never used, used once, and destroyed while workers are asleep: each
  // destructor must return (a hang fails the test by timeout).
  { ThreadPool pool(4); }
  std::atomic<int> done{0};
  {
    ThreadPool pool(4);
    pool.parallelFor(0, 4, [&](int64_t, int64_t) { done.fetch_add(1); });
  }
  EXPECT_EQ(done.load(), 4);
  {
    ThreadPool pool(3);
    pool.parallelFor(0, 3, [&](int64_t, int64_t) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

} // namespace
} // namespace lathe::threading
