// Packed ternary layouts.
//
// 1. Compute layout "I2_S256" (2 bits per weight, what every kernel reads; a CUDA kernel must too).
//    code(t) = t + 1, so -1 -> 0b00, 0 -> 0b01, +1 -> 0b10 (0b11 never occurs).
//    Each row of K weights is padded to Kp = ceil(K / 256) * 256 with code 0b01 (weight 0) and
//    takes Kp / 4 bytes; rows are stored one after another (row n starts at byte n * Kp / 4).
//    A row is a sequence of 64-byte blocks; block b holds weights 256b .. 256b + 255:
//        byte 64b + j (j = 0..63), bits [2s, 2s + 1] (s = 0..3)  =  code of weight  256b + 64s + j
//    So one 64-byte load plus (v >> 2s) & 0x03 per byte yields 64 codes for 64 *consecutive*
//    weights, ready for vpdpbusd(codes_u8, x_s8) against the 64 activations x[256b + 64s ...];
//    AVX2 takes each 32-byte half the same way (maddubs). Since codes are t + 1,
//    sum_k t_k x_k = sum_k code_k x_k - sum_k x_k (the kernels subtract the row sum of x).
//    CUDA: a 32-bit word at byte offset 64b + j gives, after (w >> 2s) & 0x03030303, the codes of
//    weights 256b + 64s + j .. + 3 as 4 bytes for __dp4a against 4 consecutive int8 activations.
//
// 2. Storage layout "TQ1_B3" (1.6 bits per weight, files and state dicts): the row-major trits
//    of the whole unpadded N x K matrix, taken 5 at a time; byte = sum_{i<5} code_i * 3^i
//    (code = t + 1, values 0..242); the last byte is completed with code 1 (weight 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/core/aligned_buffer.h"

namespace lowbit::bitlab {

inline constexpr std::size_t kBlockWeights = 256;  // weights per 64-byte block of I2_S256
inline constexpr std::size_t kBlockBytes = 64;
inline constexpr std::size_t kTritsPerStorageByte = 5;

// A non-owning view of a matrix in the compute layout (what the kernels take). Whoever makes
// one vouches that the bytes came from pack_ternary_2bit / wrap_packed_2bit: kernels do not
// re-validate codes on every call.
struct PackedTernaryView {
  const std::uint8_t* data = nullptr;  // rows * row_bytes
  std::size_t rows = 0;                // N
  std::size_t cols = 0;                // K
  std::size_t row_bytes = 0;           // Kp / 4
};

// A matrix in the compute layout, owning its 64-byte aligned bytes.
struct PackedTernary {
  std::size_t rows = 0;       // N
  std::size_t cols = 0;       // K
  std::size_t row_bytes = 0;  // Kp / 4
  AlignedBuffer<std::uint8_t> data;  // rows * row_bytes

  PackedTernaryView view() const noexcept { return {data.data(), rows, cols, row_bytes}; }
};

std::size_t packed_row_bytes(std::size_t cols) noexcept;
// InvalidArgument if a value is not in {-1, 0, 1}.
PackedTernary pack_ternary_2bit(const std::int8_t* trits, std::size_t rows, std::size_t cols);
// Copies bytes already in the compute layout; InvalidArgument on a 0b11 code or non-zero padding.
PackedTernary wrap_packed_2bit(const std::uint8_t* bytes, std::size_t rows, std::size_t cols);
void unpack_ternary_2bit(const PackedTernaryView& packed, std::int8_t* trits);
// InvalidArgument unless every code is valid and every padding weight is 0.
void validate_packed_2bit(const PackedTernaryView& packed);

std::size_t storage_bytes(std::size_t rows, std::size_t cols) noexcept;  // ceil(rows * cols / 5)
std::vector<std::uint8_t> pack_ternary_base3(const std::int8_t* trits, std::size_t count);
// InvalidArgument on a byte > 242 or on padding trits that are not 0.
void unpack_ternary_base3(const std::uint8_t* bytes, std::size_t num_bytes, std::size_t count,
                          std::int8_t* trits);

}  // namespace lowbit::bitlab
