// AVX-512 nearest-codeword search: 16 codewords per register, 8 points per pass: each codeword
// load feeds eight FMAs and eight independent dependency chains hide the FMA latency.
// Same per-lane operation order as nearest_ref.cpp.
#include <immintrin.h>

#include <cmath>

#include "lowbit/kuat/nearest.h"
#include "nearest_isa.h"

namespace lowbit::kuat::kernels {
namespace {

// Lowest index among the lanes holding the minimum score. (Stored and scanned: GCC 12's
// _mm512_reduce_min_ps trips -Wuninitialized inside its own header.)
inline void reduce_best(__m512 best, __m512i best_idx, std::uint32_t* index, float* score) {
  alignas(64) float v[16];
  alignas(64) std::uint32_t k[16];
  _mm512_store_ps(v, best);
  _mm512_store_si512(k, best_idx);
  float m = v[0];
  std::uint32_t mk = k[0];
  for (int l = 1; l < 16; ++l) {
    if (v[l] < m || (v[l] == m && k[l] < mk)) {
      m = v[l];
      mk = k[l];
    }
  }
  *index = mk;
  if (score) *score = m;
}

template <int R>
void search_rows(const float* points, std::size_t dim, const float* blocks, const float* norms,
                 std::size_t num_blocks, std::uint32_t* indices, float* scores) {
  alignas(64) float m2x[R][kMaxCodewordDim];
  for (int r = 0; r < R; ++r)
    for (std::size_t d = 0; d < dim; ++d) m2x[r][d] = -2.0f * points[r * dim + d];
  __m512 best[R];
  __m512i best_idx[R];
  for (int r = 0; r < R; ++r) {
    best[r] = _mm512_set1_ps(INFINITY);
    best_idx[r] = _mm512_setzero_si512();
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (std::size_t b = 0; b < num_blocks; ++b) {
    const float* block = blocks + b * dim * 16;
    __m512 acc[R];
    const __m512 norm = _mm512_load_ps(norms + b * 16);
    for (int r = 0; r < R; ++r) acc[r] = norm;
    for (std::size_t d = 0; d < dim; ++d) {
      const __m512 c = _mm512_load_ps(block + d * 16);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(m2x[r][d]), c, acc[r]);
    }
    const __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(b * 16)));
    for (int r = 0; r < R; ++r) {
      const __mmask16 better = _mm512_cmp_ps_mask(acc[r], best[r], _CMP_LT_OQ);
      best[r] = _mm512_mask_mov_ps(best[r], better, acc[r]);
      best_idx[r] = _mm512_mask_mov_epi32(best_idx[r], better, idx);
    }
  }
  for (int r = 0; r < R; ++r) reduce_best(best[r], best_idx[r], indices + r, scores ? scores + r : nullptr);
}

}  // namespace

void nearest_codeword_avx512(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                             const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    search_rows<8>(points + i * dim, dim, blocks, norms, num_blocks, indices + i, scores ? scores + i : nullptr);
  }
  for (; i + 4 <= n; i += 4) {
    search_rows<4>(points + i * dim, dim, blocks, norms, num_blocks, indices + i, scores ? scores + i : nullptr);
  }
  for (; i < n; ++i) {
    search_rows<1>(points + i * dim, dim, blocks, norms, num_blocks, indices + i, scores ? scores + i : nullptr);
  }
}

}  // namespace lowbit::kuat::kernels
