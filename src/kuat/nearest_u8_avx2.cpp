// AVX2 integer nearest-codeword search on the same layout: each 4-byte codeword group is split
// into its even and odd bytes as int16 pairs for vpmaddwd (vpmaddubsw would saturate), a block
// of 16 codewords is two 8-lane halves, 4 points per pass; the packed key makes the argmin one
// vpminsd. Results equal nearest_u8_ref.cpp exactly (integer math).
#include <immintrin.h>

#include <algorithm>
#include <climits>

#include "lowbit/kuat/nearest.h"
#include "lowbit/kuat/nearest_u8.h"
#include "nearest_u8_isa.h"

namespace lowbit::kuat::kernels {
namespace {

// The per-point accumulators must live in registers: unroll the loops over R points (and the
// compile-time group count) fully; -O2 alone keeps them in memory.
#define LOWBIT_UNROLL _Pragma("GCC unroll 16")

// x' bytes 0 and 2 (even) or 1 and 3 (odd) of a group as two sign-extended int16s.
std::int32_t int16_pair(std::int32_t quad, unsigned first_byte) {
  const auto lo = static_cast<std::uint16_t>(static_cast<std::int16_t>(static_cast<std::int8_t>(quad >> (8 * first_byte))));
  const auto hi = static_cast<std::uint16_t>(static_cast<std::int16_t>(static_cast<std::int8_t>(quad >> (8 * (first_byte + 2)))));
  return static_cast<std::int32_t>(std::uint32_t{lo} | (std::uint32_t{hi} << 16));
}

template <int R>
void search_rows(const std::uint8_t* points, const NearestU8Layout& L, std::uint32_t* indices) {
  alignas(32) std::int32_t even[R][kMaxCodewordDim / 4], odd[R][kMaxCodewordDim / 4];
  LOWBIT_UNROLL
  for (int r = 0; r < R; ++r) {
    std::int32_t xq[kMaxCodewordDim / 4];
    nearest_u8_point_quads(points + r * L.dim, L.dim, xq);
    for (std::size_t q = 0; q < L.quads; ++q) {
      even[r][q] = int16_pair(xq[q], 0);
      odd[r][q] = int16_pair(xq[q], 1);
    }
  }
  std::int32_t best[R];
  std::uint32_t best_index[R];
  std::fill(best, best + R, INT32_MAX);
  std::fill(best_index, best_index + R, 0u);
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(L.shift + 1));
  const __m256i low_bytes = _mm256_set1_epi32(0x00FF00FF);
  const std::size_t chunk_blocks = std::size_t{1} << L.shift;
  for (std::size_t first = 0; first < L.num_blocks; first += chunk_blocks) {
    const std::size_t last = std::min(L.num_blocks, first + chunk_blocks);
    __m256i key[R][2];
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) key[r][0] = key[r][1] = _mm256_set1_epi32(INT_MAX);
    for (std::size_t b = first; b < last; ++b) {
      const std::int32_t* block = L.words + b * L.quads * 16;
      LOWBIT_UNROLL
      for (int h = 0; h < 2; ++h) {
        __m256i dot[R];
        LOWBIT_UNROLL
        for (int r = 0; r < R; ++r) dot[r] = _mm256_setzero_si256();
        for (std::size_t q = 0; q < L.quads; ++q) {
          const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(block + q * 16 + h * 8));
          const __m256i ce = _mm256_and_si256(c, low_bytes);
          const __m256i co = _mm256_and_si256(_mm256_srli_epi16(c, 8), low_bytes);
          LOWBIT_UNROLL
          for (int r = 0; r < R; ++r) {
            dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(ce, _mm256_set1_epi32(even[r][q])));
            dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(co, _mm256_set1_epi32(odd[r][q])));
          }
        }
        const __m256i base = _mm256_load_si256(reinterpret_cast<const __m256i*>(L.keys + b * 16 + h * 8));
        LOWBIT_UNROLL
        for (int r = 0; r < R; ++r) {
          key[r][h] = _mm256_min_epi32(key[r][h], _mm256_sub_epi32(base, _mm256_sll_epi32(dot[r], shift)));
        }
      }
    }
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      alignas(32) std::int32_t lanes[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), key[r][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), key[r][1]);
      std::int32_t s;
      std::uint32_t k;
      best_of_lanes(lanes, 16, L.shift, first, s, k);
      merge_chunk_winner(s, k, best[r], best_index[r]);
    }
  }
  LOWBIT_UNROLL
  for (int r = 0; r < R; ++r) indices[r] = best_index[r];
}

}  // namespace

void nearest_u8_avx2(const std::uint8_t* points, std::size_t n, const NearestU8Layout& L, std::uint32_t* indices) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) search_rows<4>(points + i * L.dim, L, indices + i);
  for (; i < n; ++i) search_rows<1>(points + i * L.dim, L, indices + i);
}

}  // namespace lowbit::kuat::kernels
