// E8 q=16 M=1 row decode written once over int32 lanes (one block per lane), included by
// deploy_avx2.cpp and deploy_avx512.cpp. Integer twin of decode_ref's lattice_step for this
// format: U = 2 G b (C = 2), div = 32, both D8 cosets, the tie-dither rule; results are the
// C-scaled integers e, identical to the reference decode (the test compares them).
//
// V provides: I (int32 lanes), Mask, kWidth, set1, add, sub, mullo, srai<n>, slli<n>, slli_var,
// srli_var, and_, or_, abs, max, eq, lt, select(mask, a, b) (a where set), and_m, or_m, not_m,
// load(p) (kWidth dwords), store_blocks(lo, hi, u) (lo / hi hold bytes 0-3 / 4-7 of each lane's
// block; writes kWidth blocks of 8 bytes in lane order) and store_scales(scales16, t, s)
// (kWidth T nibbles -> scales).
#pragma once

#include <cstddef>
#include <cstdint>

#include "deploy_kernels.h"

namespace lowbit::coset::kernels::generic {

template <class V>
struct E8Q16Lanes {
  using I = typename V::I;
  using Mask = typename V::Mask;
  static constexpr std::size_t W = V::kWidth;

  // Residual of one coset: r = floor((v + 16) / 32), e = v - 32 r, then the D_n parity fix.
  [[gnu::always_inline]] static void coset(const I* v, I* e) {
    I r[8];
    I parity = V::set1(0);
    for (int j = 0; j < 8; ++j) {
      r[j] = V::template srai<5>(V::add(v[j], V::set1(16)));
      e[j] = V::sub(v[j], V::template slli<5>(r[j]));
      parity = V::add(parity, r[j]);
    }
    const Mask odd = V::eq(V::and_(parity, V::set1(1)), V::set1(1));
    // key = |e| * 16 + (e >= 0 ? 8 + j : 7 - j): the lexicographic (|e_j|, s_j 2^j) of lattice.h.
    I key[8];
    I best = V::set1(-1);
    for (int j = 0; j < 8; ++j) {
      const Mask neg = V::lt(e[j], V::set1(0));
      key[j] = V::add(V::template slli<4>(V::abs(e[j])), V::select(neg, V::set1(7 - j), V::set1(8 + j)));
      best = V::max(best, key[j]);
    }
    for (int j = 0; j < 8; ++j) {
      const Mask fix = V::and_m(odd, V::eq(key[j], best));
      const Mask neg = V::lt(e[j], V::set1(0));
      e[j] = V::select(fix, V::select(neg, V::add(e[j], V::set1(32)), V::sub(e[j], V::set1(32))), e[j]);
    }
  }

  static void decode_row(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t,
                         std::size_t blocks, std::uint8_t* u, float* s) {
    std::size_t k = 0;
    for (; k + W <= blocks; k += W) {
      const I c = V::load(codes + 4 * k);
      I b[8];
      for (int j = 0; j < 8; ++j) b[j] = V::and_(V::srli_var(c, 4 * j), V::set1(15));
      const I h = b[7];  // 2 * (b7 / 2): the (1/2, ..., 1/2) column, scaled by C = 2
      I v[8];
      v[0] = V::add(V::template slli<1>(V::sub(V::template slli<1>(b[0]), b[1])), h);
      for (int j = 1; j <= 5; ++j) v[j] = V::add(V::template slli<1>(V::sub(b[j], b[j + 1])), h);
      v[6] = V::add(V::template slli<1>(b[6]), h);
      v[7] = h;
      I e0[8], e1[8], v1[8];
      coset(v, e0);
      for (int j = 0; j < 8; ++j) v1[j] = V::sub(v[j], V::set1(16));
      coset(v1, e1);
      I d0 = V::set1(0), d1 = V::set1(0), n0 = V::set1(0), n1 = V::set1(0);
      for (int j = 0; j < 8; ++j) {
        d0 = V::add(d0, V::mullo(e0[j], e0[j]));
        d1 = V::add(d1, V::mullo(e1[j], e1[j]));
        n0 = V::add(n0, V::slli_var(e0[j], j));
        n1 = V::add(n1, V::slli_var(e1[j], j));
      }
      // Keep coset 0 iff d0 < d1, or d0 == d1 and n0 <= n1.
      const Mask keep0 = V::or_m(V::lt(d0, d1), V::and_m(V::eq(d0, d1), V::not_m(V::lt(n1, n0))));
      I lo = V::set1(0), hi = V::set1(0);
      for (int j = 0; j < 4; ++j) {
        lo = V::or_(lo, V::slli_var(V::add(V::select(keep0, e0[j], e1[j]), V::set1(kDeployBias)), 8 * j));
        hi = V::or_(hi, V::slli_var(V::add(V::select(keep0, e0[j + 4], e1[j + 4]), V::set1(kDeployBias)), 8 * j));
      }
      V::store_blocks(lo, hi, u + 8 * k);
      V::store_scales(scales16, t + k / 2, s + k);
    }
    if (k < blocks) decode_e8q16_ref(scales16, codes + 4 * k, t + k / 2, blocks - k, u + 8 * k, s + k);
  }
};

}  // namespace lowbit::coset::kernels::generic
