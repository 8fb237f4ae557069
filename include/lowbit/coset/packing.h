// Bit-packed HNLQ codes.
//
// Each vector is one record of record_bits = t_bits + M * level_bits bits:
//   [T : t_bits] [level 0 : level_bits] ... [level M-1 : level_bits]
// where a level's index is sum_j b_j q^j (b = the d codes of that level, j = 0..d-1),
// level_bits = bit width of q^d - 1 and t_bits = bit width of the largest allowed T (0 when
// overload protection is off). Records follow one another with no padding; the stream is
// LSB-first (bit k of the stream is bit k % 8 of byte k / 8), little-endian. For q a power of
// two the level index is simply the d codes' bits side by side.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/coset/hnlq.h"

namespace lowbit::coset {

struct CodeLayout {
  int level_bits;
  int t_bits;
  int record_bits;
};

CodeLayout code_layout(const QuantizationConfig& config);
std::size_t packed_bytes(const QuantizationConfig& config, std::size_t n);

// Level index of d codes and its inverse.
std::uint64_t level_index(const std::uint8_t* b, int d, int q) noexcept;
void level_codes(std::uint64_t index, int d, int q, std::uint8_t* b) noexcept;

// codes: n x M x d, t: n  ->  packed_bytes(config, n) bytes (the last byte zero-padded).
void pack_codes(const QuantizationConfig& config, const std::uint8_t* codes, const std::uint8_t* t,
                std::size_t n, std::uint8_t* out);
// The inverse; throws InvalidArgument on a level index >= q^d or a T beyond the config's.
void unpack_codes(const QuantizationConfig& config, const std::uint8_t* packed, std::size_t n,
                  std::uint8_t* codes, std::uint8_t* t);

}  // namespace lowbit::coset
