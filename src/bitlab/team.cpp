// Team (team.h): spin-then-sleep workers for short, frequent parallel sections.
#include "team.h"

#include <chrono>

#include "lowbit/core/thread_pool.h"

namespace lowbit::bitlab {

namespace {

// Set on a Team's workers and on a caller while it runs a team: a nested run executes inline.
thread_local bool tls_in_team = false;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// How long a worker polls for the next run before it sleeps: long enough to span the serial
// glue between the sections of a decode step and between tokens.
constexpr auto kSpin = std::chrono::milliseconds(2);

}  // namespace

Team::Team(std::size_t num_threads) {
  if (num_threads == 0) num_threads = 1;
  workers_.reserve(num_threads - 1);
  for (std::size_t i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

Team::~Team() {
  stopping_.store(true, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  for (auto& t : workers_) t.join();
}

void Team::worker_loop(std::size_t index) {
  tls_in_team = true;
  std::uint32_t seen = 0;
  for (;;) {
    std::uint32_t now = epoch_.load(std::memory_order_acquire);
    if (now == seen) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      for (unsigned spins = 1; (now = epoch_.load(std::memory_order_acquire)) == seen; ++spins) {
        cpu_relax();
        if (spins % 256 == 0 && std::chrono::steady_clock::now() > until) {
          epoch_.wait(seen, std::memory_order_acquire);
        }
      }
    }
    seen = now;
    if (stopping_.load(std::memory_order_acquire)) return;
    try {
      (*job_)(index, size());
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void Team::run(const std::function<void(std::size_t, std::size_t)>& fn) {
  if (workers_.empty() || tls_in_team || ThreadPool::on_worker_thread() || !busy_.try_lock()) {
    fn(0, 1);
    return;
  }
  std::lock_guard<std::mutex> hold(busy_, std::adopt_lock);
  tls_in_team = true;
  job_ = &fn;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  epoch_.fetch_add(1, std::memory_order_acq_rel);  // publishes job_ to the workers
  epoch_.notify_all();
  std::exception_ptr mine;
  try {
    fn(0, size());
  } catch (...) {
    mine = std::current_exception();
  }
  for (unsigned spins = 1; done_.load(std::memory_order_acquire) != workers_.size(); ++spins) {
    if (spins % 4096 == 0) {
      std::this_thread::yield();  // a worker was descheduled: let it run
    } else {
      cpu_relax();
    }
  }
  job_ = nullptr;
  tls_in_team = false;
  if (mine) std::rethrow_exception(mine);
  if (error_) std::rethrow_exception(error_);
}

Team& default_team() {
  static Team team(default_num_threads());
  return team;
}

}  // namespace lowbit::bitlab
