// Exact nearest-codeword search for encoding: uint8 patches against the stored uint8 codebook
// in integer arithmetic. Scores are ||c||^2 - 2 x.c in int32 (exact, |score| < 2^23), dot
// products taken two dimensions at a time as int16 pairs (AVX-512 VNNI vpdpwssd, or AVX2
// vpmaddwd), so every level returns the same scores and argmin as the scalar reference; ties go
// to the lowest index. Twice the multiply-adds per instruction of the float search.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/core/aligned_buffer.h"

namespace lowbit::kuat {

class NearestCodewordU8 {
 public:
  // `codewords`: count x dim bytes, row-major; dim <= kMaxCodewordDim.
  NearestCodewordU8(const std::uint8_t* codewords, std::uint32_t count, std::uint32_t dim);

  std::uint32_t dim() const { return dim_; }
  // Nearest codeword of each of n points (n x dim bytes). Runs at the active SIMD level.
  void search(const std::uint8_t* points, std::size_t n, std::uint32_t* indices) const;

 private:
  std::uint32_t count_, dim_, pairs_;
  std::size_t num_blocks_;
  AlignedBuffer<std::int32_t> blocks_;  // per block of 16: pairs x 16 words (c[2q] | c[2q+1] << 16)
  AlignedBuffer<std::int32_t> norms_;   // padding lanes hold kPadNormU8
};

namespace kernels {
inline constexpr std::int32_t kPadNormU8 = 1 << 30;
using NearestU8Fn = void (*)(const std::uint8_t* points, std::size_t n, std::size_t dim, const std::int32_t* blocks,
                             const std::int32_t* norms, std::size_t num_blocks, std::uint32_t* indices);
void nearest_u8_ref(const std::uint8_t* points, std::size_t n, std::size_t dim, const std::int32_t* blocks,
                    const std::int32_t* norms, std::size_t num_blocks, std::uint32_t* indices);
}  // namespace kernels

}  // namespace lowbit::kuat
