// Bit packing of codes and the lookup-table inner products against decode-then-dot.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "coset_test_data.h"
#include "lowbit/core/error.h"
#include "lowbit/coset/lut.h"
#include "lowbit/coset/packing.h"

namespace lowbit::coset {
namespace {

// Float tables and float sums against a double decode-then-dot: relative to sum |x^_i y_i|,
// the error is a few float roundings per term; 1e-5 leaves a wide margin.
constexpr double kLutRelTolerance = 1e-5;

using test_data::gaussian;

TEST(CosetPacking, LayoutAndRoundTrip) {
  QuantizationConfig cfg;  // D4 q=4 M=2, T up to 10
  auto l = code_layout(cfg);
  EXPECT_EQ(l.level_bits, 8);
  EXPECT_EQ(l.t_bits, 4);
  EXPECT_EQ(l.record_bits, 20);
  for (auto type : {LatticeType::Z2, LatticeType::D4, LatticeType::E8})
    for (int q : {2, 3, 5, 16})
      for (int m : {1, 3})
        for (std::size_t n : {1, 7, 17, 33, 9000, 20000}) {
          QuantizationConfig c;
          c.lattice = type;
          c.q = q;
          c.M = m;
          c.max_scaling_iterations = 3;
          const int d = c.dim();
          std::mt19937 rng(static_cast<unsigned>(n + q));
          std::vector<std::uint8_t> codes(n * m * d), t(n), back_codes(n * m * d), back_t(n);
          for (auto& v : codes) v = static_cast<std::uint8_t>(rng() % q);
          for (auto& v : t) v = static_cast<std::uint8_t>(rng() % 4);
          std::vector<std::uint8_t> packed(packed_bytes(c, n), 0xEE);
          pack_codes(c, codes.data(), t.data(), n, packed.data());
          unpack_codes(c, packed.data(), n, back_codes.data(), back_t.data());
          ASSERT_EQ(codes, back_codes);
          ASSERT_EQ(t, back_t);
          ASSERT_EQ(packed.size(), (n * code_layout(c).record_bits + 7) / 8);
        }
}

TEST(CosetPacking, BitOrderIsLsbFirst) {
  QuantizationConfig c;
  c.lattice = LatticeType::Z2;
  c.q = 4;
  c.M = 1;
  c.disable_overload_protection = true;  // no T bits: record = one 4-bit level index
  const std::uint8_t codes[4] = {1, 2, 3, 0};  // indices 1 + 2*4 = 9 and 3
  const std::uint8_t t[2] = {0, 0};
  std::uint8_t out[1];
  pack_codes(c, codes, t, 2, out);
  EXPECT_EQ(out[0], 0x39);
}

TEST(CosetPacking, CorruptStreamsThrow) {
  QuantizationConfig c;
  c.lattice = LatticeType::Z2;
  c.q = 3;  // level index 4 bits, values >= 9 invalid
  c.M = 1;
  c.max_scaling_iterations = 2;  // 2 T bits, T = 3 invalid
  std::uint8_t codes[2], t[1];
  std::uint8_t bad_t[1] = {0x03};
  EXPECT_THROW(unpack_codes(c, bad_t, 1, codes, t), InvalidArgument);
  std::uint8_t bad_index[1] = {0xF << 2};
  EXPECT_THROW(unpack_codes(c, bad_index, 1, codes, t), InvalidArgument);
}

TEST(CosetLut, RepresentativesAreTheDecodedLevels) {
  QuantizationConfig c;
  c.lattice = LatticeType::E8;
  c.q = 2;
  c.M = 1;
  const auto reps = coset_representatives(c);
  ASSERT_EQ(reps.size(), 256u * 8);
  // Distinct cosets of 2E8: 256 distinct representatives, all in the Voronoi cell of 2E8.
  for (std::size_t i = 0; i < 256; ++i) {
    double n2 = 0;
    for (int j = 0; j < 8; ++j) n2 += reps[i * 8 + j] * reps[i * 8 + j];
    EXPECT_LE(n2, 4.0 + 1e-9);
    for (std::size_t k = 0; k < i; ++k) {
      bool same = true;
      for (int j = 0; j < 8; ++j) same = same && reps[i * 8 + j] == reps[k * 8 + j];
      ASSERT_FALSE(same) << i << " " << k;
    }
  }
}

TEST(CosetLut, OneSidedMatvecAndDotMatchDecodeThenDot) {
  struct Case {
    LatticeType type;
    int q, m;
  };
  for (const Case cs : {Case{LatticeType::D4, 4, 2}, Case{LatticeType::E8, 2, 3}, Case{LatticeType::Z2, 5, 2},
                        Case{LatticeType::D4, 3, 1}}) {
    QuantizationConfig c;
    c.lattice = cs.type;
    c.q = cs.q;
    c.M = cs.m;
    c.beta = 0.05;
    const std::size_t rows = 37, cols = 8 * 17;
    const auto a = gaussian(rows * cols, 0.3, 1);
    const auto y = gaussian(cols, 1.0, 2);
    const auto qm = QuantizedMatrix::encode(c, a.data(), rows, cols);
    std::vector<float> decoded(rows * cols), out(rows);
    qm.decode(decoded.data());
    qm.matvec_lut(y.data(), out.data());
    for (std::size_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (std::size_t k = 0; k < cols; ++k) {
        ref += double(decoded[r * cols + k]) * y[k];
        mag += std::fabs(double(decoded[r * cols + k]) * y[k]);
      }
      ASSERT_NEAR(out[r], ref, kLutRelTolerance * mag + 1e-12) << lattice_name(cs.type) << " row " << r;
    }
    // OneSidedLut::dot on the first row's codes agrees too.
    const int d = c.dim();
    std::vector<std::uint8_t> codes(cols / d * c.M * d), t(cols / d);
    encode<float>(c, a.data(), cols / d, codes.data(), t.data());
    const OneSidedLut lut(c, y.data(), cols);
    EXPECT_NEAR(lut.dot(codes.data(), t.data()), out[0], 1e-5 * (std::fabs(out[0]) + 1));
  }
}

TEST(CosetLut, TwoSidedMatchesDecodeThenDot) {
  for (auto [type, q] : {std::pair{LatticeType::D4, 4}, std::pair{LatticeType::E8, 2}, std::pair{LatticeType::Z2, 16}}) {
    QuantizationConfig c;
    c.lattice = type;
    c.q = q;
    c.M = 2;
    c.beta = 0.2;
    const int d = c.dim();
    const std::size_t blocks = 64;
    const auto x = gaussian(blocks * d, 1.0, 3);
    const auto y = gaussian(blocks * d, 1.0, 4);
    std::vector<std::uint8_t> cx(blocks * c.M * d), cy(blocks * c.M * d), tx(blocks), ty(blocks);
    encode<float>(c, x.data(), blocks, cx.data(), tx.data());
    encode<float>(c, y.data(), blocks, cy.data(), ty.data());
    std::vector<float> dx(blocks * d), dy(blocks * d);
    decode<float>(c, cx.data(), tx.data(), blocks, dx.data());
    decode<float>(c, cy.data(), ty.data(), blocks, dy.data());
    double ref = 0, mag = 0;
    for (std::size_t k = 0; k < blocks * d; ++k) {
      ref += double(dx[k]) * dy[k];
      mag += std::fabs(double(dx[k]) * dy[k]);
    }
    const TwoSidedLut lut(c);
    EXPECT_NEAR(lut.dot(cx.data(), tx.data(), cy.data(), ty.data(), blocks), ref, kLutRelTolerance * mag);
  }
  QuantizationConfig big;
  big.q = 5;  // D4: 625 entries per side
  EXPECT_THROW(TwoSidedLut{big}, InvalidArgument);
  big.q = 4;
  big.with_dither = true;
  EXPECT_THROW(TwoSidedLut{big}, InvalidArgument);
}

}  // namespace
}  // namespace lowbit::coset
