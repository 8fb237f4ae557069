// gather_sample per SIMD level on ImageNet-shaped samples (224x224x3, 2x2 patches, K = 512),
// against memcpy of the same bytes from a raw uint8 array (the no-compression limit), both
// writing batches of 256 images in shuffled order into one reused output buffer.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "lowbit/core/aligned_buffer.h"
#include "lowbit/core/simd.h"
#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/gather.h"

namespace {

using namespace lowbit;
using namespace lowbit::kuat;

constexpr std::size_t kSamples = 2048, kBatch = 256;
const ImageGeometry kGeom{224, 224, 3, 2};

struct Data {
  std::vector<std::uint8_t> codebook, packed;
  std::size_t stride;
  std::vector<std::size_t> order;
  Data() {
    std::mt19937 rng(1);
    codebook.resize(512 * kGeom.codeword_bytes());
    for (auto& b : codebook) b = static_cast<std::uint8_t>(rng());
    stride = packed_bytes(kGeom.num_patches(), 9);
    packed.resize(kSamples * stride);
    std::vector<std::uint32_t> idx(kGeom.num_patches());
    for (std::size_t i = 0; i < kSamples; ++i) {
      for (auto& v : idx) v = rng() % 512;
      pack_indices(idx.data(), idx.size(), 9, packed.data() + i * stride);
    }
    order.resize(kSamples);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
  }
};

const Data& data() {
  static const Data d;
  return d;
}

void BM_gather(benchmark::State& state) {
  const auto level = static_cast<SimdLevel>(state.range(0));
  const bool nchw = state.range(1) & 1, f32 = state.range(1) & 2, augment = state.range(1) & 4;
  set_simd_level(level);
  const Data& d = data();
  OutputFormat f;
  f.layout = nchw ? Layout::NCHW : Layout::NHWC;
  f.dtype = f32 ? PixelType::Float32 : PixelType::UInt8;
  f.mirrored = augment;
  const GatherTable table(kGeom, d.codebook.data(), 512, f);
  AlignedBuffer<std::uint8_t> out(kBatch * table.sample_bytes());
  std::size_t next = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i, ++next) {
      const std::size_t s = d.order[next % kSamples];
      const SampleTransform t = augment ? SampleTransform{int(s % 9) - 4, int(s / 9 % 9) - 4, (s & 1) != 0}
                                        : SampleTransform{};
      gather_sample(table, d.packed.data() + s * d.stride, t, out.data() + i * table.sample_bytes());
    }
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(simd_level_name(level)) + (nchw ? " NCHW" : " NHWC") + (f32 ? " f32" : " u8") +
                 (augment ? " crop+flip" : ""));
  state.counters["img/s"] = benchmark::Counter(double(state.iterations() * kBatch), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBatch * table.sample_bytes()));
  set_simd_level(best_simd_level());
}

void BM_raw_memcpy(benchmark::State& state) {
  const Data& d = data();
  const std::size_t bytes = kGeom.pixel_bytes();
  AlignedBuffer<std::uint8_t> raw(kSamples * bytes), out(kBatch * bytes);
  std::mt19937 rng(2);
  for (auto& b : raw) b = static_cast<std::uint8_t>(rng());
  std::size_t next = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i, ++next) {
      std::memcpy(out.data() + i * bytes, raw.data() + d.order[next % kSamples] * bytes, bytes);
    }
    benchmark::ClobberMemory();
  }
  state.SetLabel("raw uint8 gather (memcpy)");
  state.counters["img/s"] = benchmark::Counter(double(state.iterations() * kBatch), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBatch * bytes));
}

void levels(benchmark::internal::Benchmark* b) {
  for (auto level : available_simd_levels()) b->Args({static_cast<int>(level), 0});
  const int best = static_cast<int>(best_simd_level());
  for (int variant : {1, 2, 3, 4}) b->Args({best, variant});
}

}  // namespace

BENCHMARK(BM_gather)->Apply(levels)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_raw_memcpy)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
