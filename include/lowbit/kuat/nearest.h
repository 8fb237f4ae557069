// Exact nearest-codeword search, the inner loop of both codebook training and encoding.
//
// For a point x and codeword c the kernels compute the score ||c||^2 - 2 x.c (the squared
// distance minus ||x||^2, which does not change the argmin) as
//     acc = ||c||^2;  for d in 0..dim-1: acc = fma(-2 x[d], c[d], acc)
// in exactly that order at every SIMD level (one codeword per lane), so scalar, AVX2 and
// AVX-512 return bit-identical scores and the same argmin; ties go to the lowest index.
// For integer-valued data (uint8 patches against a uint8 codebook) every intermediate is an
// integer below 2^24, so the score is exact and the argmin is the exact nearest codeword.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/core/aligned_buffer.h"

namespace lowbit::kuat {

inline constexpr std::size_t kMaxCodewordDim = 64;  // P*P*C <= 4*4*3 = 48

class NearestCodeword {
 public:
  // `codewords` holds count x dim floats, row-major.
  NearestCodeword(const float* codewords, std::uint32_t count, std::uint32_t dim);
  static NearestCodeword from_uint8(const std::uint8_t* codewords, std::uint32_t count, std::uint32_t dim);

  std::uint32_t count() const { return count_; }
  std::uint32_t dim() const { return dim_; }

  // For each of the n points (n x dim floats): index of the nearest codeword and its score
  // (squared distance minus ||x||^2). `scores` may be null. Runs at the active SIMD level.
  void search(const float* points, std::size_t n, std::uint32_t* indices, float* scores) const;

 private:
  std::uint32_t count_, dim_;
  std::size_t num_blocks_;
  AlignedBuffer<float> blocks_;  // per block of 16 codewords: dim x 16 floats (dimension-major)
  AlignedBuffer<float> norms_;   // num_blocks * 16; padding lanes hold kPadNorm
};

namespace kernels {
// Padding codewords carry this norm so they never win (real scores stay below 2^24 * dim).
inline constexpr float kPadNorm = 1e30f;

using NearestFn = void (*)(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                           const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores);
void nearest_codeword_ref(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                          const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores);
}  // namespace kernels

}  // namespace lowbit::kuat
