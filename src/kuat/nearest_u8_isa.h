// Per-ISA entry points of nearest_u8.h (internal).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kuat/nearest_u8.h"

namespace lowbit::kuat::kernels {
void nearest_u8_avx2(const std::uint8_t* points, std::size_t n, const NearestU8Layout& layout, std::uint32_t* indices);
// Needs AVX512-VNNI on top of the AVX-512 level (checked by the dispatcher).
void nearest_u8_avx512vnni(const std::uint8_t* points, std::size_t n, const NearestU8Layout& layout,
                           std::uint32_t* indices);

// Merges one chunk's winner into a point's running best: strictly better only, so an earlier
// chunk (lower indices) keeps ties.
inline void merge_chunk_winner(std::int32_t score, std::uint32_t index, std::int32_t& best, std::uint32_t& best_index) {
  if (score < best) {
    best = score;
    best_index = index;
  }
}

// Decodes one lane's key: its score and codeword index.
inline void decode_key(std::int32_t key, std::uint32_t shift, std::size_t chunk_first_block, unsigned lane,
                       std::int32_t& score, std::uint32_t& index) {
  score = key >> shift;  // arithmetic shift: the key's sign is the score's
  const auto block = static_cast<std::uint32_t>(key) & ((std::uint32_t{1} << shift) - 1);
  index = static_cast<std::uint32_t>((chunk_first_block + block) * 16 + lane);
}

// The best (score, index) of 16 lane keys: lowest score, then lowest index.
inline void best_of_lanes(const std::int32_t* keys, unsigned lanes, std::uint32_t shift, std::size_t chunk_first_block,
                          std::int32_t& score, std::uint32_t& index) {
  decode_key(keys[0], shift, chunk_first_block, 0, score, index);
  for (unsigned l = 1; l < lanes; ++l) {
    std::int32_t s;
    std::uint32_t k;
    decode_key(keys[l], shift, chunk_first_block, l, s, k);
    if (s < score || (s == score && k < index)) {
      score = s;
      index = k;
    }
  }
}
}  // namespace lowbit::kuat::kernels
