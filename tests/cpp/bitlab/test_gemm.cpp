#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"
#include "test_helpers.h"

namespace lowbit::bitlab {
namespace {

using testing::kAwkwardSizes;
using testing::random_floats;
using testing::random_int8;
using testing::random_trits;

// Float sums of K terms of N(0,1) in a different order than the double reference: relative
// error about sqrt(K) * 2^-24 of the sum of magnitudes; 1e-4 of that sum covers K up to 10^5.
constexpr double kFloatSumRelTolerance = 1e-4;

// The plain definition, independent of the packed layout.
std::vector<std::int32_t> naive_acc(const std::vector<std::int8_t>& x, const std::vector<std::int8_t>& t,
                                    std::size_t M, std::size_t N, std::size_t K) {
  std::vector<std::int32_t> acc(M * N, 0);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t k = 0; k < K; ++k) acc[m * N + n] += x[m * K + k] * t[n * K + k];
  return acc;
}

// bitlinear_int8's definition (ternary.h): x (M x K) quantized by quantize_activations, exact
// int32 sums against the trits, then (float(acc) * act_scale[m]) * w_scale[n] (+ bias[n]), each
// step rounded in float32.
std::vector<float> reference_layer(const std::vector<float>& x, std::size_t M, std::size_t K,
                                   const TernaryWeights& tw, std::size_t N, Granularity ag, const float* bias) {
  QuantizedActivations q = quantize_activations(x.data(), M, K, ag);
  std::vector<std::int8_t> xq(M * K);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t k = 0; k < K; ++k) xq[m * K + k] = q.values[m * q.stride + k];
  const auto acc = naive_acc(xq, tw.trits, M, N, K);
  std::vector<float> out(M * N);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t n = 0; n < N; ++n) {
      const float v = static_cast<float>(acc[m * N + n]) * q.scales[m] * tw.scales[n];
      out[m * N + n] = bias ? v + bias[n] : v;
    }
  return out;
}

TEST(BitlabGemm, Int8IsExactAtEveryLevelAndAwkwardSize) {
  ScopedSimdLevel guard;
  std::mt19937 rng(11);
  for (std::size_t K : kAwkwardSizes) {
    for (std::size_t N : {1, 3, 7, 17, 33}) {
      for (std::size_t M : {1, 2, 3, 4, 5, 9}) {
        auto t = random_trits(N * K, rng);
        auto x = random_int8(M * K, rng);
        PackedTernary w = pack_ternary_2bit(t.data(), N, K);
        QuantizedActivations q = wrap_int8_activations(x.data(), M, K);
        const auto expected = naive_acc(x, t, M, N, K);
        for (SimdLevel level : available_simd_levels()) {
          set_simd_level(level);
          std::vector<std::int32_t> acc(M * N, -1);
          ternary_gemm_int8(q, w.view(), acc.data());
          EXPECT_EQ(last_dispatched_level(), level);
          ASSERT_EQ(acc, expected) << simd_level_name(level) << " M=" << M << " N=" << N << " K=" << K;
        }
      }
    }
  }
}

TEST(BitlabGemm, Int8ExtremesDoNotSaturate) {
  ScopedSimdLevel guard;
  const std::size_t K = 1031, N = 5, M = 6;
  for (int sign : {-1, 1}) {
    std::vector<std::int8_t> t(N * K, static_cast<std::int8_t>(sign));
    std::vector<std::int8_t> x(M * K, -128);
    for (std::size_t k = 0; k < K; k += 2) x[k] = 127;  // row 0 alternates 127 / -128
    PackedTernary w = pack_ternary_2bit(t.data(), N, K);
    QuantizedActivations q = wrap_int8_activations(x.data(), M, K);
    const auto expected = naive_acc(x, t, M, N, K);
    for (SimdLevel level : available_simd_levels()) {
      set_simd_level(level);
      std::vector<std::int32_t> acc(M * N);
      ternary_gemm_int8(q, w.view(), acc.data());
      ASSERT_EQ(acc, expected) << simd_level_name(level);
    }
  }
}

TEST(BitlabGemm, FloatPathIsBitIdenticalAcrossLevelsAndCloseToExact) {
  ScopedSimdLevel guard;
  std::mt19937 rng(12);
  for (std::size_t K : kAwkwardSizes) {
    for (std::size_t N : {1, 7, 17}) {
      for (std::size_t M : {1, 3, 5}) {
        auto t = random_trits(N * K, rng);
        auto x = random_floats(M * K, rng);
        std::vector<float> scales(N, 1.0f);
        PackedTernary w = pack_ternary_2bit(t.data(), N, K);
        std::vector<float> reference;
        for (SimdLevel level : available_simd_levels()) {
          set_simd_level(level);
          std::vector<float> y(M * N);
          bitlinear_f32(x.data(), M, w.view(), scales.data(), nullptr, y.data());
          if (reference.empty()) {
            reference = y;
            for (std::size_t m = 0; m < M; ++m)
              for (std::size_t n = 0; n < N; ++n) {
                double exact = 0.0, magnitude = 0.0;
                for (std::size_t k = 0; k < K; ++k) {
                  exact += static_cast<double>(x[m * K + k]) * t[n * K + k];
                  magnitude += std::fabs(x[m * K + k]);
                }
                ASSERT_NEAR(y[m * N + n], exact, kFloatSumRelTolerance * magnitude);
              }
          } else {
            ASSERT_EQ(0, std::memcmp(y.data(), reference.data(), y.size() * sizeof(float)))
                << simd_level_name(level) << " M=" << M << " N=" << N << " K=" << K;
          }
        }
      }
    }
  }
}

TEST(BitlabGemm, LayerEpilogueFollowsTheDocumentedOrder) {
  ScopedSimdLevel guard;
  std::mt19937 rng(13);
  const std::size_t M = 6, N = 301, K = 700;  // enough rows for several parallel chunks
  auto wf = random_floats(N * K, rng, 0.05f);
  auto x = random_floats(M * K, rng);
  auto bias = random_floats(N, rng);
  for (Granularity wg : {Granularity::PerTensor, Granularity::PerRow}) {
    for (Granularity ag : {Granularity::PerTensor, Granularity::PerRow}) {
      TernaryWeights tw = quantize_weights(wf.data(), N, K, wg);
      PackedTernary w = pack_ternary_2bit(tw.trits.data(), N, K);
      const auto expected = reference_layer(x, M, K, tw, N, ag, bias.data());
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<float> y(M * N);
        bitlinear_int8(x.data(), M, w.view(), tw.scales.data(), bias.data(), ag, y.data());
        ASSERT_EQ(0, std::memcmp(y.data(), expected.data(), y.size() * sizeof(float))) << simd_level_name(level);
      }
    }
  }
}

TEST(BitlabGemm, LayerWithManyTokensMatchesTheReferenceQuantizer) {
  // Per-token activations over many rows are quantized in parallel (quantize_activation_row):
  // the same bytes as quantize_activations, and a NaN in the last row still throws.
  ScopedSimdLevel guard;
  std::mt19937 rng(17);
  const std::size_t M = 67, N = 130, K = 300;  // N: two 64-row epilogue blocks and a partial one
  auto wf = random_floats(N * K, rng, 0.05f);
  auto x = random_floats(M * K, rng);
  TernaryWeights tw = quantize_weights(wf.data(), N, K, Granularity::PerTensor);
  PackedTernary w = pack_ternary_2bit(tw.trits.data(), N, K);
  const auto expected = reference_layer(x, M, K, tw, N, Granularity::PerRow, nullptr);
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(level);
    for (std::size_t threads : {0, 1}) {  // the whole pool, and one thread (one chunk of blocks)
      ThreadLimit limit(threads);
      std::vector<float> y(M * N);
      bitlinear_int8(x.data(), M, w.view(), tw.scales.data(), nullptr, Granularity::PerRow, y.data());
      ASSERT_EQ(0, std::memcmp(y.data(), expected.data(), y.size() * sizeof(float)))
          << simd_level_name(level) << " threads " << threads;
    }
  }
  x[(M - 1) * K + 5] = NAN;
  std::vector<float> y(M * N);
  EXPECT_THROW(bitlinear_int8(x.data(), M, w.view(), tw.scales.data(), nullptr, Granularity::PerRow, y.data()),
               InvalidArgument);
}

TEST(BitlabGemm, RejectsMismatchedShapesAndBadInput) {
  std::vector<std::int8_t> t(12, 1);
  PackedTernary w = pack_ternary_2bit(t.data(), 3, 4);
  std::vector<float> scales(3, 1.0f), y(6);
  std::vector<std::int8_t> x5(10, 1);
  QuantizedActivations q = wrap_int8_activations(x5.data(), 2, 5);
  std::vector<std::int32_t> acc(6);
  EXPECT_THROW(ternary_gemm_int8(q, w.view(), acc.data()), InvalidArgument);
  std::vector<float> x = {1, 2, 3, NAN, 1, 2, 3, 4};
  EXPECT_THROW(bitlinear_int8(x.data(), 2, w.view(), scales.data(), nullptr, Granularity::PerTensor, y.data()),
               InvalidArgument);
  EXPECT_THROW(bitlinear_f32(x.data(), 2, w.view(), scales.data(), nullptr, y.data()), InvalidArgument);
  EXPECT_THROW(bitlinear_f32(x.data(), 0, w.view(), scales.data(), nullptr, y.data()), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::bitlab
