// AVX2 level of the fused small-batch GEMV (deploy_kernels.h): D4 q=4 M=2 and E8 q=16 M=1 rows
// against 1..4 int8 input rows without the panel path's row buffers: 32 blocks at a time are
// decoded in registers (int8 lanes; D4 by 16-entry byte lookups (vpshufb) of each coordinate's
// residual, key and parity, E8 by the closed forms of the AVX-512 VBMI decode), then
// I = xb + sum_j (w_j + bias) xq_j by vpmaddubsw (unsigned w + bias first:
// at most 2 * 96 * 127 per pair, no saturation) and vpmaddwd, exact, and
// the epilogue of deploy.h: a 64-block chunk whose T are all 0 adds its I to the exact int64 sum A
// (int32 lanes, reduced at the chunk's end), every block of any other chunk does
// p[k % 16] = fma(s_k, float(I), p[k % 16]) in block order (blocks 0-7 of each 16 in one register,
// 8-15 in another), then the halving tree and fma(s0, float(A), f): the scalar twins' float order,
// bit for bit. With a T per group of 4 D4 blocks (t.group = 4) each 32 blocks' I are summed per group
// (avx2::g4_sums) and group u of a chunk goes to p[u % 16] (lanes in g4_sums' order, put back in
// group order before the tree). (packed_linear runs the fused kernels only when T = 0 is exactly
// where the scale is scale(0).)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "deploy_e8_generic.h"  // LOWBIT_UNROLL8: the loops over coordinates and rows unroll at -O2 too
#include "deploy_avx2_tree.h"
#include "deploy_kernels.h"

namespace lowbit::coset::kernels {

namespace {

using avx2::tree;  // deploy_avx2_tree.h

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 dwords: sum over 4 bytes of wu * xq (wu unsigned, xq signed; exact).
inline __m256i dot4(__m256i wu, const std::int8_t* x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(wu, load(x)), _mm256_set1_epi16(1));
}

// ---- D4 q=4 M=2 in registers ----
// A level byte holds the block's 4 codes b_j (2 bits each, b_j at bit 2j). With G's columns 2e1,
// e2 - e1, e3 - e2, e4 - e3: v0 = 2 b0 - b1, v1 = b1 - b2, v2 = b2 - b3, v3 = b3, so v_j depends
// on the nibble (idx >> 2j) & 15 only (j = 3: idx >> 6). The closest point of 4 D4 (ties up, the
// tie-dither rule of deploy_ref.cpp's e8_coset at div 4): r_j = floor((v_j + 2) / 4),
// e_j = v_j - 4 r_j; if sum r_j is odd, the coordinate with the largest key
// 16 |e_j| + (e_j < 0 ? 7 - j : 8 + j) moves by 4 (e < 0: +4, else -4).
// Per coordinate one vpshufb table gives key | parity(r_j) << 6, one e_j + 4, one the move.
// rep = e after the fix, and w + 20 = (rep0 + 4) + 4 (rep1 + 4) (kD4FusedWeightBias).
struct D4NibbleTables {
  alignas(32) std::int8_t key[4][32];  // each 16-byte table twice (both 128-bit lanes)
  alignas(32) std::int8_t e[4][32];
  alignas(32) std::int8_t move[4][32];
  constexpr D4NibbleTables() : key(), e(), move() {
    for (int j = 0; j < 4; ++j)
      for (int n = 0; n < 32; ++n) {
        const int lo = n % 16 & 3, hi = n % 16 >> 2;
        const int v = j == 0 ? 2 * lo - hi : j == 3 ? lo : lo - hi;
        const int r = (v + 2 + 8) / 4 - 2;  // floor((v + 2) / 4), v >= -3
        const int ej = v - 4 * r;
        const int abs_e = ej < 0 ? -ej : ej;
        key[j][n] = static_cast<std::int8_t>((16 * abs_e + (ej < 0 ? 7 - j : 8 + j)) | (r & 1) << 6);
        e[j][n] = static_cast<std::int8_t>(ej + kD4FusedRepOffset);
        move[j][n] = static_cast<std::int8_t>(ej < 0 ? 4 : -4);
      }
  }
};
constexpr D4NibbleTables kD4Nibbles{};

struct D4Consts {
  __m256i key[4], e[4], move[4];
  D4Consts() {
    LOWBIT_UNROLL8
    for (int j = 0; j < 4; ++j) {
      key[j] = load(kD4Nibbles.key[j]);
      e[j] = load(kD4Nibbles.e[j]);
      move[j] = load(kD4Nibbles.move[j]);
    }
  }
};

// rep_j + 4 of one level for 32 blocks (level bytes idx).
[[gnu::always_inline]] inline void d4_level(const D4Consts& k, __m256i idx, __m256i out[4]) {
  const __m256i m15 = _mm256_set1_epi8(15), m63 = _mm256_set1_epi8(63), m64 = _mm256_set1_epi8(64);
  const __m256i n[4] = {_mm256_and_si256(idx, m15), _mm256_and_si256(_mm256_srli_epi16(idx, 2), m15),
                        _mm256_and_si256(_mm256_srli_epi16(idx, 4), m15),
                        _mm256_and_si256(_mm256_srli_epi16(idx, 6), _mm256_set1_epi8(3))};
  __m256i key[4];
  __m256i parity = _mm256_setzero_si256(), best = _mm256_setzero_si256();
  LOWBIT_UNROLL8
  for (int j = 0; j < 4; ++j) {
    const __m256i kp = _mm256_shuffle_epi8(k.key[j], n[j]);
    parity = _mm256_xor_si256(parity, kp);
    key[j] = _mm256_and_si256(kp, m63);
    best = _mm256_max_epu8(best, key[j]);
  }
  const __m256i odd = _mm256_cmpeq_epi8(_mm256_and_si256(parity, m64), m64);
  LOWBIT_UNROLL8
  for (int j = 0; j < 4; ++j) {
    const __m256i hit = _mm256_and_si256(odd, _mm256_cmpeq_epi8(key[j], best));
    out[j] = _mm256_add_epi8(_mm256_shuffle_epi8(k.e[j], n[j]),
                             _mm256_and_si256(hit, _mm256_shuffle_epi8(k.move[j], n[j])));
  }
}

// 32 blocks (64 code bytes at c: level 0, level 1 per block) -> wu[i]: blocks 8i .. 8i + 7 as dwords
// of w + 20. The level bytes are gathered so that byte p of each 128-bit lane q holds block
// 8 (p / 4) + 4 q + p % 4; the 4 x 32 byte transpose (unpack 8 then 16 bits, within lanes) then
// lands blocks in order.
[[gnu::always_inline]] inline void d4_decode32(const D4Consts& k, const std::uint8_t* c, __m256i wu[4]) {
  // qwords of blocks 0-3, 8-11 | 4-7, 12-15 (and + 16), then even (level 0) / odd (level 1) bytes.
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10,
                                         12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i a = _mm256_shuffle_epi8(_mm256_permute4x64_epi64(load(c), 0xD8), split);
  const __m256i b = _mm256_shuffle_epi8(_mm256_permute4x64_epi64(load(c + 32), 0xD8), split);
  __m256i l0[4], l1[4];
  d4_level(k, _mm256_unpacklo_epi64(a, b), l0);
  d4_level(k, _mm256_unpackhi_epi64(a, b), l1);
  __m256i wj[4];
  LOWBIT_UNROLL8
  for (int j = 0; j < 4; ++j) {
    const __m256i x2 = _mm256_add_epi8(l1[j], l1[j]);
    wj[j] = _mm256_add_epi8(l0[j], _mm256_add_epi8(x2, x2));
  }
  const __m256i a01 = _mm256_unpacklo_epi8(wj[0], wj[1]), b01 = _mm256_unpackhi_epi8(wj[0], wj[1]);
  const __m256i a23 = _mm256_unpacklo_epi8(wj[2], wj[3]), b23 = _mm256_unpackhi_epi8(wj[2], wj[3]);
  wu[0] = _mm256_unpacklo_epi16(a01, a23);
  wu[1] = _mm256_unpackhi_epi16(a01, a23);
  wu[2] = _mm256_unpacklo_epi16(b01, b23);
  wu[3] = _mm256_unpackhi_epi16(b01, b23);
}

// 8 T nibbles (the 32-bit word t) -> 8 scales (16-entry table in two registers): lane i from the
// nibble at bit shift[i].
[[gnu::always_inline]] inline __m256 scales8_at(__m256 lo, __m256 hi, std::uint32_t t, __m256i shift) {
  const __m256i idx =
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(t)), shift), _mm256_set1_epi32(15));
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                          _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// Nibble i to lane i (8 blocks in order).
[[gnu::always_inline]] inline __m256 scales8(__m256 lo, __m256 hi, std::uint32_t t) {
  return scales8_at(lo, hi, t, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
}

// The 8 group nibbles of 32 blocks (a T per group of 4) in the lanes of avx2::g4_sums.
[[gnu::always_inline]] inline __m256 scales8_g4(__m256 lo, __m256 hi, std::uint32_t t) {
  return scales8_at(lo, hi, t, _mm256_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28));
}

// ---- E8 q=16 M=1 in registers (int8 lanes, 32 blocks) ----
// The closed forms of deploy_avx512.cpp's e8_decode64 (docs/coset.md, "Decode"), with AVX2
// vector masks: v = 2 G b; t = v + 16; coset 0: e0 = (t & 31) - 16, parity = xor of bit 5 of t;
// coset 1: e1 = e0 ^ 0xF0 (e0 -/+ 16), parity = xor of bit 5 of v. a = |e0|;
// (D1 - D0) / 32 = 64 - sum a + odd1 * 2 min a - odd0 * (32 - 2 max a) (int8, wrapping like the
// AVX-512 code); on a tie coset 0 is kept iff A + X >= 128 (int16), A = sum over e0_j < 0 of 2^j,
// X = odd0 s0 2^j0 - odd1 s1 2^j1. The fix moves the chosen coset's coordinate jc by -/+32.
// Byte p of 128-bit lane q holds block 8 (p / 4) + 4 q + p % 4 (as the D4 decode), which the
// codes' dwords give without crossing lanes.
[[gnu::always_inline]] inline __m256i sign_mask(__m256i v) { return _mm256_cmpgt_epi8(_mm256_setzero_si256(), v); }

// 32 blocks (128 code bytes at c) -> wu[4 h + i]: bytes 4h .. 4h + 3 of blocks 8i .. 8i + 7 as
// dwords, each w + 64 (kE8FusedWeightBias).
[[gnu::always_inline]] inline void e8_decode32(const std::uint8_t* c, __m256i wu[8]) {
  const __m256i c15 = _mm256_set1_epi8(15), c16 = _mm256_set1_epi8(16), c31 = _mm256_set1_epi8(31);
  const __m256i c32 = _mm256_set1_epi8(32), zero = _mm256_setzero_si256(), ones = _mm256_set1_epi8(-1);
  // Byte q of each block's dword to bytes 4q .. 4q + 3 of its lane, then a 4 x 4 dword transpose.
  const __m256i by_byte = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5,
                                           9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m256i r[4];
  LOWBIT_UNROLL8
  for (int i = 0; i < 4; ++i) r[i] = _mm256_shuffle_epi8(load(c + 32 * i), by_byte);
  const __m256i t01l = _mm256_unpacklo_epi32(r[0], r[1]), t23l = _mm256_unpacklo_epi32(r[2], r[3]);
  const __m256i t01h = _mm256_unpackhi_epi32(r[0], r[1]), t23h = _mm256_unpackhi_epi32(r[2], r[3]);
  const __m256i bytes[4] = {_mm256_unpacklo_epi64(t01l, t23l), _mm256_unpackhi_epi64(t01l, t23l),
                            _mm256_unpacklo_epi64(t01h, t23h), _mm256_unpackhi_epi64(t01h, t23h)};
  __m256i b[8];
  LOWBIT_UNROLL8
  for (int q = 0; q < 4; ++q) {
    b[2 * q] = _mm256_and_si256(bytes[q], c15);
    b[2 * q + 1] = _mm256_and_si256(_mm256_srli_epi16(bytes[q], 4), c15);
  }
  __m256i v[8];
  const __m256i h = b[7];
  const __m256i d0 = _mm256_sub_epi8(_mm256_add_epi8(b[0], b[0]), b[1]);
  v[0] = _mm256_add_epi8(_mm256_add_epi8(d0, d0), h);
  LOWBIT_UNROLL8
  for (int j = 1; j <= 5; ++j) {
    const __m256i dj = _mm256_sub_epi8(b[j], b[j + 1]);
    v[j] = _mm256_add_epi8(_mm256_add_epi8(dj, dj), h);
  }
  v[6] = _mm256_add_epi8(_mm256_add_epi8(b[6], b[6]), h);
  v[7] = h;
  // Pass 1: residuals, parities, sum |e0|, the negative set A, max and min |e0|.
  __m256i e0[8], a[8];
  __m256i par0 = zero, par1 = zero, sum_a = zero, neg_set = zero, max_a = zero, min_a = c16;
  LOWBIT_UNROLL8
  for (int j = 0; j < 8; ++j) {
    const __m256i tj = _mm256_add_epi8(v[j], c16);
    e0[j] = _mm256_sub_epi8(_mm256_and_si256(tj, c31), c16);
    a[j] = _mm256_abs_epi8(e0[j]);
    par0 = _mm256_xor_si256(par0, tj);
    par1 = _mm256_xor_si256(par1, v[j]);
    sum_a = _mm256_add_epi8(sum_a, a[j]);
    neg_set =
        _mm256_or_si256(neg_set, _mm256_and_si256(sign_mask(e0[j]), _mm256_set1_epi8(static_cast<char>(1 << j))));
    max_a = _mm256_max_epu8(max_a, a[j]);
    min_a = _mm256_min_epu8(min_a, a[j]);
  }
  // Pass 2: the tie of each coset's fixed coordinate (largest |e|, then largest tie);
  // tie = e >= 0 ? 8 + j : 7 - j = (8 + j) ^ (e < 0 ? 15 : 0), coset 1's sign the opposite.
  __m256i t0 = ones, t1 = ones;
  LOWBIT_UNROLL8
  for (int j = 0; j < 8; ++j) {
    const __m256i tie0 =
        _mm256_xor_si256(_mm256_and_si256(sign_mask(e0[j]), c15), _mm256_set1_epi8(static_cast<char>(8 + j)));
    t0 = _mm256_max_epi8(t0, _mm256_blendv_epi8(ones, tie0, _mm256_cmpeq_epi8(a[j], max_a)));
    t1 = _mm256_max_epi8(t1, _mm256_blendv_epi8(ones, _mm256_xor_si256(tie0, c15), _mm256_cmpeq_epi8(a[j], min_a)));
  }
  const __m256i odd0 = _mm256_cmpeq_epi8(_mm256_and_si256(par0, c32), c32);
  const __m256i odd1 = _mm256_cmpeq_epi8(_mm256_and_si256(par1, c32), c32);
  const __m256i c7 = _mm256_set1_epi8(7), c8 = _mm256_set1_epi8(8);
  const __m256i pos0 = _mm256_cmpgt_epi8(t0, c7), pos1 = _mm256_cmpgt_epi8(t1, c7);
  const __m256i j0 = _mm256_blendv_epi8(_mm256_sub_epi8(c7, t0), _mm256_sub_epi8(t0, c8), pos0);
  const __m256i j1 = _mm256_blendv_epi8(_mm256_sub_epi8(c7, t1), _mm256_sub_epi8(t1, c8), pos1);
  // (D1 - D0) / 32; max|e1| = 16 - min|e0|, so 32 - 2 max|e1| = 2 min|e0|.
  __m256i dd = _mm256_sub_epi8(_mm256_set1_epi8(64), sum_a);
  dd = _mm256_add_epi8(dd, _mm256_and_si256(odd1, _mm256_add_epi8(min_a, min_a)));
  dd = _mm256_sub_epi8(dd, _mm256_and_si256(odd0, _mm256_sub_epi8(c32, _mm256_add_epi8(max_a, max_a))));
  // Nudge tie-break in int16 halves (unpack within lanes; packs restores the byte order).
  const __m256i pow2 = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64,
                                        -128, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i p0 = _mm256_shuffle_epi8(pow2, j0), p1 = _mm256_shuffle_epi8(pow2, j1);
  const __m256i one = _mm256_set1_epi8(1);
  // +2^j0 where odd0 and pos0, -2^j0 where odd0 only; coset 1 the opposite; 0 where even.
  const __m256i sg0 = _mm256_and_si256(odd0, _mm256_or_si256(_mm256_xor_si256(pos0, ones), one));
  const __m256i sg1 = _mm256_and_si256(odd1, _mm256_or_si256(pos1, one));
  __m256i ok[2];
  LOWBIT_UNROLL8
  for (int half = 0; half < 2; ++half) {
    const auto wide = [&](__m256i x) { return half ? _mm256_unpackhi_epi8(x, zero) : _mm256_unpacklo_epi8(x, zero); };
    const auto wide_signed = [&](__m256i x) { return half ? _mm256_unpackhi_epi8(x, x) : _mm256_unpacklo_epi8(x, x); };
    __m256i x = wide(neg_set);
    x = _mm256_add_epi16(x, _mm256_sign_epi16(wide(p0), wide_signed(sg0)));
    x = _mm256_add_epi16(x, _mm256_sign_epi16(wide(p1), wide_signed(sg1)));
    ok[half] = _mm256_cmpgt_epi16(x, _mm256_set1_epi16(127));
  }
  const __m256i nudge_ok = _mm256_packs_epi16(ok[0], ok[1]);
  const __m256i keep0 =
      _mm256_or_si256(_mm256_cmpgt_epi8(dd, zero), _mm256_and_si256(_mm256_cmpeq_epi8(dd, zero), nudge_ok));
  const __m256i jc = _mm256_blendv_epi8(j1, j0, keep0);
  const __m256i odd = _mm256_blendv_epi8(odd1, odd0, keep0);
  const __m256i pos = _mm256_blendv_epi8(pos1, pos0, keep0);
  const __m256i delta = _mm256_and_si256(odd, _mm256_blendv_epi8(c32, _mm256_set1_epi8(-32), pos));  // the fix
  const __m256i flip = _mm256_andnot_si256(keep0, _mm256_set1_epi8(static_cast<char>(0xF0)));
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(kE8FusedWeightBias));
  __m256i e[8];
  LOWBIT_UNROLL8
  for (int j = 0; j < 8; ++j) {
    // e1 = e0 -/+ 16 (e0 in [-16, 15]) is e0 ^ 0xF0 as a byte: flip where coset 1 is kept.
    const __m256i ej = _mm256_xor_si256(e0[j], flip);
    const __m256i hit = _mm256_cmpeq_epi8(jc, _mm256_set1_epi8(static_cast<char>(j)));
    e[j] = _mm256_add_epi8(_mm256_add_epi8(ej, _mm256_and_si256(hit, delta)), bias);
  }
  LOWBIT_UNROLL8
  for (int hh = 0; hh < 2; ++hh) {
    const __m256i* q = e + 4 * hh;
    const __m256i a01 = _mm256_unpacklo_epi8(q[0], q[1]), b01 = _mm256_unpackhi_epi8(q[0], q[1]);
    const __m256i a23 = _mm256_unpacklo_epi8(q[2], q[3]), b23 = _mm256_unpackhi_epi8(q[2], q[3]);
    wu[4 * hh] = _mm256_unpacklo_epi16(a01, a23);
    wu[4 * hh + 1] = _mm256_unpackhi_epi16(a01, a23);
    wu[4 * hh + 2] = _mm256_unpacklo_epi16(b01, b23);
    wu[4 * hh + 3] = _mm256_unpackhi_epi16(b01, b23);
  }
}

// 16 blocks against R input rows (deploy_pos layout): w0, w1 the dwords of blocks 0-7, 8-15 (E8:
// their bytes 0-3; w2, w3 bytes 4-7, 64 bytes further in xq), s0, s1 their scales.
// Exact: the blocks' I go to the int32 lanes isum (a chunk of T = 0) instead of the float sums.
template <int D, int R, bool Exact>
[[gnu::always_inline]] inline void group_dot(__m256i w0, __m256i w1, __m256i w2, __m256i w3, __m256 s0, __m256 s1,
                                             const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                                             __m256 lo[R], __m256 hi[R], __m256i isum[R]) {
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) {
    const std::int8_t* x = xq + r * x_stride * D;
    const std::int32_t* b = xb + r * x_stride;
    __m256i a = _mm256_add_epi32(load(b), dot4(w0, x));
    __m256i c = _mm256_add_epi32(load(b + 8), dot4(w1, x + 32));
    if constexpr (D == 8) {
      a = _mm256_add_epi32(a, dot4(w2, x + 64));
      c = _mm256_add_epi32(c, dot4(w3, x + 96));
    }
    if constexpr (Exact) {
      isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(a, c));
    } else {
      lo[r] = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(a), lo[r]);
      hi[r] = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(c), hi[r]);
    }
  }
}

// 32 D4 blocks with a T per group of 4 against R input rows: wu[i] the dwords of blocks 8i .. 8i + 7,
// s the scales of their 8 groups and xg (row r at xg + r * xg_row) the groups' sums of xb, both in
// the lanes of avx2::g4_sums. Per group the exact I_u = xg_u + the dot products of its 4 blocks,
// then p = fma(s_u, float(I_u), p).
template <int R>
[[gnu::always_inline]] inline void groups_dot(const __m256i wu[4], __m256 s, const std::int8_t* xq,
                                              const std::int32_t* xg, std::size_t x_stride, std::size_t xg_row,
                                              __m256 p[R]) {
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) {
    const std::int8_t* x = xq + r * x_stride * 4;
    const __m256i sums =
        avx2::g4_sums(dot4(wu[0], x), dot4(wu[1], x + 32), dot4(wu[2], x + 64), dot4(wu[3], x + 96));
    p[r] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_add_epi32(load(xg + r * xg_row), sums)), p[r]);
  }
}

// Sum of 8 int32 lanes as int64 (a chunk's lanes hold at most 8 block sums each: no overflow).
inline std::int64_t hsum_epi32(__m256i v) {
  const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
  const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
  const __m256i s = _mm256_add_epi64(lo, hi);
  const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
}

// G: blocks per T, 1 or 4 (t.group; D4 only, blocks a multiple of 4). With a T per group each 32
// blocks' 8 groups go through groups_dot into the partial sums of a chunk's groups 0-7 (lo) or
// 8-15 (hi), in avx2::g4_sums' lane order, which tree_g4 undoes.
template <int D, int R, int G>
void fused_rows(const float* scales16, const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride, float* out) {
  static_assert(G == 1 || D == 4, "a T per group of 4 blocks is for D4");
  constexpr std::size_t kCodeBytes = D == 4 ? 2 : 4;  // per block
  constexpr std::size_t kChunkTBytes = kDeployChunk / 2 / G;  // T nibbles of a 64-block chunk
  const D4Consts k4;  // D4 only (unused loads are dropped for E8)
  const __m256 table_lo = _mm256_loadu_ps(scales16), table_hi = _mm256_loadu_ps(scales16 + 8);
  const __m256 s_zero = _mm256_set1_ps(scales16[0]);
  const std::size_t blocks16 = (blocks + 15) / 16 * 16;
  // T of a row as nibbles (a T per unit: block or group), zero-padded (compact forms expanded here).
  std::vector<std::uint8_t> nibbles((blocks + 63) / 64 * kChunkTBytes, 0);  // whole 64-block chunks
  // G = 4: per input row, the group sums of xb of each 32 blocks (xb is zero past `blocks`), the
  // steps' 8 lanes back to back.
  const std::size_t xg_row = G == 4 ? (blocks16 + 31) / 32 * 8 : 0;
  std::vector<std::int32_t> xg(R * xg_row);
  if constexpr (G == 4)
    for (int r = 0; r < R; ++r)
      for (std::size_t k = 0; k < blocks16; k += 32) {
        const std::int32_t* b = xb + r * x_stride + k;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(xg.data() + r * xg_row + k / 4),
                            avx2::g4_sums(load(b), load(b + 8), load(b + 16), load(b + 24)));
      }
  for (std::size_t n = 0; n < n_rows; ++n, codes += kCodeBytes * blocks, out += R) {
    if (t.bits == 4) std::memcpy(nibbles.data(), t.t + n * t.row_bytes, t.row_bytes);
    else expand_t_row(t, n, blocks / G, nibbles.data());
    __m256 lo[R], hi[R];
    __m256i isum[R];
    std::int64_t a[R];
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      lo[r] = hi[r] = _mm256_setzero_ps();
      isum[r] = _mm256_setzero_si256();
      a[r] = 0;
    }
    bool exact = false;
    for (std::size_t k = 0; k < blocks16; k += 32) {
      if (k % kDeployChunk == 0) {  // T of the chunk's 64 blocks (padding nibbles are 0)
        if constexpr (G == 1) {
          const __m256i tc = load(nibbles.data() + k / 2);
          exact = _mm256_testz_si256(tc, tc) != 0;
        } else {
          std::uint64_t tc;
          std::memcpy(&tc, nibbles.data() + k / 8, 8);
          exact = tc == 0;
        }
      }
      const std::size_t nb = std::min<std::size_t>(32, blocks - k);
      const std::uint8_t* c = codes + kCodeBytes * k;
      alignas(32) std::uint8_t tail[32 * kCodeBytes];
      if (nb < 32) {  // the row's tail through a zero-filled copy (zero codes decode to w = 0)
        std::memset(tail, 0, sizeof tail);
        std::memcpy(tail, c, kCodeBytes * nb);
        c = tail;
      }
      __m256i wu[8];
      if constexpr (D == 4) {
        d4_decode32(k4, c, wu);
        wu[4] = wu[5] = wu[6] = wu[7] = wu[0];  // unused
      } else {
        e8_decode32(c, wu);
      }
      if (exact) {
        group_dot<D, R, true>(wu[0], wu[1], wu[4], wu[5], s_zero, s_zero, xq + D * k, xb + k, x_stride, lo, hi, isum);
        if (k + 16 < blocks16)
          group_dot<D, R, true>(wu[2], wu[3], wu[6], wu[7], s_zero, s_zero, xq + D * (k + 16), xb + k + 16, x_stride, lo,
                                hi, isum);
        if ((k + 32) % kDeployChunk == 0 || k + 32 >= blocks16) {  // the chunk's end
          LOWBIT_UNROLL8
          for (int r = 0; r < R; ++r) {
            a[r] += hsum_epi32(isum[r]);
            isum[r] = _mm256_setzero_si256();
          }
        }
        continue;
      }
      if constexpr (G == 4) {
        // Padding groups (up to blocks16, as in the reference, and past it) read T = 0 and have
        // I = 0: fma(scale(0), 0, p) = p.
        std::uint32_t tw;
        std::memcpy(&tw, nibbles.data() + k / 8, 4);
        const __m256 s = t.bits != 4 && tw == 0 ? s_zero : scales8_g4(table_lo, table_hi, tw);
        groups_dot<R>(wu, s, xq + 4 * k, xg.data() + k / 4, x_stride, xg_row, k % kDeployChunk == 0 ? lo : hi);
        continue;
      }
      __m256 s[4];
      LOWBIT_UNROLL8
      for (int i = 0; i < 4; ++i) {
        std::uint32_t tw;
        std::memcpy(&tw, nibbles.data() + k / 2 + 4 * static_cast<std::size_t>(i), 4);
        // The compact forms are mostly T = 0 (a predictable branch); nibbles are not.
        s[i] = t.bits != 4 && tw == 0 ? s_zero : scales8(table_lo, table_hi, tw);
      }
      if (nb < 32) {  // padding blocks: scale 0 here (scale(0) in the reference; their I = 0 either way)
        alignas(32) float sv[32];
        for (int i = 0; i < 4; ++i) _mm256_store_ps(sv + 8 * i, s[i]);
        for (std::size_t i = nb; i < 32; ++i) sv[i] = 0.0f;
        for (int i = 0; i < 4; ++i) s[i] = _mm256_load_ps(sv + 8 * i);
      }
      group_dot<D, R, false>(wu[0], wu[1], wu[4], wu[5], s[0], s[1], xq + D * k, xb + k, x_stride, lo, hi, isum);
      if (k + 16 < blocks16)
        group_dot<D, R, false>(wu[2], wu[3], wu[6], wu[7], s[2], s[3], xq + D * (k + 16), xb + k + 16, x_stride, lo,
                               hi, isum);
    }
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r)
      out[r] = deploy_finish(scales16[0], a[r], G == 4 ? avx2::tree_g4(lo[r], hi[r]) : tree(lo[r], hi[r]));
  }
}

template <int D, int G = 1>
void fused_batch(const float* scales16, const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                 std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                 std::size_t rows, float* out) {
  switch (rows) {
    case 4: return fused_rows<D, 4, G>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 3: return fused_rows<D, 3, G>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 2: return fused_rows<D, 2, G>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    default: return fused_rows<D, 1, G>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
  }
}

}  // namespace

void fused_gemv_d4q4_avx2(const D4Q4Tables&, const float* scales16, const std::uint8_t* codes, const TRows& t,
                          std::size_t blocks, std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb,
                          std::size_t x_stride, std::size_t rows, float* out) {
  // The D4 q=4 rule is computed (D4NibbleTables), not read from `tables`; the tests hold it to the
  // reference decode's tables.
  if (t.group != 1)
    return fused_batch<4, kDeployTGroupBlocks>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, rows, out);
  fused_batch<4>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, rows, out);
}

void fused_gemv_e8q16_avx2(const float* scales16, const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                           std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                           std::size_t rows, float* out) {
  fused_batch<8>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, rows, out);
}

}  // namespace lowbit::coset::kernels
