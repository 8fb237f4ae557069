// AVX-512 level of gather.h: the row algorithm (gather_rows.h) with an AVX-512BW index unpacker.
#include <immintrin.h>

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized reports at every inlined call site; the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "gather_rows.h"

namespace lowbit::kuat::kernels {
namespace {

// Sixteen indices of `bits` bits occupy exactly `bits` 16-bit words. Index j starts at bit
// j*bits: a word permute places words (w, w+1), w = (j*bits)/16, in dword lane j, and a
// variable shift by the rest (< 16) leaves at least 16 valid bits. Loads are byte-masked to the
// block, so nothing past the packed data is read.
struct UnpackAvx512 {
  static std::uint32_t run(const std::uint8_t* packed, std::size_t count, std::uint32_t bits, std::uint16_t* out) {
    alignas(64) std::uint16_t word_index[32];
    alignas(64) std::uint32_t shift[16];
    for (std::uint32_t j = 0; j < 16; ++j) {
      const std::uint32_t w = (j * bits) >> 4;
      word_index[2 * j] = static_cast<std::uint16_t>(w);
      word_index[2 * j + 1] = static_cast<std::uint16_t>(w + 1);
      shift[j] = (j * bits) & 15;
    }
    const __m512i perm = _mm512_load_si512(word_index);
    const __m512i sh = _mm512_load_si512(shift);
    const __m512i mask = _mm512_set1_epi32(static_cast<int>((1u << bits) - 1u));
    const std::size_t total_bytes = packed_bytes(count, bits);
    __m512i vmax = _mm512_setzero_si512();
    for (std::size_t i = 0; i < count; i += 16) {
      const std::size_t at = (i / 16) * 2 * bits;
      const std::size_t left = total_bytes - at;
      const __mmask64 load_mask = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
      const __m512i v = _mm512_maskz_loadu_epi8(load_mask, packed + at);
      const __m512i value = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi16(perm, v), sh), mask);
      const std::size_t live = count - i;
      const __mmask16 live_mask = live >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << live) - 1u);
      vmax = _mm512_mask_max_epu32(vmax, live_mask, vmax, value);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(value));
    }
    alignas(64) std::uint32_t lanes[16];
    _mm512_store_si512(lanes, vmax);
    std::uint32_t m = 0;
    for (std::uint32_t v : lanes) m = v > m ? v : m;
    return m;
  }
};

}  // namespace

std::uint32_t gather_sample_avx512(const GatherTable& table, const std::uint8_t* packed,
                                   const SampleTransform& transform, std::uint8_t* out, const GatherScratch& scratch) {
  return gather_rows<UnpackAvx512>(table, packed, transform, out, scratch);
}

}  // namespace lowbit::kuat::kernels
