// What the batch loader needs from an open, fixed-shape archive: plain pointers into its
// memory map. kuat::Archive::view() produces one; tests build them over in-memory data.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kuat/codes.h"

namespace lowbit::kuat {

struct ArchiveView {
  ImageGeometry geometry;                 // every sample has this shape
  const std::uint8_t* codebook = nullptr; // codebook_size * geometry.codeword_bytes() bytes
  std::uint32_t codebook_size = 0;
  std::uint64_t codebook_hash = 0;        // equal hashes <=> archives share a codebook
  const std::uint8_t* indices = nullptr;  // sample i's packed block at indices + i * index_stride
  std::size_t index_stride = 0;           // == packed_bytes(geometry.num_patches(), index_bits_for(K))
  const std::int32_t* labels = nullptr;   // num_samples labels (-1 = unlabelled)
  std::uint64_t num_samples = 0;

  const std::uint8_t* sample_indices(std::uint64_t i) const { return indices + i * index_stride; }
};

}  // namespace lowbit::kuat
