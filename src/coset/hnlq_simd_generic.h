// The HNLQ float kernels written once over a lane abstraction V (simdjson-style "generic"):
// included by hnlq_avx2.cpp and hnlq_avx512.cpp, each of which defines V with its intrinsics.
// Every arithmetic step mirrors lattice_step.h / hnlq_ref.cpp operation for operation, so the
// results are bit-identical to the scalar reference (tests/cpp/coset/test_hnlq_simd.cpp).
//
// V provides: S (the element type, float or double), F (S lanes), Mask, I (one int32 per lane),
// kWidth, set1, add, sub, mul, min, max, rint, floor, abs, ge, gt, lt, le, eq, neq, and_, or_,
// select(mask, a, b), any, bits(mask), gather(base, stride) (S values), gather_words(base,
// stride_bytes) (unaligned 32-bit words), byte_of(word, k) (byte k of each word, as S), to_int,
// shl, or_i, store_i, store. The same template serves float32 and float64: every step is an
// exact operation or mirrors the reference's rounding in the same type.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "hnlq_kernels.h"

// Every helper is force-inlined: at -O2 GCC otherwise keeps some out of line and spills the
// register arrays to memory (measured 2.5x slower than -O3).
#define LOWBIT_COSET_INLINE [[gnu::always_inline]] inline

namespace lowbit::coset::kernels::generic {

template <class V>
struct Lanes {
  using S = typename V::S;
  using F = typename V::F;
  using Mk = typename V::Mask;
  static constexpr int W = V::kWidth;

  struct Step {
    F div, inv_div, half, neg_half;
  };
  LOWBIT_COSET_INLINE static Step make_step(S div) {
    return {V::set1(div), V::set1(static_cast<S>(1.0 / div)), V::set1(div / 2),
            V::set1(-(div / 2))};
  }

  // Snap = true: the first step on float data, ties within the tolerance tol (lattice_step.h).
  template <bool Snap>
  LOWBIT_COSET_INLINE static void round_coord(F v, const Step& p, F& r, F& e, F tol) {
    const F one = V::set1(1.0f);
    r = V::rint(V::mul(v, p.inv_div));
    e = V::sub(v, V::mul(p.div, r));
    const Mk up = V::ge(e, Snap ? V::sub(p.half, tol) : p.half);
    r = V::select(up, V::add(r, one), r);
    e = V::select(up, V::sub(e, p.div), e);
    const Mk down = V::lt(e, Snap ? V::sub(p.neg_half, tol) : p.neg_half);
    r = V::select(down, V::sub(r, one), r);
    e = V::select(down, V::add(e, p.div), e);
  }

  template <int D, bool Snap>
  LOWBIT_COSET_INLINE static void dn_fix(F* r, F* e, const Step& p, F tol) {
    const F zero = V::set1(0.0f), one = V::set1(1.0f), minus_one = V::set1(-1.0f);
    F sum = r[0];
    for (int j = 1; j < D; ++j) sum = V::add(sum, r[j]);
    const Mk odd = V::neq(V::sub(sum, V::mul(V::set1(2.0f), V::floor(V::mul(sum, V::set1(0.5f))))), zero);
    if (!V::any(odd)) return;
    F best_abs = V::abs(e[0]);
    F best_sw = V::select(V::ge(e[0], zero), one, minus_one);
    F best = zero;
    for (int j = 1; j < D; ++j) {
      const F a = V::abs(e[j]);
      const F w = V::set1(static_cast<S>(1 << j));
      const F sw = V::select(V::ge(e[j], zero), w, V::set1(-static_cast<S>(1 << j)));
      const Mk take = Snap ? V::or_(V::gt(a, V::add(best_abs, tol)),
                                    V::and_(V::ge(a, V::sub(best_abs, tol)), V::gt(sw, best_sw)))
                           : V::or_(V::gt(a, best_abs), V::and_(V::eq(a, best_abs), V::gt(sw, best_sw)));
      best_abs = V::select(take, a, best_abs);
      best_sw = V::select(take, sw, best_sw);
      best = V::select(take, V::set1(static_cast<S>(j)), best);
    }
    for (int j = 0; j < D; ++j) {
      const Mk m = V::and_(odd, V::eq(best, V::set1(static_cast<S>(j))));
      const F s = V::select(V::ge(e[j], zero), one, minus_one);
      r[j] = V::select(m, V::add(r[j], s), r[j]);
      e[j] = V::select(m, V::sub(e[j], V::mul(s, p.div)), e[j]);
    }
  }

  // point (C-scaled) and residual of the closest lattice point to v / div. Snap: the first step
  // on float data, with the tie tolerance kTieSnap * max(1, max_j |v_j|) of lattice_step.h.
  template <LatticeType L, bool Snap = false>
  LOWBIT_COSET_INLINE static void step(const F* v, const Step& p, F* point, F* e) {
    constexpr int D = L == LatticeType::Z2 ? 2 : L == LatticeType::D4 ? 4 : 8;
    F tol = V::set1(0.0f);
    if constexpr (Snap) {
      F m = V::set1(1.0f);
      for (int j = 0; j < D; ++j) m = V::max(m, V::abs(v[j]));
      tol = V::mul(V::set1(static_cast<S>(detail_snap())), m);
    }
    if constexpr (L == LatticeType::Z2) {
      for (int j = 0; j < 2; ++j) round_coord<Snap>(v[j], p, point[j], e[j], tol);
    } else if constexpr (L == LatticeType::D4) {
      for (int j = 0; j < 4; ++j) round_coord<Snap>(v[j], p, point[j], e[j], tol);
      dn_fix<4, Snap>(point, e, p, tol);
    } else {
      F r0[8], e0[8], r1[8], e1[8];
      for (int j = 0; j < 8; ++j) round_coord<Snap>(v[j], p, r0[j], e0[j], tol);
      dn_fix<8, Snap>(r0, e0, p, tol);
      for (int j = 0; j < 8; ++j) round_coord<Snap>(V::sub(v[j], p.half), p, r1[j], e1[j], tol);
      dn_fix<8, Snap>(r1, e1, p, tol);
      F d0 = V::set1(0.0f), d1 = V::set1(0.0f), w0 = V::set1(0.0f), w1 = V::set1(0.0f);
      for (int j = 0; j < 8; ++j) {
        d0 = V::add(d0, V::mul(e0[j], e0[j]));
        d1 = V::add(d1, V::mul(e1[j], e1[j]));
      }
      for (int j = 0; j < 8; ++j) {
        const F w = V::set1(static_cast<S>(1 << j));
        w0 = V::add(w0, V::mul(w, e0[j]));
        w1 = V::add(w1, V::mul(w, e1[j]));
      }
      Mk integer_coset;
      if constexpr (Snap) {
        const F tol_d = V::mul(V::set1(8.0f), tol);
        integer_coset = V::or_(V::lt(d0, V::sub(d1, tol_d)), V::and_(V::le(d0, V::add(d1, tol_d)), V::le(w0, w1)));
      } else {
        integer_coset = V::or_(V::lt(d0, d1), V::and_(V::eq(d0, d1), V::le(w0, w1)));
      }
      const F two = V::set1(2.0f), one = V::set1(1.0f);
      for (int j = 0; j < 8; ++j) {
        point[j] = V::select(integer_coset, V::mul(two, r0[j]), V::add(V::mul(two, r1[j]), one));
        e[j] = V::select(integer_coset, e0[j], e1[j]);
      }
    }
  }

  static constexpr double detail_snap() { return 0x1p-20; }  // lattice_step.h kTieSnap

  // b = G^-1 (point / C) before the reduction mod q (closed forms of lattice.cpp's G).
  template <LatticeType L>
  LOWBIT_COSET_INLINE static void raw_codes(const F* p, F* b) {
    if constexpr (L == LatticeType::Z2) {
      b[0] = p[0];
      b[1] = p[1];
    } else if constexpr (L == LatticeType::D4) {
      b[3] = p[3];
      b[2] = V::add(p[2], p[3]);
      b[1] = V::add(p[1], b[2]);
      b[0] = V::mul(V::add(p[0], b[1]), V::set1(0.5f));
    } else {
      b[7] = p[7];
      F s = V::sub(p[6], p[7]);
      b[6] = V::mul(s, V::set1(0.5f));
      for (int k = 5; k >= 1; --k) {
        s = V::add(s, V::sub(p[k], p[7]));
        b[k] = V::mul(s, V::set1(0.5f));
      }
      s = V::add(s, V::sub(p[0], p[7]));
      b[0] = V::mul(s, V::set1(0.25f));
    }
  }

  // v = C G b.
  template <LatticeType L>
  LOWBIT_COSET_INLINE static void lattice_point(const F* b, F* v) {
    if constexpr (L == LatticeType::Z2) {
      v[0] = b[0];
      v[1] = b[1];
    } else if constexpr (L == LatticeType::D4) {
      v[0] = V::sub(V::add(b[0], b[0]), b[1]);
      v[1] = V::sub(b[1], b[2]);
      v[2] = V::sub(b[2], b[3]);
      v[3] = b[3];
    } else {
      const F two = V::set1(2.0f);
      v[0] = V::add(V::sub(V::mul(V::set1(4.0f), b[0]), V::mul(two, b[1])), b[7]);
      for (int k = 1; k <= 5; ++k) v[k] = V::add(V::mul(two, V::sub(b[k], b[k + 1])), b[7]);
      v[6] = V::add(V::mul(two, b[6]), b[7]);
      v[7] = b[7];
    }
  }

  LOWBIT_COSET_INLINE static F mod_q(F b, F qf, F inv_q) {
    const F zero = V::set1(0.0f);
    b = V::sub(b, V::mul(qf, V::floor(V::mul(b, inv_q))));
    b = V::select(V::lt(b, zero), V::add(b, qf), b);
    b = V::select(V::ge(b, qf), V::sub(b, qf), b);
    return b;
  }

  // Encodes W vectors: y (W x D floats), codes (W x M x D bytes), over (W bytes).
  template <LatticeType L>
  LOWBIT_COSET_INLINE static void encode_batch(int q, int levels, const S* y, std::uint8_t* codes, std::uint8_t* over) {
    constexpr int D = L == LatticeType::Z2 ? 2 : L == LatticeType::D4 ? 4 : 8;
    constexpr S C = L == LatticeType::E8 ? S(2) : S(1);
    const F bound = V::set1(static_cast<S>(overload_bound(q, levels)));
    const F neg_bound = V::set1(-static_cast<S>(overload_bound(q, levels)));
    F v[D], point[D], e[D], b[D];
    Mk overloaded = V::gt(V::set1(0.0f), V::set1(1.0f));  // all false
    for (int j = 0; j < D; ++j) {
      const F yj = V::gather(y + j, D);
      overloaded = V::or_(overloaded, V::gt(V::abs(yj), bound));
      v[j] = V::min(V::max(yj, neg_bound), bound);
    }
    step<L, true>(v, make_step(1.0f), point, e);
    const Step level = make_step(C * static_cast<S>(q));
    const F qf = V::set1(static_cast<S>(q)), inv_q = V::set1(static_cast<S>(1.0 / q));
    alignas(64) std::uint32_t words[D / 4 + 1][W];
    for (int m = 0; m < levels; ++m) {
      raw_codes<L>(point, b);
      for (int j = 0; j < D; ++j) b[j] = mod_q(b[j], qf, inv_q);
      for (int g = 0; g * 4 < D; ++g) {  // 4 codes per 32-bit word, little-endian bytes
        auto word = V::to_int(b[4 * g]);
        for (int k = 1; k < 4 && 4 * g + k < D; ++k) word = V::or_i(word, V::shl(V::to_int(b[4 * g + k]), 8 * k));
        V::store_i(words[g], word);
      }
      for (int i = 0; i < W; ++i) {
        std::uint8_t* dst = codes + (static_cast<std::size_t>(i) * levels + m) * D;
        for (int g = 0; g * 4 < D; ++g) std::memcpy(dst + 4 * g, &words[g][i], std::min(4, D - 4 * g));
      }
      std::copy(point, point + D, v);
      step<L>(v, level, point, e);
    }
    const F zero = V::set1(0.0f);
    for (int j = 0; j < D; ++j) overloaded = V::or_(overloaded, V::neq(point[j], zero));
    const unsigned bits = V::bits(overloaded);
    for (int i = 0; i < W; ++i) over[i] = static_cast<std::uint8_t>((bits >> i) & 1u);
  }

  // Decodes W vectors; reads whole 32-bit words, so up to 2 bytes past the last Z2 code.
  template <LatticeType L>
  LOWBIT_COSET_INLINE static void decode_batch(int q, int levels, const std::uint8_t* codes, S* out) {
    constexpr int D = L == LatticeType::Z2 ? 2 : L == LatticeType::D4 ? 4 : 8;
    constexpr S C = L == LatticeType::E8 ? S(2) : S(1);
    const Step level = make_step(C * static_cast<S>(q));
    F acc[D], b[D], v[D], point[D], e[D];
    for (int j = 0; j < D; ++j) acc[j] = V::set1(0.0f);
    S weight = 1;
    for (int m = 0; m < levels; ++m) {
      for (int g = 0; g * 4 < D; ++g) {
        const auto word = V::gather_words(codes + m * D + 4 * g, levels * D);
        for (int k = 0; k < 4 && 4 * g + k < D; ++k) b[4 * g + k] = V::byte_of(word, k);
      }
      lattice_point<L>(b, v);
      step<L>(v, level, point, e);
      const F w = V::set1(weight);
      for (int j = 0; j < D; ++j) acc[j] = V::add(acc[j], V::mul(w, e[j]));
      weight *= static_cast<S>(q);
    }
    alignas(64) S tmp[D][W];
    const F inv_c = V::set1(S(1) / C);
    for (int j = 0; j < D; ++j) V::store(tmp[j], V::mul(acc[j], inv_c));
    for (int i = 0; i < W; ++i)
      for (int j = 0; j < D; ++j) out[i * D + j] = tmp[j][i];
  }

  template <LatticeType L>
  static void encode_all(int q, int levels, const S* y, std::size_t n, std::uint8_t* codes,
                         std::uint8_t* over) {
    constexpr int D = L == LatticeType::Z2 ? 2 : L == LatticeType::D4 ? 4 : 8;
    const std::size_t stride = static_cast<std::size_t>(levels) * D;
    std::size_t i = 0;
    for (; i + W <= n; i += W) encode_batch<L>(q, levels, y + i * D, codes + i * stride, over + i);
    if (i < n) {  // tail: padded copies
      const std::size_t rest = n - i;
      alignas(64) S ybuf[W * D] = {};
      std::uint8_t cbuf[W * 4 * D];
      std::uint8_t obuf[W];
      std::copy(y + i * D, y + n * D, ybuf);
      encode_batch<L>(q, levels, ybuf, cbuf, obuf);
      std::copy(cbuf, cbuf + rest * stride, codes + i * stride);
      std::copy(obuf, obuf + rest, over + i);
    }
  }

  template <LatticeType L>
  static void decode_all(int q, int levels, const std::uint8_t* codes, std::size_t n, S* out) {
    constexpr int D = L == LatticeType::Z2 ? 2 : L == LatticeType::D4 ? 4 : 8;
    const std::size_t stride = static_cast<std::size_t>(levels) * D;
    std::size_t i = 0;
    for (; i + W < n; i += W) decode_batch<L>(q, levels, codes + i * stride, out + i * D);  // not the last
    const std::size_t rest = n - i;
    if (rest == 0) return;
    std::uint8_t cbuf[W * 4 * D + 4] = {};
    alignas(64) S obuf[W * D];
    std::copy(codes + i * stride, codes + n * stride, cbuf);
    decode_batch<L>(q, levels, cbuf, obuf);
    std::copy(obuf, obuf + rest * D, out + i * D);
  }

  static void encode(LatticeType type, int q, int levels, const S* y, std::size_t n,
                     std::uint8_t* codes, std::uint8_t* over) {
    switch (type) {
      case LatticeType::Z2: return encode_all<LatticeType::Z2>(q, levels, y, n, codes, over);
      case LatticeType::D4: return encode_all<LatticeType::D4>(q, levels, y, n, codes, over);
      case LatticeType::E8: return encode_all<LatticeType::E8>(q, levels, y, n, codes, over);
    }
  }

  static void decode(LatticeType type, int q, int levels, const std::uint8_t* codes, std::size_t n,
                     S* out) {
    switch (type) {
      case LatticeType::Z2: return decode_all<LatticeType::Z2>(q, levels, codes, n, out);
      case LatticeType::D4: return decode_all<LatticeType::D4>(q, levels, codes, n, out);
      case LatticeType::E8: return decode_all<LatticeType::E8>(q, levels, codes, n, out);
    }
  }
};

}  // namespace lowbit::coset::kernels::generic
