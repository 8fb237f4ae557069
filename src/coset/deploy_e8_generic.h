// E8 q=16 M=1 row decode written once over int16 lanes (one block per lane), included by
// deploy_avx2.cpp and deploy_avx512.cpp. Integer twin of decode_e8q16_ref (deploy_ref.cpp), which
// the tests hold equal to the HNLQ decode: U = 2 G b (C = 2), div = 32, both D8 cosets, the
// tie-dither rule. Every intermediate fits int16 (|U| <= 75, |e| <= 32, keys <= 527, squared
// norms <= 8192, nudge sums |sum 2^j e_j| <= 8160).
//
// V provides: I (int16 lanes), Mask, kBlocks (blocks per iteration = lanes), set1, add, sub,
// mullo, srai<n>, slli<n>, and_, or_, abs, max, eq, lt, select(mask, a, b) (a where
// set), and_m, not_m, or_m; codes(p, b) (kBlocks blocks' 8 codes into b[0..7], lanes in V's
// order), store(lo_a, lo_b, hi_a, hi_b, w) (16-bit lanes holding bytes 0-1, 2-3, 4-5, 6-7 of
// each lane's block, written in deploy_pos layout), store_sums(sum, wb) (each lane's int16 sum
// times -kActBias as int32, in block order) and store_scales(scales16, t, s).
#pragma once

#include <cstddef>
#include <cstdint>

#include "deploy_kernels.h"

// The loops over the 8 coordinates must unroll (at -O2 too) so that the arrays live in registers.
#if defined(__clang__)
#define LOWBIT_UNROLL8 _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define LOWBIT_UNROLL8 _Pragma("GCC unroll 8")
#else
#define LOWBIT_UNROLL8
#endif

namespace lowbit::coset::kernels::generic {

template <class V>
struct E8Q16Lanes {
  using I = typename V::I;
  using Mask = typename V::Mask;
  static constexpr std::size_t B = V::kBlocks;

  // Coset 0: r = floor((v + 16) / 32), e = v - 32 r. Coset 1 (v - 16) follows from it:
  // e1 = e - 16 where e >= 0 (same r), e + 16 where e < 0 (r - 1), so its parity flips once per
  // negative e. Then the D_n parity fix of each.
  [[gnu::always_inline]] static void fix(I* e, Mask odd) {
    // key = |e| * 16 + (e >= 0 ? 8 + j : 7 - j): the lexicographic (|e_j|, s_j 2^j) of lattice.h.
    I key[8];
    I best = V::set1(-1);
    LOWBIT_UNROLL8
    for (int j = 0; j < 8; ++j) {
      key[j] = V::add(V::template slli<4>(V::abs(e[j])), V::select(V::lt(e[j], V::set1(0)), V::set1(7 - j), V::set1(8 + j)));
      best = V::max(best, key[j]);
    }
    LOWBIT_UNROLL8
    for (int j = 0; j < 8; ++j) {
      const Mask hit = V::and_m(odd, V::eq(key[j], best));
      const I moved = V::select(V::lt(e[j], V::set1(0)), V::add(e[j], V::set1(32)), V::sub(e[j], V::set1(32)));
      e[j] = V::select(hit, moved, e[j]);
    }
  }

  static void decode_row(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t,
                         std::size_t blocks, std::int8_t* out, float* s, std::int32_t* wb) {
    std::size_t k = 0;
    for (; k + B <= blocks; k += B) {
      I b[8];
      V::codes(codes + 4 * k, b);
      const I h = b[7];  // 2 * (b7 / 2): the (1/2, ..., 1/2) column, scaled by C = 2
      I v[8];
      v[0] = V::add(V::template slli<1>(V::sub(V::template slli<1>(b[0]), b[1])), h);
      LOWBIT_UNROLL8
      for (int j = 1; j <= 5; ++j) v[j] = V::add(V::template slli<1>(V::sub(b[j], b[j + 1])), h);
      v[6] = V::add(V::template slli<1>(b[6]), h);
      v[7] = h;
      I e0[8], e1[8];
      I parity0 = V::set1(0), parity1 = V::set1(0);
      LOWBIT_UNROLL8
      for (int j = 0; j < 8; ++j) {
        const I r = V::template srai<5>(V::add(v[j], V::set1(16)));
        e0[j] = V::sub(v[j], V::template slli<5>(r));
        const Mask neg = V::lt(e0[j], V::set1(0));
        e1[j] = V::select(neg, V::add(e0[j], V::set1(16)), V::sub(e0[j], V::set1(16)));
        parity0 = V::add(parity0, r);
        parity1 = V::add(parity1, V::select(neg, V::sub(r, V::set1(1)), r));
      }
      fix(e0, V::eq(V::and_(parity0, V::set1(1)), V::set1(1)));
      fix(e1, V::eq(V::and_(parity1, V::set1(1)), V::set1(1)));
      // Squared norms, and the nudge sums sum_j 2^j e_j by Horner (shifts by an immediate).
      I d0 = V::set1(0), d1 = V::set1(0), n0 = V::set1(0), n1 = V::set1(0);
      LOWBIT_UNROLL8
      for (int j = 7; j >= 0; --j) {
        d0 = V::add(d0, V::mullo(e0[j], e0[j]));
        d1 = V::add(d1, V::mullo(e1[j], e1[j]));
        n0 = V::add(V::template slli<1>(n0), e0[j]);
        n1 = V::add(V::template slli<1>(n1), e1[j]);
      }
      // Keep coset 0 iff d0 < d1, or d0 == d1 and n0 <= n1.
      const Mask keep0 = V::or_m(V::lt(d0, d1), V::and_m(V::eq(d0, d1), V::not_m(V::lt(n1, n0))));
      I w[8];
      I sum = V::set1(0);
      LOWBIT_UNROLL8
      for (int j = 0; j < 8; ++j) {
        w[j] = V::select(keep0, e0[j], e1[j]);
        sum = V::add(sum, w[j]);
      }
      const I low = V::set1(0xFF);
      V::store(V::or_(V::and_(w[0], low), V::template slli<8>(w[1])), V::or_(V::and_(w[2], low), V::template slli<8>(w[3])),
               V::or_(V::and_(w[4], low), V::template slli<8>(w[5])), V::or_(V::and_(w[6], low), V::template slli<8>(w[7])),
               out + 8 * k);
      V::store_sums(sum, wb + k);
      V::store_scales(scales16, t + k / 2, s + k);
    }
    if (k < blocks) decode_e8q16_ref(scales16, codes + 4 * k, t + k / 2, blocks - k, out + 8 * k, s + k, wb + k);
  }
};

}  // namespace lowbit::coset::kernels::generic
