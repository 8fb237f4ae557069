// Test data shared by the Coset C++ tests.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

namespace lowbit::coset::test_data {

// count N(0, sigma^2) floats from a fixed seed.
inline std::vector<float> gaussian(std::size_t count, double sigma, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, static_cast<float>(sigma));
  std::vector<float> x(count);
  for (auto& v : x) v = dist(rng);
  return x;
}

}  // namespace lowbit::coset::test_data
