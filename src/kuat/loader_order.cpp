#include "loader_order.h"

namespace lowbit::kuat::detail {

std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

FeistelPermutation::FeistelPermutation(std::uint64_t n, std::uint64_t key) : n_(n) {
  unsigned bits = 0;
  while (bits < 64 && (std::uint64_t{1} << bits) < n) ++bits;
  half_bits_ = bits < 2 ? 1 : (bits + 1) / 2;
  half_mask_ = (std::uint64_t{1} << half_bits_) - 1;
  std::uint64_t k = key;
  for (auto& rk : round_keys_) rk = k = mix64(k);
}

std::uint64_t FeistelPermutation::encrypt(std::uint64_t x) const noexcept {
  std::uint64_t left = x >> half_bits_, right = x & half_mask_;
  for (std::uint64_t rk : round_keys_) {
    const std::uint64_t next = left ^ (mix64(right ^ rk) & half_mask_);
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

std::uint64_t FeistelPermutation::operator()(std::uint64_t position) const noexcept {
  std::uint64_t x = position;
  do {
    x = encrypt(x);
  } while (x >= n_);
  return x;
}

EpochOrder::EpochOrder(std::uint64_t num_samples, std::uint64_t seed, std::uint64_t epoch, bool shuffle,
                       std::uint32_t rank, std::uint32_t world_size)
    : n_(num_samples),
      shuffle_(shuffle),
      rank_(rank),
      world_size_(world_size),
      permutation_(num_samples, mix64(seed ^ mix64(epoch ^ 0x4B756174ull))) {}  // "Kuat"

std::uint64_t EpochOrder::sample_at(std::uint64_t position) const noexcept {
  std::uint64_t global = position * world_size_ + rank_;
  if (global >= n_) global %= n_;  // padding wraps to the start of the permutation
  return shuffle_ ? permutation_(global) : global;
}

SampleTransform augmentation_for(std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample,
                                 std::uint32_t crop_padding, bool random_flip) noexcept {
  SampleTransform t;
  if (crop_padding == 0 && !random_flip) return t;
  const std::uint64_t h = mix64(mix64(seed ^ 0x61756775ull) ^ mix64(epoch) ^ (sample * 0xD1B54A32D192ED03ull));
  if (crop_padding > 0) {
    const std::uint64_t span = 2ull * crop_padding + 1;
    t.shift_y = static_cast<std::int32_t>((h & 0xFFFFFF) % span) - static_cast<std::int32_t>(crop_padding);
    t.shift_x = static_cast<std::int32_t>(((h >> 24) & 0xFFFFFF) % span) - static_cast<std::int32_t>(crop_padding);
  }
  if (random_flip) t.flip = (h >> 63) != 0;
  return t;
}

}  // namespace lowbit::kuat::detail
