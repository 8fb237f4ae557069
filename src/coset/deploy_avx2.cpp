// AVX2 level of the deployed-layer kernels: table gathers for the D4 q=4 M=2 decode, int16 lanes
// for the E8 q=16 M=1 decode, vpmaddubsw + vpmaddwd for the exact integer block sums (with a T per
// group of 4 blocks, unpacks + adds for the group sums), 16 float partial sums in two registers per
// input row.
#include <immintrin.h>

#include <algorithm>

#include "deploy_e8_generic.h"
#include "deploy_avx2_tree.h"
#include "deploy_kernels.h"

namespace lowbit::coset::kernels {

namespace {
// 8 T nibbles (4 bytes at t) -> 8 scales.
inline __m256 scales8(const float* scales16, const std::uint8_t* t) {
  const __m256i bytes = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(
      _mm_loadu_si32(t), _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1)));
  const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)),
                                       _mm256_set1_epi32(15));
  return _mm256_i32gather_ps(scales16, idx, 4);
}

struct E8V256 {
  using I = __m256i;
  using Mask = __m256i;
  static constexpr std::size_t kBlocks = 16;
  static I set1(int a) { return _mm256_set1_epi16(static_cast<short>(a)); }
  static I add(I a, I b) { return _mm256_add_epi16(a, b); }
  static I sub(I a, I b) { return _mm256_sub_epi16(a, b); }
  static I mullo(I a, I b) { return _mm256_mullo_epi16(a, b); }
  template <int n>
  static I srai(I a) { return _mm256_srai_epi16(a, n); }
  template <int n>
  static I slli(I a) { return _mm256_slli_epi16(a, n); }
  static I and_(I a, I b) { return _mm256_and_si256(a, b); }
  static I or_(I a, I b) { return _mm256_or_si256(a, b); }
  static I abs(I a) { return _mm256_abs_epi16(a); }
  static I max(I a, I b) { return _mm256_max_epi16(a, b); }
  static Mask eq(I a, I b) { return _mm256_cmpeq_epi16(a, b); }
  static Mask lt(I a, I b) { return _mm256_cmpgt_epi16(b, a); }
  static I select(Mask m, I a, I b) { return _mm256_blendv_epi8(b, a, m); }
  static Mask and_m(Mask a, Mask b) { return _mm256_and_si256(a, b); }
  static Mask or_m(Mask a, Mask b) { return _mm256_or_si256(a, b); }
  static Mask not_m(Mask a) { return _mm256_xor_si256(a, _mm256_set1_epi32(-1)); }
  // Blocks 0-7 and 8-15 as dwords packed to 16-bit lanes: [0-3, 8-11 | 4-7, 12-15].
  static void codes(const std::uint8_t* p, I* b) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    const __m256i mask = _mm256_set1_epi32(15);
    __m256i ra = a, rc = c;
    LOWBIT_UNROLL8
    for (int j = 0; j < 8; ++j) {
      b[j] = _mm256_packus_epi32(_mm256_and_si256(ra, mask), _mm256_and_si256(rc, mask));
      ra = _mm256_srli_epi32(ra, 4);
      rc = _mm256_srli_epi32(rc, 4);
    }
  }
  static void store(I lo_a, I lo_b, I hi_a, I hi_b, std::int8_t* u) {
    auto put = [](std::int8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); };
    put(u, _mm256_unpacklo_epi16(lo_a, lo_b));       // blocks 0-7, bytes 0-3
    put(u + 32, _mm256_unpackhi_epi16(lo_a, lo_b));  // blocks 8-15
    put(u + 64, _mm256_unpacklo_epi16(hi_a, hi_b));  // blocks 0-7, bytes 4-7
    put(u + 96, _mm256_unpackhi_epi16(hi_a, hi_b));
  }
  static void store_sums(I sum, std::int32_t* wb) {
    const __m256i sign = _mm256_srai_epi16(sum, 15);
    const __m256i zero = _mm256_setzero_si256();
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(wb),
                        _mm256_sub_epi32(zero, _mm256_slli_epi32(_mm256_unpacklo_epi16(sum, sign), 7)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(wb + 8),
                        _mm256_sub_epi32(zero, _mm256_slli_epi32(_mm256_unpackhi_epi16(sum, sign), 7)));
  }
  static void store_scales(const float* scales16, const std::uint8_t* t, float* s) {
    _mm256_storeu_ps(s, scales8(scales16, t));
    _mm256_storeu_ps(s + 8, scales8(scales16, t + 4));
  }
};

// 8 dwords, each the sum of 4 products xu * w (no saturation: see deploy_kernels.h).
inline __m256i dot4(const std::uint8_t* xu, const std::int8_t* w) {
  const __m256i prod = _mm256_maddubs_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xu)),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  return _mm256_madd_epi16(prod, _mm256_set1_epi16(1));
}

using avx2::tree;  // deploy_avx2_tree.h

inline std::int64_t sum_epi32(__m256i v) {  // the 8 lanes, each below 2^31, summed in int64
  const __m256i w = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                     _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
  const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  return _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
}

template <int D>
void block_dot_d(const std::int8_t* w, const float* s, const std::uint8_t* exact_chunk, const std::int32_t* wb,
                 const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  for (std::size_t r = 0; r < rows; ++r) {
    const std::uint8_t* x = xu + r * blocks16 * D;
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    __m256i ia = _mm256_setzero_si256();
    std::int64_t a = 0;
    for (std::size_t c = 0; c < blocks16; c += kDeployChunk) {  // the epilogue's chunks (deploy.h)
      const std::size_t end = std::min(blocks16, c + kDeployChunk);
      const bool exact = exact_chunk[c / kDeployChunk] != 0;
      for (std::size_t k = c; k < end; k += 16) {
        const std::size_t off = k * D;
        // Blocks k..k+7 at bytes [off, off + 32) (+ 64 for E8's second halves), k+8..k+15 at + 32.
        __m256i ra =
            _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + k)), dot4(x + off, w + off));
        __m256i rb = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + k + 8)),
                                      dot4(x + off + 32, w + off + 32));
        if (D == 8) {
          ra = _mm256_add_epi32(ra, dot4(x + off + 64, w + off + 64));
          rb = _mm256_add_epi32(rb, dot4(x + off + 96, w + off + 96));
        }
        if (exact) {
          ia = _mm256_add_epi32(ia, _mm256_add_epi32(ra, rb));
        } else {
          lo = _mm256_fmadd_ps(_mm256_loadu_ps(s + k), _mm256_cvtepi32_ps(ra), lo);
          hi = _mm256_fmadd_ps(_mm256_loadu_ps(s + k + 8), _mm256_cvtepi32_ps(rb), hi);
        }
      }
      if (end % kDeployIntChunk == 0) {
        a += sum_epi32(ia);
        ia = _mm256_setzero_si256();
      }
    }
    out[r] = deploy_finish(s0, a + sum_epi32(ia), tree(lo, hi));
  }
}

// ---- T per group of 4 blocks (deploy.h, t_group = 4; D4) ----
// Per 64-block chunk the 8 registers of block sums I = wb + dot become the chunk's 16 exact group
// sums (avx2::g4_sums: groups 0-7, 8-15; wb's share summed once for the input rows), in int32 lanes
// on exact chunks, else one fma per half with the group scales in the same lane order;
// avx2::tree_g4 restores group order.

// The scales of 8 groups (s: one per group, group order) in the lanes of avx2::g4_sums.
inline __m256 g4_scales(const float* s) {
  return _mm256_permutevar8x32_ps(_mm256_loadu_ps(s), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}

// The chunk at block c for R input rows (row r at xu + r * blocks16 * 4): n registers of 8 blocks
// (8 but for the last chunk: 2, 4 or 6), zero past them; s the chunk's 16 group scales.
template <int R>
[[gnu::always_inline]] inline void g4_chunk(const std::int8_t* w, const float* s, bool exact, const std::int32_t* wb,
                                            const std::uint8_t* xu, std::size_t blocks16, std::size_t c, int n,
                                            __m256 lo[R], __m256 hi[R], __m256i ia[R]) {
  __m256i b[8];
  LOWBIT_UNROLL8
  for (int i = 0; i < 8; ++i)
    b[i] = i < n ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + c + 8 * i)) : _mm256_setzero_si256();
  const __m256i wg0 = avx2::g4_sums(b[0], b[1], b[2], b[3]), wg1 = avx2::g4_sums(b[4], b[5], b[6], b[7]);
  const __m256 s_lo = exact ? _mm256_setzero_ps() : g4_scales(s);
  const __m256 s_hi = exact ? _mm256_setzero_ps() : g4_scales(s + 8);
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) {
    const std::uint8_t* x = xu + r * blocks16 * 4 + c * 4;
    LOWBIT_UNROLL8
    for (int i = 0; i < 8; ++i) b[i] = i < n ? dot4(x + 32 * i, w + c * 4 + 32 * i) : _mm256_setzero_si256();
    const __m256i g0 = _mm256_add_epi32(wg0, avx2::g4_sums(b[0], b[1], b[2], b[3]));
    const __m256i g1 = _mm256_add_epi32(wg1, avx2::g4_sums(b[4], b[5], b[6], b[7]));
    if (exact) {
      ia[r] = _mm256_add_epi32(ia[r], _mm256_add_epi32(g0, g1));  // a lane: 8 of each 64 blocks' I
    } else {
      lo[r] = _mm256_fmadd_ps(s_lo, _mm256_cvtepi32_ps(g0), lo[r]);
      hi[r] = _mm256_fmadd_ps(s_hi, _mm256_cvtepi32_ps(g1), hi[r]);
    }
  }
}

template <int R>
void block_dot_g4_rows(const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                       const std::uint8_t* xu, std::size_t blocks16, float s0, float* out) {
  __m256 lo[R], hi[R];
  __m256i ia[R];
  std::int64_t a[R];
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) {
    lo[r] = hi[r] = _mm256_setzero_ps();
    ia[r] = _mm256_setzero_si256();
    a[r] = 0;
  }
  std::size_t c = 0;
  for (; c + kDeployChunk <= blocks16; c += kDeployChunk) {  // the epilogue's chunks (deploy.h)
    g4_chunk<R>(w, s + c / 4, exact[c / kDeployChunk] != 0, wb, xu, blocks16, c, 8, lo, hi, ia);
    if ((c + kDeployChunk) % kDeployIntChunk == 0) {
      LOWBIT_UNROLL8
      for (int r = 0; r < R; ++r) {
        a[r] += sum_epi32(ia[r]);
        ia[r] = _mm256_setzero_si256();
      }
    }
  }
  if (c < blocks16) {
    // A last chunk of 16, 32 or 48 blocks: its scales, zero past blocks16, so that its absent groups
    // (I = 0) add fma(0, 0, p) = p (p starts at +0 and never becomes -0).
    alignas(32) float last_s[kDeployChunk / 4] = {};
    std::copy(s + c / 4, s + blocks16 / 4, last_s);
    g4_chunk<R>(w, last_s, exact[c / kDeployChunk] != 0, wb, xu, blocks16, c, static_cast<int>((blocks16 - c) / 8),
                lo, hi, ia);
  }
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) out[r] = deploy_finish(s0, a[r] + sum_epi32(ia[r]), avx2::tree_g4(lo[r], hi[r]));
}

}  // namespace

void decode_e8q16_avx2(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t, std::size_t blocks,
                       std::int8_t* w, float* s, std::int32_t* wb) {
  generic::E8Q16Lanes<E8V256>::decode_row(scales16, codes, t, blocks, w, s, wb);
}

void decode_d4q4_avx2(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                      const std::uint8_t* t, std::size_t blocks, std::int8_t* w, float* s, std::int32_t* wb) {
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  std::size_t k = 0;
  for (; k + 8 <= blocks; k += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 2 * k)));
    const __m256i w0 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tables.level0), _mm256_and_si256(v, low_byte), 4);
    const __m256i w1 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tables.level1), _mm256_srli_epi32(v, 8), 4);
    const __m256i biased = _mm256_add_epi32(w0, w1);  // w + 64 per byte
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + 4 * k), _mm256_sub_epi8(biased, _mm256_set1_epi8(64)));
    // wb = -128 * sum_j w_j = 128 * 256 - 128 * sum_j (w_j + 64)
    const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(biased, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(wb + k),
                        _mm256_sub_epi32(_mm256_set1_epi32(kActBias * 256), _mm256_slli_epi32(sum, 7)));
    _mm256_storeu_ps(s + k, scales8(scales16, t + k / 2));
  }
  if (k < blocks) decode_d4q4_ref(tables, scales16, codes + 2 * k, t + k / 2, blocks - k, w + 4 * k, s + k, wb + k);
}

void block_dot_g4_avx2(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                       const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  if (d != 4) return block_dot_g4_ref(d, w, s, exact, wb, xu, blocks16, rows, s0, out);
  switch (rows) {
    case 4: return block_dot_g4_rows<4>(w, s, exact, wb, xu, blocks16, s0, out);
    case 3: return block_dot_g4_rows<3>(w, s, exact, wb, xu, blocks16, s0, out);
    case 2: return block_dot_g4_rows<2>(w, s, exact, wb, xu, blocks16, s0, out);
    default: return block_dot_g4_rows<1>(w, s, exact, wb, xu, blocks16, s0, out);
  }
}

void block_dot_avx2(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                    const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  if (d == 4) return block_dot_d<4>(w, s, exact, wb, xu, blocks16, rows, s0, out);
  if (d == 8) return block_dot_d<8>(w, s, exact, wb, xu, blocks16, rows, s0, out);
  block_dot_ref(d, w, s, exact, wb, xu, blocks16, rows, s0, out);
}

}  // namespace lowbit::coset::kernels
