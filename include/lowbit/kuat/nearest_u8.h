// Exact nearest-codeword search for encoding: uint8 patches against the stored uint8 codebook
// in integer arithmetic.
//
// A point x is taken as x' = x - 128 (int8), so x.c = x'.c + 128 sum(c) and the score
//   score(c) = ||c||^2 - 2 x.c + (terms of x alone) ~ t(c) - 2 x'.c,   t(c) = ||c||^2 - 256 sum(c)
// has the same argmin as the squared distance, with a per-codeword constant t(c) only. x'.c is
// an unsigned-by-signed byte dot product: four bytes per multiply-add lane (AVX-512 VNNI
// vpdpbusd; AVX2 widens to int16 pairs for vpmaddwd, whose int8 path would saturate).
// |score| < 2^(score_bits - 1) (score_bits <= 23 for dim <= 48), so a search packs
// key = score << shift | block into one int32 and a single signed min per 16 codewords keeps
// the best score and its block; chunks of 2^shift blocks keep the block field in range, and
// chunk winners are merged in order. Every level returns the exact nearest codeword, ties to the
// lowest index, identical to the scalar reference.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/core/aligned_buffer.h"

namespace lowbit::kuat {

// The codebook as the kernels read it (owned by NearestCodewordU8).
struct NearestU8Layout {
  std::size_t dim = 0;         // bytes per codeword and per point
  std::size_t quads = 0;       // ceil(dim / 4): 4-byte groups (missing bytes are zero)
  std::size_t num_blocks = 0;  // blocks of 16 codewords (the last one padded)
  std::uint32_t shift = 0;     // key = score << shift | (block - chunk start); chunk = 2^shift blocks
  const std::int32_t* words = nullptr;  // per block: quads x 16 words, codeword bytes 4q..4q+3 of each lane
  const std::int32_t* keys = nullptr;   // per block: 16 words t(c) << shift | block-in-chunk; padding lanes never win
};

class NearestCodewordU8 {
 public:
  // `codewords`: count x dim bytes, row-major; dim <= kMaxCodewordDim.
  NearestCodewordU8(const std::uint8_t* codewords, std::uint32_t count, std::uint32_t dim);

  std::uint32_t dim() const { return dim_; }
  // Nearest codeword of each of n points (n x dim bytes). Runs at the active SIMD level.
  void search(const std::uint8_t* points, std::size_t n, std::uint32_t* indices) const;
  NearestU8Layout layout() const;

 private:
  std::uint32_t count_, dim_, quads_, shift_;
  std::size_t num_blocks_;
  AlignedBuffer<std::int32_t> words_;
  AlignedBuffer<std::int32_t> keys_;
};

namespace kernels {
// Bits of a signed score for points of `dim` bytes: |t(c) - 2 x'.c| <= dim * 81154 < 2^(bits-1).
std::uint32_t nearest_u8_score_bits(std::size_t dim);
// Four bytes of x' = x - 128 per word (bytes past dim are zero), as the kernels broadcast them.
void nearest_u8_point_quads(const std::uint8_t* x, std::size_t dim, std::int32_t* quads);
using NearestU8Fn = void (*)(const std::uint8_t* points, std::size_t n, const NearestU8Layout& layout,
                             std::uint32_t* indices);
void nearest_u8_ref(const std::uint8_t* points, std::size_t n, const NearestU8Layout& layout, std::uint32_t* indices);
}  // namespace kernels

}  // namespace lowbit::kuat
