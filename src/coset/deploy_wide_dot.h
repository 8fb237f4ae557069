// The wide path's row kernel (deploy_generic.h, WideDotFn), one source for every SIMD level: included
// only by deploy_wide.cpp (scalar twin), deploy_wide_avx2.cpp and deploy_wide_avx512.cpp, each of which
// compiles it with its own ISA flags. Internal linkage (anonymous namespace), so that the copies built
// for different ISAs never merge at link time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "deploy_kernels.h"

namespace lowbit::coset::generic {
namespace {

// One group of kLanes blocks (n = kLanes: a constant trip count the compiler vectorises; the last group
// of a row may be shorter): products, block sums, then the epilogue of deploy.h: in an exact chunk the
// block sums go to the int64 sum `exact`, otherwise p[l] = fma(s[l], float(I), p[l]).
template <int D, std::size_t kLanes>
inline void wide_dot_group(const std::int32_t* w, const float* s, const std::int8_t* a, std::size_t n,
                           bool exact_chunk, float* p, std::int64_t& exact) {
  std::int32_t prod[kLanes * D];
  std::int32_t acc[kLanes];
  for (std::size_t i = 0; i < n * D; ++i) prod[i] = w[i] * static_cast<std::int32_t>(a[i]);
  for (std::size_t l = 0; l < n; ++l) {
    // |I| <= 8 * 127 * kDeployMaxWeightBound < 2^31: exact in int32.
    std::int32_t sum = 0;
    for (int j = 0; j < D; ++j) sum += prod[l * D + j];
    acc[l] = sum;
  }
  if (exact_chunk) {
    std::int64_t sum = 0;
    for (std::size_t l = 0; l < n; ++l) sum += acc[l];
    exact += sum;
  } else {
    for (std::size_t l = 0; l < n; ++l) p[l] = std::fma(s[l], static_cast<float>(acc[l]), p[l]);
  }
}

template <int D>
void wide_dot_impl(const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                   std::size_t rows, float s0, float* out) {
  constexpr std::size_t kLanes = 16;
  static_assert(kernels::kDeployChunk % kLanes == 0 && kernels::kDeployLanes == kLanes);
  const std::size_t cols = blocks * D;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::int8_t* a = xq + r * cols;
    float p[kLanes] = {};
    std::int64_t exact = 0;
    for (std::size_t c = 0; c < blocks; c += kernels::kDeployChunk) {  // the epilogue's chunks
      const std::size_t end = std::min(blocks, c + kernels::kDeployChunk);
      bool exact_chunk = true;
      for (std::size_t k = c; k < end; ++k) exact_chunk = exact_chunk && s[k] == s0;
      for (std::size_t k0 = c; k0 < end; k0 += kLanes) {
        const std::size_t n = std::min(kLanes, end - k0);
        if (n == kLanes) wide_dot_group<D, kLanes>(w + k0 * D, s + k0, a + k0 * D, kLanes, exact_chunk, p, exact);
        else wide_dot_group<D, kLanes>(w + k0 * D, s + k0, a + k0 * D, n, exact_chunk, p, exact);
      }
    }
    for (std::size_t h = kLanes / 2; h >= 1; h /= 2)
      for (std::size_t i = 0; i < h; ++i) p[i] = p[i] + p[i + h];
    out[r] = kernels::deploy_finish(s0, exact, p[0]);
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
