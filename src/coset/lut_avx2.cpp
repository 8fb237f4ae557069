// AVX2 lanes for the generic lookup-table kernels (8 rows or table entries at a time).
#include <immintrin.h>

#include "lut_simd_generic.h"

namespace lowbit::coset::kernels {
namespace {

struct LutV256 {
  using F = __m256;
  using I = __m256i;
  static constexpr int kWidth = 8;
  static F set1(float a) { return _mm256_set1_ps(a); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F a) { _mm256_storeu_ps(p, a); }
  static F gather(const float* base, I idx) { return _mm256_i32gather_ps(base, idx, 4); }
  static I indices_u16(const std::uint16_t* p) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I indices_u8(const std::uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  struct SmallTable {
    F lo, hi;
  };
  static SmallTable small_table(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static F lookup_small(const SmallTable& t, I idx) {  // two 8-entry permutes, picked by idx > 7
    const F lo = _mm256_permutevar8x32_ps(t.lo, idx), hi = _mm256_permutevar8x32_ps(t.hi, idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))));
  }
};

using Kernels = generic::LutLanes<LutV256>;

}  // namespace

void build_tables_avx2(int d, std::size_t entries, const float* reps_t, const float* y, std::size_t blocks,
                       float* table) {
  Kernels::build_tables(d, entries, reps_t, y, blocks, table);
}

void matvec_panels_avx2(const PanelMatvec& a, std::size_t p0, std::size_t p1, std::size_t k0, std::size_t k1,
                        float* acc) {
  Kernels::matvec_panels(a, p0, p1, k0, k1, acc);
}

}  // namespace lowbit::coset::kernels
