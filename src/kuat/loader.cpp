// Loader: option checks, archive concatenation, order queries.
#include "lowbit/kuat/loader.h"

#include <algorithm>
#include <string>

#include "loader_order.h"
#include "loader_state.h"
#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"

namespace lowbit::kuat {
namespace {

std::string describe(const ImageGeometry& g) {
  return std::to_string(g.height) + "x" + std::to_string(g.width) + "x" + std::to_string(g.channels) + " patch " +
         std::to_string(g.patch);
}

bool same_geometry(const ImageGeometry& a, const ImageGeometry& b) {
  return a.height == b.height && a.width == b.width && a.channels == b.channels && a.patch == b.patch;
}

void check_options(LoaderOptions& o) {
  require(o.batch_size > 0, "batch_size must be positive, got 0");
  require(o.world_size > 0, "world_size must be positive, got 0");
  require(o.rank < o.world_size,
          "rank must be < world_size, got rank " + std::to_string(o.rank) + " and world_size " + std::to_string(o.world_size));
  if (o.num_threads == 0) o.num_threads = default_num_threads();
  o.num_threads = std::max<std::size_t>(o.num_threads, 1);
  if (o.prefetch == 0) o.prefetch = std::max<std::size_t>(o.num_threads + 1, 2);
}

void check_archives(const std::vector<ArchiveView>& archives) {
  require(!archives.empty(), "the loader needs at least one archive");
  const ArchiveView& first = archives.front();
  validate(first.geometry);
  for (std::size_t i = 0; i < archives.size(); ++i) {
    const ArchiveView& a = archives[i];
    const std::string name = "archive " + std::to_string(i);
    require(a.codebook != nullptr && (a.num_samples == 0 || a.indices != nullptr), name + " has no data");
    require(same_geometry(a.geometry, first.geometry),
            name + " holds " + describe(a.geometry) + " images but archive 0 holds " + describe(first.geometry));
    require(a.codebook_hash == first.codebook_hash && a.codebook_size == first.codebook_size,
            name + " uses a different codebook than archive 0 (archives read together must share one)");
    require(a.index_stride >= packed_bytes(a.geometry.num_patches(), index_bits_for(a.codebook_size)),
            name + " has an index stride too small for its geometry");
  }
}

}  // namespace

namespace detail {

std::int32_t LoaderState::decode(std::uint64_t epoch, std::uint64_t sample, void* out) const {
  const auto it = std::upper_bound(first_sample.begin(), first_sample.end(), sample);
  const std::size_t a = static_cast<std::size_t>(it - first_sample.begin()) - 1;
  const ArchiveView& view = archives[a];
  const std::uint64_t local = sample - first_sample[a];
  const SampleTransform t = augmentation_for(options.seed, epoch, sample, options.crop_padding, options.random_flip);
  try {
    gather_sample(*table, view.sample_indices(local), t, out);
  } catch (const Error& e) {
    std::string where = "sample " + std::to_string(sample);
    if (archives.size() > 1) where += " (archive " + std::to_string(a) + ", sample " + std::to_string(local) + ")";
    throw IoError(where + " is corrupt: " + e.what());
  }
  return view.labels ? view.labels[local] : -1;
}

}  // namespace detail

Loader::Loader(std::vector<ArchiveView> archives, LoaderOptions options,
               std::vector<std::shared_ptr<const void>> keep_alive) {
  check_options(options);
  check_archives(archives);
  auto state = std::make_shared<detail::LoaderState>();
  state->options = options;
  state->archives = std::move(archives);
  state->keep_alive = std::move(keep_alive);
  state->first_sample.push_back(0);
  for (const ArchiveView& a : state->archives) state->first_sample.push_back(state->first_sample.back() + a.num_samples);
  state->num_samples = state->first_sample.back();

  const ArchiveView& first = state->archives.front();
  OutputFormat format;
  format.layout = options.layout;
  format.dtype = options.dtype;
  format.mean = options.mean;
  format.std = options.std;
  format.mirrored = options.random_flip;
  state->table = std::make_unique<GatherTable>(first.geometry, first.codebook, first.codebook_size, format);

  const std::uint64_t n = state->num_samples, R = options.world_size, B = options.batch_size;
  state->samples_per_rank = options.drop_last ? n / R : (n + R - 1) / R;
  state->batches_per_epoch = options.drop_last ? state->samples_per_rank / B : (state->samples_per_rank + B - 1) / B;
  const ImageGeometry& g = first.geometry;
  state->sample_shape = options.layout == Layout::NHWC ? std::array<std::size_t, 4>{1, g.height, g.width, g.channels}
                                                       : std::array<std::size_t, 4>{1, g.channels, g.height, g.width};
  // Idle buffers kept: the prefetch window, plus the batch the consumer holds while it asks for
  // the next one, plus one in transit; fewer would free and re-allocate (and page-fault) a
  // buffer every batch in the steady state.
  state->pool = std::make_shared<detail::BufferPool>(state->table->sample_bytes(), B, options.prefetch + 2);
  state_ = std::move(state);
}

Loader::~Loader() = default;

const LoaderOptions& Loader::options() const noexcept { return state_->options; }
const ImageGeometry& Loader::geometry() const noexcept { return state_->archives.front().geometry; }
std::uint64_t Loader::num_samples() const noexcept { return state_->num_samples; }
std::uint64_t Loader::samples_per_rank() const noexcept { return state_->samples_per_rank; }
std::uint64_t Loader::batches_per_epoch() const noexcept { return state_->batches_per_epoch; }
std::size_t Loader::buffers_alive() const noexcept { return state_->pool->alive(); }
std::uint64_t Loader::buffer_allocations() const noexcept { return state_->pool->allocations(); }

std::array<std::size_t, 4> Loader::batch_shape() const noexcept {
  auto shape = state_->sample_shape;
  shape[0] = state_->options.batch_size;
  return shape;
}

std::uint64_t Loader::sample_at(std::uint64_t epoch, std::uint64_t position) const {
  require(position < state_->samples_per_rank, "sample_at: position " + std::to_string(position) +
                                                   " is past the epoch (" + std::to_string(state_->samples_per_rank) +
                                                   " samples per rank)");
  const LoaderOptions& o = state_->options;
  return detail::EpochOrder(state_->num_samples, o.seed, epoch, o.shuffle, o.rank, o.world_size).sample_at(position);
}

SampleTransform Loader::transform_for(std::uint64_t epoch, std::uint64_t sample) const {
  const LoaderOptions& o = state_->options;
  return detail::augmentation_for(o.seed, epoch, sample, o.crop_padding, o.random_flip);
}

}  // namespace lowbit::kuat
