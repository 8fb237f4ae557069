// Ternary matrix products: y = x * W^T for packed ternary W (N x K) and M rows of x.
//
// Integer path (activations int8):
//   acc[m][n] = sum_k x_q[m][k] * t[n][k]                      exact int32, identical at every SIMD level
//   y[m][n]   = (float(acc) * act_scale[m]) * w_scale[n] + bias[n]
//   evaluated left to right in float32, no fused multiply-add, bias added only when present.
// Float path (activations float32, additions and subtractions only):
//   p[r] = sum over k with k % 64 == r, in increasing k, of (+x, -x or nothing)   (64 partial sums)
//   then halving tree: p[i] += p[i + h] for h = 32, 16, 8, 4, 2, 1; sum = p[0]
//   y[m][n] = sum * w_scale[n] + bias[n]
//   This fixed order makes the float path bit-identical at every SIMD level too.
// Both paths split the N output rows over lowbit::parallel_for.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"

namespace lowbit::bitlab {

// The integer path's epilogue for one output: (float(acc) * act_scale) * w_scale, left to right,
// one rounding per step (the library is built with -ffp-contract=off). Shared by every caller.
inline float int8_epilogue(std::int32_t acc, float act_scale, float w_scale) noexcept {
  float v = static_cast<float>(acc) * act_scale;
  return v * w_scale;
}

// acc (x.rows x w.rows, row-major) of the integer path.
void ternary_gemm_int8(const QuantizedActivations& x, const PackedTernaryView& w, std::int32_t* acc);

// The full integer layer: quantizes x (rows x w.cols) with granularity g and applies the
// epilogue. w_scales has w.rows entries; bias is w.rows entries or nullptr. y is rows x w.rows.
void bitlinear_int8(const float* x, std::size_t rows, const PackedTernaryView& w, const float* w_scales,
                    const float* bias, Granularity act_granularity, float* y);

// The full float layer (x is rows x w.cols float32, no activation quantization).
void bitlinear_f32(const float* x, std::size_t rows, const PackedTernaryView& w, const float* w_scales,
                   const float* bias, float* y);

}  // namespace lowbit::bitlab
