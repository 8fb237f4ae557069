// What a Loader and its EpochReaders share (internal): immutable after construction.
#pragma once

#include <memory>
#include <vector>

#include "loader_buffers.h"
#include "lowbit/kuat/gather.h"
#include "lowbit/kuat/loader.h"

namespace lowbit::kuat::detail {

struct LoaderState {
  LoaderOptions options;
  std::vector<ArchiveView> archives;
  std::vector<std::uint64_t> first_sample;  // global index of each archive's sample 0, plus the total
  std::vector<std::shared_ptr<const void>> keep_alive;
  std::unique_ptr<GatherTable> table;
  std::shared_ptr<BufferPool> pool;
  std::uint64_t num_samples = 0;
  std::uint64_t samples_per_rank = 0;
  std::uint64_t batches_per_epoch = 0;
  std::array<std::size_t, 4> sample_shape{};  // (1, ...) of one sample in the output layout

  // Decodes global sample `sample` into `out` and returns its label; IoError naming the sample
  // if its data is corrupt.
  std::int32_t decode(std::uint64_t epoch, std::uint64_t sample, void* out) const;
};

}  // namespace lowbit::kuat::detail
