// Inner products with HNLQ-quantized vectors through small lookup tables (Kaplan & Ordentlich).
//
// A quantized block decodes to x^ = s * sum_m q^m rep(b_m), where rep(b) = G b - q Q(G b / q) is
// the coset representative of b. For a float query block y, the one-sided table
// L[idx] = <y, rep(idx)> over all q^d level indices gives <x^, y> = s * sum_m q^m L[idx_m];
// when both sides are quantized, the two-sided table <rep(i), rep(j)> (q^2d entries) does.
// Lookups replace the decoding entirely. Tables are float; results agree with decode-then-dot
// up to float summation order. The dither is not supported (a dithered x^ depends on the
// vector's position, not only on its codes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/core/aligned_buffer.h"
#include "lowbit/coset/hnlq.h"

namespace lowbit::coset {

// Largest q^d a one-sided table may have (256 KiB of floats per block).
inline constexpr std::size_t kMaxLutEntries = 65536;
// Largest q^d of a two-sided table (q^2d = 65536 entries): D4 q <= 4, E8 q = 2, Z2 q <= 16.
inline constexpr std::size_t kMaxTwoSidedEntries = 256;

// rep(idx) for idx in [0, q^d): q^d x d floats (idx's codes are its base-q digits, lowest first).
std::vector<float> coset_representatives(const QuantizationConfig& config);

class OneSidedLut {
 public:
  // y has `length` values, a multiple of d.
  OneSidedLut(const QuantizationConfig& config, const float* y, std::size_t length);

  std::size_t blocks() const noexcept { return blocks_; }
  std::size_t entries() const noexcept { return entries_; }
  const float* table(std::size_t block) const noexcept { return table_.data() + block * entries_; }
  const QuantizationConfig& config() const noexcept { return config_; }
  float scale(std::uint8_t t) const noexcept { return scales_[t]; }

  // <x^, y> for one quantized vector of the same length: codes blocks x M x d, t: blocks.
  float dot(const std::uint8_t* codes, const std::uint8_t* t) const;

 private:
  QuantizationConfig config_;
  std::size_t blocks_;
  std::size_t entries_;
  AlignedBuffer<float> table_;
  std::vector<float> scales_;
};

// A rows x cols matrix quantized block by block along its rows, stored as level indices in
// panels of 16 rows (interleaved so that the matrix-vector product gathers 16 rows at a time).
class QuantizedMatrix {
 public:
  // Encodes a (rows x cols, row-major; cols a multiple of d) with config.
  static QuantizedMatrix encode(const QuantizationConfig& config, const float* a, std::size_t rows,
                                std::size_t cols);
  // From existing codes: rows x (cols / d) x M x d codes and rows x (cols / d) T values.
  QuantizedMatrix(const QuantizationConfig& config, std::size_t rows, std::size_t cols,
                  const std::uint8_t* codes, const std::uint8_t* t);

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  const QuantizationConfig& config() const noexcept { return config_; }

  // The decoded matrix (rows x cols).
  void decode(float* out) const;
  // out = A^ y through a one-sided table built from y (counted in the call).
  void matvec_lut(const float* y, float* out) const;

 private:
  QuantizedMatrix(const QuantizationConfig& config, std::size_t rows, std::size_t cols);
  // Where vector (row, block) keeps its T, and its level-m index at index_slot + m * kPanelRows.
  std::size_t t_slot(std::size_t row, std::size_t block) const noexcept;
  std::size_t index_slot(std::size_t row, std::size_t block) const noexcept;
  // Row-major codes (rows x blocks x M x d) and T (rows x blocks) into the panel layout.
  void store_codes(const std::uint8_t* codes, const std::uint8_t* t);

  static constexpr std::size_t kPanelRows = 16;
  QuantizationConfig config_;
  std::size_t rows_, cols_, blocks_, panels_;
  std::vector<std::uint16_t> index_;  // panels x blocks x M x kPanelRows level indices
  std::vector<std::uint8_t> t_;       // panels x blocks x kPanelRows (padding rows: index 0, T 0)
};

class TwoSidedLut {
 public:
  explicit TwoSidedLut(const QuantizationConfig& config);
  std::size_t entries() const noexcept { return entries_; }
  // <x^, y^> for two quantized vectors of `blocks` blocks each (codes blocks x M x d, t: blocks).
  float dot(const std::uint8_t* codes_x, const std::uint8_t* t_x, const std::uint8_t* codes_y,
            const std::uint8_t* t_y, std::size_t blocks) const;

 private:
  QuantizationConfig config_;
  std::size_t entries_;
  AlignedBuffer<float> table_;  // entries x entries
  std::vector<float> scales_;
};

}  // namespace lowbit::coset
