// Distance kernels at every available SIMD level.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lowbit/core/distances.h"
#include "lowbit/core/simd.h"

static void BM_l2sqr(benchmark::State& state) {
  const auto level = static_cast<lowbit::SimdLevel>(state.range(0));
  const std::size_t n = static_cast<std::size_t>(state.range(1));
  lowbit::set_simd_level(level);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> a(n), b(n);
  for (auto& v : a) v = dist(rng);
  for (auto& v : b) v = dist(rng);
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::l2sqr_f32(a.data(), b.data(), n));
  state.SetLabel(lowbit::simd_level_name(level));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 2 * sizeof(float)));
  lowbit::set_simd_level(lowbit::best_simd_level());
}

static void levels(benchmark::internal::Benchmark* b) {
  for (auto level : lowbit::available_simd_levels())
    for (int n : {12, 48, 1024}) b->Args({static_cast<int>(level), n});
}
BENCHMARK(BM_l2sqr)->Apply(levels);
BENCHMARK_MAIN();
