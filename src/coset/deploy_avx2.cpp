// AVX2 level of the deployed-layer kernels: table gathers for the D4 q=4 M=2 decode,
// vpmaddubsw + vpmaddwd for the exact integer block sums, 16 float partial sums in two registers.
#include <immintrin.h>

#include "deploy_e8_generic.h"
#include "deploy_kernels.h"

namespace lowbit::coset::kernels {

namespace {
// 8 T nibbles (4 bytes at t) -> 8 scales.
inline __m256 scales8(const float* scales16, const std::uint8_t* t) {
  const __m256i bytes = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(
      _mm_cvtsi32_si128(*reinterpret_cast<const int*>(t)), _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1)));
  const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)),
                                       _mm256_set1_epi32(15));
  return _mm256_i32gather_ps(scales16, idx, 4);
}

struct E8V256 {
  using I = __m256i;
  using Mask = __m256i;
  static constexpr std::size_t kWidth = 8;
  static I set1(int a) { return _mm256_set1_epi32(a); }
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
  template <int n>
  static I srai(I a) { return _mm256_srai_epi32(a, n); }
  template <int n>
  static I slli(I a) { return _mm256_slli_epi32(a, n); }
  static I slli_var(I a, int n) { return _mm256_sll_epi32(a, _mm_cvtsi32_si128(n)); }
  static I srli_var(I a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
  static I and_(I a, I b) { return _mm256_and_si256(a, b); }
  static I or_(I a, I b) { return _mm256_or_si256(a, b); }
  static I abs(I a) { return _mm256_abs_epi32(a); }
  static I max(I a, I b) { return _mm256_max_epi32(a, b); }
  static Mask eq(I a, I b) { return _mm256_cmpeq_epi32(a, b); }
  static Mask lt(I a, I b) { return _mm256_cmpgt_epi32(b, a); }
  static I select(Mask m, I a, I b) { return _mm256_blendv_epi8(b, a, m); }
  static Mask and_m(Mask a, Mask b) { return _mm256_and_si256(a, b); }
  static Mask or_m(Mask a, Mask b) { return _mm256_or_si256(a, b); }
  static Mask not_m(Mask a) { return _mm256_xor_si256(a, _mm256_set1_epi32(-1)); }
  static I load(const std::uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store_blocks(I lo, I hi, std::uint8_t* u) {
    const __m256i a = _mm256_unpacklo_epi32(lo, hi);  // blocks 0, 1 | 4, 5
    const __m256i b = _mm256_unpackhi_epi32(lo, hi);  // blocks 2, 3 | 6, 7
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u), _mm256_permute2x128_si256(a, b, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 32), _mm256_permute2x128_si256(a, b, 0x31));
  }
  static void store_scales(const float* scales16, const std::uint8_t* t, float* s) {
    _mm256_storeu_ps(s, scales8(scales16, t));
  }
};
}  // namespace

void decode_e8q16_avx2(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t, std::size_t blocks,
                       std::uint8_t* u, float* s) {
  generic::E8Q16Lanes<E8V256>::decode_row(scales16, codes, t, blocks, u, s);
}

void decode_d4q4_avx2(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                      const std::uint8_t* t, std::size_t blocks, std::uint8_t* u, float* s) {
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  std::size_t k = 0;
  for (; k + 8 <= blocks; k += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 2 * k)));
    const __m256i w0 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tables.level0), _mm256_and_si256(v, low_byte), 4);
    const __m256i w1 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tables.level1), _mm256_srli_epi32(v, 8), 4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 4 * k), _mm256_add_epi32(w0, w1));
    _mm256_storeu_ps(s + k, scales8(scales16, t + k / 2));
  }
  if (k < blocks) decode_d4q4_ref(tables, scales16, codes + 2 * k, t + k / 2, blocks - k, u + 4 * k, s + k);
}

namespace {
// 8 dwords, each the sum of 4 products u * xq (no saturation: see deploy_kernels.h).
inline __m256i dot4(const std::uint8_t* u, const std::int8_t* xq) {
  const __m256i prod = _mm256_maddubs_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u)),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
  return _mm256_madd_epi16(prod, _mm256_set1_epi16(1));
}
// The block sums of blocks k..k+7.
inline __m256i block_sums8(int d, const std::uint8_t* u, const std::int8_t* xq) {
  if (d == 4) return dot4(u, xq);
  // E8: hadd pairs the dwords of each block; the permute restores block order.
  const __m256i h = _mm256_hadd_epi32(dot4(u, xq), dot4(u + 32, xq + 32));
  return _mm256_permute4x64_epi64(h, 0xD8);
}
}  // namespace

float block_dot_avx2(int d, const std::uint8_t* u, const float* s, const std::int8_t* xq, const std::int32_t* xbias,
                     std::size_t blocks16) {
  if (d != 4 && d != 8) return block_dot_ref(d, u, s, xq, xbias, blocks16);
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // partial sums 0..7 and 8..15
  for (std::size_t k = 0; k < blocks16; k += 16) {
    const std::size_t off = static_cast<std::size_t>(d) * k;
    const __m256i a = _mm256_sub_epi32(block_sums8(d, u + off, xq + off),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xbias + k)));
    const __m256i b = _mm256_sub_epi32(block_sums8(d, u + off + 8 * d, xq + off + 8 * d),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xbias + k + 8)));
    lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(s + k), _mm256_cvtepi32_ps(a)));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(s + k + 8), _mm256_cvtepi32_ps(b)));
  }
  const __m256 r8 = _mm256_add_ps(lo, hi);
  const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
  const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
  const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
  return _mm_cvtss_f32(r1);
}

}  // namespace lowbit::coset::kernels
