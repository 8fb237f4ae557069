// The generic pieces of the deployed layers (deploy_generic.h) and the wide path: configs whose decoded
// integers exceed the int8 kernels' 63 (e.g. D4 q=4 M=4, E8 q=16 M=2, Z2 q=16 M=2) evaluated row by row
// with int32 weights. Slow (scalar) but exact in its integer part, and it never forms the float matrix.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "deploy_generic.h"
#include "deploy_wide_dot.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/coset/lattice.h"

namespace lowbit::coset::generic {

namespace {

constexpr std::size_t kMinWeightsPerChunk = std::size_t{1} << 16;

// One row's decode: integer weights and block scales.
struct WideRow {
  WideRow(const PackedLinearView& v, kernels::DecodeFn<float> fn)
      : view(v), decode_fn(fn), d(v.config.dim()), scales(scale_table16(v.config)), codes(v.blocks * v.config.M * d),
        values(v.blocks * d), w(v.blocks * d), s(v.blocks), t_nibbles(deploy_t_row_bytes(v.blocks)) {}
  void decode(std::size_t n) {
    decode_row_ints(view, n, decode_fn, codes.data(), values.data(), w.data());
    const std::uint8_t* t = view.t + n * deploy_t_row_bytes(view.blocks);
    if (view.t_bits != 4) {  // compact T: this row's nibbles
      deploy_t_expand_row(view, n, t_nibbles.data());
      t = t_nibbles.data();
    }
    for (std::size_t k = 0; k < view.blocks; ++k) s[k] = scales[(t[k / 2] >> (4 * (k % 2))) & 15];
  }
  const PackedLinearView& view;
  kernels::DecodeFn<float> decode_fn;
  int d;
  std::array<float, 16> scales;
  std::vector<std::uint8_t> codes;
  std::vector<float> values;
  std::vector<std::int32_t> w;
  std::vector<float> s;
  std::vector<std::uint8_t> t_nibbles;
};

}  // namespace

kernels::DecodeFn<float> pick_decode() {
  static constexpr KernelSet<kernels::DecodeFn<float>> kSet{
      kernels::decode_scalar<float>, LOWBIT_AVX2_FN(kernels::decode_avx2<float>),
      LOWBIT_AVX512_FN(kernels::decode_avx512<float>)};
  return kSet.pick();
}

std::array<float, 16> scale_table16(const QuantizationConfig& c) {
  std::array<float, 16> s{};
  const int max_t = c.disable_overload_protection ? 0 : c.max_scaling_iterations;
  for (int t = 0; t <= max_t && t < 16; ++t) s[static_cast<std::size_t>(t)] = c.scale<float>(t);
  return s;
}

namespace {
// rint(v) (round half to even) for |v| < 2^22 in the default rounding mode, without a libm call
// (this file is built for baseline x86-64, where std::nearbyint is one): adding and subtracting
// 1.5 * 2^23 rounds to an integer exactly (checked against std::nearbyint for every float in
// [-130, 130]: they differ only in the sign of zero, which the int8 cast drops). Here |v| <= 127
// (up to rounding).
inline float rint_small(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}
}  // namespace

float quantize_input_row(const float* x, std::size_t cols, std::size_t m, std::int8_t* xq) {
  float amax = 0.0f;
  for (std::size_t i = 0; i < cols; ++i) {
    if (!std::isfinite(x[i]))
      throw InvalidArgument("packed_linear: input contains NaN or Inf (row " + std::to_string(m) + ", column " +
                            std::to_string(i) + ")");
    amax = std::max(amax, std::fabs(x[i]));
  }
  const float scale = amax / 127.0f;
  if (scale == 0.0f) {  // an all-zero row, or max|x| so small that max|x| / 127 rounds to 0: zeros
    std::fill(xq, xq + cols, std::int8_t{0});
    return 0.0f;
  }
  for (std::size_t i = 0; i < cols; ++i)
    xq[i] = static_cast<std::int8_t>(std::clamp(rint_small(x[i] / scale), -127.0f, 127.0f));
  return scale;
}

void decode_row_ints(const PackedLinearView& view, std::size_t n, kernels::DecodeFn<float> decode,
                     std::uint8_t* codes, float* values, std::int32_t* w) {
  const QuantizationConfig& c = view.config;
  const int bits = deploy_code_bits(c);
  const std::size_t row_bytes = deploy_code_row_bytes(c, view.blocks);
  const std::uint8_t* row = view.codes + n * row_bytes;
  const std::size_t n_codes = view.blocks * static_cast<std::size_t>(c.M * c.dim());
  for (std::size_t i = 0; i < n_codes; ++i) codes[i] = static_cast<std::uint8_t>(unpack_code(row, row_bytes, i, bits));
  decode(c.lattice, c.q, c.M, codes, view.blocks, values);
  const float cs = static_cast<float>(coordinate_scale(c.lattice));
  for (std::size_t i = 0; i < view.blocks * static_cast<std::size_t>(c.dim()); ++i)
    w[i] = static_cast<std::int32_t>(std::lrint(values[i] * cs));
}

void packed_linear_wide(const PackedLinearView& w, const float* x, std::size_t batch, float* y) {
  const int d = w.config.dim();
  const std::size_t cols = w.blocks * d;
  std::vector<std::int8_t> xq(batch * cols);
  std::vector<float> xs(batch);
  for (std::size_t m = 0; m < batch; ++m) xs[m] = quantize_input_row(x + m * cols, cols, m, xq.data() + m * cols);
  const float inv_c = 1.0f / static_cast<float>(coordinate_scale(w.config.lattice));
  const std::size_t grain = std::max<std::size_t>(1, kMinWeightsPerChunk / std::max<std::size_t>(1, cols * batch));
  const kernels::DecodeFn<float> decode = pick_decode();
  static constexpr KernelSet<WideDotFn> kDot{wide_dot_scalar, LOWBIT_AVX2_FN(wide_dot_avx2),
                                             LOWBIT_AVX512_FN(wide_dot_avx512)};
  const WideDotFn dot = kDot.pick();
  parallel_for(0, w.rows, grain, [&](std::size_t n0, std::size_t n1) {
    WideRow row(w, decode);
    std::vector<float> sums(batch);
    for (std::size_t n = n0; n < n1; ++n) {
      row.decode(n);  // once per weight row, shared by every input row
      dot(d, row.w.data(), row.s.data(), xq.data(), w.blocks, batch, row.scales[0], sums.data());
      for (std::size_t m = 0; m < batch; ++m) {
        float v = sums[m] * xs[m];
        v = v * w.row_scale[n];
        v = v * inv_c;
        if (w.bias) v = v + w.bias[n];
        y[m * w.rows + n] = v;
      }
    }
  });
}

void packed_decode_wide(const PackedLinearView& w, float* out) {
  const int d = w.config.dim();
  const std::size_t cols = w.blocks * d;
  const float inv_c = 1.0f / static_cast<float>(coordinate_scale(w.config.lattice));
  WideRow row(w, pick_decode());
  for (std::size_t n = 0; n < w.rows; ++n) {
    row.decode(n);
    for (std::size_t i = 0; i < cols; ++i)
      out[n * cols + i] = ((w.row_scale[n] * row.s[i / d]) * static_cast<float>(row.w[i])) * inv_c;
  }
}

void wide_dot_scalar(int d, const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                     std::size_t rows, float s0, float* out) {
  wide_dot_dispatch(d, w, s, xq, blocks, rows, s0, out);
}

}  // namespace lowbit::coset::generic
