// The language-model runtime's float loops (src/bitlab/lm_ops.h) at every SIMD level against the
// orders lm_ops.h defines, bit for bit; and the Team (src/bitlab/team.h) that runs its sections.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "bitlab/lm_ops.h"
#include "bitlab/team.h"
#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/ternary.h"
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

void spec_columns(const float* x, std::size_t ldx, std::size_t nx, const float* wt, std::size_t d, std::size_t ld,
                  std::size_t n, float scale, float* y, std::size_t ldy) {
  for (std::size_t r = 0; r < nx; ++r) {
    for (std::size_t j = 0; j < n; ++j) {
      float s = 0.0f;
      for (std::size_t e = 0; e < d; ++e) s = s + x[r * ldx + e] * wt[e * ld + j];
      y[r * ldy + j] = s * scale;
    }
  }
}

void spec_rows(const float* p, std::size_t ldp, std::size_t np, const float* v, std::size_t ldv, std::size_t n,
               std::size_t d, float* out, std::size_t ldo) {
  for (std::size_t r = 0; r < np; ++r) {
    for (std::size_t e = 0; e < d; ++e) {
      float s = 0.0f;
      for (std::size_t j = 0; j < n; ++j) s = s + p[r * ldp + j] * v[j * ldv + e];
      out[r * ldo + e] = s;
    }
  }
}

void spec_softmax(float* x, std::size_t n) {
  float m = x[0];
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  for (std::size_t i = 0; i < n; ++i) x[i] = kernels::lm_exp(x[i] - m);
  float part[16] = {};
  const std::size_t body = n / 16 * 16;
  for (std::size_t i = 0; i < body; ++i) part[i % 16] = part[i % 16] + x[i];
  float s = 0.0f;
  for (float p : part) s = s + p;
  for (std::size_t i = body; i < n; ++i) s = s + x[i];
  for (std::size_t i = 0; i < n; ++i) x[i] = x[i] / s;
}

void spec_glu(const std::int32_t* ag, const std::int32_t* au, const float* wg, const float* wu, float act_scale,
              std::size_t n, bool relu2, float* out) {
  for (std::size_t j = 0; j < n; ++j) {
    const float g = int8_epilogue(ag[j], act_scale, wg[j]), u = int8_epilogue(au[j], act_scale, wu[j]);
    float a;
    if (relu2) {
      const float r = g > 0.0f ? g : 0.0f;
      a = r * r;
    } else {
      a = g / (1.0f + kernels::lm_exp(-g));
    }
    out[j] = a * u;
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
      for (std::size_t rows : {1u, 3u, 4u, 6u}) {
        if (rows > 1 && (n > 258 || d == 1)) continue;  // (several query rows: attention sizes)
        // ld covers n rounded up to 16 (the kernels read whole 16-column tiles); ldx, ldp, ldy
        // and ldo leave gaps between the rows
        const std::size_t ld = (n + 15) / 16 * 16 + 5, ldv = d + 3, ldx = d + 2, ldp = n + 1, ldy = n + 7, ldo = d + 4;
        const auto a = random_floats(n, rng), b = random_floats(n, rng);
        const auto x = random_floats(rows * ldx, rng), wt = random_floats(d * ld, rng);
        const auto p = random_floats(rows * ldp, rng), v = random_floats(n * ldv, rng);
        std::vector<float> y_spec(rows * ldy, -1.0f), out_spec(rows * ldo, -1.0f);
        spec_columns(x.data(), ldx, rows, wt.data(), d, ld, n, 0.125f, y_spec.data(), ldy);
        spec_rows(p.data(), ldp, rows, v.data(), ldv, n, d, out_spec.data(), ldo);
        const float dot_spec = spec_dot(a.data(), b.data(), n);
        for (SimdLevel level : available_simd_levels()) {
          set_simd_level(level);
          const kernels::LmOps& ops = kernels::lm_ops();
          ASSERT_EQ(last_dispatched_level(), level);
          const float got = ops.dot(a.data(), b.data(), n);
          ASSERT_EQ(0, std::memcmp(&got, &dot_spec, sizeof got)) << simd_level_name(level) << " dot n=" << n;
          std::vector<float> y(rows * ldy, -1.0f), out(rows * ldo, -1.0f);
          ops.columns(x.data(), ldx, rows, wt.data(), d, ld, n, 0.125f, y.data(), ldy);
          ops.rows(p.data(), ldp, rows, v.data(), ldv, n, d, out.data(), ldo);
          ASSERT_TRUE(same_bits(y, y_spec)) << simd_level_name(level) << " columns n=" << n << " d=" << d << " rows=" << rows;
          ASSERT_TRUE(same_bits(out, out_spec)) << simd_level_name(level) << " rows n=" << n << " d=" << d << " rows=" << rows;
        }
      }
    }
  }
}

TEST(LmOps, SoftmaxGluEpilogueAndQuantizeMatchTheirDefinitionsAtEveryLevel) {
  ScopedSimdLevel guard;
  std::mt19937 rng(23);
  std::uniform_int_distribution<std::int32_t> accs(-40000, 40000);
  std::uniform_real_distribution<float> scales(0.001f, 0.05f);
  for (std::size_t n : {1u, 5u, 16u, 17u, 33u, 100u, 257u, 1024u, 2816u}) {
    auto logits = random_floats(n, rng);
    for (auto& z : logits) z *= 12.0f;  // spread: some exp arguments far below 0
    std::vector<std::int32_t> ag(n), au(n);
    std::vector<float> wg(n), wu(n);
    for (std::size_t j = 0; j < n; ++j) {
      ag[j] = accs(rng);
      au[j] = accs(rng);
      wg[j] = scales(rng);
      wu[j] = scales(rng);
    }
    // activation rows: plain, with a value clamped to -128 (the row maximum is positive), all zero
    auto act = random_floats(n, rng);
    // and a row whose max is below 127 / FLT_MAX (127 / a overflows: zeros, ternary.h)
    std::vector<std::vector<float>> rows{act, act, std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
    rows[1][0] = 3.0f;
    rows[1][n - 1] = -3.1f;
    rows[3][0] = 1e-38f;
    rows[3][n - 1] = -2e-39f;
    for (const auto& row : rows) {
      std::vector<std::int8_t> want(n);
      float want_scale = 0.0f;
      const std::int32_t want_sum = quantize_activation_row(row.data(), n, want.data(), want_scale);
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        const kernels::LmOps& ops = kernels::lm_ops();
        std::vector<std::int8_t> got(n, 99);
        float scale = -1.0f;
        std::int32_t sum = -1;
        ASSERT_TRUE(ops.quantize(row.data(), n, got.data(), &scale, &sum));
        EXPECT_EQ(got, want) << simd_level_name(level) << " n=" << n;
        EXPECT_EQ(0, std::memcmp(&scale, &want_scale, sizeof scale)) << simd_level_name(level);
        EXPECT_EQ(sum, want_sum) << simd_level_name(level);
        if (&row == &rows[3]) {  // the reference itself: zeros, sum 0
          EXPECT_EQ(want, std::vector<std::int8_t>(n, 0));
          EXPECT_EQ(want_sum, 0);
        }
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
          std::vector<float> broken = row;
          broken[n / 2] = bad;
          EXPECT_FALSE(ops.quantize(broken.data(), n, got.data(), &scale, &sum)) << simd_level_name(level) << " " << bad;
        }
      }
    }
    std::vector<float> soft_spec = logits;
    spec_softmax(soft_spec.data(), n);
    const auto residual = random_floats(n, rng);
    for (bool add : {false, true}) {
      std::vector<float> want = residual;
      for (std::size_t r = 0; r < n; ++r) {
        const float v = int8_epilogue(ag[r], 0.03f, wg[r]);
        want[r] = add ? want[r] + v : v;
      }
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<float> y = residual;
        kernels::lm_ops().epilogue(ag.data(), wg.data(), 0.03f, n, add, y.data());
        ASSERT_TRUE(same_bits(y, want)) << simd_level_name(level) << " epilogue n=" << n << " add=" << add;
      }
    }
    for (bool relu2 : {false, true}) {
      std::vector<float> glu_spec(n);
      spec_glu(ag.data(), au.data(), wg.data(), wu.data(), 0.02f, n, relu2, glu_spec.data());
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        const kernels::LmOps& ops = kernels::lm_ops();
        std::vector<float> glu(n, -1.0f), soft = logits;
        ops.glu(ag.data(), au.data(), wg.data(), wu.data(), 0.02f, n, relu2, glu.data());
        ops.softmax(soft.data(), n);
        ASSERT_TRUE(same_bits(glu, glu_spec)) << simd_level_name(level) << " glu n=" << n << " relu2=" << relu2;
        ASSERT_TRUE(same_bits(soft, soft_spec)) << simd_level_name(level) << " softmax n=" << n;
      }
    }
  }
}

TEST(LmOps, ExpIsWithinTwoUlpOfTheLibrary) {
  // lm_exp against double-precision exp over its range, and its clamps
  double worst = 0.0;
  for (float x = -86.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const float got = kernels::lm_exp(x);
    const double ulp = std::nextafter(static_cast<float>(want), std::numeric_limits<float>::infinity()) -
                       static_cast<float>(want);
    worst = std::max(worst, std::fabs(got - want) / ulp);
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(kernels::lm_exp(0.0f), 1.0f);
  EXPECT_EQ(kernels::lm_exp(-1000.0f), kernels::lm_exp(-86.0f));
  EXPECT_GT(kernels::lm_exp(-1000.0f), 0.0f);
  EXPECT_EQ(kernels::lm_exp(1000.0f), kernels::lm_exp(88.0f));
  EXPECT_TRUE(std::isfinite(kernels::lm_exp(88.0f)));
  // NaN in, NaN out, without converting NaN to an integer (undefined behaviour: the sanitizer
  // build aborts); a softmax row with +inf (an overflowed score) is NaN throughout at every level.
  EXPECT_TRUE(std::isnan(kernels::lm_exp(std::numeric_limits<float>::quiet_NaN())));
  ScopedSimdLevel guard;
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(level);
    std::vector<float> row(37, 1.0f);
    row[20] = std::numeric_limits<float>::infinity();
    kernels::lm_ops().softmax(row.data(), row.size());
    for (float v : row) ASSERT_TRUE(std::isnan(v)) << simd_level_name(level);
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

TEST(Team, ChunksPerThreadBoundTheSplit) {
  Team team(2);
  for (std::size_t per_thread : {0u, 1u, 4u, 16u}) {
    std::atomic<std::size_t> chunks{0}, items{0};
    team.parallel_for(1000, 1, 1, [&](std::size_t begin, std::size_t end, std::size_t) {
      chunks += 1;
      items += end - begin;
    }, per_thread);
    EXPECT_EQ(items.load(), 1000u);
    // per_thread 0 counts as 1; one chunk in all runs on the caller
    EXPECT_EQ(chunks.load(), 2 * std::max<std::size_t>(per_thread, 1)) << per_thread;
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
