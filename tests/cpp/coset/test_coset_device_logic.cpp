// The per-vector code of the CUDA HNLQ kernels (src/cuda/coset_hnlq_device.h), compiled for the
// host, against the C++ encode/decode: codes, T and decoded values bit-identical for every
// lattice, q 2..16, M 1..4, float and double, both tie rules, dither and overload retries.
// Runs without a GPU, so the kernels' arithmetic is checked on every machine; the CUDA test
// (tests/cpp/cuda/test_coset_cuda.cpp) then checks the launches on a device.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "coset_test_data.h"
#include "cuda/coset_hnlq_config.h"
#include "lowbit/coset/hnlq.h"

namespace lowbit::coset {
namespace {

namespace dev = lowbit::cuda::coset_device;

template <class T, int L, int M>
void check_levels(const QuantizationConfig& cfg, const std::vector<T>& x, const std::string& what) {
  const int d = cfg.dim();
  const std::size_t n = x.size() / d;
  const std::size_t stride = static_cast<std::size_t>(cfg.M) * d;
  std::vector<std::uint8_t> codes(n * stride), t(n);
  encode<T>(cfg, x.data(), n, codes.data(), t.data());
  std::vector<T> out(n * d);
  decode<T>(cfg, codes.data(), t.data(), n, out.data());

  const auto dc = dev::make_encode_config<T, L>(cfg);
  std::vector<std::uint8_t> codes_dev(n * stride);
  std::vector<T> out_dev(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    bool over = false;
    const int k = dev::encode_full<T, L, M>(dc, x.data() + i * d, i, codes_dev.data() + i * stride, &over);
    ASSERT_EQ(k, t[i]) << what << " vector " << i;
    dev::decode_full<T, L, M>(dc, codes.data() + i * stride, t[i], i, out_dev.data() + i * d);
  }
  ASSERT_EQ(codes_dev, codes) << what;
  ASSERT_EQ(0, std::memcmp(out_dev.data(), out.data(), out.size() * sizeof(T))) << what;
}

// The kernels are instantiated per M (coset_hnlq.cu); so is the check.
template <class T, int L>
void check_against_cpu(const QuantizationConfig& cfg, const std::vector<T>& x, const std::string& what) {
  switch (cfg.M) {
    case 1: check_levels<T, L, 1>(cfg, x, what); break;
    case 2: check_levels<T, L, 2>(cfg, x, what); break;
    case 3: check_levels<T, L, 3>(cfg, x, what); break;
    default: check_levels<T, L, 4>(cfg, x, what); break;
  }
}

template <class T>
std::vector<T> inputs(int d, std::size_t n, unsigned seed) {
  const std::vector<float> g = test_data::gaussian(n * d, 1.0, seed);
  std::vector<T> x(g.begin(), g.end());
  // Points on Voronoi boundaries: half-integers and exact lattice points exercise the tie rule.
  for (std::size_t i = 0; i < n / 8; ++i)
    for (int j = 0; j < d; ++j) x[i * d + j] = static_cast<T>(static_cast<int>(i + 3 * j) % 7 - 3) * T(0.5);
  // Near-ties: half-integers off by a relative 2^-22, inside the tie snap of the reference where
  // it has one (lattice_step.h), so the snap's tolerance logic is exercised too.
  for (std::size_t i = n / 8; i < n / 4; ++i)
    for (int j = 0; j < d; ++j) {
      const T tie = static_cast<T>(static_cast<int>(i + 5 * j) % 9 - 4) * T(0.5);
      x[i * d + j] = tie * (T(1) + static_cast<T>(static_cast<int>(i + j) % 3 - 1) * static_cast<T>(0x1p-22));
    }
  return x;
}

template <class T, int L>
void sweep(LatticeType type) {
  const int d = lattice_dim(type);
  for (int q = 2; q <= 16; ++q) {
    for (int m = 1; m <= 4; ++m) {
      QuantizationConfig cfg;
      cfg.lattice = type;
      cfg.q = q;
      cfg.M = m;
      double qm = 1.0;
      for (int k = 0; k < m; ++k) qm *= q;
      cfg.beta = 1.5 / qm;  // some vectors overload and retry
      cfg.alpha = 0.5;
      const std::vector<T> x = inputs<T>(d, 257, static_cast<unsigned>(q * 10 + m));
      const std::string what = std::string(lattice_name(type)) + " q=" + std::to_string(q) + " M=" + std::to_string(m);
      check_against_cpu<T, L>(cfg, x, what);
      QuantizationConfig plain = cfg;
      plain.with_tie_dither = false;
      check_against_cpu<T, L>(plain, x, what + " plain ties");
      QuantizationConfig dithered = cfg;
      dithered.with_dither = true;
      dithered.dither_seed = 0x1234567890abcdefull + q;
      check_against_cpu<T, L>(dithered, x, what + " dither");
      QuantizationConfig unprotected = cfg;
      unprotected.disable_overload_protection = true;
      unprotected.beta = 0.25 / qm;
      check_against_cpu<T, L>(unprotected, x, what + " no overload protection");
      QuantizationConfig unit = cfg;
      unit.disable_scaling = true;
      check_against_cpu<T, L>(unit, x, what + " scale 1");
    }
  }
}

TEST(CosetDeviceLogic, Z2MatchesCpuBitExactly) {
  sweep<float, dev::kZ2>(LatticeType::Z2);
  sweep<double, dev::kZ2>(LatticeType::Z2);
}

TEST(CosetDeviceLogic, D4MatchesCpuBitExactly) {
  sweep<float, dev::kD4>(LatticeType::D4);
  sweep<double, dev::kD4>(LatticeType::D4);
}

TEST(CosetDeviceLogic, E8MatchesCpuBitExactly) {
  sweep<float, dev::kE8>(LatticeType::E8);
  sweep<double, dev::kE8>(LatticeType::E8);
}

TEST(CosetDeviceLogic, ManyRetriesMatchCpu) {
  QuantizationConfig cfg;
  cfg.lattice = LatticeType::E8;
  cfg.q = 16;
  cfg.M = 1;
  cfg.beta = 0.01;
  cfg.alpha = 0.125;
  cfg.max_scaling_iterations = 255;
  const std::vector<float> x = inputs<float>(8, 300, 99);
  check_against_cpu<float, dev::kE8>(cfg, x, "E8 alpha 1/8, 255 retries");
}

}  // namespace
}  // namespace lowbit::coset
