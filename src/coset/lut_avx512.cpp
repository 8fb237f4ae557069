// AVX-512 lanes for the generic lookup-table kernels (16 rows or table entries at a time).
#include <immintrin.h>

#include "lut_simd_generic.h"

namespace lowbit::coset::kernels {
namespace {

struct LutV512 {
  using F = __m512;
  using I = __m512i;
  static constexpr int kWidth = 16;
  static F set1(float a) { return _mm512_set1_ps(a); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F a) { _mm512_storeu_ps(p, a); }
  static F gather(const float* base, I idx) { return _mm512_i32gather_ps(idx, base, 4); }
  static I indices_u16(const std::uint16_t* p) {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static I indices_u8(const std::uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  using SmallTable = F;
  static SmallTable small_table(const float* p) { return _mm512_loadu_ps(p); }
  static F lookup_small(SmallTable t, I idx) { return _mm512_permutexvar_ps(idx, t); }
};

using Kernels = generic::LutLanes<LutV512>;

}  // namespace

void build_tables_avx512(int d, std::size_t entries, const float* reps_t, const float* y, std::size_t blocks,
                         float* table) {
  Kernels::build_tables(d, entries, reps_t, y, blocks, table);
}

void matvec_panels_avx512(const PanelMatvec& a, std::size_t p0, std::size_t p1, std::size_t k0,
                          std::size_t k1, float* acc) {
  Kernels::matvec_panels(a, p0, p1, k0, k1, acc);
}

}  // namespace lowbit::coset::kernels
