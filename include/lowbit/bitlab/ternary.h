// BitNet b1.58 quantizers: ternary weights with a float scale, int8 activations with a float scale.
//
// Conventions (shared bit for bit by the Python reference, the C++ kernels and docs/bitlab.md):
//   weights      s   = float32( mean|W| computed in double )   over the tensor or over one output row
//                W_q = clamp(nearbyint(W / s), -1, 1)          (float32 division; s == 0 -> W_q = 0)
//   activations  a   = max|x|                                  over the tensor or over one row (token)
//                inv = 127.0f / a                              (float32; inv = 0 where that is not finite:
//                                                               a == 0, or a < 127 / FLT_MAX ~ 3.7e-37, whose
//                                                               row then quantizes to zeros; activation_inv)
//                x_q = clamp(nearbyint(x * inv), -128, 127)    (float32 product)
//                act_scale = a / 127.0f                        (float32; the factor applied to results)
// nearbyint rounds half to even, like torch.round and the SIMD conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <cfloat>
#include <vector>

#include "lowbit/core/aligned_buffer.h"

namespace lowbit::bitlab {

// The activation rule's inv for a row (or tensor) whose max |x| is a (finite, >= 0): 127.0f / a, or 0
// where that is not finite (a == 0, or a below 127 / FLT_MAX: the row quantizes to zeros).
inline float activation_inv(float a) {
  const float inv = 127.0f / a;
  return inv <= FLT_MAX ? inv : 0.0f;
}

// Whether one scale covers the whole tensor or one row of it (output channel for weights,
// token / batch row for activations).
enum class Granularity : std::uint8_t { PerTensor = 0, PerRow = 1 };

// "per_tensor" -> PerTensor, "per_channel" / "per_row" / "per_token" -> PerRow; InvalidArgument otherwise.
Granularity parse_granularity(std::string_view name);
const char* granularity_name(Granularity g) noexcept;

// Ternary weights of an out_features x in_features matrix, row-major.
struct TernaryWeights {
  std::size_t rows = 0;  // out_features (N)
  std::size_t cols = 0;  // in_features (K)
  std::vector<std::int8_t> trits;  // rows * cols values in {-1, 0, 1}
  std::vector<float> scales;       // one per row (PerTensor: the same value repeated)
};

// Quantizes a row-major rows x cols float matrix. InvalidArgument on empty shapes or NaN/Inf.
TernaryWeights quantize_weights(const float* w, std::size_t rows, std::size_t cols, Granularity g);

// Rounds the row length up to the 2-bit layout's block (see packing.h) so kernels never need tails.
std::size_t padded_cols(std::size_t cols) noexcept;

// int8 activations, each row zero-padded to padded_cols(cols) for the kernels.
struct QuantizedActivations {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;             // padded_cols(cols)
  AlignedBuffer<std::int8_t> values;  // rows * stride
  std::vector<float> scales;          // act_scale per row (a / 127); PerTensor: repeated
  std::vector<std::int32_t> row_sums; // sum of the row's int8 values (kernels use it, see gemm.h)

  // rows x cols, every value (padding included), scale and sum zero: what the quantizers fill.
  static QuantizedActivations zeros(std::size_t rows, std::size_t cols);
};

// Quantizes a row-major rows x cols float matrix. InvalidArgument on empty shapes or NaN/Inf.
QuantizedActivations quantize_activations(const float* x, std::size_t rows, std::size_t cols, Granularity g);

// One row of quantize_activations at per-token granularity, into a buffer the caller owns:
// writes dst[0, cols) (padding beyond cols is the caller's to keep zero) and act_scale, and
// returns the row's sum (QuantizedActivations::row_sums). InvalidArgument on NaN/Inf.
std::int32_t quantize_activation_row(const float* x, std::size_t cols, std::int8_t* dst, float& act_scale);

// Wraps int8 values that are already quantized (tests, raw kernels): copies, pads, sums rows;
// scales are set to 1.
QuantizedActivations wrap_int8_activations(const std::int8_t* xq, std::size_t rows, std::size_t cols);

}  // namespace lowbit::bitlab
