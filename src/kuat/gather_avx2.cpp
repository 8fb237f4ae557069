// AVX2 level of gather.h: the row algorithm (gather_rows.h) with an AVX2 index unpacker.
#include <immintrin.h>

#include "gather_planar.h"
#include "gather_rows.h"

namespace lowbit::kuat::kernels {
namespace {

// Eight indices of `bits` bits occupy exactly `bits` bytes. Index j starts at bit j*bits: its
// value is the 64-bit window of dwords (d, d+1), d = (j*bits)/32, shifted right by the rest.
// Six-byte pieces in 8-byte slots, four at a time: load four slots, squeeze each 16-byte
// lane's two pieces together, join the lanes' 12 bytes and write 24 bytes with one 32-byte
// store (the 8-byte spill is overwritten by the next store or lands in the row slack).
void lay_pieces6(std::uint8_t* dst, const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                 std::uint32_t n, std::size_t, bool reverse) {
  const __m256i squeeze = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, -1, -1, -1, -1,  //
                                           0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, -1, -1, -1, -1);
  const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
  auto slot = [&](std::uint32_t j) {
    std::uint64_t v;
    std::memcpy(&v, base + std::size_t{idx[reverse ? n - 1 - j : j]} * stride, 8);
    return static_cast<long long>(v);
  };
  std::uint32_t g = 0;
  for (; g + 4 <= n; g += 4) {
    const __m128i a = _mm_set_epi64x(slot(g + 1), slot(g)), b = _mm_set_epi64x(slot(g + 3), slot(g + 2));
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
    v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, squeeze), join);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + g * 6), v);
  }
  for (; g < n; ++g) std::memcpy(dst + g * 6, base + idx[reverse ? n - 1 - g : g] * stride, 8);
}

// Planar slots (gather_planar.h), four at a time: each 16-byte lane holds two slots
// [R0 R1 G0 G1 B0 B1 x x | R0 R1 G0 G1 B0 B1 x x]; a byte shuffle gathers each plane's four
// bytes into one dword, a dword permute joins the lanes, and each plane gets one 8-byte store.
void lay_planar(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                std::uint32_t n, bool reverse) {
  const __m256i by_plane = _mm256_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, -1, -1, -1, -1,  //
                                            0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, -1, -1, -1, -1);
  const __m256i join = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto slot = [&](std::uint32_t j) {
    std::uint64_t v;
    std::memcpy(&v, base + std::size_t{idx[reverse ? n - 1 - j : j]} * stride, 8);
    return static_cast<long long>(v);
  };
  std::uint32_t g = 0;
  for (; g + 4 <= n; g += 4) {
    const __m128i a = _mm_set_epi64x(slot(g + 1), slot(g)), b = _mm_set_epi64x(slot(g + 3), slot(g + 2));
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
    v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, by_plane), join);
    const __m128i rg = _mm256_castsi256_si128(v), bx = _mm256_extracti128_si256(v, 1);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst[0] + 2 * g), rg);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst[1] + 2 * g), _mm_unpackhi_epi64(rg, rg));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst[2] + 2 * g), bx);
  }
  lay_planar_tail(dst, base, stride, idx, g, n, reverse, 1);
}

// float32 planar slots (32 bytes: qwords R, G, B, pad), four at a time: unpacking qword pairs of
// two slots gives [R R | B B] and [G G | x x]; 128-bit lane permutes join two such pairs into each
// plane's four pieces (8 floats), one 32-byte store per plane.
void lay_planar_f32(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                    std::uint32_t n, bool reverse) {
  auto slot = [&](std::uint32_t j) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + std::size_t{idx[reverse ? n - 1 - j : j]} * stride));
  };
  std::uint32_t g = 0;
  for (; g + 4 <= n; g += 4) {
    const __m256i s0 = slot(g), s1 = slot(g + 1), s2 = slot(g + 2), s3 = slot(g + 3);
    const __m256i rb01 = _mm256_unpacklo_epi64(s0, s1), rb23 = _mm256_unpacklo_epi64(s2, s3);
    const __m256i gx01 = _mm256_unpackhi_epi64(s0, s1), gx23 = _mm256_unpackhi_epi64(s2, s3);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[0] + 8 * g), _mm256_permute2x128_si256(rb01, rb23, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[1] + 8 * g), _mm256_permute2x128_si256(gx01, gx23, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[2] + 8 * g), _mm256_permute2x128_si256(rb01, rb23, 0x31));
  }
  lay_planar_tail(dst, base, stride, idx, g, n, reverse, 4);
}

struct Avx2 {
  static void lay_planar_u8(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride,
                            const std::uint16_t* idx, std::uint32_t n, bool reverse) {
    kernels::lay_planar(dst, base, stride, idx, n, reverse);
  }
  static void lay_planar_f32(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride,
                             const std::uint16_t* idx, std::uint32_t n, bool reverse) {
    kernels::lay_planar_f32(dst, base, stride, idx, n, reverse);
  }

  static LayPiecesFn lay_for(std::size_t piece_bytes, std::size_t slot_bytes, std::size_t* width) {
    if (piece_bytes != 6 || slot_bytes != 8) return nullptr;
    *width = 32;
    return &lay_pieces6;
  }

  static std::uint32_t unpack(const std::uint8_t* packed, std::size_t count, std::uint32_t bits, std::uint16_t* out) {
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
    // Samples are visited in shuffled order, so each block starts cold: run ahead of the loads
    // (prefetches never fault, even past the end of the block).
    for (std::size_t line = 0; line < 1024 && line < total_bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(packed + line), _MM_HINT_T0);
    }
    for (std::size_t i = 0; i < count; i += 8) {
      const std::size_t at = (i / 8) * bits;  // byte offset of this block
      _mm_prefetch(reinterpret_cast<const char*>(packed + at + 1024), _MM_HINT_T0);
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
  if (table.has_planar()) return gather_planar_rows<Avx2>(table, packed, transform, out, scratch);
  return gather_rows<Avx2>(table, packed, transform, out, scratch);
}

}  // namespace lowbit::kuat::kernels
