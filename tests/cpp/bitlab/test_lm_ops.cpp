// The language-model runtime's float loops (src/bitlab/lm_ops.h) at every SIMD level against the
// orders lm_ops.h defines, bit for bit; and the Team (src/bitlab/team.h) that runs its sections.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "bitlab/lm_ops.h"
#include "bitlab/team.h"
#include "lowbit/core/simd.h"

namespace lowbit::bitlab {
namespace {

std::vector<float> random_floats(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// The definitions of lm_ops.h, written out as plain loops.
float spec_dot(const float* a, const float* b, std::size_t n) {
  float part[16] = {};
  const std::size_t body = n / 16 * 16;
  for (std::size_t i = 0; i < body; ++i) part[i % 16] = part[i % 16] + a[i] * b[i];
  float s = 0.0f;
  for (float p : part) s = s + p;
  for (std::size_t i = body; i < n; ++i) s = s + a[i] * b[i];
  return s;
}

void spec_columns(const float* x, const float* wt, std::size_t d, std::size_t ld, std::size_t n, float scale,
                  float* y) {
  for (std::size_t j = 0; j < n; ++j) {
    float s = 0.0f;
    for (std::size_t e = 0; e < d; ++e) s = s + x[e] * wt[e * ld + j];
    y[j] = s * scale;
  }
}

void spec_rows(const float* p, const float* v, std::size_t ldv, std::size_t n, std::size_t d, float* out) {
  for (std::size_t e = 0; e < d; ++e) {
    float s = 0.0f;
    for (std::size_t j = 0; j < n; ++j) s = s + p[j] * v[j * ldv + e];
    out[e] = s;
  }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(LmOps, EveryLevelMatchesTheDefinedOrderBitForBit) {
  ScopedSimdLevel guard;
  std::mt19937 rng(17);
  for (std::size_t n : {1u, 7u, 15u, 16u, 17u, 63u, 64u, 65u, 130u, 258u, 1024u, 1031u}) {
    for (std::size_t d : {1u, 16u, 32u, 33u, 64u, 80u, 128u}) {
      const std::size_t ld = n + 5, ldv = d + 3;
      const auto a = random_floats(n, rng), b = random_floats(n, rng);
      const auto x = random_floats(d, rng), wt = random_floats(d * ld, rng);
      const auto p = random_floats(n, rng), v = random_floats(n * ldv, rng);
      std::vector<float> y_spec(n), out_spec(d);
      spec_columns(x.data(), wt.data(), d, ld, n, 0.125f, y_spec.data());
      spec_rows(p.data(), v.data(), ldv, n, d, out_spec.data());
      const float dot_spec = spec_dot(a.data(), b.data(), n);
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        const kernels::LmOps& ops = kernels::lm_ops();
        ASSERT_EQ(last_dispatched_level(), level);
        const float got = ops.dot(a.data(), b.data(), n);
        ASSERT_EQ(0, std::memcmp(&got, &dot_spec, sizeof got)) << simd_level_name(level) << " dot n=" << n;
        std::vector<float> y(n, -1.0f), out(d, -1.0f);
        ops.columns(x.data(), wt.data(), d, ld, n, 0.125f, y.data());
        ops.rows(p.data(), v.data(), ldv, n, d, out.data());
        ASSERT_TRUE(same_bits(y, y_spec)) << simd_level_name(level) << " columns n=" << n << " d=" << d;
        ASSERT_TRUE(same_bits(out, out_spec)) << simd_level_name(level) << " rows n=" << n << " d=" << d;
      }
    }
  }
}

TEST(Team, EveryItemOnceInWholeGroupsWithDistinctSlots) {
  for (std::size_t threads : {1u, 2u, 3u, 5u}) {
    Team team(threads);
    for (std::size_t count : {1u, 3u, 4u, 17u, 100u, 1537u}) {
      for (std::size_t group : {1u, 4u, 16u}) {
        for (std::size_t grain : {1u, 3u, 1000u}) {
          std::vector<std::atomic<int>> hits(count);
          std::vector<std::atomic<int>> busy(team.size());
          std::atomic<bool> bad{false};
          team.parallel_for(count, group, grain, [&](std::size_t begin, std::size_t end, std::size_t slot) {
            if (slot >= team.size() || begin >= end || end > count || begin % group != 0 ||
                (end % group != 0 && end != count) || busy[slot].fetch_add(1) != 0) {
              bad = true;
              return;
            }
            for (std::size_t i = begin; i < end; ++i) hits[i].fetch_add(1);
            busy[slot].fetch_sub(1);
          });
          ASSERT_FALSE(bad) << threads << " " << count << " " << group << " " << grain;
          for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(hits[i].load(), 1) << i;
        }
      }
    }
  }
}

TEST(Team, RethrowsAndStaysUsableAndRunsNestedLoopsInline) {
  Team team(3);
  EXPECT_THROW(team.parallel_for(64, 1, 1,
                                 [](std::size_t begin, std::size_t, std::size_t) {
                                   if (begin >= 32) throw std::runtime_error("chunk failed");
                                 }),
               std::runtime_error);
  std::atomic<std::size_t> total{0};
  team.parallel_for(64, 1, 1, [&](std::size_t begin, std::size_t end, std::size_t outer) {
    team.parallel_for(10, 1, 1, [&](std::size_t b, std::size_t e, std::size_t slot) {
      EXPECT_EQ(slot, outer);  // inline, in the enclosing chunk's slot
      total += (e - b) * (end - begin);
    });
  });
  EXPECT_EQ(total.load(), 640u);
  team.parallel_for(0, 1, 1, [](std::size_t, std::size_t, std::size_t) { FAIL() << "called for no items"; });
}

}  // namespace
}  // namespace lowbit::bitlab
