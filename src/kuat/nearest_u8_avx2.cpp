// AVX2 integer nearest-codeword search: vpmaddwd multiplies int16 pairs and adds them into
// int32 lanes; each block of 16 codewords is two 8-lane halves, 4 points per pass. Results equal
// nearest_u8_ref.cpp exactly (integer math).
#include <immintrin.h>

#include <climits>

#include "lowbit/kuat/nearest.h"
#include "lowbit/kuat/nearest_u8.h"
#include "nearest_u8_isa.h"

namespace lowbit::kuat::kernels {
namespace {

template <int R>
void search_rows(const std::uint8_t* points, std::size_t dim, const std::int32_t* blocks, const std::int32_t* norms,
                 std::size_t num_blocks, std::uint32_t* indices) {
  const std::size_t pairs = (dim + 1) / 2;
  alignas(32) std::int32_t xp[R][kMaxCodewordDim / 2];
  for (int r = 0; r < R; ++r) {
    const std::uint8_t* x = points + r * dim;
    for (std::size_t q = 0; q < pairs; ++q) {
      const std::int32_t hi = 2 * q + 1 < dim ? x[2 * q + 1] : 0;
      xp[r][q] = static_cast<std::int32_t>(x[2 * q]) | (hi << 16);
    }
  }
  __m256i best[R][2], best_idx[R][2];
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h) {
      best[r][h] = _mm256_set1_epi32(INT_MAX);
      best_idx[r][h] = _mm256_setzero_si256();
    }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (std::size_t b = 0; b < num_blocks; ++b) {
    const std::int32_t* block = blocks + b * pairs * 16;
    __m256i dot[R][2];
    for (int r = 0; r < R; ++r) dot[r][0] = dot[r][1] = _mm256_setzero_si256();
    for (std::size_t q = 0; q < pairs; ++q) {
      const __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(block + q * 16));
      const __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(block + q * 16 + 8));
      for (int r = 0; r < R; ++r) {
        const __m256i x = _mm256_set1_epi32(xp[r][q]);
        dot[r][0] = _mm256_add_epi32(dot[r][0], _mm256_madd_epi16(c0, x));
        dot[r][1] = _mm256_add_epi32(dot[r][1], _mm256_madd_epi16(c1, x));
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i norm = _mm256_load_si256(reinterpret_cast<const __m256i*>(norms + b * 16 + h * 8));
      const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(b * 16 + h * 8)));
      for (int r = 0; r < R; ++r) {
        const __m256i score = _mm256_sub_epi32(norm, _mm256_add_epi32(dot[r][h], dot[r][h]));
        const __m256i better = _mm256_cmpgt_epi32(best[r][h], score);
        best[r][h] = _mm256_blendv_epi8(best[r][h], score, better);
        best_idx[r][h] = _mm256_blendv_epi8(best_idx[r][h], idx, better);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) std::int32_t v[16];
    alignas(32) std::uint32_t k[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), best[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(v + 8), best[r][1]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(k), best_idx[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(k + 8), best_idx[r][1]);
    std::int32_t m = v[0];
    std::uint32_t mk = k[0];
    for (int l = 1; l < 16; ++l) {
      if (v[l] < m || (v[l] == m && k[l] < mk)) {
        m = v[l];
        mk = k[l];
      }
    }
    indices[r] = mk;
  }
}

}  // namespace

void nearest_u8_avx2(const std::uint8_t* points, std::size_t n, std::size_t dim, const std::int32_t* blocks,
                     const std::int32_t* norms, std::size_t num_blocks, std::uint32_t* indices) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) search_rows<4>(points + i * dim, dim, blocks, norms, num_blocks, indices + i);
  for (; i < n; ++i) search_rows<1>(points + i * dim, dim, blocks, norms, num_blocks, indices + i);
}

}  // namespace lowbit::kuat::kernels
