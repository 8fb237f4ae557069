// AVX-512 (F/BW/VNNI) level of the deployed-layer kernels: table gathers for the D4 q=4 M=2
// decode, vpdpbusd for the exact integer block sums, 16 float partial sums in one register.
// GCC 12's AVX-512 headers initialise their "undefined" vectors from themselves, so
// -Wmaybe-uninitialized reports at every inlined call site; the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include "deploy_e8_generic.h"
#include "deploy_kernels.h"

namespace lowbit::coset::kernels {

namespace {
// 16 T nibbles (8 bytes at t) -> 16 int32 indices.
inline __m512i nibbles16(const std::uint8_t* t) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t));
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(15));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
  return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
}
struct E8V512 {
  using I = __m512i;
  using Mask = __mmask16;
  static constexpr std::size_t kWidth = 16;
  static I set1(int a) { return _mm512_set1_epi32(a); }
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  template <int n>
  static I srai(I a) { return _mm512_srai_epi32(a, n); }
  template <int n>
  static I slli(I a) { return _mm512_slli_epi32(a, n); }
  static I slli_var(I a, int n) { return _mm512_sll_epi32(a, _mm_cvtsi32_si128(n)); }
  static I srli_var(I a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
  static I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static I abs(I a) { return _mm512_abs_epi32(a); }
  static I max(I a, I b) { return _mm512_max_epi32(a, b); }
  static Mask eq(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static Mask lt(I a, I b) { return _mm512_cmplt_epi32_mask(a, b); }
  static I select(Mask m, I a, I b) { return _mm512_mask_blend_epi32(m, b, a); }
  static Mask and_m(Mask a, Mask b) { return static_cast<Mask>(a & b); }
  static Mask or_m(Mask a, Mask b) { return static_cast<Mask>(a | b); }
  static Mask not_m(Mask a) { return static_cast<Mask>(~a); }
  static I load(const std::uint8_t* p) { return _mm512_loadu_si512(p); }
  static void store_blocks(I lo, I hi, std::uint8_t* u) {
    const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_si512(u, _mm512_permutex2var_epi32(lo, first, hi));
    _mm512_storeu_si512(u + 64, _mm512_permutex2var_epi32(lo, second, hi));
  }
  static void store_scales(const float* scales16, const std::uint8_t* t, float* s) {
    _mm512_storeu_ps(s, _mm512_permutexvar_ps(nibbles16(t), _mm512_loadu_ps(scales16)));
  }
};

}  // namespace

void decode_e8q16_avx512(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t, std::size_t blocks,
                         std::uint8_t* u, float* s) {
  generic::E8Q16Lanes<E8V512>::decode_row(scales16, codes, t, blocks, u, s);
}

void decode_d4q4_avx512(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                        const std::uint8_t* t, std::size_t blocks, std::uint8_t* u, float* s) {
  const __m512 scale_table = _mm512_loadu_ps(scales16);
  const __m512i low_byte = _mm512_set1_epi32(0xFF);
  std::size_t k = 0;
  for (; k + 16 <= blocks; k += 16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 2 * k)));
    const __m512i w0 = _mm512_i32gather_epi32(_mm512_and_si512(v, low_byte), tables.level0, 4);
    const __m512i w1 = _mm512_i32gather_epi32(_mm512_srli_epi32(v, 8), tables.level1, 4);
    _mm512_storeu_si512(u + 4 * k, _mm512_add_epi32(w0, w1));
    _mm512_storeu_ps(s + k, _mm512_permutexvar_ps(nibbles16(t + k / 2), scale_table));
  }
  if (k < blocks) decode_d4q4_ref(tables, scales16, codes + 2 * k, t + k / 2, blocks - k, u + 4 * k, s + k);
}

float block_dot_avx512(int d, const std::uint8_t* u, const float* s, const std::int8_t* xq, const std::int32_t* xbias,
                       std::size_t blocks16) {
  if (d != 4 && d != 8) return block_dot_ref(d, u, s, xq, xbias, blocks16);
  __m512 p = _mm512_setzero_ps();
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (std::size_t k = 0; k < blocks16; k += 16) {
    __m512i sums;
    if (d == 4) {
      sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(u + 4 * k), _mm512_loadu_si512(xq + 4 * k));
    } else {  // a block is two dwords: add the pairs
      const __m512i a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(u + 8 * k),
                                            _mm512_loadu_si512(xq + 8 * k));
      const __m512i b = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(u + 8 * k + 64),
                                            _mm512_loadu_si512(xq + 8 * k + 64));
      sums = _mm512_add_epi32(_mm512_permutex2var_epi32(a, even, b), _mm512_permutex2var_epi32(a, odd, b));
    }
    sums = _mm512_sub_epi32(sums, _mm512_loadu_si512(xbias + k));
    p = _mm512_add_ps(p, _mm512_mul_ps(_mm512_loadu_ps(s + k), _mm512_cvtepi32_ps(sums)));
  }
  // The halving tree of deploy.h: 8, 4, 2, 1.
  const __m256 r8 = _mm256_add_ps(_mm512_castps512_ps256(p), _mm512_maskz_extractf32x8_ps(0xFF, p, 1));
  const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
  const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
  const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
  return _mm_cvtss_f32(r1);
}

}  // namespace lowbit::coset::kernels
