// The I2_S256 compute layout and the TQ1_B3 storage layout (spec in include/lowbit/bitlab/packing.h).
#include "lowbit/bitlab/packing.h"

#include <cstring>
#include <string>

#include "lowbit/bitlab/ternary.h"
#include "lowbit/core/error.h"

namespace lowbit::bitlab {

namespace {

constexpr std::uint8_t kZeroCode = 1;
// A byte whose four codes are all 0b01 (weight 0): what padding looks like.
constexpr std::uint8_t kZeroByte = 0x55;

// Byte offset and shift of weight k inside its row.
inline std::size_t byte_of(std::size_t k) { return (k / kBlockWeights) * kBlockBytes + k % kBlockBytes; }
inline unsigned shift_of(std::size_t k) { return static_cast<unsigned>(2 * ((k % kBlockWeights) / kBlockBytes)); }

void require_trit(std::int8_t t, std::size_t index, const char* what) {
  if (t < -1 || t > 1) {
    throw InvalidArgument(std::string(what) + ": value " + std::to_string(t) + " at index " +
                          std::to_string(index) + " is not a trit (-1, 0 or 1)");
  }
}

}  // namespace

std::size_t packed_row_bytes(std::size_t cols) noexcept { return padded_cols(cols) / 4; }

PackedTernary pack_ternary_2bit(const std::int8_t* trits, std::size_t rows, std::size_t cols) {
  require(rows > 0 && cols > 0, "pack_ternary_2bit: empty matrix");
  PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.row_bytes = packed_row_bytes(cols);
  p.data.resize(rows * p.row_bytes);
  for (std::size_t n = 0; n < rows; ++n) {
    std::uint8_t* row = p.data.data() + n * p.row_bytes;
    for (std::size_t i = 0; i < p.row_bytes; ++i) row[i] = kZeroByte;
    for (std::size_t k = 0; k < cols; ++k) {
      const std::int8_t t = trits[n * cols + k];
      require_trit(t, n * cols + k, "pack_ternary_2bit");
      const unsigned shift = shift_of(k);
      std::uint8_t& b = row[byte_of(k)];
      b = static_cast<std::uint8_t>((b & ~(3u << shift)) | (static_cast<unsigned>(t + 1) << shift));
    }
  }
  return p;
}

void validate_packed_2bit(const PackedTernaryView& p) {
  require(p.rows > 0 && p.cols > 0 && p.data != nullptr, "validate_packed_2bit: empty matrix");
  require(p.row_bytes == packed_row_bytes(p.cols), "validate_packed_2bit: " + std::to_string(p.cols) +
                                                       " columns need " + std::to_string(packed_row_bytes(p.cols)) +
                                                       " bytes per row, got " + std::to_string(p.row_bytes));
  const std::size_t kp = padded_cols(p.cols);
  for (std::size_t n = 0; n < p.rows; ++n) {
    const std::uint8_t* row = p.data + n * p.row_bytes;
    for (std::size_t i = 0; i < p.row_bytes; ++i) {
      // A 0b11 code has both bits set: b & (b >> 1) has a 1 at an even position.
      if ((row[i] & (row[i] >> 1) & 0x55) != 0) {
        throw InvalidArgument("validate_packed_2bit: byte " + std::to_string(n * p.row_bytes + i) +
                              " holds the invalid code 0b11");
      }
    }
    for (std::size_t k = p.cols; k < kp; ++k) {
      if (((row[byte_of(k)] >> shift_of(k)) & 3u) != kZeroCode) {
        throw InvalidArgument("validate_packed_2bit: row " + std::to_string(n) + " has a non-zero padding weight");
      }
    }
  }
}

PackedTernary wrap_packed_2bit(const std::uint8_t* bytes, std::size_t rows, std::size_t cols) {
  require(rows > 0 && cols > 0, "wrap_packed_2bit: empty matrix");
  validate_packed_2bit({bytes, rows, cols, packed_row_bytes(cols)});
  PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.row_bytes = packed_row_bytes(cols);
  p.data.resize(rows * p.row_bytes);
  std::memcpy(p.data.data(), bytes, rows * p.row_bytes);
  return p;
}

void unpack_ternary_2bit(const PackedTernaryView& packed, std::int8_t* trits) {
  for (std::size_t n = 0; n < packed.rows; ++n) {
    const std::uint8_t* row = packed.data + n * packed.row_bytes;
    for (std::size_t k = 0; k < packed.cols; ++k) {
      trits[n * packed.cols + k] = static_cast<std::int8_t>(((row[byte_of(k)] >> shift_of(k)) & 3u) - 1);
    }
  }
}

std::size_t storage_bytes(std::size_t rows, std::size_t cols) noexcept {
  return (rows * cols + kTritsPerStorageByte - 1) / kTritsPerStorageByte;
}

std::vector<std::uint8_t> pack_ternary_base3(const std::int8_t* trits, std::size_t count) {
  std::vector<std::uint8_t> out((count + kTritsPerStorageByte - 1) / kTritsPerStorageByte);
  for (std::size_t i = 0; i < out.size(); ++i) {
    unsigned value = 0;
    for (std::size_t j = kTritsPerStorageByte; j-- > 0;) {
      const std::size_t idx = i * kTritsPerStorageByte + j;
      unsigned code = kZeroCode;
      if (idx < count) {
        require_trit(trits[idx], idx, "pack_ternary_base3");
        code = static_cast<unsigned>(trits[idx] + 1);
      }
      value = value * 3 + code;
    }
    out[i] = static_cast<std::uint8_t>(value);
  }
  return out;
}

void unpack_ternary_base3(const std::uint8_t* bytes, std::size_t num_bytes, std::size_t count,
                          std::int8_t* trits) {
  const std::size_t expected = (count + kTritsPerStorageByte - 1) / kTritsPerStorageByte;
  require(num_bytes == expected, "unpack_ternary_base3: " + std::to_string(count) + " trits need " +
                                     std::to_string(expected) + " bytes, got " + std::to_string(num_bytes));
  for (std::size_t i = 0; i < num_bytes; ++i) {
    unsigned value = bytes[i];
    require(value < 243, "unpack_ternary_base3: byte " + std::to_string(i) + " (" + std::to_string(value) +
                             ") is not a 5-trit group (must be < 243)");
    for (std::size_t j = 0; j < kTritsPerStorageByte; ++j) {
      const std::size_t idx = i * kTritsPerStorageByte + j;
      const unsigned code = value % 3;
      value /= 3;
      if (idx < count) {
        trits[idx] = static_cast<std::int8_t>(static_cast<int>(code) - 1);
      } else {
        require(code == kZeroCode, "unpack_ternary_base3: padding trits of the last byte must be 0");
      }
    }
  }
}

}  // namespace lowbit::bitlab
