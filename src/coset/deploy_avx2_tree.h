// The epilogue's halving tree (docs/coset.md, "Kernels") on AVX2 registers, for the translation units
// compiled with AVX2 flags (deploy_avx2.cpp, deploy_fused_avx2.cpp): partial sums 0-7 in `lo`, 8-15 in
// `hi`, added 8, 4, 2, 1 apart like the scalar twin. With a T per group of 4 blocks (deploy.h,
// t_group = 4) the kernels keep the groups in the lane order of g4_sums, which tree_g4 undoes.
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

// The 8 group sums of 32 blocks (b_i: the dword sums of blocks 8 i .. 8 i + 7; group u = blocks
// 4 u .. 4 u + 3) by two rounds of in-lane unpacks + adds (fewer uops than vphaddd on Zen 4), in the
// lanes [groups 0, 2, 4, 6 | 1, 3, 5, 7]. A 64-block chunk's first 32 blocks are its groups 0-7
// (partial sums `lo`), the next 32 its groups 8-15 (`hi`).
static inline __m256i g4_sums(__m256i b0, __m256i b1, __m256i b2, __m256i b3) {
  const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(b0, b1), _mm256_unpackhi_epi32(b0, b1));
  const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(b2, b3), _mm256_unpackhi_epi32(b2, b3));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
}

// The halving tree of partial sums kept in g4_sums' lane order: back to group order (lane u % 16) first.
static inline float tree_g4(__m256 lo, __m256 hi) {
  const __m256i to_groups = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  return tree(_mm256_permutevar8x32_ps(lo, to_groups), _mm256_permutevar8x32_ps(hi, to_groups));
}

}  // namespace lowbit::coset::kernels::avx2
