// Deployed Coset layers: packed_linear (decode + int8 block sums + epilogue) per SIMD level on a
// 4096 x 4096 layer, batch 1 and 64. Run with LOWBIT_NUM_THREADS=1 for per-core figures.
// Args: level, format (0 = D4 q=4 M=2, 1 = E8 q=16 M=1, 2 = D4 q=4 M=2 with a scale that keeps
// T = 0 almost everywhere, as QLinear's does, so T is held in the compact 1-bit form), batch.
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
  const bool d4 = f != 1;
  c.lattice = d4 ? LatticeType::D4 : LatticeType::E8;
  c.q = d4 ? 4 : 16;
  c.M = d4 ? 2 : 1;
  c.beta = d4 ? 3.08 / 16 : 3.36 / 16;  // rate_optimal_config's start scales
  if (f == 2) c.beta = 3 * 3.08 / 16;    // overload (T > 0) becomes rare
  c.alpha = 0.25;
  c.max_scaling_iterations = 15;
  return c;
}

struct Layer {
  QuantizationConfig config;
  std::size_t blocks;
  std::vector<std::uint8_t> codes, t;
  std::vector<float> row_scale;
  lowbit::coset::CompactT compact;  // format 2: T in its compact in-memory form
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
    if (f == 2) compact = lowbit::coset::deploy_t_compact(traw.data(), kRows, blocks);
  }
  lowbit::coset::PackedLinearView view() const {
    lowbit::coset::PackedLinearView v;
    v.config = config;
    v.rows = kRows;
    v.blocks = blocks;
    v.codes = codes.data();
    v.t = t.data();
    v.row_scale = row_scale.data();
    if (!compact.t.empty()) {
      v.t = compact.t.data();
      v.t_bits = compact.bits;
      v.t_escapes = compact.escapes.data();
      v.t_escape_start = compact.escape_start.data();
    }
    return v;
  }
};

const Layer& layer(int f) {
  static const Layer d4(0), e8(1), d4_compact(2);
  return f == 0 ? d4 : f == 1 ? e8 : d4_compact;
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
  state.SetLabel(std::string(lowbit::simd_level_name(level)) + (f == 1 ? " E8 q=16 M=1" : " D4 q=4 M=2") +
                 ", T bits " + std::to_string(l.view().t_bits) + ", escapes " + std::to_string(l.compact.escapes.size()));
}

void cases(benchmark::internal::Benchmark* b) {
  for (auto level : lowbit::available_simd_levels())
    for (int f : {0, 1, 2})
      for (int batch : {1, 64}) {
        if (level == lowbit::SimdLevel::Scalar && batch == 64) continue;  // minutes, and says nothing new
        b->Args({static_cast<int>(level), f, batch});
      }
}

}  // namespace

BENCHMARK(BM_packed_linear)->Apply(cases)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
