// CUDA Coset encode/decode against the CPU: codes, T and decoded values bit-identical for every
// lattice, q 2..16, M 1..4, float32 and float64, both tie rules, dither and retries; error
// statuses for non-finite input, bad codes and bad T. Skips without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/coset/hnlq.h"
#include "lowbit/cuda/coset_hnlq.h"
#include "lowbit/cuda/device.h"

namespace lowbit {
namespace {

using coset::LatticeType;
using coset::QuantizationConfig;

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  std::size_t count = 0;
  explicit DeviceBuffer(std::size_t n) : count(n) {
    EXPECT_EQ(cudaMalloc(&ptr, std::max<std::size_t>(n, 1) * sizeof(T) + 16), cudaSuccess);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr); }
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(count);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  void poison() { EXPECT_EQ(cudaMemset(ptr, 0xA5, count * sizeof(T)), cudaSuccess); }
};

class CosetCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::visible_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

template <class T>
std::vector<T> inputs(int d, std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> gauss;
  std::vector<T> x(n * d);
  for (auto& v : x) v = static_cast<T>(gauss(rng));
  for (std::size_t i = 0; i < n / 8; ++i)  // Voronoi-boundary inputs: the tie rule decides
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

template <class T>
void expect_same_as_cpu(const QuantizationConfig& cfg, const std::vector<T>& x, const std::string& what) {
  const int d = cfg.dim();
  const std::size_t n = x.size() / d, stride = static_cast<std::size_t>(cfg.M) * d;
  std::vector<std::uint8_t> codes(n * stride), t(n);
  const coset::EncodeStats cpu_stats = coset::encode<T>(cfg, x.data(), n, codes.data(), t.data());
  std::vector<T> out(n * d);
  coset::decode<T>(cfg, codes.data(), t.data(), n, out.data());

  DeviceBuffer<T> d_x(x.size()), d_out(out.size());
  DeviceBuffer<std::uint8_t> d_codes(codes.size()), d_t(n), d_over(n);
  d_x.upload(x);
  d_codes.poison();
  d_t.poison();
  d_out.poison();
  d_over.poison();
  const coset::EncodeStats gpu_stats =
      cuda::coset_encode<T>(cfg, d_x.ptr, n, d_codes.ptr, d_t.ptr, nullptr, nullptr, d_over.ptr);
  EXPECT_EQ(gpu_stats.retried, cpu_stats.retried) << what;
  EXPECT_EQ(gpu_stats.overloaded, cpu_stats.overloaded) << what;
  std::size_t flagged = 0;
  for (std::uint8_t f : d_over.download()) {
    ASSERT_LE(f, 1) << what;
    flagged += f;
  }
  EXPECT_EQ(flagged, cpu_stats.overloaded) << what;
  ASSERT_EQ(d_codes.download(), codes) << what;
  ASSERT_EQ(d_t.download(), t) << what;
  // Decode the CPU's codes (the same bytes), so a decode bug is not masked by an encode bug.
  d_codes.upload(codes);
  cuda::coset_decode<T>(cfg, d_codes.ptr, d_t.ptr, n, d_out.ptr, nullptr);
  const std::vector<T> got = d_out.download();
  ASSERT_EQ(0, std::memcmp(got.data(), out.data(), out.size() * sizeof(T))) << what;
}

template <class T>
void sweep(LatticeType type, std::size_t n) {
  const int d = coset::lattice_dim(type);
  for (int q = 2; q <= 16; ++q) {
    for (int m = 1; m <= 4; ++m) {
      QuantizationConfig cfg;
      cfg.lattice = type;
      cfg.q = q;
      cfg.M = m;
      const double qm = std::pow(q, m);
      cfg.beta = 1.5 / qm;
      cfg.alpha = 0.5;
      const std::string what = std::string(coset::lattice_name(type)) + " q=" + std::to_string(q) +
                               " M=" + std::to_string(m) + (sizeof(T) == 8 ? " float64" : " float32");
      const std::vector<T> x = inputs<T>(d, n, static_cast<unsigned>(q * 10 + m));
      expect_same_as_cpu<T>(cfg, x, what);
      QuantizationConfig plain = cfg;
      plain.with_tie_dither = false;
      expect_same_as_cpu<T>(plain, x, what + " plain ties");
      QuantizationConfig dithered = cfg;
      dithered.with_dither = true;
      dithered.dither_seed = 77 + q;
      expect_same_as_cpu<T>(dithered, x, what + " dither");
      QuantizationConfig unprotected = cfg;
      unprotected.disable_overload_protection = true;
      expect_same_as_cpu<T>(unprotected, x, what + " no overload protection");
    }
  }
}

TEST_F(CosetCuda, Z2MatchesCpuBitExactly) {
  sweep<float>(LatticeType::Z2, 1001);
  sweep<double>(LatticeType::Z2, 333);
}

TEST_F(CosetCuda, D4MatchesCpuBitExactly) {
  sweep<float>(LatticeType::D4, 1001);
  sweep<double>(LatticeType::D4, 333);
}

TEST_F(CosetCuda, E8MatchesCpuBitExactly) {
  sweep<float>(LatticeType::E8, 1001);
  sweep<double>(LatticeType::E8, 333);
}

TEST_F(CosetCuda, LargeBatchAndUnalignedPointers) {
  // 2^20 + 3 vectors (many blocks, a partial last warp) and inputs/outputs 4 bytes off alignment.
  QuantizationConfig cfg;
  cfg.lattice = LatticeType::D4;
  cfg.q = 4;
  cfg.M = 2;
  cfg.beta = 0.3;
  const std::size_t n = (1u << 20) + 3;
  const std::vector<float> x = inputs<float>(4, n, 5);
  std::vector<std::uint8_t> codes(n * 8), t(n);
  coset::encode<float>(cfg, x.data(), n, codes.data(), t.data());
  std::vector<float> out(n * 4);
  coset::decode<float>(cfg, codes.data(), t.data(), n, out.data());

  DeviceBuffer<float> d_x(x.size() + 1), d_out(out.size() + 1);
  DeviceBuffer<std::uint8_t> d_codes(codes.size() + 4), d_t(n);
  ASSERT_EQ(cudaMemcpy(d_x.ptr + 1, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  cuda::coset_encode<float>(cfg, d_x.ptr + 1, n, d_codes.ptr + 4, d_t.ptr, nullptr);
  std::vector<std::uint8_t> got_codes(codes.size()), got_t(n);
  ASSERT_EQ(cudaMemcpy(got_codes.data(), d_codes.ptr + 4, codes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(got_t.data(), d_t.ptr, n, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(got_codes, codes);
  EXPECT_EQ(got_t, t);
  cuda::coset_decode<float>(cfg, d_codes.ptr + 4, d_t.ptr, n, d_out.ptr + 1, nullptr);
  std::vector<float> got(out.size());
  ASSERT_EQ(cudaMemcpy(got.data(), d_out.ptr + 1, got.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(0, std::memcmp(got.data(), out.data(), out.size() * sizeof(float)));
}

TEST_F(CosetCuda, RejectsWhatTheCpuRejects) {
  QuantizationConfig cfg;  // D4 q=4 M=2
  std::vector<float> x = inputs<float>(4, 100, 3);
  x[4 * 57 + 2] = std::numeric_limits<float>::quiet_NaN();
  x[4 * 90 + 1] = std::numeric_limits<float>::infinity();
  DeviceBuffer<float> d_x(x.size()), d_out(x.size());
  DeviceBuffer<std::uint8_t> d_codes(100 * 8), d_t(100);
  d_x.upload(x);
  try {
    cuda::coset_encode<float>(cfg, d_x.ptr, 100, d_codes.ptr, d_t.ptr, nullptr);
    FAIL() << "NaN input accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("NaN or Inf (vector 57)"), std::string::npos) << e.what();
  }
  // Asynchronous mode: the status is filled in device memory, nothing is thrown.
  cuda::CosetStatus* d_status = nullptr;
  ASSERT_EQ(cudaMalloc(&d_status, sizeof(cuda::CosetStatus)), cudaSuccess);
  cuda::coset_encode<float>(cfg, d_x.ptr, 100, d_codes.ptr, d_t.ptr, nullptr, d_status);
  cuda::CosetStatus host;
  ASSERT_EQ(cudaMemcpy(&host, d_status, sizeof host, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(host.error, cuda::kCosetNonFinite);
  EXPECT_EQ(host.first_bad, 57u);

  std::vector<std::uint8_t> codes(100 * 8, 1), t(100, 0);
  codes[8 * 40 + 3] = 4;  // q = 4
  DeviceBuffer<std::uint8_t> d_bad(codes.size());
  d_bad.upload(codes);
  d_t.upload(t);
  EXPECT_THROW(cuda::coset_decode<float>(cfg, d_bad.ptr, d_t.ptr, 100, d_out.ptr, nullptr), InvalidArgument);
  codes[8 * 40 + 3] = 0;
  t[12] = static_cast<std::uint8_t>(cfg.max_scaling_iterations + 1);
  d_bad.upload(codes);
  d_t.upload(t);
  cuda::coset_decode<float>(cfg, d_bad.ptr, d_t.ptr, 100, d_out.ptr, nullptr, d_status);
  ASSERT_EQ(cudaMemcpy(&host, d_status, sizeof host, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(host.error, cuda::kCosetBadScale);
  EXPECT_EQ(host.first_bad, 12u);
  EXPECT_THROW(cuda::coset_check_status(cfg, host), InvalidArgument);
  cudaFree(d_status);

  QuantizationConfig bad = cfg;
  bad.q = 17;
  EXPECT_THROW(cuda::coset_encode<float>(bad, d_x.ptr, 100, d_codes.ptr, d_t.ptr, nullptr), InvalidArgument);
}

TEST_F(CosetCuda, EmptyInputIsANoOp) {
  QuantizationConfig cfg;
  EXPECT_NO_THROW(cuda::coset_encode<float>(cfg, nullptr, 0, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(cuda::coset_decode<float>(cfg, nullptr, nullptr, 0, nullptr, nullptr));
}

}  // namespace
}  // namespace lowbit
