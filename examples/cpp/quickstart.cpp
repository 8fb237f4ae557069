// Quantize 100,000 vectors with the E8 lattice (q = 16, M = 1) and decode them back.
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "lowbit/coset/hnlq.h"

int main() {
  lowbit::coset::QuantizationConfig config;
  config.lattice = lowbit::coset::LatticeType::E8;
  config.q = 16;
  config.M = 1;
  config.beta = 0.25;
  const std::size_t n = 100000, d = 8;

  std::mt19937 rng(0);
  std::normal_distribution<float> gauss;
  std::vector<float> x(n * d), x_hat(n * d);
  for (float& v : x) v = gauss(rng);

  std::vector<std::uint8_t> codes(n * config.M * d), t(n);
  lowbit::coset::encode<float>(config, x.data(), n, codes.data(), t.data());
  lowbit::coset::decode<float>(config, codes.data(), t.data(), n, x_hat.data());

  double err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) err += (x[i] - x_hat[i]) * (x[i] - x_hat[i]);
  std::printf("E8 q=16 M=1: %zu vectors, MSE %.5f per coordinate\n", n, err / x.size());
  return err / x.size() < 0.01 ? 0 : 1;
}
