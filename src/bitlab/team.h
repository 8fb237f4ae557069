// Team: a fixed group of threads for short, frequent parallel loops, for the language-model
// runtime (lm.cpp), whose decode step is ~20 parallel sections of a few microseconds per token.
// lowbit::ThreadPool hands each section to its workers through a mutex and a condition variable,
// a wake-up of tens of microseconds per section on a loaded machine; a Team's workers poll an
// atomic counter for a short while after each section (then sleep on it), so the next section
// starts in well under a microsecond. Internal to lowbit::bitlab.
//
// parallel_for(count, group, grain, fn, per_thread) covers [0, count) in chunks of whole groups of
// `group` items (at least `grain` groups a chunk, at most per_thread chunks per thread: a few
// balance a worker that starts late or runs slower, more shorten the wait for the last chunk of a
// long loop) and calls fn(begin, end, slot) for each chunk; the
// caller takes chunks too, and any thread takes whichever chunk is next, so a worker that the OS
// has not scheduled yet costs nothing: the caller does its share. slot < size() is distinct among
// threads running at the same time (per-thread scratch). Which thread runs a chunk never changes
// what it computes, so callers whose chunks write disjoint outputs get bit-identical results at
// every thread count. The first exception is rethrown on the caller after every claimed chunk
// has finished. A parallel_for nested in a chunk runs inline as fn(0, count, slot of that chunk);
// one from a lowbit::ThreadPool worker, or while another thread runs one on the same team,
// executes fn(0, count, 0) on the caller (slots index scratch of one loop's caller).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit::bitlab {

class Team {
 public:
  using Body = std::function<void(std::size_t begin, std::size_t end, std::size_t slot)>;

  // num_threads counts the caller (a team of n starts n - 1 threads); 0 is taken as 1.
  explicit Team(std::size_t num_threads);
  ~Team();
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  std::size_t size() const noexcept { return workers_.size() + 1; }
  void parallel_for(std::size_t count, std::size_t group, std::size_t grain, const Body& fn,
                    std::size_t per_thread = 4);

 private:
  void worker_loop(std::size_t slot);
  // Claims and runs chunks of the run `epoch` until none is left.
  void take_chunks(std::uint32_t epoch, std::size_t slot);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // one parallel_for at a time
  // The current run; written by the caller before it publishes the run's epoch in ticket_.
  std::atomic<const Body*> fn_{nullptr};
  std::atomic<std::size_t> count_{0}, chunk_items_{0}, chunks_{0};
  std::atomic<std::uint64_t> ticket_{0};  // epoch << 32 | next chunk to claim
  std::atomic<std::uint32_t> epoch_{0};   // bumped to wake the workers (and to stop them)
  std::atomic<std::size_t> done_{0};      // chunks finished in the current run
  std::atomic<bool> stopping_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// The process-wide team, sized lowbit::default_num_threads() (LOWBIT_NUM_THREADS, else every
// core) on first use.
Team& default_team();

}  // namespace lowbit::bitlab
