// AVX-512 level of gather.h: the row algorithm (gather_rows.h) with an AVX-512BW index unpacker.
#include <immintrin.h>

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized reports at every inlined call site; the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "gather_planar.h"
#include "gather_rows.h"

namespace lowbit::kuat::kernels {
namespace {

// Sixteen indices of `bits` bits occupy exactly `bits` 16-bit words. Index j starts at bit
// j*bits: a word permute places words (w, w+1), w = (j*bits)/16, in dword lane j, and a
// variable shift by the rest (< 16) leaves at least 16 valid bits. Loads are byte-masked to the
// block, so nothing past the packed data is read.
// Six-byte pieces (uint8 NHWC, 2x2 patches, 3 channels: the common case) in 8-byte slots,
// eight at a time: load eight slots (plain loads: AMD's vpgatherdq is slower), squeeze each 16-byte lane's two pieces together, join
// the lanes' 12 bytes into 48 contiguous bytes and write them with one 64-byte store (the
// 16-byte spill is overwritten by the next store or lands in the row slack).
void lay_pieces6(std::uint8_t* dst, const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                 std::uint32_t n, std::size_t, bool reverse) {
  const __m512i squeeze = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, -1, -1, -1, -1));
  const __m512i join = _mm512_setr_epi32(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 15, 15, 15);
  auto slot = [&](std::uint32_t j) {
    std::uint64_t v;
    std::memcpy(&v, base + std::size_t{idx[reverse ? n - 1 - j : j]} * stride, 8);
    return static_cast<long long>(v);
  };
  std::uint32_t g = 0;
  for (; g + 8 <= n; g += 8) {
    const __m128i a = _mm_set_epi64x(slot(g + 1), slot(g)), b = _mm_set_epi64x(slot(g + 3), slot(g + 2));
    const __m128i c = _mm_set_epi64x(slot(g + 5), slot(g + 4)), d = _mm_set_epi64x(slot(g + 7), slot(g + 6));
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1)),
                                   _mm256_inserti128_si256(_mm256_castsi128_si256(c), d, 1), 1);
    v = _mm512_permutexvar_epi32(join, _mm512_shuffle_epi8(v, squeeze));
    _mm512_storeu_si512(dst + g * 6, v);
  }
  for (; g < n; ++g) std::memcpy(dst + g * 6, base + idx[reverse ? n - 1 - g : g] * stride, 8);
}

// Planar slots (gather_planar.h), eight at a time: each 16-byte lane holds two slots
// [R0 R1 G0 G1 B0 B1 x x | ...]; a byte shuffle gathers each plane's four bytes into one dword,
// a dword permute puts each plane's 16 bytes in one lane, and each plane gets one 16-byte store.
void lay_planar(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                std::uint32_t n, bool reverse) {
  const __m512i by_plane = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, -1, -1, -1, -1));
  const __m512i join = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  auto slot = [&](std::uint32_t j) {
    std::uint64_t v;
    std::memcpy(&v, base + std::size_t{idx[reverse ? n - 1 - j : j]} * stride, 8);
    return static_cast<long long>(v);
  };
  std::uint32_t g = 0;
  for (; g + 8 <= n; g += 8) {
    const __m128i a = _mm_set_epi64x(slot(g + 1), slot(g)), b = _mm_set_epi64x(slot(g + 3), slot(g + 2));
    const __m128i c = _mm_set_epi64x(slot(g + 5), slot(g + 4)), d = _mm_set_epi64x(slot(g + 7), slot(g + 6));
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1)),
                                   _mm256_inserti128_si256(_mm256_castsi128_si256(c), d, 1), 1);
    v = _mm512_permutexvar_epi32(join, _mm512_shuffle_epi8(v, by_plane));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[0] + 2 * g), _mm512_castsi512_si128(v));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[1] + 2 * g), _mm512_extracti32x4_epi32(v, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[2] + 2 * g), _mm512_extracti32x4_epi32(v, 2));
  }
  lay_planar_tail(dst, base, stride, idx, g, n, reverse, 1);
}

// float32 planar slots (32 bytes: qwords R, G, B, pad), eight at a time: two slots per register;
// a two-source qword permute takes (R, G) of four slots from two registers, another their B, and
// 256-bit lane shuffles join the halves into each plane's eight pieces (16 floats): one 64-byte
// store per plane.
void lay_planar_f32(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                    std::uint32_t n, bool reverse) {
  const __m512i rg = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13);
  const __m512i bb = _mm512_setr_epi64(2, 6, 10, 14, 2, 6, 10, 14);
  auto slot = [&](std::uint32_t j) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + std::size_t{idx[reverse ? n - 1 - j : j]} * stride));
  };
  auto pair = [&](std::uint32_t j) { return _mm512_inserti64x4(_mm512_castsi256_si512(slot(j)), slot(j + 1), 1); };
  std::uint32_t g = 0;
  for (; g + 8 <= n; g += 8) {
    const __m512i a = pair(g), b = pair(g + 2), c = pair(g + 4), d = pair(g + 6);
    const __m512i rg_ab = _mm512_permutex2var_epi64(a, rg, b), rg_cd = _mm512_permutex2var_epi64(c, rg, d);
    const __m512i b_ab = _mm512_permutex2var_epi64(a, bb, b), b_cd = _mm512_permutex2var_epi64(c, bb, d);
    _mm512_storeu_si512(dst[0] + 8 * g, _mm512_shuffle_i64x2(rg_ab, rg_cd, 0x44));
    _mm512_storeu_si512(dst[1] + 8 * g, _mm512_shuffle_i64x2(rg_ab, rg_cd, 0xEE));
    _mm512_storeu_si512(dst[2] + 8 * g, _mm512_shuffle_i64x2(b_ab, b_cd, 0x44));
  }
  lay_planar_tail(dst, base, stride, idx, g, n, reverse, 4);
}

struct Avx512 {
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
    *width = 64;
    return &lay_pieces6;
  }

  static std::uint32_t unpack(const std::uint8_t* packed, std::size_t count, std::uint32_t bits, std::uint16_t* out) {
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
    for (std::size_t line = 0; line < 1024 && line < total_bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(packed + line), _MM_HINT_T0);
    }
    for (std::size_t i = 0; i < count; i += 16) {
      const std::size_t at = (i / 16) * 2 * bits;
      const std::size_t left = total_bytes - at;
      const __mmask64 load_mask = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
      // Samples are visited in shuffled order, so each block starts cold: run ahead of the loads
      // (prefetches never fault, even past the end of the block).
      _mm_prefetch(reinterpret_cast<const char*>(packed + at + 1024), _MM_HINT_T0);
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
  if (table.has_planar()) return gather_planar_rows<Avx512>(table, packed, transform, out, scratch);
  return gather_rows<Avx512>(table, packed, transform, out, scratch);
}

}  // namespace lowbit::kuat::kernels
