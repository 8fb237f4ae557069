// AVX2 level of gather.h: the row algorithm (gather_rows.h) with an AVX2 index unpacker.
#include <immintrin.h>

#include "gather_rows.h"

namespace lowbit::kuat::kernels {
namespace {

// Eight indices of `bits` bits occupy exactly `bits` bytes. Index j starts at bit j*bits: its
// value is the 64-bit window of dwords (d, d+1), d = (j*bits)/32, shifted right by the rest.
struct UnpackAvx2 {
  static std::uint32_t run(const std::uint8_t* packed, std::size_t count, std::uint32_t bits, std::uint16_t* out) {
    alignas(32) std::int32_t lo_dword[8], shift[8];
    for (int j = 0; j < 8; ++j) {
      lo_dword[j] = static_cast<std::int32_t>((j * bits) >> 5);
      shift[j] = static_cast<std::int32_t>((j * bits) & 31);
    }
    const __m256i dw_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo_dword));
    const __m256i dw_hi = _mm256_add_epi32(dw_lo, _mm256_set1_epi32(1));
    const __m256i sh_r = _mm256_load_si256(reinterpret_cast<const __m256i*>(shift));
    const __m256i sh_l = _mm256_sub_epi32(_mm256_set1_epi32(32), sh_r);
    const __m256i mask = _mm256_set1_epi32(static_cast<int>((1u << bits) - 1u));
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const std::size_t total_bytes = packed_bytes(count, bits);
    __m256i vmax = _mm256_setzero_si256();
    for (std::size_t i = 0; i < count; i += 8) {
      const std::size_t at = (i / 8) * bits;  // byte offset of this block
      __m256i v;
      if (at + 32 <= total_bytes) {
        v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + at));
      } else {  // never read past the block: copy the tail into a zeroed window
        alignas(32) std::uint8_t window[32] = {};
        std::memcpy(window, packed + at, total_bytes - at);
        v = _mm256_load_si256(reinterpret_cast<const __m256i*>(window));
      }
      const __m256i lo = _mm256_srlv_epi32(_mm256_permutevar8x32_epi32(v, dw_lo), sh_r);
      const __m256i hi = _mm256_sllv_epi32(_mm256_permutevar8x32_epi32(v, dw_hi), sh_l);  // shift 32 gives 0
      __m256i value = _mm256_and_si256(_mm256_or_si256(lo, hi), mask);
      if (i + 8 > count) {  // lanes past the end hold padding bits: keep them out of the max
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count - i)), lane);
        value = _mm256_and_si256(value, live);
      }
      vmax = _mm256_max_epu32(vmax, value);
      const __m128i narrow = _mm_packus_epi32(_mm256_castsi256_si128(value), _mm256_extracti128_si256(value, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), narrow);
    }
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(vmax), _mm256_extracti128_si256(vmax, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xB1));
    return static_cast<std::uint32_t>(_mm_cvtsi128_si32(m));
  }
};

}  // namespace

std::uint32_t gather_sample_avx2(const GatherTable& table, const std::uint8_t* packed,
                                 const SampleTransform& transform, std::uint8_t* out, const GatherScratch& scratch) {
  return gather_rows<UnpackAvx2>(table, packed, transform, out, scratch);
}

}  // namespace lowbit::kuat::kernels
