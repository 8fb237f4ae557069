// Lattices: generators, closest points against brute force, the tie rule, second moments.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "coset/lattice_step.h"
#include "lowbit/core/error.h"
#include "lowbit/coset/lattice.h"

namespace lowbit::coset {
namespace {

constexpr LatticeType kAll[] = {LatticeType::Z2, LatticeType::D4, LatticeType::E8};

TEST(CosetLattice, GeneratorTimesInverseIsIdentityAndDetIsVolume) {
  for (auto type : kAll) {
    const int d = lattice_dim(type);
    const auto g = generator_matrix(type);
    const auto inv = inverse_generator_matrix(type);
    for (int r = 0; r < d; ++r)
      for (int c = 0; c < d; ++c) {
        double s = 0;
        for (int k = 0; k < d; ++k) s += g[r * d + k] * inv[k * d + c];
        EXPECT_EQ(s, r == c ? 1.0 : 0.0) << lattice_name(type);
      }
    // Lower-triangular up to the E8 half column: the determinant is the diagonal product.
    double det = 1;
    for (int i = 0; i < d; ++i) det *= g[i * d + i];
    EXPECT_EQ(std::fabs(det), lattice_volume(type)) << lattice_name(type);
  }
}

TEST(CosetLattice, ParseAndNames) {
  EXPECT_EQ(parse_lattice("d4"), LatticeType::D4);
  EXPECT_EQ(parse_lattice("E8"), LatticeType::E8);
  EXPECT_THROW(parse_lattice("A2"), InvalidArgument);
  EXPECT_STREQ(lattice_name(LatticeType::Z2), "Z2");
}

// Membership of a C-scaled integer point.
bool in_lattice(LatticeType type, const std::vector<long long>& p) {
  long long sum = 0;
  for (auto v : p) sum += v;
  if (type == LatticeType::Z2) return true;
  if (type == LatticeType::D4) return sum % 2 == 0;
  const bool all_even = std::all_of(p.begin(), p.end(), [](long long v) { return v % 2 == 0; });
  const bool all_odd = std::all_of(p.begin(), p.end(), [](long long v) { return v % 2 != 0; });
  if (all_even) return (sum / 2) % 2 == 0;
  if (all_odd) return ((sum - 8) / 2) % 2 == 0;  // sum of (c - 1/2), times 2 / 2
  return false;
}

// Calls fn on every C-scaled integer point within `radius` (in lattice units) of y.
void for_each_near(LatticeType type, const std::vector<double>& y, double radius,
                   const std::function<void(const std::vector<long long>&)>& fn) {
  const int d = lattice_dim(type);
  const int c = coordinate_scale(type);
  std::vector<long long> lo(d), hi(d), p(d);
  for (int j = 0; j < d; ++j) {
    lo[j] = static_cast<long long>(std::floor((y[j] - radius) * c));
    hi[j] = static_cast<long long>(std::ceil((y[j] + radius) * c));
    p[j] = lo[j];
  }
  while (true) {
    if (in_lattice(type, p)) fn(p);
    int j = 0;
    while (j < d && ++p[j] > hi[j]) p[j] = lo[j], ++j;
    if (j == d) return;
  }
}

TEST(CosetLattice, ClosestPointMatchesBruteForce) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> dist(-6.0, 6.0);
  for (auto type : kAll) {
    const int d = lattice_dim(type);
    const int c = coordinate_scale(type);
    const int count = type == LatticeType::E8 ? 40 : 1000;
    std::vector<double> x(count * d), out(count * d);
    for (auto& v : x) v = dist(rng);
    closest_points(type, x.data(), count, out.data());
    for (int i = 0; i < count; ++i) {
      std::vector<double> y(x.begin() + i * d, x.begin() + (i + 1) * d);
      double best = 1e300;
      std::vector<double> arg(d);
      for_each_near(type, y, covering_radius(type) + 1e-9, [&](const std::vector<long long>& p) {
        double s = 0;
        for (int j = 0; j < d; ++j) s += (y[j] - double(p[j]) / c) * (y[j] - double(p[j]) / c);
        if (s < best) {
          best = s;
          for (int j = 0; j < d; ++j) arg[j] = double(p[j]) / c;
        }
      });
      for (int j = 0; j < d; ++j) ASSERT_EQ(out[i * d + j], arg[j]) << lattice_name(type) << " vector " << i;
    }
  }
}

TEST(CosetLattice, ClosestPointFloatAgreesWithDouble) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 8.0f);
  for (auto type : kAll) {
    const int d = lattice_dim(type);
    const std::size_t n = 4001;
    std::vector<float> xf(n * d), of(n * d);
    for (auto& v : xf) v = dist(rng);
    std::vector<double> xd(xf.begin(), xf.end()), od(n * d);
    closest_points(type, xf.data(), n, of.data());
    closest_points(type, xd.data(), n, od.data());
    for (std::size_t k = 0; k < n * d; ++k) ASSERT_EQ(double(of[k]), od[k]) << lattice_name(type);
  }
}

// The tie rule on rational points v / div: lattice_step must return the minimiser of
// (|y - c|^2, <w, y - c>) lexicographically, computed here exactly in integers.
TEST(CosetLattice, TieRuleIsTheNudgedClosestPoint) {
  std::mt19937_64 rng(3);
  for (auto type : kAll) {
    const int d = lattice_dim(type);
    const int c = coordinate_scale(type);
    for (int q = 2; q <= 16; ++q) {
      const long long div = static_cast<long long>(c) * q;
      const auto step = detail::make_step<double>(double(div), true);
      std::uniform_int_distribution<int> coord(-3 * q, 3 * q);
      for (int trial = 0; trial < (type == LatticeType::E8 ? 4 : 200); ++trial) {
        std::vector<double> v(d);
        for (int j = 0; j < d; ++j) {
          v[j] = coord(rng) * c;
          if (type == LatticeType::E8 && trial % 2) v[j] += 1;  // half-integer coset
        }
        double point[8], e[8];
        detail::lattice_step(type, v.data(), step, point, e);
        std::vector<double> y(d);
        for (int j = 0; j < d; ++j) y[j] = v[j] / double(div);
        long long best_n = -1, best_w = 0;
        std::vector<long long> arg;
        for_each_near(type, y, covering_radius(type) + 1e-9, [&](const std::vector<long long>& p) {
          long long n2 = 0, w = 0;  // scaled by (C div) and (C div)^2
          for (int j = 0; j < d; ++j) {
            const long long diff = static_cast<long long>(v[j]) * c - div * p[j];
            n2 += diff * diff;
            w += (1ll << j) * diff;
          }
          if (best_n < 0 || n2 < best_n || (n2 == best_n && w < best_w)) {
            best_n = n2;
            best_w = w;
            arg = p;
          }
        });
        for (int j = 0; j < d; ++j)
          ASSERT_EQ(static_cast<long long>(point[j]), arg[j]) << lattice_name(type) << " q=" << q;
        for (int j = 0; j < d; ++j) ASSERT_EQ(e[j], v[j] - double(div) * point[j] / c);
      }
    }
  }
}

// Normalised second moment G = E|y - Q(y)|^2 / (d V^(2/d)) for y uniform modulo the lattice:
// y uniform in [0, 2)^d is exact since 2 Z^d is a sublattice of all three.
TEST(CosetLattice, NormalisedSecondMomentWithinPointOnePercent) {
  struct Case {
    LatticeType type;
    double expected;
    std::size_t samples;
  };
  const Case cases[] = {{LatticeType::Z2, 1.0 / 12.0, 1u << 22},
                        {LatticeType::D4, 13.0 / (120.0 * std::sqrt(2.0)), 1u << 21},
                        {LatticeType::E8, 929.0 / 12960.0, 1u << 20}};
  for (const auto& cs : cases) {
    const int d = lattice_dim(cs.type);
    std::mt19937_64 rng(2024);
    // Stratified in the first coordinate (one stratum per sample) to shrink the variance.
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<double> y(cs.samples * d), qy(cs.samples * d);
    for (std::size_t i = 0; i < cs.samples; ++i) {
      y[i * d] = 2.0 * (static_cast<double>(i) + unit(rng)) / static_cast<double>(cs.samples);
      for (int j = 1; j < d; ++j) y[i * d + j] = 2.0 * unit(rng);
    }
    closest_points(cs.type, y.data(), cs.samples, qy.data());
    double sum = 0;
    for (std::size_t k = 0; k < y.size(); ++k) sum += (y[k] - qy[k]) * (y[k] - qy[k]);
    const double nsm = sum / cs.samples / (d * std::pow(lattice_volume(cs.type), 2.0 / d));
    EXPECT_NEAR(nsm / cs.expected, 1.0, 1e-3) << lattice_name(cs.type) << " NSM " << nsm;
    std::printf("%s NSM %.7f (expected %.7f, ratio - 1 = %+.2e)\n", lattice_name(cs.type), nsm, cs.expected, nsm / cs.expected - 1);
  }
}

}  // namespace
}  // namespace lowbit::coset
