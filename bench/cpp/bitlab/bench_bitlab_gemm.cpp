// A 4096 x 4096 layer: BitLab ternary kernels (full layer: activation quantization, packed
// GEMV/GEMM, float epilogue) against OpenBLAS float32 sgemv/sgemm on the same shapes.
// Threads: LOWBIT_NUM_THREADS for ours, OPENBLAS_NUM_THREADS for OpenBLAS (bench_bitlab.py sets both).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"

namespace {

constexpr std::size_t kIn = 4096, kOut = 4096;

struct Layer {
  std::vector<float> weight, bias;
  lowbit::bitlab::TernaryWeights ternary;
  lowbit::bitlab::PackedTernary packed;
};

const Layer& layer() {
  static const Layer l = [] {
    Layer out;
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 0.02f);
    out.weight.resize(kIn * kOut);
    for (auto& v : out.weight) v = d(rng);
    out.bias.assign(kOut, 0.01f);
    out.ternary = lowbit::bitlab::quantize_weights(out.weight.data(), kOut, kIn, lowbit::bitlab::Granularity::PerTensor);
    out.packed = lowbit::bitlab::pack_ternary_2bit(out.ternary.trits.data(), kOut, kIn);
    return out;
  }();
  return l;
}

std::vector<float> input(std::size_t rows) {
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(rows * kIn);
  for (auto& v : x) v = d(rng);
  return x;
}

void set_counters(benchmark::State& state, std::size_t rows) {
  state.counters["MACs/s"] = benchmark::Counter(static_cast<double>(rows * kIn * kOut), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_BitLab_Int8(benchmark::State& state) {
  const std::size_t rows = static_cast<std::size_t>(state.range(0));
  const Layer& l = layer();
  const auto x = input(rows);
  std::vector<float> y(rows * kOut);
  for (auto _ : state) {
    lowbit::bitlab::bitlinear_int8(x.data(), rows, l.packed.view(), l.ternary.scales.data(), l.bias.data(),
                                   lowbit::bitlab::Granularity::PerTensor, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, rows);
}

void BM_BitLab_F32(benchmark::State& state) {
  const std::size_t rows = static_cast<std::size_t>(state.range(0));
  const Layer& l = layer();
  const auto x = input(rows);
  std::vector<float> y(rows * kOut);
  for (auto _ : state) {
    lowbit::bitlab::bitlinear_f32(x.data(), rows, l.packed.view(), l.ternary.scales.data(), l.bias.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, rows);
}

void BM_OpenBLAS_F32(benchmark::State& state) {
  const std::size_t rows = static_cast<std::size_t>(state.range(0));
  const Layer& l = layer();
  const auto x = input(rows);
  std::vector<float> y(rows * kOut);
  for (auto _ : state) {
    for (std::size_t m = 0; m < rows; ++m) std::copy(l.bias.begin(), l.bias.end(), y.begin() + m * kOut);
    if (rows == 1) {  // y = W x + b
      cblas_sgemv(CblasRowMajor, CblasNoTrans, kOut, kIn, 1.0f, l.weight.data(), kIn, x.data(), 1, 1.0f, y.data(), 1);
    } else {          // Y = X W^T + b
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kOut, kIn, 1.0f, x.data(), kIn, l.weight.data(),
                  kIn, 1.0f, y.data(), kOut);
    }
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, rows);
}

}  // namespace

BENCHMARK(BM_BitLab_Int8)->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_BitLab_F32)->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_OpenBLAS_F32)->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
