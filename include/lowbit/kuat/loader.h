// Kuat batch loader: decodes shuffled batches of one or more archives on worker threads.
//
// Order. Epoch e's order is a pseudo-random permutation of all N samples, a pure function of
// (seed, e): a keyed Feistel network with cycle walking maps position -> sample, so it needs no
// per-epoch state and is identical for any thread count. Each sample also gets its own
// augmentation (crop shift, flip) from (seed, e, sample index).
//
// Ranks. With world_size R, rank r takes positions r, r + R, r + 2R, ... of the one global
// permutation, so the shuffle does not depend on R and ranks are disjoint. Every rank gets the
// same number of samples: ceil(N / R) by default, wrapping around to the start of the
// permutation for the at most R - 1 missing ones (as torch's DistributedSampler does), or
// floor(N / R) with drop_last, which drops the permutation's last N mod R positions. Batches
// per epoch are then ceil(S / B) (the last may be short), or floor(S / B) with drop_last:
// equal on every rank, so DDP never waits for a rank that has run out.
//
// Memory. Workers decode at most `prefetch` batches ahead into buffers from a pool; a buffer
// goes back to the pool when the last Batch reference to it is dropped, and the pool keeps at
// most prefetch + 2 idle buffers, so memory is bounded by prefetch + 2 + the batches the caller holds,
// whatever the number of epochs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lowbit/kuat/archive_view.h"
#include "lowbit/kuat/gather.h"

namespace lowbit::kuat {

struct LoaderOptions {
  std::size_t batch_size = 64;
  bool shuffle = true;
  std::uint64_t seed = 42;
  bool drop_last = false;
  Layout layout = Layout::NHWC;
  PixelType dtype = PixelType::UInt8;
  std::vector<float> mean;  // float32 only, see OutputFormat
  std::vector<float> std;
  std::uint32_t crop_padding = 0;  // random crop of the image zero-padded by this many pixels
  bool random_flip = false;        // horizontal flip with probability 1/2
  std::uint32_t rank = 0;
  std::uint32_t world_size = 1;
  std::size_t num_threads = 0;  // worker threads; 0: default_num_threads()
  std::size_t prefetch = 0;     // batches decoded ahead; 0: num_threads + 1 (at least 2)
};

namespace detail {
struct BatchBuffer;
class BufferPool;
struct LoaderState;
}  // namespace detail

// One decoded batch. Its memory returns to the loader's pool when the last shared_ptr to it
// is dropped, never earlier.
class Batch {
 public:
  Batch(std::unique_ptr<detail::BatchBuffer> buffer, std::shared_ptr<detail::BufferPool> pool, std::uint64_t epoch,
        std::uint64_t index, std::size_t size, std::array<std::size_t, 4> shape, PixelType dtype);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  std::uint64_t epoch() const noexcept { return epoch_; }
  std::uint64_t index() const noexcept { return index_; }  // batch number within the epoch
  std::size_t size() const noexcept { return size_; }      // samples (the last batch may be short)
  // (size, H, W, C) for NHWC or (size, C, H, W) for NCHW.
  const std::array<std::size_t, 4>& shape() const noexcept { return shape_; }
  PixelType dtype() const noexcept { return dtype_; }
  void* images() noexcept;
  const void* images() const noexcept;
  std::int32_t* labels() noexcept;
  const std::int32_t* labels() const noexcept;
  std::uint64_t* samples() noexcept;  // global sample index of each row
  const std::uint64_t* samples() const noexcept;

 private:
  std::unique_ptr<detail::BatchBuffer> buffer_;
  std::shared_ptr<detail::BufferPool> pool_;
  std::uint64_t epoch_;
  std::uint64_t index_;
  std::size_t size_;
  std::array<std::size_t, 4> shape_;
  PixelType dtype_;
};

// Decodes one epoch's batches ahead of the consumer. Destroying it mid-epoch stops and joins
// its workers.
class EpochReader {
 public:
  ~EpochReader();
  EpochReader(const EpochReader&) = delete;
  EpochReader& operator=(const EpochReader&) = delete;

  // The next batch, or nullptr after the last. Blocks until it is decoded. An error in a worker
  // (e.g. IoError for a corrupt sample, naming it) is rethrown here and ends the epoch.
  std::shared_ptr<Batch> next();
  std::uint64_t epoch() const noexcept;
  // Batches next() has returned so far.
  std::uint64_t consumed() const noexcept;

 private:
  friend class Loader;
  struct Impl;
  explicit EpochReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Loader {
 public:
  // `archives` must share geometry and codebook (equal codebook_hash); `keep_alive` owns their
  // memory (e.g. open archives) for as long as the loader or any of its readers lives.
  // Throws InvalidArgument naming the bad option or archive.
  Loader(std::vector<ArchiveView> archives, LoaderOptions options,
         std::vector<std::shared_ptr<const void>> keep_alive = {});
  ~Loader();
  Loader(Loader&&) noexcept = default;
  Loader& operator=(Loader&&) noexcept = default;

  const LoaderOptions& options() const noexcept;
  const ImageGeometry& geometry() const noexcept;
  std::uint64_t num_samples() const noexcept;       // over all archives
  std::uint64_t samples_per_rank() const noexcept;  // S above
  std::uint64_t batches_per_epoch() const noexcept;
  // (batch_size, H, W, C) or (batch_size, C, H, W).
  std::array<std::size_t, 4> batch_shape() const noexcept;

  // Global sample index at this rank's position `position` (< samples_per_rank()) of `epoch`.
  std::uint64_t sample_at(std::uint64_t epoch, std::uint64_t position) const;
  // The augmentation sample `sample` gets in `epoch` (identity unless crop/flip are on).
  SampleTransform transform_for(std::uint64_t epoch, std::uint64_t sample) const;

  // Reads batches first_batch, first_batch + batch_step, ... of `epoch` (resume: first_batch =
  // batches already consumed; several consumers: distinct first_batch, common batch_step).
  std::unique_ptr<EpochReader> read_epoch(std::uint64_t epoch, std::uint64_t first_batch = 0,
                                          std::uint64_t batch_step = 1) const;

  // Batch buffers alive now (in flight, held by callers, or idle in the pool): at most
  // prefetch + 2 plus the batches callers hold.
  std::size_t buffers_alive() const noexcept;
  // Batch buffers allocated so far; the steady state allocates none.
  std::uint64_t buffer_allocations() const noexcept;

 private:
  std::shared_ptr<const detail::LoaderState> state_;
};

}  // namespace lowbit::kuat
