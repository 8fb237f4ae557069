// Dispatch, threading and the float epilogues of the ternary kernels (gemm.h).
#include "lowbit/bitlab/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gemm_isa.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"

namespace lowbit::bitlab {

namespace {

// A parallel chunk does at least this many multiply-adds: enough to hide the pool's hand-off.
constexpr std::size_t kMinMacsPerChunk = std::size_t{1} << 18;
// Rows are handed out in groups of 4: the kernels' register blocking.
constexpr std::size_t kRowGroup = 4;

template <class Body>
void for_row_groups(std::size_t rows, std::size_t macs_per_row, Body&& body) {
  const std::size_t groups = (rows + kRowGroup - 1) / kRowGroup;
  const std::size_t grain = std::max<std::size_t>(1, kMinMacsPerChunk / std::max<std::size_t>(1, macs_per_row * kRowGroup));
  parallel_for(0, groups, grain, [&](std::size_t g0, std::size_t g1) {
    body(g0 * kRowGroup, std::min(rows, g1 * kRowGroup));
  });
}

void require_layer(const char* what, std::size_t rows, const PackedTernaryView& w, const float* w_scales) {
  require(rows > 0, std::string(what) + ": input has no rows");
  require(w.rows > 0 && w.cols > 0 && w.data != nullptr && w.row_bytes == packed_row_bytes(w.cols),
          std::string(what) + ": packed weights are empty or not in the I2_S256 layout");
  require(w_scales != nullptr, std::string(what) + ": weight scales are missing");
}

}  // namespace

namespace kernels {
GemmInt8Fn pick_gemm_int8() noexcept {
  static constexpr KernelSet<GemmInt8Fn> kSet{gemm_int8_ref, LOWBIT_AVX2_FN(gemm_int8_avx2),
                                              LOWBIT_AVX512_FN(gemm_int8_avx512)};
  return kSet.pick();
}
}  // namespace kernels

void ternary_gemm_int8(const QuantizedActivations& x, const PackedTernaryView& w, std::int32_t* acc) {
  require(x.cols == w.cols, "ternary_gemm_int8: activations have " + std::to_string(x.cols) +
                                " columns but the weights expect " + std::to_string(w.cols));
  require(x.stride == padded_cols(w.cols), "ternary_gemm_int8: activations are not padded to the weight layout");
  require(w.data != nullptr && w.row_bytes == packed_row_bytes(w.cols),
          "ternary_gemm_int8: packed weights are not in the I2_S256 layout");
  const kernels::GemmInt8Fn fn = kernels::pick_gemm_int8();
  const std::size_t kp = x.stride;
  for_row_groups(w.rows, x.rows * kp, [&](std::size_t n0, std::size_t n1) {
    fn(x.values.data(), x.row_sums.data(), x.rows, kp, w.data, n0, n1, acc, w.rows);
  });
}

namespace {

// quantize_activations at per-token granularity with the rows split over the pool: each row is
// quantize_activation_row, the same arithmetic as quantize_activations' per-row path.
QuantizedActivations quantize_rows_parallel(const float* x, std::size_t rows, std::size_t cols) {
  QuantizedActivations q = QuantizedActivations::zeros(rows, cols);
  const std::size_t grain = std::max<std::size_t>(1, (std::size_t{1} << 15) / std::max<std::size_t>(1, cols));
  parallel_for(0, rows, grain, [&](std::size_t m0, std::size_t m1) {
    for (std::size_t m = m0; m < m1; ++m) {
      q.row_sums[m] = quantize_activation_row(x + m * cols, cols, q.values.data() + m * q.stride, q.scales[m]);
    }
  });
  return q;
}

}  // namespace

void bitlinear_int8(const float* x, std::size_t rows, const PackedTernaryView& w, const float* w_scales,
                    const float* bias, Granularity act_granularity, float* y) {
  require_layer("bitlinear_int8", rows, w, w_scales);
  const QuantizedActivations q = act_granularity == Granularity::PerRow && rows > 1
                                     ? quantize_rows_parallel(x, rows, w.cols)
                                     : quantize_activations(x, rows, w.cols, act_granularity);
  std::vector<std::int32_t> acc(rows * w.rows);
  const kernels::GemmInt8Fn fn = kernels::pick_gemm_int8();
  // Each chunk of weight rows runs its GEMM and then its epilogue (per element: the same floats
  // as a separate pass), so the epilogue is split over the pool too.
  for_row_groups(w.rows, rows * q.stride, [&](std::size_t n0, std::size_t n1) {
    fn(q.values.data(), q.row_sums.data(), rows, q.stride, w.data, n0, n1, acc.data(), w.rows);
    for (std::size_t m = 0; m < rows; ++m) {
      const float act_scale = q.scales[m];
      for (std::size_t n = n0; n < n1; ++n) {
        float v = int8_epilogue(acc[m * w.rows + n], act_scale, w_scales[n]);
        if (bias) v = v + bias[n];
        y[m * w.rows + n] = v;
      }
    }
  });
}

void bitlinear_f32(const float* x, std::size_t rows, const PackedTernaryView& w, const float* w_scales,
                   const float* bias, float* y) {
  require_layer("bitlinear_f32", rows, w, w_scales);
  const std::size_t cols = w.cols;
  const std::size_t kp = padded_cols(cols);
  AlignedBuffer<float> padded(rows * kp);
  padded.zero();
  for (std::size_t m = 0; m < rows; ++m) {
    for (std::size_t k = 0; k < cols; ++k) {
      const float v = x[m * cols + k];
      if (!std::isfinite(v)) {
        throw InvalidArgument("bitlinear_f32: input contains NaN or Inf (element " + std::to_string(m * cols + k) + ")");
      }
      padded[m * kp + k] = v;
    }
  }
  static constexpr KernelSet<kernels::GemmF32Fn> kSet{kernels::gemm_f32_ref,
                                                      LOWBIT_AVX2_FN(kernels::gemm_f32_avx2),
                                                      LOWBIT_AVX512_FN(kernels::gemm_f32_avx512)};
  const kernels::GemmF32Fn fn = kSet.pick();
  std::vector<float> sums(rows * w.rows);
  for_row_groups(w.rows, rows * kp, [&](std::size_t n0, std::size_t n1) {
    fn(padded.data(), rows, kp, w.data, n0, n1, sums.data(), w.rows);
  });
  for (std::size_t m = 0; m < rows; ++m) {
    for (std::size_t n = 0; n < w.rows; ++n) {
      float v = sums[m * w.rows + n] * w_scales[n];
      if (bias) v = v + bias[n];
      y[m * w.rows + n] = v;
    }
  }
}

}  // namespace lowbit::bitlab
