// A fixed pool of worker threads with a blocking parallel_for.
//
// The default pool's size comes from LOWBIT_NUM_THREADS, else the number of cores.
// parallel_for splits [begin, end) into chunks; the calling thread works too, so a pool of
// size 1 runs everything on the caller. Called from inside a pool task it runs inline
// (no nested deadlock). The first exception thrown by a task is rethrown to the caller after
// every running chunk has finished; chunks not yet started are skipped.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  // num_threads counts the caller: a pool of n starts n - 1 worker threads. Threads the system
  // refuses to start (a process or memory limit) are left out: size() then counts those that
  // run, at least 1 (the caller).
  explicit ThreadPool(std::size_t num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const noexcept { return workers_.size() + 1; }

  // Calls fn(chunk_begin, chunk_end) over [begin, end) in chunks of at least `grain` items.
  void parallel_for(std::size_t begin, std::size_t end, std::size_t grain,
                    const std::function<void(std::size_t, std::size_t)>& fn);

  // Runs fn on a worker thread (on the caller if the pool has no workers); the future carries
  // its result or exception.
  template <class F>
  auto submit(F&& fn) -> std::future<decltype(fn())> {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
    std::future<R> result = task->get_future();
    if (workers_.empty()) {
      (*task)();
    } else {
      enqueue([task] { (*task)(); });
    }
    return result;
  }

  // True on a thread owned by any ThreadPool.
  static bool on_worker_thread() noexcept;

 private:
  void enqueue(std::function<void()> job);
  void worker_loop();

  std::vector<std::thread> workers_;
  std::queue<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// Caps, while in scope, the threads a ThreadPool::parallel_for called on THIS thread may use, the
// caller included: at most max_threads (1 runs it inline on the caller; 0 lifts the cap). Limits
// nest (the destructor restores the previous one); other threads are not affected. How a loop is
// split never changes what its chunks compute, so callers whose chunks write disjoint outputs get
// the same results under any limit. The Python bindings set it from torch.get_num_threads().
class ThreadLimit {
 public:
  explicit ThreadLimit(std::size_t max_threads) noexcept;
  ~ThreadLimit();
  ThreadLimit(const ThreadLimit&) = delete;
  ThreadLimit& operator=(const ThreadLimit&) = delete;

  // The cap in force on this thread (0: none).
  static std::size_t current() noexcept;

 private:
  std::size_t previous_;
};

// At most this many threads: a larger LOWBIT_NUM_THREADS (a typo such as 100000, which would start
// that many threads) counts as invalid.
inline constexpr std::size_t kMaxThreads = 1024;
// LOWBIT_NUM_THREADS if set to an integer in [1, kMaxThreads], else std::thread::hardware_concurrency().
std::size_t default_num_threads();

// The process-wide pool, created on first use with default_num_threads() threads.
ThreadPool& default_thread_pool();

// Convenience: default_thread_pool().parallel_for(...).
void parallel_for(std::size_t begin, std::size_t end, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace lowbit
