// Team (team.h): polling workers that share each loop's chunks with the caller.
//
// A run is published as ticket_ = epoch << 32 | 0 after its fields (fn_, count_, ...); a thread
// claims chunk c by a compare-and-swap of ticket_ from epoch << 32 | c to c + 1, so a claim can
// only succeed for the run it read the fields of. Before writing the next run's fields the
// caller closes the ticket (new epoch, no chunk left), so a late worker's swap fails. The fields
// of a run stay put until every claimed chunk is done (done_ == chunks_). All atomics use the
// default sequentially consistent order.
#include "team.h"

#include <new>
#include <system_error>

#include <algorithm>
#include <chrono>

#include "lowbit/core/thread_pool.h"

namespace lowbit::bitlab {

namespace {

// Set on a Team's workers and on a caller while it runs a loop: a nested loop executes inline.
thread_local bool tls_in_team = false;
thread_local std::size_t tls_slot = 0;  // the slot of the chunk this thread runs

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// How long a worker polls for the next loop before it sleeps: it spans the serial glue between
// the sections of a decode step and between tokens, and bounds the time spent polling when the
// machine has other work.
constexpr auto kPoll = std::chrono::microseconds(300);
constexpr std::uint64_t kClosed = 0xFFFFFFFFu;  // chunk field of a ticket that is being set up

}  // namespace

Team::Team(std::size_t num_threads) {
  if (num_threads == 0) num_threads = 1;
  // A thread the system refuses to start (std::system_error under a process or memory limit,
  // std::bad_alloc) ends the loop: the team keeps those already running, at least the caller,
  // rather than throwing out of the constructor past joinable threads (std::terminate).
  try {
    workers_.reserve(num_threads - 1);
    for (std::size_t slot = 1; slot < num_threads; ++slot) workers_.emplace_back([this, slot] { worker_loop(slot); });
  } catch (const std::system_error&) {
  } catch (const std::bad_alloc&) {
  }
}

Team::~Team() {
  stopping_ = true;
  epoch_.fetch_add(1);
  epoch_.notify_all();
  for (auto& t : workers_) t.join();
}

void Team::take_chunks(std::uint32_t epoch, std::size_t slot) {
  for (;;) {
    std::uint64_t t = ticket_.load();
    if ((t >> 32) != epoch) return;
    const std::size_t c = static_cast<std::size_t>(t & 0xFFFFFFFFu);
    if (c >= chunks_.load()) return;
    if (!ticket_.compare_exchange_weak(t, t + 1)) continue;
    // Chunk c of this run is ours: its fields stay until done_ counts it.
    const std::size_t items = chunk_items_.load(), count = count_.load();
    const std::size_t begin = c * items, end = std::min(count, begin + items);
    tls_slot = slot;
    try {
      (*fn_.load())(begin, end, slot);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1);
  }
}

void Team::worker_loop(std::size_t slot) {
  tls_in_team = true;
  std::uint32_t seen = 0;
  for (;;) {
    std::uint32_t now = epoch_.load();
    if (now == seen) {
      const auto until = std::chrono::steady_clock::now() + kPoll;
      for (unsigned spins = 1; (now = epoch_.load()) == seen; ++spins) {
        cpu_relax();
        if (spins % 64 == 0 && std::chrono::steady_clock::now() > until) epoch_.wait(seen);
      }
    }
    seen = now;
    if (stopping_) return;
    take_chunks(now, slot);
  }
}

void Team::parallel_for(std::size_t count, std::size_t group, std::size_t grain, const Body& fn,
                        std::size_t per_thread) {
  if (count == 0) return;
  group = std::max<std::size_t>(group, 1);
  grain = std::max<std::size_t>(grain, 1);
  const std::size_t groups = (count + group - 1) / group;
  const std::size_t target = std::min((groups + grain - 1) / grain, std::max<std::size_t>(per_thread, 1) * size());
  if (tls_in_team) {  // nested: inline, in the slot of the enclosing chunk
    fn(0, count, tls_slot);
    return;
  }
  if (workers_.empty() || target <= 1 || ThreadPool::on_worker_thread() || !busy_.try_lock()) {
    fn(0, count, 0);
    return;
  }
  std::lock_guard<std::mutex> hold(busy_, std::adopt_lock);
  tls_in_team = true;
  const std::size_t items = (groups + target - 1) / target * group;
  const std::size_t chunks = (count + items - 1) / items;
  const std::uint32_t epoch = epoch_.load() + 1;
  ticket_.store(static_cast<std::uint64_t>(epoch) << 32 | kClosed);
  fn_.store(&fn);
  count_.store(count);
  chunk_items_.store(items);
  chunks_.store(chunks);
  done_.store(0);
  error_ = nullptr;
  ticket_.store(static_cast<std::uint64_t>(epoch) << 32);
  epoch_.store(epoch);
  epoch_.notify_all();
  take_chunks(epoch, 0);
  const auto until = std::chrono::steady_clock::now() + kPoll;
  bool yield = false;
  for (unsigned spins = 1; done_.load() != chunks; ++spins) {
    if (yield) {
      std::this_thread::yield();  // a worker holding a chunk was descheduled: let it run
    } else {
      cpu_relax();
      if (spins % 64 == 0) yield = std::chrono::steady_clock::now() > until;
    }
  }
  tls_in_team = false;
  if (error_) std::rethrow_exception(error_);
}

Team& default_team() {
  static Team team(default_num_threads());
  return team;
}

}  // namespace lowbit::bitlab
