// Generic pieces of the deployed layers (deploy.h) shared by the int8 kernels' driver (deploy.cpp) and
// the wide path (deploy_wide.cpp): code unpacking, the activation rule, the integer row decode.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "hnlq_kernels.h"
#include "lowbit/coset/deploy.h"

namespace lowbit::coset::generic {

// Code i of a packed row (deploy_code_bits(config) bits per code, LSB-first). With 3-bit codes
// (q = 5..8) a code may straddle two bytes; row_bytes bounds the read.
inline unsigned unpack_code(const std::uint8_t* row, std::size_t row_bytes, std::size_t i, int bits) {
  const std::size_t bit = i * static_cast<std::size_t>(bits);
  const std::size_t byte = bit / 8;
  unsigned window = row[byte];
  if (byte + 1 < row_bytes) window |= static_cast<unsigned>(row[byte + 1]) << 8;
  return (window >> (bit % 8)) & ((1u << bits) - 1u);
}

// scale(T) for T = 0..15 (0 beyond the config's max_t: such a block contributes nothing).
std::array<float, 16> scale_table16(const QuantizationConfig& c);

// The activation rule of deploy.h for one input row of `cols` values: xq = clamp(rint(x / xs), -127, 127)
// with xs = max|x| / 127; returns xs (0 and xq = 0 where xs rounds to 0: an all-zero row, or max|x| below about 127 x 1.4e-45). Throws InvalidArgument naming
// row `m` and the column on NaN or Inf.
float quantize_input_row(const float* x, std::size_t cols, std::size_t m, std::int8_t* xq);

// The HNLQ decode kernel of the active SIMD level (recorded as this thread's last dispatch: pick it
// in the calling thread, before handing rows to workers).
kernels::DecodeFn<float> pick_decode();

// Row n's C-scaled integer weights w (blocks * d, block-major) from its packed codes, through the HNLQ
// decode kernel `decode`. `codes` (blocks * M * d) and `values` (blocks * d) are scratch.
void decode_row_ints(const PackedLinearView& view, std::size_t n, kernels::DecodeFn<float> decode,
                     std::uint8_t* codes, float* values, std::int32_t* w);

// The wide path's row kernel: for each of `rows` int8 activation rows (xq, `cols` = blocks * d apart),
// the exact int32 block sums I_k = sum_j w[k d + j] xq[k d + j] of one decoded int32 weight row and the
// epilogue of deploy.h with s0 = scale(0) (docs/coset.md): 64-block chunks whose scales are all s0 into
// A (int64), the other blocks p[k % 16] = fma(s[k], float(I_k), p[k % 16]), halving tree to f;
// out[r] = fma(s0, float(A), f) (the caller multiplies by xs, row_scale, 1/C). One source (deploy_wide_dot.h) for every
// level: deploy_wide.cpp
// (scalar twin), deploy_wide_avx2.cpp, deploy_wide_avx512.cpp compile it with their ISA flags (no FP
// contraction; std::fma is correctly rounded everywhere), so every level gives the same bits.
using WideDotFn = void (*)(int d, const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                           std::size_t rows, float s0, float* out);
void wide_dot_scalar(int d, const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                     std::size_t rows, float s0, float* out);
void wide_dot_avx2(int d, const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                   std::size_t rows, float s0, float* out);
void wide_dot_avx512(int d, const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                     std::size_t rows, float s0, float* out);

// The wide path (configs whose |w| exceeds the int8 kernels' 63): packed_linear and packed_decode with
// int32 weights and exact int32 block sums, the same activation rule and float epilogue order.
void packed_linear_wide(const PackedLinearView& w, const float* x, std::size_t batch, float* y);
void packed_decode_wide(const PackedLinearView& w, float* out);

}  // namespace lowbit::coset::generic
