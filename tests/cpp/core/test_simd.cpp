#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lowbit/core/distances.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"

namespace lowbit {
namespace {

// Sums of n products of N(0,1) values: float re-association error grows ~ sqrt(n) * eps * |terms|.
constexpr float kRelTolerance = 1e-5f;

TEST(Simd, ScalarAlwaysCompiledAndSupported) {
  EXPECT_TRUE(simd_level_compiled(SimdLevel::Scalar));
  EXPECT_TRUE(cpu_supports(SimdLevel::Scalar));
  auto levels = available_simd_levels();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), SimdLevel::Scalar);
  EXPECT_EQ(levels.back(), best_simd_level());
}

TEST(Simd, ParseNames) {
  EXPECT_EQ(parse_simd_level("scalar"), SimdLevel::Scalar);
  EXPECT_EQ(parse_simd_level("AVX2"), SimdLevel::AVX2);
  EXPECT_EQ(parse_simd_level("avx512"), SimdLevel::AVX512);
  EXPECT_THROW(parse_simd_level("sse9"), InvalidArgument);
  for (auto l : compiled_simd_levels()) EXPECT_EQ(parse_simd_level(simd_level_name(l)), l);
}

TEST(Simd, ForcedLevelIsTheOneThatRuns) {
  ScopedSimdLevel guard;
  std::vector<float> a(37, 1.0f), b(37, 2.0f);
  for (auto level : available_simd_levels()) {
    set_simd_level(level);
    EXPECT_EQ(simd_level(), level);
    EXPECT_FLOAT_EQ(dot_f32(a.data(), b.data(), a.size()), 74.0f);
    EXPECT_EQ(last_dispatched_level(), level) << simd_level_name(level);
  }
}

TEST(Simd, RejectsLevelsThisMachineCannotRun) {
  ScopedSimdLevel guard;
  for (auto level : {SimdLevel::AVX2, SimdLevel::AVX512}) {
    if (simd_level_compiled(level) && cpu_supports(level)) continue;
    EXPECT_THROW(set_simd_level(level), InvalidArgument);
  }
}

// Every level against the scalar reference over awkward sizes.
TEST(Distances, EveryLevelMatchesReference) {
  ScopedSimdLevel guard;
  std::mt19937 rng(42);
  std::normal_distribution<float> dist;
  for (std::size_t n : {0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 1000, 4097}) {
    std::vector<float> a(n), b(n);
    for (auto& v : a) v = dist(rng);
    for (auto& v : b) v = dist(rng);
    const float dot_ref = kernels::dot_f32_ref(a.data(), b.data(), n);
    const float l2_ref = kernels::l2sqr_f32_ref(a.data(), b.data(), n);
    float abs_sum = 0, sq_sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      abs_sum += std::fabs(a[i] * b[i]);
      sq_sum += (a[i] - b[i]) * (a[i] - b[i]);
    }
    for (auto level : available_simd_levels()) {
      set_simd_level(level);
      EXPECT_NEAR(dot_f32(a.data(), b.data(), n), dot_ref, kRelTolerance * (abs_sum + 1))
          << "n=" << n << " level=" << simd_level_name(level);
      EXPECT_NEAR(l2sqr_f32(a.data(), b.data(), n), l2_ref, kRelTolerance * (sq_sum + 1))
          << "n=" << n << " level=" << simd_level_name(level);
    }
  }
}

}  // namespace
}  // namespace lowbit
