// AVX2 level of the fused small-batch GEMV (deploy_kernels.h): D4 q=4 M=2 and E8 q=16 M=1 rows
// against 1..4 int8 input rows without the panel path's row buffers. D4: 32 blocks at a time are
// decoded in registers by 16-entry byte lookups (vpshufb) of each coordinate's residual, key and
// parity (below). E8: 64 blocks at a time by the AVX2 row decoder (deploy_avx2.cpp) into a chunk
// that stays in L1. Then I = xb + sum_j (w_j + bias) xq_j by vpmaddubsw (unsigned w + bias first:
// at most 2 * 96 * 127 per pair, no saturation) and vpmaddwd, exact, and
// p[k % 16] = fma(s_k, float(I), p[k % 16]) in block order (blocks 0-7 of each 16 in one register,
// 8-15 in another), then the halving tree: the scalar twins' float order, bit for bit.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "deploy_kernels.h"

namespace lowbit::coset::kernels {

namespace {

constexpr std::size_t kChunk = 64;  // blocks decoded at a time

inline float tree(__m256 lo, __m256 hi) {  // partial sums 0-7 and 8-15: the halving tree 8, 4, 2, 1
  const __m256 r8 = _mm256_add_ps(lo, hi);
  const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
  const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
  const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
  return _mm_cvtss_f32(r1);
}

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
// 16 |e_j| + (e_j < 0 ? 7 - j : 8 + j) moves by 4 towards zero's other side (e < 0: +4, else -4).
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
  for (int j = 0; j < 4; ++j) {
    const __m256i kp = _mm256_shuffle_epi8(k.key[j], n[j]);
    parity = _mm256_xor_si256(parity, kp);
    key[j] = _mm256_and_si256(kp, m63);
    best = _mm256_max_epu8(best, key[j]);
  }
  const __m256i odd = _mm256_cmpeq_epi8(_mm256_and_si256(parity, m64), m64);
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

// 8 T nibbles (the 32-bit word at t) -> 8 scales (16-entry table in two registers).
[[gnu::always_inline]] inline __m256 scales8(__m256 lo, __m256 hi, std::uint32_t t) {
  const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(t)),
                                                         _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                       _mm256_set1_epi32(15));
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                          _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// 16 blocks (wu: blocks 0-7, 8-15; s: their scales) against R input rows.
template <int R>
[[gnu::always_inline]] inline void d4_group_dot(__m256i wu0, __m256i wu1, __m256 s0, __m256 s1, const std::int8_t* xq,
                                                const std::int32_t* xb, std::size_t x_stride, __m256 lo[R],
                                                __m256 hi[R]) {
  for (int r = 0; r < R; ++r) {
    const std::int8_t* x = xq + r * x_stride * 4;
    const std::int32_t* b = xb + r * x_stride;
    lo[r] = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(_mm256_add_epi32(load(b), dot4(wu0, x))), lo[r]);
    hi[r] = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(_mm256_add_epi32(load(b + 8), dot4(wu1, x + 32))), hi[r]);
  }
}

template <int R>
void d4_fused_rows(const float* scales16, const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                   std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                   float* out) {
  const D4Consts k4;
  const __m256 table_lo = _mm256_loadu_ps(scales16), table_hi = _mm256_loadu_ps(scales16 + 8);
  const __m256 s_zero = _mm256_set1_ps(scales16[0]);
  const std::size_t blocks16 = (blocks + 15) / 16 * 16;
  // T of a row as nibbles, zero-padded to a multiple of 32 blocks (compact forms expanded here).
  std::vector<std::uint8_t> nibbles((blocks + 31) / 32 * 16, 0);
  for (std::size_t n = 0; n < n_rows; ++n, codes += 2 * blocks, out += R) {
    if (t.bits == 4) std::memcpy(nibbles.data(), t.t + n * t.row_bytes, t.row_bytes);
    else expand_t_row(t, n, blocks, nibbles.data());
    __m256 lo[R], hi[R];
    for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (std::size_t k = 0; k < blocks16; k += 32) {
      __m256i wu[4];
      __m256 s[4];
      const std::size_t nb = std::min<std::size_t>(32, blocks - k);
      if (nb == 32) {
        d4_decode32(k4, codes + 2 * k, wu);
      } else {  // the row's tail through a zero-filled copy (zero codes decode to w = 0)
        alignas(32) std::uint8_t c[64] = {};
        std::memcpy(c, codes + 2 * k, 2 * nb);
        d4_decode32(k4, c, wu);
      }
      for (int i = 0; i < 4; ++i) {
        std::uint32_t tw;
        std::memcpy(&tw, nibbles.data() + k / 2 + 4 * static_cast<std::size_t>(i), 4);
        s[i] = tw == 0 ? s_zero : scales8(table_lo, table_hi, tw);
      }
      if (nb < 32) {  // padding blocks have scale 0, as in the reference
        alignas(32) float sv[32];
        for (int i = 0; i < 4; ++i) _mm256_store_ps(sv + 8 * i, s[i]);
        for (std::size_t i = nb; i < 32; ++i) sv[i] = 0.0f;
        for (int i = 0; i < 4; ++i) s[i] = _mm256_load_ps(sv + 8 * i);
      }
      d4_group_dot<R>(wu[0], wu[1], s[0], s[1], xq + 4 * k, xb + k, x_stride, lo, hi);
      if (k + 16 < blocks16) d4_group_dot<R>(wu[2], wu[3], s[2], s[3], xq + 4 * (k + 16), xb + k + 16, x_stride, lo, hi);
    }
    for (int r = 0; r < R; ++r) out[r] = tree(lo[r], hi[r]);
  }
}

// One 16-block group (deploy_pos layout: D4 w at 4k, E8 halves 64 bytes apart) against R input rows.
template <int D, int R>
[[gnu::always_inline]] inline void group_dot(const std::int8_t* w, const float* s, const std::int8_t* xq,
                                             const std::int32_t* xb, std::size_t x_stride, __m256 lo[R],
                                             __m256 hi[R]) {
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(fused_weight_bias(D)));
  const __m256i w0 = _mm256_add_epi8(load(w), bias);  // blocks 0-7 (E8: bytes 0-3)
  const __m256i w1 = _mm256_add_epi8(load(w + 32), bias);  // blocks 8-15
  __m256i w2 = w0, w3 = w1;
  if constexpr (D == 8) {
    w2 = _mm256_add_epi8(load(w + 64), bias);  // blocks 0-7, bytes 4-7
    w3 = _mm256_add_epi8(load(w + 96), bias);
  }
  const __m256 s0 = _mm256_loadu_ps(s), s1 = _mm256_loadu_ps(s + 8);
  for (int r = 0; r < R; ++r) {
    const std::int8_t* x = xq + r * x_stride * D;
    const std::int32_t* b = xb + r * x_stride;
    __m256i a = _mm256_add_epi32(load(b), dot4(w0, x));
    __m256i c = _mm256_add_epi32(load(b + 8), dot4(w1, x + 32));
    if constexpr (D == 8) {
      a = _mm256_add_epi32(a, dot4(w2, x + 64));
      c = _mm256_add_epi32(c, dot4(w3, x + 96));
    }
    lo[r] = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(a), lo[r]);
    hi[r] = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(c), hi[r]);
  }
}

// E8: one chunk's row decode by the AVX2 decoder (w, s; its wb is not used here).
struct DecodeE8 {
  static constexpr int D = 8;
  void operator()(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t, std::size_t blocks,
                  std::int8_t* w, float* s, std::int32_t* wb) const {
    decode_e8q16_avx2(scales16, codes, t, blocks, w, s, wb);
  }
};

template <class Decode, int R>
void fused_rows(const Decode& decode, const float* scales16, const std::uint8_t* codes, const TRows& t,
                std::size_t blocks, std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb,
                std::size_t x_stride, float* out) {
  constexpr int D = Decode::D;
  constexpr std::size_t kCodeBytes = D == 4 ? 2 : 4;  // per block
  const std::size_t blocks16 = (blocks + 15) / 16 * 16;
  alignas(32) std::int8_t w[kChunk * D];
  alignas(32) float s[kChunk];
  alignas(32) std::int32_t wb[kChunk];
  std::vector<std::uint8_t> nibbles(t.bits == 4 ? 0 : (blocks + 1) / 2);
  for (std::size_t n = 0; n < n_rows; ++n, codes += blocks * kCodeBytes, out += R) {
    const std::uint8_t* trow = t.t + n * t.row_bytes;
    if (t.bits != 4) {  // compact T: this row's nibbles (the scalar rule)
      expand_t_row(t, n, blocks, nibbles.data());
      trow = nibbles.data();
    }
    __m256 lo[R], hi[R];
    for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (std::size_t k = 0; k < blocks16; k += kChunk) {
      const std::size_t nb = std::min(kChunk, blocks - std::min(blocks, k));  // decoded blocks
      const std::size_t ng = std::min(kChunk, blocks16 - k);                  // blocks multiplied (x 16)
      if (nb < ng) {  // the row's last chunk: padding blocks have w = 0 and s = 0, as the reference's
        std::memset(w, 0, sizeof w);
        std::memset(s, 0, sizeof s);
      }
      decode(scales16, codes + k * kCodeBytes, trow + k / 2, nb, w, s, wb);
      for (std::size_t g = 0; g < ng; g += 16)
        group_dot<D, R>(w + g * D, s + g, xq + (k + g) * D, xb + k + g, x_stride, lo, hi);
    }
    for (int r = 0; r < R; ++r) out[r] = tree(lo[r], hi[r]);
  }
}

template <class Decode>
void fused_batch(const Decode& decode, const float* scales16, const std::uint8_t* codes, const TRows& t,
                 std::size_t blocks, std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb,
                 std::size_t x_stride, std::size_t rows, float* out) {
  switch (rows) {
    case 4: return fused_rows<Decode, 4>(decode, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 3: return fused_rows<Decode, 3>(decode, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 2: return fused_rows<Decode, 2>(decode, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    default: return fused_rows<Decode, 1>(decode, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
  }
}

}  // namespace

void fused_gemv_d4q4_avx2(const D4Q4Tables&, const float* scales16, const std::uint8_t* codes, const TRows& t,
                          std::size_t blocks, std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb,
                          std::size_t x_stride, std::size_t rows, float* out) {
  // The D4 q=4 rule is computed (D4NibbleTables), not read from `tables`; the tests hold it to the
  // reference decode's tables.
  switch (rows) {
    case 4: return d4_fused_rows<4>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 3: return d4_fused_rows<3>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 2: return d4_fused_rows<2>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    default: return d4_fused_rows<1>(scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
  }
}

void fused_gemv_e8q16_avx2(const float* scales16, const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                           std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                           std::size_t rows, float* out) {
  fused_batch(DecodeE8{}, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, rows, out);
}

}  // namespace lowbit::coset::kernels
