// AVX-512 VNNI integer nearest-codeword search: vpdpbusd does 64 byte multiply-adds (codeword
// bytes unsigned, x' signed) per instruction; the packed key (score << shift | block) makes the
// running argmin one vpminsd per 16 codewords. R points per pass share each codeword load.
// Results equal nearest_u8_ref.cpp exactly (integer math).
#include <immintrin.h>

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized reports at every inlined call site; the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

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

// Q: the number of 4-byte groups when known at compile time (0: read it from the layout).
template <int R, int Q>
void search_rows(const std::uint8_t* points, const NearestU8Layout& L, std::uint32_t* indices) {
  const std::size_t quads = Q ? Q : L.quads;
  alignas(64) std::int32_t xq[R][kMaxCodewordDim / 4];
  LOWBIT_UNROLL
  for (int r = 0; r < R; ++r) nearest_u8_point_quads(points + r * L.dim, L.dim, xq[r]);
  std::int32_t best[R];
  std::uint32_t best_index[R];
  std::fill(best, best + R, INT32_MAX);
  std::fill(best_index, best_index + R, 0u);
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(L.shift + 1));
  const std::size_t chunk_blocks = std::size_t{1} << L.shift;
  for (std::size_t first = 0; first < L.num_blocks; first += chunk_blocks) {
    const std::size_t last = std::min(L.num_blocks, first + chunk_blocks);
    __m512i key[R];
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) key[r] = _mm512_set1_epi32(INT_MAX);
    for (std::size_t b = first; b < last; ++b) {
      const std::int32_t* block = L.words + b * quads * 16;
      __m512i dot[R];
      LOWBIT_UNROLL
      for (int r = 0; r < R; ++r) dot[r] = _mm512_setzero_si512();
      LOWBIT_UNROLL
      for (std::size_t q = 0; q < quads; ++q) {
        const __m512i c = _mm512_load_si512(block + q * 16);
        LOWBIT_UNROLL
        for (int r = 0; r < R; ++r) dot[r] = _mm512_dpbusd_epi32(dot[r], c, _mm512_set1_epi32(xq[r][q]));
      }
      const __m512i base = _mm512_load_si512(L.keys + b * 16);
      LOWBIT_UNROLL
      for (int r = 0; r < R; ++r) key[r] = _mm512_min_epi32(key[r], _mm512_sub_epi32(base, _mm512_sll_epi32(dot[r], shift)));
    }
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      alignas(64) std::int32_t lanes[16];
      _mm512_store_si512(lanes, key[r]);
      std::int32_t s;
      std::uint32_t k;
      best_of_lanes(lanes, 16, L.shift, first, s, k);
      merge_chunk_winner(s, k, best[r], best_index[r]);
    }
  }
  LOWBIT_UNROLL
  for (int r = 0; r < R; ++r) indices[r] = best_index[r];
}

template <int Q>
void search_all(const std::uint8_t* points, std::size_t n, const NearestU8Layout& L, std::uint32_t* indices) {
  std::size_t i = 0;
  for (; i + 12 <= n; i += 12) search_rows<12, Q>(points + i * L.dim, L, indices + i);
  for (; i < n; ++i) search_rows<1, Q>(points + i * L.dim, L, indices + i);
}

}  // namespace

void nearest_u8_avx512vnni(const std::uint8_t* points, std::size_t n, const NearestU8Layout& L, std::uint32_t* indices) {
  if (L.quads == 3) {  // 2x2 RGB patches, the default: a fully unrolled inner loop
    search_all<3>(points, n, L, indices);
  } else {
    search_all<0>(points, n, L, indices);
  }
}

}  // namespace lowbit::kuat::kernels
