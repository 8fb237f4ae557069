#include <cstring>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/kuat/codes.h"

namespace lowbit::kuat {

std::uint32_t index_bits_for(std::uint32_t codebook_size) {
  require(codebook_size >= 2 && codebook_size <= kMaxCodebookSize,
          "codebook_size must be between 2 and 65536, got " + std::to_string(codebook_size));
  std::uint32_t bits = 1;
  while ((std::uint32_t{1} << bits) < codebook_size) ++bits;
  return bits;
}

void pack_indices(const std::uint32_t* indices, std::size_t count, std::uint32_t bits, std::uint8_t* out) {
  std::memset(out, 0, packed_bytes(count, bits));
  for (std::size_t j = 0; j < count; ++j) {
    std::uint64_t pos = std::uint64_t{j} * bits;
    std::uint32_t value = indices[j];
    for (std::uint32_t b = 0; b < bits; ++b, ++pos) {
      if ((value >> b) & 1u) out[pos >> 3] |= static_cast<std::uint8_t>(1u << (pos & 7));
    }
  }
}

void unpack_indices_ref(const std::uint8_t* packed, std::size_t count, std::uint32_t bits,
                        std::uint32_t* out) {
  for (std::size_t j = 0; j < count; ++j) {
    std::uint64_t pos = std::uint64_t{j} * bits;
    std::uint32_t value = 0;
    for (std::uint32_t b = 0; b < bits; ++b, ++pos) {
      value |= static_cast<std::uint32_t>((packed[pos >> 3] >> (pos & 7)) & 1u) << b;
    }
    out[j] = value;
  }
}

void validate(const ImageGeometry& g) {
  require(g.patch == 2 || g.patch == 4, "patch size must be 2 or 4, got " + std::to_string(g.patch));
  require(g.channels == 1 || g.channels == 3, "channels must be 1 or 3, got " + std::to_string(g.channels));
  require(g.height > 0 && g.width > 0, "image size must be positive, got " + std::to_string(g.height) + "x" +
                                           std::to_string(g.width));
}

void decode_image_hwc_ref(const ImageGeometry& g, const std::uint8_t* codebook,
                          std::uint32_t codebook_size, const std::uint8_t* packed,
                          std::uint8_t* out) {
  validate(g);
  const std::uint32_t bits = index_bits_for(codebook_size);
  std::vector<std::uint32_t> idx(g.num_patches());
  unpack_indices_ref(packed, idx.size(), bits, idx.data());
  const std::uint32_t P = g.patch, C = g.channels, cw = g.codeword_bytes();
  for (std::uint32_t gy = 0; gy < g.grid_h(); ++gy) {
    for (std::uint32_t gx = 0; gx < g.grid_w(); ++gx) {
      const std::uint32_t k = idx[std::size_t{gy} * g.grid_w() + gx];
      if (k >= codebook_size) {
        throw InvalidArgument("patch (" + std::to_string(gy) + ", " + std::to_string(gx) + ") has index " +
                              std::to_string(k) + " >= codebook size " + std::to_string(codebook_size));
      }
      const std::uint8_t* word = codebook + std::size_t{k} * cw;
      for (std::uint32_t py = 0; py < P; ++py) {
        const std::uint32_t y = gy * P + py;
        if (y >= g.height) break;
        for (std::uint32_t px = 0; px < P; ++px) {
          const std::uint32_t x = gx * P + px;
          if (x >= g.width) break;
          std::memcpy(out + (std::size_t{y} * g.width + x) * C, word + (py * P + px) * C, C);
        }
      }
    }
  }
}

}  // namespace lowbit::kuat
