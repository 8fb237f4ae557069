// Float loops of the language-model runtime (lm.cpp), one table per SIMD level (internal).
//
// Every level evaluates the same float expressions in the same order (element-wise across the
// SIMD lanes, the library is built with -ffp-contract=off), so all levels are bit-identical
// (tests/cpp/bitlab/test_lm_ops.cpp). The orders:
//   dot(a, b, n):  16 partial sums, part[l] += a[i] * b[i] for i % 16 == l in increasing i over
//                  the first 16 * floor(n / 16) elements; s = part[0] + ... + part[15] in order;
//                  then s += a[i] * b[i] for the remaining i in order.
//   columns(x, wt, d, ld, n, scale, y):   y[j] = (sum over e = 0..d-1 in order of x[e] * wt[e * ld + j]) * scale,
//                  for j < n: a matrix-vector product against a column-major (transposed) matrix,
//                  used for attention scores (wt = the transposed key cache) and the output head.
//   rows(p, v, ldv, n, d, out):  out[e] = 0.0f + p[0] * v[e] + p[1] * v[ldv + e] + ... in order of j < n,
//                  for e < d: the probability-weighted sum of value rows.
#pragma once

#include <cstddef>

namespace lowbit::bitlab::kernels {

struct LmOps {
  float (*dot)(const float* a, const float* b, std::size_t n);
  void (*columns)(const float* x, const float* wt, std::size_t d, std::size_t ld, std::size_t n, float scale,
                  float* y);
  void (*rows)(const float* p, const float* v, std::size_t ldv, std::size_t n, std::size_t d, float* out);
};

extern const LmOps lm_ops_ref;
extern const LmOps lm_ops_avx2;    // defined only when AVX2 is compiled in
extern const LmOps lm_ops_avx512;  // defined only when AVX-512 is compiled in

// The table of the active SIMD level (recorded as a dispatch, like every kernel pick).
const LmOps& lm_ops() noexcept;

}  // namespace lowbit::bitlab::kernels
