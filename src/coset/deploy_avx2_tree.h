// The epilogue's halving tree (docs/coset.md, "Kernels") on AVX2 registers, for the translation units
// compiled with AVX2 flags (deploy_avx2.cpp, deploy_fused_avx2.cpp): partial sums 0-7 in `lo`, 8-15 in
// `hi`, added 8, 4, 2, 1 apart like the scalar twin.
#pragma once

#include <immintrin.h>

namespace lowbit::coset::kernels::avx2 {

// Internal linkage, like deploy_finish: each translation unit keeps its own copy.
static inline float tree(__m256 lo, __m256 hi) {
  const __m256 r8 = _mm256_add_ps(lo, hi);
  const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
  const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
  const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
  return _mm_cvtss_f32(r1);
}

}  // namespace lowbit::coset::kernels::avx2
