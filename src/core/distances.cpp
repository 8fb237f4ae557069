#include "lowbit/core/distances.h"

#include "distances_isa.h"
#include "lowbit/core/simd.h"

namespace lowbit {

using DistanceFn = float (*)(const float*, const float*, std::size_t);

float dot_f32(const float* a, const float* b, std::size_t n) {
  static constexpr KernelSet<DistanceFn> kSet{kernels::dot_f32_ref,
                                              LOWBIT_AVX2_FN(kernels::dot_f32_avx2),
                                              LOWBIT_AVX512_FN(kernels::dot_f32_avx512)};
  return kSet.pick()(a, b, n);
}

float l2sqr_f32(const float* a, const float* b, std::size_t n) {
  static constexpr KernelSet<DistanceFn> kSet{kernels::l2sqr_f32_ref,
                                              LOWBIT_AVX2_FN(kernels::l2sqr_f32_avx2),
                                              LOWBIT_AVX512_FN(kernels::l2sqr_f32_avx512)};
  return kSet.pick()(a, b, n);
}

}  // namespace lowbit
