// Epoch order and per-sample augmentation of the Kuat loader (internal; see loader.h).
#pragma once

#include <array>
#include <cstdint>

#include "lowbit/kuat/gather.h"

namespace lowbit::kuat::detail {

// A keyed bijection of [0, n): a balanced Feistel network on the smallest even number of bits
// covering n, with cycle walking (re-encrypt until the value falls below n; fewer than 4 rounds
// trips on average since the domain is < 4n).
class FeistelPermutation {
 public:
  FeistelPermutation(std::uint64_t n, std::uint64_t key);
  std::uint64_t operator()(std::uint64_t position) const noexcept;

 private:
  static constexpr int kRounds = 6;
  std::uint64_t encrypt(std::uint64_t x) const noexcept;
  std::uint64_t n_;
  unsigned half_bits_;
  std::uint64_t half_mask_;
  std::array<std::uint64_t, kRounds> round_keys_;
};

// splitmix64's finaliser: a strong 64-bit mix used for keys and augmentation draws.
std::uint64_t mix64(std::uint64_t x) noexcept;

// Order of one rank's part of one epoch (loader.h describes the rank split and padding).
class EpochOrder {
 public:
  EpochOrder(std::uint64_t num_samples, std::uint64_t seed, std::uint64_t epoch, bool shuffle, std::uint32_t rank,
             std::uint32_t world_size);
  std::uint64_t sample_at(std::uint64_t position) const noexcept;

 private:
  std::uint64_t n_;
  bool shuffle_;
  std::uint32_t rank_, world_size_;
  FeistelPermutation permutation_;
};

SampleTransform augmentation_for(std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample,
                                 std::uint32_t crop_padding, bool random_flip) noexcept;

}  // namespace lowbit::kuat::detail
