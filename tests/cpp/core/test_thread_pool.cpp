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

#include <sys/resource.h>

#include <cstdio>

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

// Under an address-space limit most of 600 thread stacks cannot be mapped: the pool keeps the
// threads it could start (the caller at least) and works, instead of std::terminate.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LOWBIT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LOWBIT_TEST_SANITIZED 1
#endif
#endif
#ifndef LOWBIT_TEST_SANITIZED
// Run in a child process (EXPECT_EXIT): limits its address space to what it uses plus 64 MiB, then
// asks for 600 threads; exits 0 when the pool has fewer, at least 1, and parallel_for covers every
// index once.
[[noreturn]] void pool_under_address_limit() {
  long pages = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  if (pages == 0) std::exit(3);
  const rlim_t limit = static_cast<rlim_t>(pages) * 4096 + (rlim_t{64} << 20);
  rlimit rl{limit, limit};
  if (setrlimit(RLIMIT_AS, &rl) != 0) std::exit(4);
  ThreadPool pool(600);
  if (pool.size() < 1 || pool.size() >= 600) std::exit(5);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(0, hits.size(), 1, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) hits[i].fetch_add(1);
  });
  for (auto& h : hits) {
    if (h.load() != 1) std::exit(6);
  }
  std::exit(0);
}
#endif

TEST(ThreadPool, ThreadsTheSystemRefusesAreLeftOut) {
#ifdef LOWBIT_TEST_SANITIZED
  GTEST_SKIP() << "sanitizers reserve more address space than the limit allows";
#else
  // "threadsafe": the child re-runs this binary for this test alone instead of forking a process
  // in which earlier tests left pool threads (a fork then can inherit a lock held by one of them).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(pool_under_address_limit(), ::testing::ExitedWithCode(0), "");
#endif
}

}  // namespace
}  // namespace lowbit
