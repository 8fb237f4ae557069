// AVX2 lanes for the generic HNLQ kernels: 8 float or 4 double vectors at a time (masks are
// all-ones lanes).
#include <immintrin.h>

#include <type_traits>

#include "hnlq_simd_generic.h"

namespace lowbit::coset::kernels {
namespace {

struct V256 {
  using S = float;
  using F = __m256;
  using Mask = __m256;
  using I = __m256i;
  static constexpr int kWidth = 8;

  [[gnu::always_inline]] static F set1(float a) { return _mm256_set1_ps(a); }
  [[gnu::always_inline]] static F add(F a, F b) { return _mm256_add_ps(a, b); }
  [[gnu::always_inline]] static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  [[gnu::always_inline]] static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  [[gnu::always_inline]] static F min(F a, F b) { return _mm256_min_ps(a, b); }
  [[gnu::always_inline]] static F max(F a, F b) { return _mm256_max_ps(a, b); }
  [[gnu::always_inline]] static F rint(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  [[gnu::always_inline]] static F floor(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  [[gnu::always_inline]] static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  [[gnu::always_inline]] static Mask ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  [[gnu::always_inline]] static Mask gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  [[gnu::always_inline]] static Mask lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  [[gnu::always_inline]] static Mask le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  [[gnu::always_inline]] static Mask eq(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  [[gnu::always_inline]] static Mask neq(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_OQ); }
  [[gnu::always_inline]] static Mask and_(Mask a, Mask b) { return _mm256_and_ps(a, b); }
  [[gnu::always_inline]] static Mask or_(Mask a, Mask b) { return _mm256_or_ps(a, b); }
  [[gnu::always_inline]] static F select(Mask m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  [[gnu::always_inline]] static bool any(Mask m) { return _mm256_movemask_ps(m) != 0; }
  [[gnu::always_inline]] static unsigned bits(Mask m) { return static_cast<unsigned>(_mm256_movemask_ps(m)); }
  [[gnu::always_inline]] static I iota_times(int stride) {
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
  }
  [[gnu::always_inline]] static F gather(const float* base, int stride) { return _mm256_i32gather_ps(base, iota_times(stride), 4); }
  [[gnu::always_inline]] static I gather_words(const std::uint8_t* base, int stride_bytes) {
    return _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), iota_times(stride_bytes), 1);
  }
  [[gnu::always_inline]] static F byte_of(I word, int k) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(word, _mm256_set1_epi32(8 * k)),
                                               _mm256_set1_epi32(0xFF)));
  }
  [[gnu::always_inline]] static I to_int(F a) { return _mm256_cvtps_epi32(a); }
  [[gnu::always_inline]] static I shl(I a, int n) { return _mm256_sllv_epi32(a, _mm256_set1_epi32(n)); }
  [[gnu::always_inline]] static I or_i(I a, I b) { return _mm256_or_si256(a, b); }
  [[gnu::always_inline]] static void store_i(std::uint32_t* out, I a) { _mm256_store_si256(reinterpret_cast<__m256i*>(out), a); }
  [[gnu::always_inline]] static void store(float* out, F a) { _mm256_store_ps(out, a); }
};

struct V256d {
  using S = double;
  using F = __m256d;
  using Mask = __m256d;
  using I = __m128i;  // one int32 per lane
  static constexpr int kWidth = 4;

  [[gnu::always_inline]] static F set1(double a) { return _mm256_set1_pd(a); }
  [[gnu::always_inline]] static F add(F a, F b) { return _mm256_add_pd(a, b); }
  [[gnu::always_inline]] static F sub(F a, F b) { return _mm256_sub_pd(a, b); }
  [[gnu::always_inline]] static F mul(F a, F b) { return _mm256_mul_pd(a, b); }
  [[gnu::always_inline]] static F min(F a, F b) { return _mm256_min_pd(a, b); }
  [[gnu::always_inline]] static F max(F a, F b) { return _mm256_max_pd(a, b); }
  [[gnu::always_inline]] static F rint(F a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  [[gnu::always_inline]] static F floor(F a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  [[gnu::always_inline]] static F abs(F a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  [[gnu::always_inline]] static Mask ge(F a, F b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  [[gnu::always_inline]] static Mask gt(F a, F b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  [[gnu::always_inline]] static Mask lt(F a, F b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  [[gnu::always_inline]] static Mask le(F a, F b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
  [[gnu::always_inline]] static Mask eq(F a, F b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  [[gnu::always_inline]] static Mask neq(F a, F b) { return _mm256_cmp_pd(a, b, _CMP_NEQ_OQ); }
  [[gnu::always_inline]] static Mask and_(Mask a, Mask b) { return _mm256_and_pd(a, b); }
  [[gnu::always_inline]] static Mask or_(Mask a, Mask b) { return _mm256_or_pd(a, b); }
  [[gnu::always_inline]] static F select(Mask m, F a, F b) { return _mm256_blendv_pd(b, a, m); }
  [[gnu::always_inline]] static bool any(Mask m) { return _mm256_movemask_pd(m) != 0; }
  [[gnu::always_inline]] static unsigned bits(Mask m) { return static_cast<unsigned>(_mm256_movemask_pd(m)); }
  [[gnu::always_inline]] static I iota_times(int stride) {
    return _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(stride));
  }
  [[gnu::always_inline]] static F gather(const double* base, int stride) { return _mm256_i32gather_pd(base, iota_times(stride), 8); }
  [[gnu::always_inline]] static I gather_words(const std::uint8_t* base, int stride_bytes) {
    return _mm_i32gather_epi32(reinterpret_cast<const int*>(base), iota_times(stride_bytes), 1);
  }
  [[gnu::always_inline]] static F byte_of(I word, int k) {
    return _mm256_cvtepi32_pd(_mm_and_si128(_mm_srlv_epi32(word, _mm_set1_epi32(8 * k)), _mm_set1_epi32(0xFF)));
  }
  [[gnu::always_inline]] static I to_int(F a) { return _mm256_cvtpd_epi32(a); }
  [[gnu::always_inline]] static I shl(I a, int n) { return _mm_sllv_epi32(a, _mm_set1_epi32(n)); }
  [[gnu::always_inline]] static I or_i(I a, I b) { return _mm_or_si128(a, b); }
  [[gnu::always_inline]] static void store_i(std::uint32_t* out, I a) { _mm_store_si128(reinterpret_cast<__m128i*>(out), a); }
  [[gnu::always_inline]] static void store(double* out, F a) { _mm256_store_pd(out, a); }
};

template <class T>
using Kernels = generic::Lanes<std::conditional_t<std::is_same_v<T, float>, V256, V256d>>;

}  // namespace

template <class T>
void encode_avx2(LatticeType type, int q, int levels, const T* y, std::size_t n, std::uint8_t* codes,
                 std::uint8_t* overloaded) {
  Kernels<T>::encode(type, q, levels, y, n, codes, overloaded);
}

template <class T>
void decode_avx2(LatticeType type, int q, int levels, const std::uint8_t* codes, std::size_t n, T* out) {
  Kernels<T>::decode(type, q, levels, codes, n, out);
}

template void encode_avx2<float>(LatticeType, int, int, const float*, std::size_t, std::uint8_t*, std::uint8_t*);
template void encode_avx2<double>(LatticeType, int, int, const double*, std::size_t, std::uint8_t*, std::uint8_t*);
template void decode_avx2<float>(LatticeType, int, int, const std::uint8_t*, std::size_t, float*);
template void decode_avx2<double>(LatticeType, int, int, const std::uint8_t*, std::size_t, double*);

}  // namespace lowbit::coset::kernels
