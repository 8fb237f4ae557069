// Per-ISA entry points of distances.h (internal).
#pragma once

#include <cstddef>

namespace lowbit::kernels {
float dot_f32_avx2(const float* a, const float* b, std::size_t n);
float l2sqr_f32_avx2(const float* a, const float* b, std::size_t n);
float dot_f32_avx512(const float* a, const float* b, std::size_t n);
float l2sqr_f32_avx512(const float* a, const float* b, std::size_t n);
}  // namespace lowbit::kernels
