// AVX2 nearest-codeword search: each block of 16 codewords is two 8-lane halves, 2 or 4 points per
// pass (4 when enough points remain). Same per-lane operation order as nearest_ref.cpp.
#include <immintrin.h>

#include <cmath>

#include "lowbit/kuat/nearest.h"
#include "nearest_isa.h"

namespace lowbit::kuat::kernels {
namespace {

template <int R>
void search_rows(const float* points, std::size_t dim, const float* blocks, const float* norms,
                 std::size_t num_blocks, std::uint32_t* indices, float* scores) {
  alignas(32) float m2x[R][kMaxCodewordDim];
  for (int r = 0; r < R; ++r)
    for (std::size_t d = 0; d < dim; ++d) m2x[r][d] = -2.0f * points[r * dim + d];
  __m256 best[R][2];
  __m256i best_idx[R][2];
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h) {
      best[r][h] = _mm256_set1_ps(INFINITY);
      best_idx[r][h] = _mm256_setzero_si256();
    }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (std::size_t b = 0; b < num_blocks; ++b) {
    const float* block = blocks + b * dim * 16;
    __m256 acc[R][2];
    const __m256 n0 = _mm256_load_ps(norms + b * 16), n1 = _mm256_load_ps(norms + b * 16 + 8);
    for (int r = 0; r < R; ++r) {
      acc[r][0] = n0;
      acc[r][1] = n1;
    }
    for (std::size_t d = 0; d < dim; ++d) {
      const __m256 c0 = _mm256_load_ps(block + d * 16), c1 = _mm256_load_ps(block + d * 16 + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 x = _mm256_set1_ps(m2x[r][d]);
        acc[r][0] = _mm256_fmadd_ps(x, c0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(x, c1, acc[r][1]);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(b * 16 + h * 8)));
      for (int r = 0; r < R; ++r) {
        const __m256 better = _mm256_cmp_ps(acc[r][h], best[r][h], _CMP_LT_OQ);
        best[r][h] = _mm256_blendv_ps(best[r][h], acc[r][h], better);
        best_idx[r][h] = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(best_idx[r][h]), _mm256_castsi256_ps(idx), better));
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) float v[16];
    alignas(32) std::uint32_t k[16];
    _mm256_store_ps(v, best[r][0]);
    _mm256_store_ps(v + 8, best[r][1]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(k), best_idx[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(k + 8), best_idx[r][1]);
    float m = v[0];
    std::uint32_t mk = k[0];
    for (int l = 1; l < 16; ++l) {
      if (v[l] < m || (v[l] == m && k[l] < mk)) {
        m = v[l];
        mk = k[l];
      }
    }
    indices[r] = mk;
    if (scores) scores[r] = m;
  }
}

}  // namespace

void nearest_codeword_avx2(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                           const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    search_rows<4>(points + i * dim, dim, blocks, norms, num_blocks, indices + i, scores ? scores + i : nullptr);
  }
  for (; i + 2 <= n; i += 2) {
    search_rows<2>(points + i * dim, dim, blocks, norms, num_blocks, indices + i, scores ? scores + i : nullptr);
  }
  for (; i < n; ++i) {
    search_rows<1>(points + i * dim, dim, blocks, norms, num_blocks, indices + i, scores ? scores + i : nullptr);
  }
}

}  // namespace lowbit::kuat::kernels
