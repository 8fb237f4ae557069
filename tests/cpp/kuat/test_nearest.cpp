#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "lowbit/core/simd.h"
#include "lowbit/kuat/nearest.h"

namespace lowbit::kuat {
namespace {

struct Result {
  std::vector<std::uint32_t> idx;
  std::vector<float> score;
};

Result run(const NearestCodeword& nc, const std::vector<float>& pts, std::size_t n) {
  Result r{std::vector<std::uint32_t>(n), std::vector<float>(n)};
  nc.search(pts.data(), n, r.idx.data(), r.score.data());
  return r;
}

// Every SIMD level returns bit-identical scores and the same argmin as the scalar reference,
// for float codewords (training) and integer ones with many exact ties (encoding).
TEST(KuatNearest, EveryLevelMatchesScalarBitExactly) {
  ScopedSimdLevel guard;
  std::mt19937 rng(3);
  for (std::uint32_t dim : {4u, 12u, 16u, 48u, 1u, 7u}) {
    for (std::uint32_t count : {1u, 2u, 3u, 7u, 15u, 16u, 17u, 33u, 100u, 512u}) {
      for (bool integer : {false, true}) {
        std::vector<float> cw(std::size_t{count} * dim), pts;
        std::uniform_real_distribution<float> u(0.0f, 255.0f);
        // Integer codebooks from a tiny alphabet so duplicates (ties) are common.
        for (auto& v : cw) v = integer ? static_cast<float>(rng() % 3 * 100) : u(rng);
        const std::size_t n = 37;
        pts.resize(n * dim);
        for (auto& v : pts) v = integer ? static_cast<float>(rng() % 256) : u(rng);
        NearestCodeword nc(cw.data(), count, dim);
        set_simd_level(SimdLevel::Scalar);
        const Result ref = run(nc, pts, n);
        for (auto level : available_simd_levels()) {
          set_simd_level(level);
          for (std::size_t m : {std::size_t{1}, std::size_t{3}, std::size_t{5}, n}) {
            const Result got = run(nc, pts, m);
            ASSERT_EQ(last_dispatched_level(), level);
            for (std::size_t i = 0; i < m; ++i) {
              ASSERT_EQ(got.idx[i], ref.idx[i]) << simd_level_name(level) << " dim=" << dim << " K=" << count;
              ASSERT_EQ(got.score[i], ref.score[i]) << simd_level_name(level);
            }
          }
        }
      }
    }
  }
}

// On integer data the result is the exact nearest codeword (lowest index among ties).
TEST(KuatNearest, IntegerDataGivesExactNearestLowestIndex) {
  std::mt19937 rng(5);
  const std::uint32_t dim = 12, count = 300;
  std::vector<std::uint8_t> cb(count * dim);
  for (auto& v : cb) v = static_cast<std::uint8_t>(rng() % 4 * 85);
  NearestCodeword nc = NearestCodeword::from_uint8(cb.data(), count, dim);
  for (auto level : available_simd_levels()) {
    set_simd_level(level);
    for (int t = 0; t < 200; ++t) {
      std::vector<float> x(dim);
      for (auto& v : x) v = static_cast<float>(rng() % 256);
      std::uint32_t best_k = 0;
      long best = -1;
      for (std::uint32_t k = 0; k < count; ++k) {
        long d = 0;
        for (std::uint32_t j = 0; j < dim; ++j) {
          const long diff = static_cast<long>(x[j]) - cb[k * dim + j];
          d += diff * diff;
        }
        if (best < 0 || d < best) {
          best = d;
          best_k = k;
        }
      }
      std::uint32_t got;
      float score;
      nc.search(x.data(), 1, &got, &score);
      long xx = 0;
      for (float v : x) xx += static_cast<long>(v) * static_cast<long>(v);
      ASSERT_EQ(got, best_k);
      ASSERT_EQ(static_cast<long>(score) + xx, best);
    }
  }
  set_simd_level(best_simd_level());
}

}  // namespace
}  // namespace lowbit::kuat

#include "lowbit/kuat/nearest_u8.h"

namespace lowbit::kuat {
namespace {

// Brute-force nearest codeword of each point (squared L2, lowest index among ties).
std::vector<std::uint32_t> brute_force_nearest(const std::vector<std::uint8_t>& pts, std::size_t n,
                                               const std::vector<std::uint8_t>& cb, std::uint32_t count,
                                               std::uint32_t dim) {
  std::vector<std::uint32_t> nearest(n);
  for (std::size_t i = 0; i < n; ++i) {
    long best = -1;
    for (std::uint32_t k = 0; k < count; ++k) {
      long d = 0;
      for (std::uint32_t j = 0; j < dim; ++j) {
        const long t = long{pts[i * dim + j]} - cb[std::size_t{k} * dim + j];
        d += t * t;
      }
      if (best < 0 || d < best) best = d, nearest[i] = k;
    }
  }
  return nearest;
}

// The integer encoder search: every level returns exactly the brute-force nearest codeword
// (lowest index among ties), for odd and even dimensions and awkward codebook sizes.
TEST(KuatNearestU8, EveryLevelIsTheExactNearest) {
  std::mt19937 rng(11);
  for (std::uint32_t dim : {1u, 3u, 4u, 5u, 7u, 12u, 13u, 16u, 48u}) {
    for (std::uint32_t count : {1u, 2u, 3u, 7u, 15u, 16u, 17u, 33u, 300u}) {
      std::vector<std::uint8_t> cb(std::size_t{count} * dim);
      for (auto& v : cb) v = static_cast<std::uint8_t>(rng() % 4 * 85);  // many duplicate codewords
      for (std::size_t j = 0; j < dim && count > 1; ++j) cb[dim + j] = 255;  // extremes
      const std::size_t n = 37;
      std::vector<std::uint8_t> pts(n * dim);
      for (auto& v : pts) v = static_cast<std::uint8_t>(rng());
      const std::vector<std::uint32_t> expected = brute_force_nearest(pts, n, cb, count, dim);
      const NearestCodewordU8 nc(cb.data(), count, dim);
      ScopedSimdLevel guard;
      for (auto level : available_simd_levels()) {
        set_simd_level(level);
        for (std::size_t m : {std::size_t{1}, std::size_t{5}, std::size_t{9}, std::size_t{13}, std::size_t{25}, n}) {
          std::vector<std::uint32_t> got(m);
          nc.search(pts.data(), m, got.data());
          for (std::size_t i = 0; i < m; ++i) {
            ASSERT_EQ(got[i], expected[i]) << simd_level_name(level) << " dim=" << dim << " K=" << count << " i=" << i;
          }
        }
      }
    }
  }
}


// Large codebooks are searched in chunks of 2^shift blocks (the block field of the packed key);
// a chunk boundary must neither lose the best codeword nor break ties toward the lower index.
// dim 48 has the smallest chunk (2^9 blocks = 8192 codewords), so crossing it stays cheap.
TEST(KuatNearestU8, ChunkBoundariesKeepExactNearestAndLowestIndexTies) {
  constexpr std::uint32_t dim = 48;
  const NearestU8Layout probe = NearestCodewordU8(std::vector<std::uint8_t>(dim, 0).data(), 1, dim).layout();
  const std::uint32_t chunk = 16u << probe.shift;
  ASSERT_EQ(chunk, 8192u);
  std::mt19937 rng(5);
  for (std::uint32_t count : {chunk - 1, chunk, chunk + 1, 2 * chunk + 7}) {
    std::vector<std::uint8_t> cb(std::size_t{count} * dim);
    for (auto& v : cb) v = static_cast<std::uint8_t>(rng());
    const std::size_t n = 29;
    std::vector<std::uint8_t> pts(n * dim);
    for (auto& v : pts) v = static_cast<std::uint8_t>(rng());
    for (std::size_t j = 0; j < dim; ++j) pts[j] = 0, pts[dim + j] = 255;  // extreme points
    // Point 2 sits exactly on a codeword duplicated on both sides of the boundary.
    const std::uint32_t late = count - 1, early = chunk / 2;
    std::copy_n(&cb[std::size_t{late} * dim], dim, &cb[std::size_t{early} * dim]);
    std::copy_n(&cb[std::size_t{late} * dim], dim, &pts[2 * dim]);
    const std::vector<std::uint32_t> expected = brute_force_nearest(pts, n, cb, count, dim);
    ASSERT_EQ(expected[2], early);  // the brute force itself takes the lower duplicate
    const NearestCodewordU8 nc(cb.data(), count, dim);
    ScopedSimdLevel guard;
    for (auto level : available_simd_levels()) {
      set_simd_level(level);
      std::vector<std::uint32_t> got(n);
      nc.search(pts.data(), n, got.data());
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i], expected[i]) << simd_level_name(level) << " K=" << count << " i=" << i;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit::kuat
