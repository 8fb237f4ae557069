// Weight and activation quantizers (conventions in include/lowbit/bitlab/ternary.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"
#include "lowbit/core/error.h"

namespace lowbit::bitlab {

Granularity parse_granularity(std::string_view name) {
  if (name == "per_tensor") return Granularity::PerTensor;
  if (name == "per_channel" || name == "per_row" || name == "per_token") return Granularity::PerRow;
  throw InvalidArgument("granularity: expected 'per_tensor' or 'per_channel', got '" + std::string(name) + "'");
}

const char* granularity_name(Granularity g) noexcept {
  return g == Granularity::PerTensor ? "per_tensor" : "per_channel";
}

std::size_t padded_cols(std::size_t cols) noexcept {
  return (cols + kBlockWeights - 1) / kBlockWeights * kBlockWeights;
}

namespace {

void require_shape(const char* what, std::size_t rows, std::size_t cols) {
  require(rows > 0 && cols > 0, std::string(what) + ": empty matrix (" + std::to_string(rows) + " x " +
                                    std::to_string(cols) + ")");
}

// |v| as its IEEE bits (sign cleared): for finite values the unsigned order of these bits is the
// order of |v|, and NaN and Inf are exactly the values whose bits are >= kExponentBits.
constexpr std::uint32_t kExponentBits = 0x7F800000u;
inline std::uint32_t abs_bits(float v) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits & 0x7FFFFFFFu;
}

// Lanes of the max-reductions below: independent partial maxima, so the loop is not one
// dependency chain and vectorizes; max is exact and order-free, so the result is the same.
constexpr std::size_t kMaxLanes = 16;

// max over i of abs_bits(v[i]) (0 for count 0).
std::uint32_t max_abs_bits(const float* v, std::size_t count) noexcept {
  std::uint32_t part[kMaxLanes] = {};
  std::size_t i = 0;
  for (; i + kMaxLanes <= count; i += kMaxLanes) {
    for (std::size_t l = 0; l < kMaxLanes; ++l) part[l] = std::max(part[l], abs_bits(v[i + l]));
  }
  std::uint32_t m = 0;
  for (std::size_t l = 0; l < kMaxLanes; ++l) m = std::max(m, part[l]);
  for (; i < count; ++i) m = std::max(m, abs_bits(v[i]));
  return m;
}

void require_finite(const char* what, const float* v, std::size_t count) {
  if (max_abs_bits(v, count) < kExponentBits) return;  // the common case, in one branch-free pass
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isfinite(v[i])) {
      throw InvalidArgument(std::string(what) + ": contains NaN or Inf (element " + std::to_string(i) + ")");
    }
  }
}

float mean_abs(const float* v, std::size_t count) {
  double sum = 0.0;
  for (std::size_t i = 0; i < count; ++i) sum += std::fabs(static_cast<double>(v[i]));
  return static_cast<float>(sum / static_cast<double>(count));
}

// max |v[i]| of finite v (callers check first): the largest abs_bits as a float, which is exactly
// the float std::max of the |v[i]| in any order.
float max_abs(const float* v, std::size_t count) {
  const std::uint32_t m = max_abs_bits(v, count);
  float a;
  std::memcpy(&a, &m, sizeof a);
  return a;
}

void ternarize_row(const float* w, std::size_t cols, float s, std::int8_t* out) {
  for (std::size_t k = 0; k < cols; ++k) {
    float q = s > 0.0f ? std::nearbyint(w[k] / s) : 0.0f;
    out[k] = static_cast<std::int8_t>(std::clamp(q, -1.0f, 1.0f));
  }
}

// nearbyint (round half to even) without a libm call, so the loop vectorizes: adding and
// subtracting 1.5 * 2^23 leaves the nearest integer in the default rounding mode for |v| < 2^22.
inline float round_half_even_small(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// Quantizes one row into dst (zero padding up to the stride is the caller's) and returns its sum.
std::int32_t quantize_row(const float* x, std::size_t cols, float a, std::int8_t* dst) {
  const float inv = activation_inv(a);
  std::int32_t sum = 0;
  for (std::size_t k = 0; k < cols; ++k) {
    // Clamping first keeps |v| small for the rounding trick; the result equals clamp(round(v)).
    const float q = round_half_even_small(std::clamp(x[k] * inv, -128.0f, 127.0f));
    dst[k] = static_cast<std::int8_t>(q);
    sum += dst[k];
  }
  return sum;
}

}  // namespace

TernaryWeights quantize_weights(const float* w, std::size_t rows, std::size_t cols, Granularity g) {
  require_shape("quantize_weights: weight", rows, cols);
  require_finite("quantize_weights: weight", w, rows * cols);
  TernaryWeights out;
  out.rows = rows;
  out.cols = cols;
  out.trits.resize(rows * cols);
  out.scales.resize(rows);
  const float tensor_scale = g == Granularity::PerTensor ? mean_abs(w, rows * cols) : 0.0f;
  for (std::size_t n = 0; n < rows; ++n) {
    const float s = g == Granularity::PerTensor ? tensor_scale : mean_abs(w + n * cols, cols);
    out.scales[n] = s;
    ternarize_row(w + n * cols, cols, s, out.trits.data() + n * cols);
  }
  return out;
}

QuantizedActivations QuantizedActivations::zeros(std::size_t rows, std::size_t cols) {
  QuantizedActivations q;
  q.rows = rows;
  q.cols = cols;
  q.stride = padded_cols(cols);
  q.values.resize(rows * q.stride);
  q.values.zero();
  q.scales.resize(rows);
  q.row_sums.resize(rows);
  return q;
}

QuantizedActivations quantize_activations(const float* x, std::size_t rows, std::size_t cols, Granularity g) {
  require_shape("quantize_activations: input", rows, cols);
  require_finite("quantize_activations: input", x, rows * cols);
  QuantizedActivations q = QuantizedActivations::zeros(rows, cols);
  const float tensor_max = g == Granularity::PerTensor ? max_abs(x, rows * cols) : 0.0f;
  for (std::size_t m = 0; m < rows; ++m) {
    const float a = g == Granularity::PerTensor ? tensor_max : max_abs(x + m * cols, cols);
    q.scales[m] = a / 127.0f;
    q.row_sums[m] = quantize_row(x + m * cols, cols, a, q.values.data() + m * q.stride);
  }
  return q;
}

std::int32_t quantize_activation_row(const float* x, std::size_t cols, std::int8_t* dst, float& act_scale) {
  require_shape("quantize_activation_row: input", 1, cols);
  require_finite("quantize_activation_row: input", x, cols);
  const float a = max_abs(x, cols);
  act_scale = a / 127.0f;
  return quantize_row(x, cols, a, dst);
}

QuantizedActivations wrap_int8_activations(const std::int8_t* xq, std::size_t rows, std::size_t cols) {
  require_shape("wrap_int8_activations: input", rows, cols);
  QuantizedActivations q = QuantizedActivations::zeros(rows, cols);
  q.scales.assign(rows, 1.0f);
  for (std::size_t m = 0; m < rows; ++m) {
    std::int32_t sum = 0;
    for (std::size_t k = 0; k < cols; ++k) {
      q.values[m * q.stride + k] = xq[m * cols + k];
      sum += xq[m * cols + k];
    }
    q.row_sums[m] = sum;
  }
  return q;
}

}  // namespace lowbit::bitlab
