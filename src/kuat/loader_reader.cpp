// EpochReader: worker threads decode (batch, chunk) work units in order, at most `prefetch`
// batches ahead of the consumer, into a ring of batch slots.
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "loader_order.h"
#include "loader_state.h"
#include "lowbit/core/error.h"
#include "lowbit/kuat/loader.h"

namespace lowbit::kuat {

struct EpochReader::Impl {
  struct Slot {
    static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
    std::uint64_t job = kEmpty;  // index of the batch in this reader's sequence
    std::shared_ptr<Batch> batch;
    std::size_t chunks_left = 0;
    std::exception_ptr error;
    bool ready = false;
  };

  std::shared_ptr<const detail::LoaderState> state;
  std::uint64_t epoch, first_batch, batch_step, jobs;
  std::size_t chunk, chunks_per_batch, window;
  detail::EpochOrder order;

  std::mutex mutex;
  std::condition_variable work_cv, ready_cv;
  std::vector<Slot> ring;
  std::uint64_t next_unit = 0;  // next (job, chunk) to hand out, as job * chunks_per_batch + chunk
  std::uint64_t consumed = 0;
  bool stopping = false;
  std::exception_ptr failure;
  std::vector<std::thread> workers;

  Impl(std::shared_ptr<const detail::LoaderState> s, std::uint64_t e, std::uint64_t first, std::uint64_t step)
      : state(std::move(s)),
        epoch(e),
        first_batch(first),
        batch_step(step),
        order(state->num_samples, state->options.seed, e, state->options.shuffle, state->options.rank,
              state->options.world_size) {
    const LoaderOptions& o = state->options;
    const std::uint64_t total = state->batches_per_epoch;
    jobs = first >= total ? 0 : (total - first + step - 1) / step;
    // Small enough chunks that every thread has work inside one batch, large enough to make
    // the hand-out cost negligible.
    chunk = std::clamp<std::size_t>((o.batch_size + o.num_threads - 1) / o.num_threads, 1, 16);
    chunks_per_batch = (o.batch_size + chunk - 1) / chunk;
    window = o.prefetch;
    ring.resize(window);
    const std::size_t threads = static_cast<std::size_t>(std::min<std::uint64_t>(o.num_threads, jobs * chunks_per_batch));
    workers.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers.emplace_back([this] { work(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    work_cv.notify_all();
    for (auto& t : workers) t.join();
  }

  std::uint64_t batch_number(std::uint64_t job) const { return first_batch + job * batch_step; }

  std::size_t batch_size_of(std::uint64_t job) const {
    const std::uint64_t start = batch_number(job) * state->options.batch_size;
    return static_cast<std::size_t>(std::min<std::uint64_t>(state->options.batch_size, state->samples_per_rank - start));
  }

  // Claims the slot for `job` (the consumer has taken job - window, so it is free). Locked.
  void open_slot(Slot& slot, std::uint64_t job) {
    const std::size_t size = batch_size_of(job);
    auto shape = state->sample_shape;
    shape[0] = size;
    slot.job = job;
    slot.batch = std::make_shared<Batch>(state->pool->acquire(), state->pool, epoch, batch_number(job), size, shape,
                                         state->options.dtype);
    slot.chunks_left = chunks_per_batch;
    slot.error = nullptr;
    slot.ready = false;
  }

  void decode_chunk(Batch& batch, std::size_t chunk_index) const {
    const std::size_t lo = chunk_index * chunk, hi = std::min(batch.size(), lo + chunk);
    const std::size_t sample_bytes = state->table->sample_bytes();
    const std::uint64_t first_position = batch.index() * state->options.batch_size;
    auto* images = static_cast<std::uint8_t*>(batch.images());
    for (std::size_t i = lo; i < hi; ++i) {
      const std::uint64_t sample = order.sample_at(first_position + i);
      batch.samples()[i] = sample;
      batch.labels()[i] = state->decode(epoch, sample, images + i * sample_bytes);
    }
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex);
    const std::uint64_t units = jobs * chunks_per_batch;
    for (;;) {
      work_cv.wait(lock, [&] {
        return stopping || next_unit >= units || next_unit / chunks_per_batch < consumed + window;
      });
      if (stopping || next_unit >= units) return;
      const std::uint64_t unit = next_unit++;
      const std::uint64_t job = unit / chunks_per_batch;
      Slot& slot = ring[job % window];
      std::exception_ptr error;
      if (slot.job != job) {
        try {
          open_slot(slot, job);
        } catch (...) {  // allocation failure: report it through the slot like any error
          slot.job = job;
          slot.batch.reset();
          slot.chunks_left = chunks_per_batch;
          slot.error = std::current_exception();
          slot.ready = false;
        }
      }
      const std::shared_ptr<Batch> batch = slot.batch;
      const bool skip = slot.error != nullptr;
      lock.unlock();
      if (!skip) {
        try {
          decode_chunk(*batch, static_cast<std::size_t>(unit % chunks_per_batch));
        } catch (...) {
          error = std::current_exception();
        }
      }
      lock.lock();
      if (error && !slot.error) slot.error = error;
      if (--slot.chunks_left == 0) {
        slot.ready = true;
        ready_cv.notify_all();
      }
    }
  }

  std::shared_ptr<Batch> next() {
    std::unique_lock<std::mutex> lock(mutex);
    if (failure) std::rethrow_exception(failure);
    if (consumed >= jobs) return nullptr;
    Slot& slot = ring[consumed % window];
    ready_cv.wait(lock, [&] { return slot.job == consumed && slot.ready; });
    std::shared_ptr<Batch> batch = std::move(slot.batch);
    const std::exception_ptr error = slot.error;
    slot = Slot{};
    ++consumed;
    if (error) {
      failure = error;
      stopping = true;  // the epoch cannot continue in order: stop decoding
    }
    lock.unlock();
    work_cv.notify_all();
    if (error) std::rethrow_exception(error);
    return batch;
  }
};

EpochReader::EpochReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EpochReader::~EpochReader() = default;
std::shared_ptr<Batch> EpochReader::next() { return impl_->next(); }
std::uint64_t EpochReader::epoch() const noexcept { return impl_->epoch; }

std::uint64_t EpochReader::consumed() const noexcept {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->consumed;
}

std::unique_ptr<EpochReader> Loader::read_epoch(std::uint64_t epoch, std::uint64_t first_batch,
                                                std::uint64_t batch_step) const {
  require(batch_step > 0, "read_epoch: batch_step must be positive");
  return std::unique_ptr<EpochReader>(new EpochReader(std::make_unique<EpochReader::Impl>(state_, epoch, first_batch, batch_step)));
}

}  // namespace lowbit::kuat
