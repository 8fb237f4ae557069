#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/bitlab/ternary.h"
#include "lowbit/core/error.h"
#include "test_helpers.h"

namespace lowbit::bitlab {
namespace {

TEST(BitlabQuantize, WeightsPerTensorFollowTheFormula) {
  // mean|W| = (0.1 + 0.5 + 2 + 0.3 + 0.6 + 0.5) / 6 = 4 / 6
  std::vector<float> w = {0.1f, -0.5f, 2.0f, 0.3f, -0.6f, 0.5f};
  TernaryWeights q = quantize_weights(w.data(), 2, 3, Granularity::PerTensor);
  const float s = static_cast<float>(4.0 / 6.0);
  EXPECT_EQ(q.scales, std::vector<float>({s, s}));
  // W / s = 0.15, -0.75, 3, 0.45, -0.9, 0.75 -> 0, -1, 1 (clipped), 0, -1, 1
  EXPECT_EQ(q.trits, std::vector<std::int8_t>({0, -1, 1, 0, -1, 1}));
}

TEST(BitlabQuantize, WeightsPerRowHaveOneScalePerRow) {
  std::vector<float> w = {1.0f, -1.0f, 0.0f, 4.0f, 4.0f, 0.5f};
  TernaryWeights q = quantize_weights(w.data(), 2, 3, Granularity::PerRow);
  EXPECT_FLOAT_EQ(q.scales[0], 2.0f / 3.0f);
  EXPECT_FLOAT_EQ(q.scales[1], 8.5f / 3.0f);
  EXPECT_EQ(q.trits, std::vector<std::int8_t>({1, -1, 0, 1, 1, 0}));
}

TEST(BitlabQuantize, AllZeroWeightsGiveZeroTritsAndScale) {
  std::vector<float> w(8, 0.0f);
  TernaryWeights q = quantize_weights(w.data(), 2, 4, Granularity::PerRow);
  EXPECT_EQ(q.scales, std::vector<float>({0.0f, 0.0f}));
  EXPECT_EQ(q.trits, std::vector<std::int8_t>(8, 0));
}

TEST(BitlabQuantize, ActivationsRoundHalfToEvenAndPad) {
  // a = 127 -> inv = 1: values round half to even like torch.round.
  std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -127.0f, 127.0f};
  QuantizedActivations q = quantize_activations(x.data(), 1, 6, Granularity::PerTensor);
  EXPECT_EQ(q.stride, 256u);
  EXPECT_FLOAT_EQ(q.scales[0], 1.0f);
  const std::vector<std::int8_t> expected = {0, 2, 2, 0, -127, 127};
  for (std::size_t k = 0; k < 6; ++k) EXPECT_EQ(q.values[k], expected[k]) << k;
  for (std::size_t k = 6; k < 256; ++k) ASSERT_EQ(q.values[k], 0);
  EXPECT_EQ(q.row_sums[0], 4);
}

TEST(BitlabQuantize, ActivationsWhoseMaxIsBelow127OverFltMaxQuantizeToZeros) {
  // 127 / a overflows for a < 127 / FLT_MAX: inv = 0 (activation_inv), never 0 * inf = NaN cast to int8.
  std::vector<float> x = {1e-38f, 0.0f, -3e-39f, 5e-40f, 1.0f, 0.5f, 0.0f, -1.0f};
  QuantizedActivations q = quantize_activations(x.data(), 2, 4, Granularity::PerRow);
  for (std::size_t k = 0; k < 4; ++k) EXPECT_EQ(q.values[k], 0) << k;
  EXPECT_EQ(q.row_sums[0], 0);
  EXPECT_EQ(q.scales[0], 1e-38f / 127.0f);
  EXPECT_EQ(q.values[q.stride], 127);
  EXPECT_EQ(activation_inv(0.0f), 0.0f);
  EXPECT_EQ(activation_inv(127.0f), 1.0f);
  EXPECT_EQ(activation_inv(1e-38f), 0.0f);
}

TEST(BitlabQuantize, ActivationsPerRowUseEachRowsMax) {
  std::vector<float> x = {1.0f, -2.0f, 0.5f, 0.25f};
  QuantizedActivations q = quantize_activations(x.data(), 2, 2, Granularity::PerRow);
  EXPECT_FLOAT_EQ(q.scales[0], 2.0f / 127.0f);
  EXPECT_FLOAT_EQ(q.scales[1], 0.5f / 127.0f);
  EXPECT_EQ(q.values[0], 64);  // 1 * 63.5 = 63.5 -> 64 (half to even)
  EXPECT_EQ(q.values[1], -127);
  EXPECT_EQ(q.values[q.stride], 127);
  EXPECT_EQ(q.values[q.stride + 1], 64);
  QuantizedActivations t = quantize_activations(x.data(), 2, 2, Granularity::PerTensor);
  EXPECT_EQ(t.scales[0], t.scales[1]);
}

TEST(BitlabQuantize, RejectsNonFiniteAndEmpty) {
  std::vector<float> x = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THROW(quantize_activations(x.data(), 1, 2, Granularity::PerTensor), InvalidArgument);
  EXPECT_THROW(quantize_weights(x.data(), 1, 2, Granularity::PerTensor), InvalidArgument);
  x[1] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize_activations(x.data(), 1, 2, Granularity::PerRow), InvalidArgument);
  EXPECT_THROW(quantize_weights(x.data(), 0, 2, Granularity::PerRow), InvalidArgument);
}

TEST(BitlabQuantize, ActivationScalesAreTheMaxAbsAndNonFiniteElementsAreNamed) {
  // max |x| is taken over 16 partial maxima of the IEEE bits: the same float as a plain loop of
  // std::max(m, fabs(x)), for lengths around the lane count, signed zeros, subnormals and large values.
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t cols : {1, 15, 16, 17, 33, 300, 1024}) {
    std::vector<float> x(2 * cols);
    for (auto& v : x) v = normal(rng);
    x[0] = -0.0f;
    x[cols / 2] = -1e-40f;  // subnormal
    x[2 * cols - 1] = (cols % 2 ? -3e30f : 3e30f);
    for (std::size_t row = 0; row < 2; ++row) {
      const float* r = x.data() + row * cols;
      float expect = 0.0f;
      for (std::size_t k = 0; k < cols; ++k) expect = std::max(expect, std::fabs(r[k]));
      std::vector<std::int8_t> dst(cols);
      float scale = -1.0f;
      quantize_activation_row(r, cols, dst.data(), scale);
      EXPECT_EQ(scale, expect / 127.0f) << cols;
      EXPECT_EQ(quantize_activations(x.data(), 2, cols, Granularity::PerRow).scales[row], expect / 127.0f) << cols;
    }
    for (std::size_t bad : {std::size_t{0}, cols / 2, cols - 1}) {
      for (float v : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
        std::vector<float> y(x.begin(), x.begin() + cols);
        y[bad] = v;
        std::vector<std::int8_t> dst(cols);
        float scale = 0.0f;
        try {
          quantize_activation_row(y.data(), cols, dst.data(), scale);
          ADD_FAILURE() << "no throw for element " << bad;
        } catch (const InvalidArgument& e) {
          EXPECT_NE(std::string(e.what()).find("(element " + std::to_string(bad) + ")"), std::string::npos) << e.what();
        }
      }
    }
  }
}

TEST(BitlabQuantize, ParsesGranularityNames) {
  EXPECT_EQ(parse_granularity("per_tensor"), Granularity::PerTensor);
  EXPECT_EQ(parse_granularity("per_channel"), Granularity::PerRow);
  EXPECT_THROW(parse_granularity("per_block"), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::bitlab
