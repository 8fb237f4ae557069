// Float loops of the language-model runtime (lm.cpp), one table per SIMD level (internal).
//
// Every level evaluates the same float expressions in the same order (element-wise across the
// SIMD lanes, the library is built with -ffp-contract=off), so all levels are bit-identical
// (tests/cpp/bitlab/test_lm_ops.cpp). The orders:
//   dot(a, b, n):  16 partial sums, part[l] += a[i] * b[i] for i % 16 == l in increasing i over
//                  the first 16 * floor(n / 16) elements; s = part[0] + ... + part[15] in order;
//                  then s += a[i] * b[i] for the remaining i in order.
//   columns(x, ldx, nx, wt, d, ld, n, scale, y, ldy):  for each of the nx rows x_r = x + r * ldx,
//                  y[r * ldy + j] = (sum over e = 0..d-1 in order of x_r[e] * wt[e * ld + j]) * scale
//                  for j < n: matrix-vector products against a column-major (transposed) matrix,
//                  used for attention scores (wt = the transposed key cache, x = the query rows of
//                  one KV head) and the output head. The kernels read wt[e * ld + j] for every
//                  j < n rounded up to a multiple of 16 (whole 16-column tiles): the caller's rows
//                  must extend that far (lm.cpp pads the key cache and the head); the extra
//                  columns do not change y.
//   rows(p, ldp, np, v, ldv, n, d, out, ldo):  for each of the np rows p_r = p + r * ldp,
//                  out[r * ldo + e] = 0.0f + p_r[0] * v[e] + p_r[1] * v[ldv + e] + ... in order of
//                  j < n, for e < d: the probability-weighted sums of value rows.
//   softmax(x, n): in place, m = max x[i]; x[i] = lm_exp(x[i] - m); s = the sum of the x[i] in the
//                  order of dot (16 partial sums by i % 16, combined in order, then the tail);
//                  x[i] = x[i] / s.
//   glu(acc_gate, acc_up, w_gate, w_up, act_scale, n, relu2, out):  for j < n,
//                  g = int8_epilogue(acc_gate[j], act_scale, w_gate[j]), u = the same for up;
//                  out[j] = act(g) * u with act(g) = g / (1 + lm_exp(-g)) (SiLU) or, with relu2,
//                  r * r for r = (g > 0 ? g : 0).
//   quantize(x, n, dst, scale, sum):  one int8 activation row, exactly quantize_activation_row
//                  (ternary.h): a = max |x[i]|, *scale = a / 127, dst[i] = round half to even of
//                  clamp(x[i] * activation_inv(a), -128, 127) (ternary.h: 0 when 127 / a is not finite), *sum = the sum of dst[i].
//                  Returns false, with dst and *sum unspecified, when x holds NaN or Inf.
//   epilogue(acc, w_scale, act_scale, n, add, y):  for r < n, v = int8_epilogue(acc[r], act_scale,
//                  w_scale[r]) (gemm.h); y[r] = y[r] + v with add (a residual), else y[r] = v.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lowbit::bitlab::kernels {

// exp(x) of the runtime (softmax and SiLU), a polynomial of plain float operations that every
// SIMD level evaluates identically (glibc's expf is a scalar call): x is clamped to [-86, 88]
// (results stay normal floats; exp(-86) = 4.4e-38 stands in for anything smaller), then
// n = round(x * log2(e)), r = x - n * ln2 (ln2 in two parts, Cody-Waite), exp(r) by Cephes'
// expf polynomial, times 2^n through the exponent bits; NaN gives NaN. Within 2 ulp of exp(x) on
// [-86, 88] (tests/cpp/bitlab/test_lm_ops.cpp).
inline float lm_exp(float x) noexcept {
  const float in = x;
  x = x >= -86.0f ? x : -86.0f;  // NaN becomes -86 here (no NaN reaches the integer conversion) ...
  x = x > 88.0f ? 88.0f : x;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: (v + kMagic) - kMagic rounds |v| < 2^22
  const float n = (x * 1.44269504088896341f + kMagic) - kMagic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  std::int32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += static_cast<std::int32_t>(n) * (1 << 23);
  std::memcpy(&p, &bits, sizeof p);
  return in == in ? p : in;  // ... and is returned as NaN
}

struct LmOps {
  float (*dot)(const float* a, const float* b, std::size_t n);
  void (*columns)(const float* x, std::size_t ldx, std::size_t nx, const float* wt, std::size_t d, std::size_t ld,
                  std::size_t n, float scale, float* y, std::size_t ldy);
  void (*rows)(const float* p, std::size_t ldp, std::size_t np, const float* v, std::size_t ldv, std::size_t n,
               std::size_t d, float* out, std::size_t ldo);
  void (*softmax)(float* x, std::size_t n);
  void (*glu)(const std::int32_t* acc_gate, const std::int32_t* acc_up, const float* w_gate, const float* w_up,
              float act_scale, std::size_t n, bool relu2, float* out);
  bool (*quantize)(const float* x, std::size_t n, std::int8_t* dst, float* scale, std::int32_t* sum);
  void (*epilogue)(const std::int32_t* acc, const float* w_scale, float act_scale, std::size_t n, bool add,
                   float* y);
};

extern const LmOps lm_ops_ref;
extern const LmOps lm_ops_avx2;    // defined only when AVX2 is compiled in
extern const LmOps lm_ops_avx512;  // defined only when AVX-512 is compiled in

// The table of the active SIMD level (recorded as a dispatch, like every kernel pick).
const LmOps& lm_ops() noexcept;

}  // namespace lowbit::bitlab::kernels
