#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <set>
#include <mutex>
#include <chrono>
#include <thread>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "lowbit/core/thread_pool.h"

namespace lowbit {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (std::size_t threads : {1, 2, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (std::size_t n : {0, 1, 3, 17, 1000, 100003}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(0, n, 5, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i) hits[i].fetch_add(1);
      });
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "i=" << i << " n=" << n;
    }
  }
}

TEST(ThreadPool, UsesMoreThanOneThread) {
  ThreadPool pool(4);
  std::mutex m;
  std::set<std::thread::id> ids;
  pool.parallel_for(0, 64, 1, [&](std::size_t, std::size_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_GT(ids.size(), 1u);
}

// The distinct threads that ran the chunks of one parallel_for over 64 slow items.
std::set<std::thread::id> threads_used(ThreadPool& pool) {
  std::mutex m;
  std::set<std::thread::id> ids;
  std::vector<std::atomic<int>> hits(64);
  pool.parallel_for(0, 64, 1, [&](std::size_t lo, std::size_t hi) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (std::size_t i = lo; i < hi; ++i) hits[i].fetch_add(1);
    std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  return ids;
}

TEST(ThreadPool, ThreadLimitCapsTheThreadsOfThisCallerOnly) {
  ThreadPool pool(4);
  EXPECT_EQ(ThreadLimit::current(), 0u);
  {
    ThreadLimit one(1);
    EXPECT_EQ(ThreadLimit::current(), 1u);
    const auto ids = threads_used(pool);
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(*ids.begin(), std::this_thread::get_id());  // inline on the caller
    {
      ThreadLimit two(2);
      EXPECT_LE(threads_used(pool).size(), 2u);
      // another thread is not capped by this one's limit
      std::size_t other = 99;
      std::thread([&] { other = ThreadLimit::current(); }).join();
      EXPECT_EQ(other, 0u);
    }
    EXPECT_EQ(ThreadLimit::current(), 1u);  // restored
  }
  EXPECT_EQ(ThreadLimit::current(), 0u);
  ThreadLimit many(16);  // above the pool's size: the pool's size
  EXPECT_GT(threads_used(pool).size(), 1u);
}

TEST(ThreadPool, RethrowsTaskException) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(0, 100, 1,
                                 [](std::size_t lo, std::size_t hi) {
                                   if (lo <= 42 && 42 < hi) throw std::runtime_error("boom at 42");
                                 }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> count{0};
  pool.parallel_for(0, 10, 1, [&](std::size_t lo, std::size_t hi) { count += static_cast<int>(hi - lo); });
  EXPECT_EQ(count.load(), 10);
}

TEST(ThreadPool, NestedParallelForRunsInline) {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  pool.parallel_for(0, 8, 1, [&](std::size_t, std::size_t) {
    pool.parallel_for(0, 10, 1, [&](std::size_t lo, std::size_t hi) { total += static_cast<int>(hi - lo); });
  });
  EXPECT_EQ(total.load(), 80);
}

TEST(ThreadPool, SubmitReturnsResultAndException) {
  ThreadPool pool(2);
  auto ok = pool.submit([] { return 6 * 7; });
  EXPECT_EQ(ok.get(), 42);
  auto bad = pool.submit([]() -> int { throw std::invalid_argument("bad"); });
  EXPECT_THROW(bad.get(), std::invalid_argument);
}

TEST(ThreadPool, DefaultSizeFromEnvironment) {
  setenv("LOWBIT_NUM_THREADS", "3", 1);
  EXPECT_EQ(default_num_threads(), 3u);
  setenv("LOWBIT_NUM_THREADS", "zero", 1);
  EXPECT_GE(default_num_threads(), 1u);
  setenv("LOWBIT_NUM_THREADS", "1024", 1);
  EXPECT_EQ(default_num_threads(), kMaxThreads);
  setenv("LOWBIT_NUM_THREADS", "100000", 1);  // a typo would start 100,000 threads: invalid, ignored
  EXPECT_EQ(default_num_threads(), std::max(1u, std::thread::hardware_concurrency()));
  unsetenv("LOWBIT_NUM_THREADS");
  EXPECT_EQ(default_num_threads(), std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace lowbit
