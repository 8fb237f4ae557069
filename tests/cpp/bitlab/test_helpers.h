// Shared helpers of the BitLab C++ tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/core/simd.h"

namespace lowbit::bitlab::testing {

// Awkward sizes: around the 64-weight sub-blocks and 256-weight blocks of the layout.
inline const std::vector<std::size_t> kAwkwardSizes = {1, 3, 7, 15, 17, 33, 64, 100, 255, 257, 513};

inline std::vector<std::int8_t> random_trits(std::size_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-1, 1);
  std::vector<std::int8_t> t(count);
  for (auto& v : t) v = static_cast<std::int8_t>(d(rng));
  return t;
}

inline std::vector<std::int8_t> random_int8(std::size_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<std::int8_t> t(count);
  for (auto& v : t) v = static_cast<std::int8_t>(d(rng));
  return t;
}

inline std::vector<float> random_floats(std::size_t count, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(count);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace lowbit::bitlab::testing
