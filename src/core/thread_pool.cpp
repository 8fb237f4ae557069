#include "lowbit/core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <system_error>

namespace lowbit {
namespace {
thread_local bool tls_on_worker = false;
thread_local std::size_t tls_max_threads = 0;  // ThreadLimit of this thread (0: none)
}

ThreadLimit::ThreadLimit(std::size_t max_threads) noexcept : previous_(tls_max_threads) {
  tls_max_threads = max_threads;
}

ThreadLimit::~ThreadLimit() { tls_max_threads = previous_; }

std::size_t ThreadLimit::current() noexcept { return tls_max_threads; }

ThreadPool::ThreadPool(std::size_t num_threads) {
  if (num_threads == 0) num_threads = 1;
  // A thread that cannot be started (std::system_error: EAGAIN under a process or memory limit;
  // std::bad_alloc for its state) ends the loop: the pool keeps the workers already running, at
  // least the caller, instead of throwing out of a constructor whose joinable threads would
  // call std::terminate.
  try {
    workers_.reserve(num_threads - 1);
    for (std::size_t i = 0; i + 1 < num_threads; ++i) {
      workers_.emplace_back([this] { worker_loop(); });
    }
  } catch (const std::system_error&) {
  } catch (const std::bad_alloc&) {
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::on_worker_thread() noexcept { return tls_on_worker; }

void ThreadPool::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push(std::move(job));
  }
  cv_.notify_one();
}

void ThreadPool::worker_loop() {
  tls_on_worker = true;
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop();
    }
    job();
  }
}

void ThreadPool::parallel_for(std::size_t begin, std::size_t end, std::size_t grain,
                              const std::function<void(std::size_t, std::size_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<std::size_t>(grain, 1);
  const std::size_t total = end - begin;
  const std::size_t max_chunks = (total + grain - 1) / grain;
  const std::size_t threads = tls_max_threads == 0 ? size() : std::min(size(), tls_max_threads);
  if (threads <= 1 || max_chunks == 1 || on_worker_thread()) {
    fn(begin, end);
    return;
  }
  // About four chunks per thread balances uneven work without much overhead.
  const std::size_t num_chunks = std::min(max_chunks, threads * 4);
  const std::size_t chunk = (total + num_chunks - 1) / num_chunks;

  // The caller waits for every chunk to be done, not for helpers to be scheduled: a helper
  // that starts late (its worker was busy) finds no chunk left and never touches `fn`.
  struct State {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex mutex;
    std::condition_variable done_cv;
    std::size_t chunks_done = 0;
  };
  auto state = std::make_shared<State>();
  const std::function<void(std::size_t, std::size_t)>* body = &fn;

  auto run_chunks = [state, begin, end, chunk, num_chunks, body] {
    for (;;) {
      std::size_t c = state->next.fetch_add(1);
      if (c >= num_chunks) return;
      if (!state->failed.load()) {
        std::size_t lo = begin + c * chunk;
        std::size_t hi = std::min(end, lo + chunk);
        try {
          if (lo < hi) (*body)(lo, hi);
        } catch (...) {
          std::lock_guard<std::mutex> lock(state->mutex);
          if (!state->error) state->error = std::current_exception();
          state->failed = true;
        }
      }
      std::lock_guard<std::mutex> lock(state->mutex);
      if (++state->chunks_done == num_chunks) state->done_cv.notify_all();
    }
  };

  const std::size_t helpers = std::min(threads - 1, num_chunks - 1);
  for (std::size_t i = 0; i < helpers; ++i) enqueue(run_chunks);
  run_chunks();
  std::unique_lock<std::mutex> lock(state->mutex);
  state->done_cv.wait(lock, [&] { return state->chunks_done == num_chunks; });
  if (state->error) std::rethrow_exception(state->error);
}

std::size_t default_num_threads() {
  if (const char* env = std::getenv("LOWBIT_NUM_THREADS")) {
    char* tail = nullptr;
    long n = std::strtol(env, &tail, 10);
    if (tail != env && *tail == '\0' && n > 0 && n <= static_cast<long>(kMaxThreads)) return static_cast<std::size_t>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : hw;
}

ThreadPool& default_thread_pool() {
  static ThreadPool pool(default_num_threads());
  return pool;
}

void parallel_for(std::size_t begin, std::size_t end, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
  default_thread_pool().parallel_for(begin, end, grain, fn);
}

}  // namespace lowbit
