// Coset kernels: encode/decode throughput per SIMD level and the LUT matrix-vector product.
// Run with LOWBIT_NUM_THREADS=1 for per-core figures (bench/bench_coset.py does).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lowbit/core/distances.h"
#include "lowbit/core/simd.h"
#include "lowbit/coset/hnlq.h"
#include "lowbit/coset/lut.h"

namespace {

using lowbit::coset::LatticeType;
using lowbit::coset::QuantizationConfig;

QuantizationConfig config_of(const benchmark::State& state) {
  QuantizationConfig c;
  c.lattice = static_cast<LatticeType>(state.range(1));
  c.q = static_cast<int>(state.range(2));
  c.M = static_cast<int>(state.range(3));
  c.beta = 8.0 / c.q;  // inputs N(0,1) at 1/8 of the nested cell: overloads are rare
  for (int m = 1; m < c.M; ++m) c.beta /= c.q;
  return c;
}

template <class T = float>
std::vector<T> gaussian(std::size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<T> dist;
  std::vector<T> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

constexpr std::size_t kVectors = 1 << 20;

template <class T>
void BM_encode(benchmark::State& state) {
  const auto level = static_cast<lowbit::SimdLevel>(state.range(0));
  lowbit::set_simd_level(level);
  const auto c = config_of(state);
  const auto x = gaussian<T>(kVectors * c.dim());
  std::vector<std::uint8_t> codes(kVectors * c.M * c.dim()), t(kVectors);
  lowbit::coset::EncodeStats stats;
  for (auto _ : state) {
    stats = lowbit::coset::encode<T>(c, x.data(), kVectors, codes.data(), t.data());
    benchmark::DoNotOptimize(stats);
  }
  state.counters["retried"] = static_cast<double>(stats.retried) / kVectors;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kVectors));
  state.SetLabel(std::string(lowbit::simd_level_name(level)) + " " + lowbit::coset::lattice_name(c.lattice));
  lowbit::set_simd_level(lowbit::best_simd_level());
}

template <class T>
void BM_decode(benchmark::State& state) {
  const auto level = static_cast<lowbit::SimdLevel>(state.range(0));
  lowbit::set_simd_level(level);
  const auto c = config_of(state);
  const auto x = gaussian<T>(kVectors * c.dim());
  std::vector<std::uint8_t> codes(kVectors * c.M * c.dim()), t(kVectors);
  lowbit::coset::encode<T>(c, x.data(), kVectors, codes.data(), t.data());
  std::vector<T> out(x.size());
  for (auto _ : state) {
    lowbit::coset::decode<T>(c, codes.data(), t.data(), kVectors, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kVectors));
  state.SetLabel(std::string(lowbit::simd_level_name(level)) + " " + lowbit::coset::lattice_name(c.lattice));
  lowbit::set_simd_level(lowbit::best_simd_level());
}

void codecs(benchmark::internal::Benchmark* b) {
  for (auto level : lowbit::available_simd_levels()) {
    const int l = static_cast<int>(level);
    b->Args({l, 1, 4, 2});   // D4 q=4 M=2
    b->Args({l, 2, 4, 2});   // E8 q=4 M=2
    b->Args({l, 2, 16, 1});  // E8 q=16 M=1
    b->Args({l, 0, 4, 2});   // Z2 q=4 M=2
  }
}
BENCHMARK_TEMPLATE(BM_encode, float)->Apply(codecs)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_decode, float)->Apply(codecs)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_encode, double)->Apply(codecs)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_decode, double)->Apply(codecs)->Unit(benchmark::kMillisecond);

// 4096 x 4096 quantized matrix times a vector: LUT (build included) per SIMD level vs decode
// then dot. Args: level, mode (1 = LUT, 0 = decode then a SIMD dot, 2 = the LUT build alone).
void BM_matvec(benchmark::State& state) {
  const auto level = static_cast<lowbit::SimdLevel>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  lowbit::set_simd_level(level);
  const std::size_t n = 4096;
  QuantizationConfig c;  // D4 q=4 M=2
  c.beta = 1.0 / 4.0;
  const auto a = gaussian(n * n);
  const auto y = gaussian(n);
  const auto qm = lowbit::coset::QuantizedMatrix::encode(c, a.data(), n, n);
  std::vector<float> out(n), decoded(mode == 0 ? n * n : 0);
  for (auto _ : state) {
    if (mode == 1) {
      qm.matvec_lut(y.data(), out.data());
    } else if (mode == 2) {
      const lowbit::coset::OneSidedLut lut(c, y.data(), n);
      benchmark::DoNotOptimize(lut.table(0));
    } else {
      qm.decode(decoded.data());  // SIMD decode, then the dispatched SIMD dot per row
      for (std::size_t r = 0; r < n; ++r) out[r] = lowbit::dot_f32(decoded.data() + r * n, y.data(), n);
    }
    benchmark::DoNotOptimize(out.data());
  }
  const char* what[] = {"decode+dot", "lut", "lut build"};
  state.SetLabel(std::string(lowbit::simd_level_name(level)) + " " + what[mode]);
  lowbit::set_simd_level(lowbit::best_simd_level());
}

void matvec_cases(benchmark::internal::Benchmark* b) {
  for (auto level : lowbit::available_simd_levels()) {
    b->Args({static_cast<int>(level), 1});
    b->Args({static_cast<int>(level), 2});
  }
  b->Args({static_cast<int>(lowbit::best_simd_level()), 0});
}
BENCHMARK(BM_matvec)->Apply(matvec_cases)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
