// Small dense vector kernels shared by the products (k-means, lattice search, tests).
// Dispatched at run time; see simd.h.
#pragma once

#include <cstddef>

namespace lowbit {

float dot_f32(const float* a, const float* b, std::size_t n);
// Squared Euclidean distance.
float l2sqr_f32(const float* a, const float* b, std::size_t n);

namespace kernels {
// Portable reference twins: the ground truth the SIMD levels are tested against.
float dot_f32_ref(const float* a, const float* b, std::size_t n);
float l2sqr_f32_ref(const float* a, const float* b, std::size_t n);
}  // namespace kernels

}  // namespace lowbit
