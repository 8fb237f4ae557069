// Kuat index packing and the reference decode: the conventions every Kuat component shares.
//
// An image of height H, width W and C channels is cut into P x P patches on a grid of
// grid_h = ceil(H / P) rows and grid_w = ceil(W / P) columns (the encoder pads the right and
// bottom edges by replicating the last row/column; decode crops back to H x W).
// A codeword is the P*P*C bytes of one patch in (py, px, c) row-major order.
// Each patch is one index into a codebook of K codewords; indices take bits = ceil(log2 K)
// (at least 1) bits each, packed LSB-first: index j of a block occupies bits [j*bits, (j+1)*bits)
// where bit k of byte n is bit 8n+k. A sample's block holds its grid_h*grid_w indices in
// row-major grid order and starts on a byte boundary.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::kuat {

inline constexpr std::uint32_t kMaxCodebookSize = 65536;

// ceil(log2 K), at least 1. Throws InvalidArgument unless 2 <= K <= 65536.
std::uint32_t index_bits_for(std::uint32_t codebook_size);

// Bytes of one packed block of `count` indices of `bits` bits.
constexpr std::size_t packed_bytes(std::size_t count, std::uint32_t bits) {
  return (count * bits + 7) / 8;
}

// Packs `count` indices (each < 2^bits) into `out` (packed_bytes(count, bits) bytes, overwritten).
void pack_indices(const std::uint32_t* indices, std::size_t count, std::uint32_t bits, std::uint8_t* out);

// Reference unpacking; reads exactly packed_bytes(count, bits) bytes.
void unpack_indices_ref(const std::uint8_t* packed, std::size_t count, std::uint32_t bits,
                        std::uint32_t* out);

struct ImageGeometry {
  std::uint32_t height = 0;
  std::uint32_t width = 0;
  std::uint32_t channels = 0;
  std::uint32_t patch = 2;

  std::uint32_t grid_h() const { return (height + patch - 1) / patch; }
  std::uint32_t grid_w() const { return (width + patch - 1) / patch; }
  std::size_t num_patches() const { return std::size_t{grid_h()} * grid_w(); }
  std::uint32_t codeword_bytes() const { return patch * patch * channels; }
  std::size_t pixel_bytes() const { return std::size_t{height} * width * channels; }
};

// Throws InvalidArgument unless the geometry is usable (patch 2 or 4, channels 1 or 3, sizes > 0).
void validate(const ImageGeometry& g);

// Reference decode of one image into `out` (H*W*C bytes, HWC order): unpack + codebook gather + crop.
// Indices must be < codebook_size (checked; InvalidArgument names the patch otherwise).
void decode_image_hwc_ref(const ImageGeometry& g, const std::uint8_t* codebook,
                          std::uint32_t codebook_size, const std::uint8_t* packed,
                          std::uint8_t* out);

}  // namespace lowbit::kuat
