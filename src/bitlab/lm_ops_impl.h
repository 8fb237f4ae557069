// The bodies of lm_ops.h, included once per SIMD level by lm_ops_ref.cpp, lm_ops_avx2.cpp and
// lm_ops_avx512.cpp (each compiled with its ISA flags, so the element-wise loops below are
// vectorized at that width); the scalar meaning of every loop is the definition in lm_ops.h.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lm_ops.h"

namespace lowbit::bitlab::kernels {
namespace {

float dot_impl(const float* a, const float* b, std::size_t n) {
  constexpr std::size_t kLanes = 16;
  float part[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) part[l] += a[i + l] * b[i + l];
  }
  float s = 0.0f;
  for (std::size_t l = 0; l < kLanes; ++l) s += part[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Outputs in blocks of kBlock independent accumulators (registers), each summed over e in order.
constexpr std::size_t kBlock = 64;

inline void columns_block(const float* x, const float* wt, std::size_t d, std::size_t ld, float scale, float* y) {
  float acc[kBlock] = {};
  for (std::size_t e = 0; e < d; ++e) {
    const float xe = x[e];
    const float* col = wt + e * ld;
    for (std::size_t j = 0; j < kBlock; ++j) acc[j] += xe * col[j];
  }
  for (std::size_t j = 0; j < kBlock; ++j) y[j] = acc[j] * scale;
}

void columns_impl(const float* x, const float* wt, std::size_t d, std::size_t ld, std::size_t n, float scale,
                  float* y) {
  std::size_t j = 0;
  for (; j + kBlock <= n; j += kBlock) columns_block(x, wt + j, d, ld, scale, y + j);
  for (; j < n; j += 16) {  // the tail, 16 at a time
    const std::size_t w = std::min<std::size_t>(16, n - j);
    float acc[16] = {};
    for (std::size_t e = 0; e < d; ++e) {
      const float xe = x[e];
      const float* col = wt + e * ld + j;
      for (std::size_t k = 0; k < w; ++k) acc[k] += xe * col[k];
    }
    for (std::size_t k = 0; k < w; ++k) y[j + k] = acc[k] * scale;
  }
}

void rows_impl(const float* p, const float* v, std::size_t ldv, std::size_t n, std::size_t d, float* out) {
  std::size_t e = 0;
  for (; e + kBlock <= d; e += kBlock) {
    float acc[kBlock] = {};
    for (std::size_t j = 0; j < n; ++j) {
      const float pj = p[j];
      const float* row = v + j * ldv + e;
      for (std::size_t k = 0; k < kBlock; ++k) acc[k] += pj * row[k];
    }
    for (std::size_t k = 0; k < kBlock; ++k) out[e + k] = acc[k];
  }
  for (; e < d; e += 16) {
    const std::size_t w = std::min<std::size_t>(16, d - e);
    float acc[16] = {};
    for (std::size_t j = 0; j < n; ++j) {
      const float pj = p[j];
      const float* row = v + j * ldv + e;
      for (std::size_t k = 0; k < w; ++k) acc[k] += pj * row[k];
    }
    for (std::size_t k = 0; k < w; ++k) out[e + k] = acc[k];
  }
}

}  // namespace
}  // namespace lowbit::bitlab::kernels
