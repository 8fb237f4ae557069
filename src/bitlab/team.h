// Team: a fixed group of threads that run one function together, for the language-model runtime
// (lm.cpp), whose decode step is ~20 short parallel sections per token. lowbit::ThreadPool hands
// each section to its workers through a mutex and a condition variable, which costs a wake-up
// (tens of microseconds on a loaded machine) per section; a Team's workers instead spin on an
// atomic counter for a while after each section (then sleep on it), so a section starts in well
// under a microsecond. Internal to lowbit::bitlab.
//
// run(fn) calls fn(i, n) once for every i in [0, n) (n = size()), i = 0 on the caller, and
// returns when all have finished; the first exception thrown is rethrown on the caller. Callers
// split work by i so that results never depend on n (every row is computed by exactly one
// thread, in the same order), which keeps outputs bit-identical at every thread count.
// A run from a lowbit::ThreadPool worker, from a Team worker, or while another thread is
// running this team, executes fn(0, 1) on the caller.
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
  // num_threads counts the caller (a team of n starts n - 1 threads); 0 is taken as 1.
  explicit Team(std::size_t num_threads);
  ~Team();
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  std::size_t size() const noexcept { return workers_.size() + 1; }
  void run(const std::function<void(std::size_t, std::size_t)>& fn);

 private:
  void worker_loop(std::size_t index);

  std::vector<std::thread> workers_;
  std::mutex busy_;                              // one run at a time
  const std::function<void(std::size_t, std::size_t)>* job_ = nullptr;
  std::atomic<std::uint32_t> epoch_{0};          // bumped to start a run (and to stop)
  std::atomic<std::size_t> done_{0};             // workers finished with the current run
  std::atomic<bool> stopping_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// The process-wide team, sized lowbit::default_num_threads() (LOWBIT_NUM_THREADS, else every
// core) on first use.
Team& default_team();

// [begin, end) of part i of n equal parts of `count` items taken in groups of `group` (the last
// group may be short): the split Team callers use.
inline void split_range(std::size_t count, std::size_t group, std::size_t i, std::size_t n, std::size_t& begin,
                        std::size_t& end) noexcept {
  const std::size_t groups = (count + group - 1) / group;
  const std::size_t g0 = groups * i / n, g1 = groups * (i + 1) / n;
  begin = g0 * group < count ? g0 * group : count;
  end = g1 * group < count ? g1 * group : count;
}

}  // namespace lowbit::bitlab
