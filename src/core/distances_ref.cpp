// Scalar reference twins for distances.h. Compiled without ISA flags.
#include "lowbit/core/distances.h"

namespace lowbit::kernels {

float dot_f32_ref(const float* a, const float* b, std::size_t n) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float l2sqr_f32_ref(const float* a, const float* b, std::size_t n) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const float d = a[i] - b[i];
    sum += d * d;
  }
  return sum;
}

}  // namespace lowbit::kernels
