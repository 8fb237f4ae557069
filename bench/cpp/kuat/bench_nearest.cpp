// Nearest-codeword search per SIMD level: float (training) and integer (encoding) kernels.
// Items = patches searched; 2x2 RGB patches (dim 12) against K codewords.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lowbit/core/simd.h"
#include "lowbit/kuat/nearest.h"
#include "lowbit/kuat/nearest_u8.h"

namespace {

constexpr std::uint32_t kDim = 12;
constexpr std::size_t kPoints = 4096;

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng());
  return v;
}

void run_level(benchmark::State& state, lowbit::SimdLevel level, bool integer) {
  bool ok = false;
  for (auto l : lowbit::available_simd_levels()) ok = ok || l == level;
  if (!ok) {
    state.SkipWithError("level not available here");
    return;
  }
  lowbit::set_simd_level(level);
  const auto K = static_cast<std::uint32_t>(state.range(0));
  const auto cb = random_bytes(std::size_t{K} * kDim, 1);
  const auto pts = random_bytes(kPoints * kDim, 2);
  std::vector<float> fpts(pts.begin(), pts.end());
  std::vector<std::uint32_t> idx(kPoints);
  const auto fsearch = lowbit::kuat::NearestCodeword::from_uint8(cb.data(), K, kDim);
  const lowbit::kuat::NearestCodewordU8 isearch(cb.data(), K, kDim);
  for (auto _ : state) {
    if (integer) {
      isearch.search(pts.data(), kPoints, idx.data());
    } else {
      fsearch.search(fpts.data(), kPoints, idx.data(), nullptr);
    }
    benchmark::DoNotOptimize(idx.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPoints));
  state.SetLabel(lowbit::simd_level_name(lowbit::last_dispatched_level()));
}

void BM_FloatScalar(benchmark::State& s) { run_level(s, lowbit::SimdLevel::Scalar, false); }
void BM_FloatAvx2(benchmark::State& s) { run_level(s, lowbit::SimdLevel::AVX2, false); }
void BM_FloatAvx512(benchmark::State& s) { run_level(s, lowbit::SimdLevel::AVX512, false); }
void BM_IntScalar(benchmark::State& s) { run_level(s, lowbit::SimdLevel::Scalar, true); }
void BM_IntAvx2(benchmark::State& s) { run_level(s, lowbit::SimdLevel::AVX2, true); }
void BM_IntAvx512(benchmark::State& s) { run_level(s, lowbit::SimdLevel::AVX512, true); }

BENCHMARK(BM_FloatScalar)->Arg(512);
BENCHMARK(BM_FloatAvx2)->Arg(256)->Arg(512)->Arg(4096);
BENCHMARK(BM_FloatAvx512)->Arg(256)->Arg(512)->Arg(4096);
BENCHMARK(BM_IntScalar)->Arg(512);
BENCHMARK(BM_IntAvx2)->Arg(256)->Arg(512)->Arg(4096);
BENCHMARK(BM_IntAvx512)->Arg(256)->Arg(512)->Arg(4096);

}  // namespace
BENCHMARK_MAIN();
