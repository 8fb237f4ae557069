// Deployed Coset layers: packed_linear (decode + int8 block sums + epilogue) per SIMD level on a
// 4096 x 4096 layer, batch 1 and 64. Run with LOWBIT_NUM_THREADS=1 for per-core figures.
// Args: level, format (0 = D4 q=4 M=2, 1 = E8 q=16 M=1), batch.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "lowbit/core/simd.h"
#include "lowbit/coset/deploy.h"

namespace {

using lowbit::coset::LatticeType;
using lowbit::coset::QuantizationConfig;

constexpr std::size_t kRows = 4096, kCols = 4096;

QuantizationConfig format(int f) {
  QuantizationConfig c;
  c.lattice = f == 0 ? LatticeType::D4 : LatticeType::E8;
  c.q = f == 0 ? 4 : 16;
  c.M = f == 0 ? 2 : 1;
  c.beta = f == 0 ? 3.08 / 16 : 3.36 / 16;  // rate_optimal_config's start scales
  c.alpha = 0.25;
  c.max_scaling_iterations = 15;
  return c;
}

struct Layer {
  QuantizationConfig config;
  std::size_t blocks;
  std::vector<std::uint8_t> codes, t;
  std::vector<float> row_scale;
  explicit Layer(int f) : config(format(f)), blocks(kCols / config.dim()) {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist;
    std::vector<float> w(kRows * kCols);
    for (auto& v : w) v = dist(rng);
    std::vector<std::uint8_t> raw(kRows * blocks * config.M * config.dim()), traw(kRows * blocks);
    lowbit::coset::encode<float>(config, w.data(), kRows * blocks, raw.data(), traw.data());
    codes.resize(kRows * lowbit::coset::deploy_code_row_bytes(config, blocks));
    t.resize(kRows * lowbit::coset::deploy_t_row_bytes(blocks));
    lowbit::coset::deploy_pack(config, kRows, blocks, raw.data(), traw.data(), codes.data(), t.data());
    row_scale.assign(kRows, 1.0f);
  }
  lowbit::coset::PackedLinearView view() const {
    lowbit::coset::PackedLinearView v;
    v.config = config;
    v.rows = kRows;
    v.blocks = blocks;
    v.codes = codes.data();
    v.t = t.data();
    v.row_scale = row_scale.data();
    return v;
  }
};

const Layer& layer(int f) {
  static const Layer d4(0), e8(1);
  return f == 0 ? d4 : e8;
}

void BM_packed_linear(benchmark::State& state) {
  const auto level = static_cast<lowbit::SimdLevel>(state.range(0));
  const int f = static_cast<int>(state.range(1));
  const auto batch = static_cast<std::size_t>(state.range(2));
  lowbit::ScopedSimdLevel forced(level);
  const Layer& l = layer(f);
  std::mt19937 rng(2);
  std::normal_distribution<float> dist;
  std::vector<float> x(batch * kCols), y(batch * kRows);
  for (auto& v : x) v = dist(rng);
  for (auto _ : state) {
    lowbit::coset::packed_linear(l.view(), x.data(), batch, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch * kRows * kCols));  // MACs
  state.SetLabel(std::string(lowbit::simd_level_name(level)) + (f == 0 ? " D4 q=4 M=2" : " E8 q=16 M=1"));
}

void cases(benchmark::internal::Benchmark* b) {
  for (auto level : lowbit::available_simd_levels())
    for (int f : {0, 1})
      for (int batch : {1, 64}) {
        if (level == lowbit::SimdLevel::Scalar && batch == 64) continue;  // minutes, and says nothing new
        b->Args({static_cast<int>(level), f, batch});
      }
}

}  // namespace

BENCHMARK(BM_packed_linear)->Apply(cases)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
