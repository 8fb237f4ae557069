// The row algorithm of the SIMD gather kernels, compiled once per ISA (included only by
// gather_avx2.cpp and gather_avx512.cpp, which supply the index unpacker). Everything here is
// in an anonymous namespace so each ISA's copy stays private to its object file.
//
// Per output row: pick the source row (vertical shift), lay the source row's pieces out in
// order (mirrored pieces in reverse order for a flip) with fixed-width overlapping copies, then
// copy the visible span into the output and fill the rest with padding. When nothing is
// shifted or mirrored the pieces go straight into the output row.
#pragma once

#include <algorithm>
#include <cstring>

#include "gather_isa.h"

namespace lowbit::kuat::kernels {
namespace {

// Copies n pieces of `piece_bytes` each, piece g from base + idx[g] * stride (reverse: idx[n-1-g]),
// with one Width-byte copy per piece; each copy overwrites the previous one's spill, and the
// last spills up to Width - piece_bytes bytes past the end.
template <std::size_t Width>
void lay_pieces(std::uint8_t* dst, const std::uint8_t* base, std::size_t stride, const std::uint16_t* idx,
                std::uint32_t n, std::size_t piece_bytes, bool reverse) {
  if (!reverse) {
    for (std::uint32_t g = 0; g < n; ++g) std::memcpy(dst + g * piece_bytes, base + idx[g] * stride, Width);
  } else {
    for (std::uint32_t g = 0; g < n; ++g) {
      std::memcpy(dst + g * piece_bytes, base + idx[n - 1 - g] * stride, Width);
    }
  }
}

using LayPiecesFn = void (*)(std::uint8_t*, const std::uint8_t*, std::size_t, const std::uint16_t*, std::uint32_t,
                             std::size_t, bool);

// The narrowest copy that covers a piece; slots are at least this wide (GatherTable).
inline LayPiecesFn lay_pieces_for(std::size_t piece_bytes, std::size_t* width) {
  *width = piece_bytes <= 8 ? 8 : piece_bytes <= 16 ? 16 : piece_bytes <= 32 ? 32 : 64;
  switch (*width) {
    case 8:
      return &lay_pieces<8>;
    case 16:
      return &lay_pieces<16>;
    case 32:
      return &lay_pieces<32>;
    default:
      return &lay_pieces<64>;
  }
}

inline void fill_pixels(std::uint8_t* dst, const std::uint8_t* pixel, std::size_t pixel_bytes, std::size_t count,
                        bool pixel_is_zero) {
  if (pixel_is_zero) {
    std::memset(dst, 0, count * pixel_bytes);
    return;
  }
  for (std::size_t i = 0; i < count; ++i) std::memcpy(dst + i * pixel_bytes, pixel, pixel_bytes);
}

// Isa::unpack(packed, count, bits, out) writes count indices (may write up to kIndexSlack past)
// and returns the largest. Isa::lay_for(piece_bytes, slot_bytes, &width) may return a faster
// piece layer than lay_pieces_for (nullptr: use the generic one), spilling at most `width` bytes.
template <class Isa>
std::uint32_t gather_rows(const GatherTable& table, const std::uint8_t* packed, const SampleTransform& transform,
                          std::uint8_t* out, const GatherScratch& scratch) {
  const ImageGeometry& g = table.geometry();
  const std::uint32_t max_index = Isa::unpack(packed, g.num_patches(), table.bits(), scratch.indices);

  const std::int64_t H = g.height, W = g.width, P = g.patch, gw = g.grid_w();
  const std::size_t pixel_bytes = table.elements_per_pixel() * table.element_size();
  const std::size_t row_bytes = static_cast<std::size_t>(W) * pixel_bytes;
  const std::size_t sample_bytes = table.sample_bytes();
  const std::size_t piece_bytes = table.piece_bytes();
  const std::size_t stride = table.codeword_stride();
  std::size_t width = 0;
  LayPiecesFn lay = Isa::lay_for(piece_bytes, table.slot_bytes(), &width);
  if (lay == nullptr) lay = lay_pieces_for(piece_bytes, &width);

  // Output columns [x0, x1) see the image; output x reads laid-out source column x + offset.
  const std::int64_t dx = transform.shift_x;
  std::int64_t x0, x1, offset;
  if (!transform.flip) {
    x0 = std::max<std::int64_t>(0, -dx);
    x1 = std::min<std::int64_t>(W, W - dx);
    offset = dx;
  } else {
    x0 = std::max<std::int64_t>(0, dx);
    x1 = std::min<std::int64_t>(W, W + dx);
    offset = gw * P - W - dx;
  }
  const bool direct_ok = x0 == 0 && x1 == W && offset == 0;
  // A direct row spills past its end by at most this much into rows written later.
  const std::size_t spill = width + static_cast<std::size_t>(gw * P - W) * pixel_bytes;

  for (std::uint32_t plane = 0; plane < table.planes(); ++plane) {
    const std::uint8_t* pad = table.pad_pixel(plane);
    bool pad_is_zero = true;
    for (std::size_t b = 0; b < pixel_bytes; ++b) pad_is_zero &= pad[b] == 0;
    for (std::int64_t y = 0; y < H; ++y) {
      const std::size_t row_start = (static_cast<std::size_t>(plane) * H + y) * row_bytes;
      std::uint8_t* row = out + row_start;
      const std::int64_t sy = y + transform.shift_y;
      if (sy < 0 || sy >= H || x0 >= x1) {
        fill_pixels(row, pad, pixel_bytes, static_cast<std::size_t>(W), pad_is_zero);
        continue;
      }
      const std::uint16_t* idx = scratch.indices + (sy / P) * gw;
      const std::uint8_t* base = table.piece(transform.flip, 0, plane, static_cast<std::uint32_t>(sy % P));
      if (direct_ok && sample_bytes - (row_start + row_bytes) >= spill) {
        lay(row, base, stride, idx, static_cast<std::uint32_t>(gw), piece_bytes, transform.flip);
        continue;
      }
      lay(scratch.row, base, stride, idx, static_cast<std::uint32_t>(gw), piece_bytes, transform.flip);
      fill_pixels(row, pad, pixel_bytes, static_cast<std::size_t>(x0), pad_is_zero);
      std::memcpy(row + x0 * pixel_bytes, scratch.row + (x0 + offset) * pixel_bytes,
                  static_cast<std::size_t>(x1 - x0) * pixel_bytes);
      fill_pixels(row + x1 * pixel_bytes, pad, pixel_bytes, static_cast<std::size_t>(W - x1), pad_is_zero);
    }
  }
  return max_index;
}

}  // namespace
}  // namespace lowbit::kuat::kernels
