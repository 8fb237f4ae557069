// The wide path's row kernel (deploy_generic.h, WideDotFn), one source for every SIMD level: included
// only by deploy_wide.cpp (scalar twin), deploy_wide_avx2.cpp and deploy_wide_avx512.cpp, each of which
// compiles it with its own ISA flags. Internal linkage (anonymous namespace), so that the copies built
// for different ISAs never merge at link time.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lowbit::coset::generic {
namespace {

// One group of kLanes blocks (n = kLanes: a constant trip count the compiler vectorises; the last group
// of a row may be shorter): products, block sums, then the epilogue of deploy.h: blocks whose scale is
// s0 into the exact int64 sum `exact`, the others into the lanes' fused multiply-adds (a zero scale
// adds +-0, which leaves p[l] as it is).
template <int D, std::size_t kLanes>
inline void wide_dot_group(const std::int32_t* w, const float* s, const std::int8_t* a, std::size_t n, float s0,
                           float* p, std::int64_t& exact) {
  std::int32_t prod[kLanes * D];
  std::int32_t acc[kLanes];
  for (std::size_t i = 0; i < n * D; ++i) prod[i] = w[i] * static_cast<std::int32_t>(a[i]);
  for (std::size_t l = 0; l < n; ++l) {
    // |I| <= 8 * 127 * kDeployMaxWeightBound < 2^31: exact in int32.
    std::int32_t sum = 0;
    for (int j = 0; j < D; ++j) sum += prod[l * D + j];
    acc[l] = sum;
  }
  std::int64_t sum = 0;
  for (std::size_t l = 0; l < n; ++l) {
    const bool z = s[l] == s0;
    sum += z ? acc[l] : 0;
    p[l] = std::fma(z ? 0.0f : s[l], static_cast<float>(acc[l]), p[l]);
  }
  exact += sum;
}

template <int D>
void wide_dot_impl(const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                   std::size_t rows, float s0, float* out) {
  constexpr std::size_t kLanes = 16;
  const std::size_t cols = blocks * D, full = blocks / kLanes * kLanes;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::int8_t* a = xq + r * cols;
    float p[kLanes] = {};
    std::int64_t exact = 0;
    for (std::size_t k0 = 0; k0 < full; k0 += kLanes)
      wide_dot_group<D, kLanes>(w + k0 * D, s + k0, a + k0 * D, kLanes, s0, p, exact);
    if (full < blocks) wide_dot_group<D, kLanes>(w + full * D, s + full, a + full * D, blocks - full, s0, p, exact);
    for (std::size_t h = kLanes / 2; h >= 1; h /= 2)
      for (std::size_t i = 0; i < h; ++i) p[i] = p[i] + p[i + h];
    out[r] = std::fma(s0, static_cast<float>(exact), p[0]);  // kernels::deploy_finish
  }
}

void wide_dot_dispatch(int d, const std::int32_t* w, const float* s, const std::int8_t* xq,
                       std::size_t blocks, std::size_t rows, float s0, float* out) {
  if (d == 2) return wide_dot_impl<2>(w, s, xq, blocks, rows, s0, out);
  if (d == 4) return wide_dot_impl<4>(w, s, xq, blocks, rows, s0, out);
  return wide_dot_impl<8>(w, s, xq, blocks, rows, s0, out);
}

}  // namespace
}  // namespace lowbit::coset::generic
