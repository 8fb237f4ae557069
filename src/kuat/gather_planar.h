// The planar row algorithm of the SIMD gather kernels for NCHW, 2x2 patches, 3 channels, uint8 or
// float32 (GatherTable::has_planar()), compiled once per ISA like gather_rows.h (included only by
// gather_avx2.cpp and gather_avx512.cpp, which supply Isa::unpack, Isa::lay_planar_u8 and
// Isa::lay_planar_f32).
//
// Per output row: one planar slot per source patch holds the patch row of all three planes
// ([R0 R1 G0 G1 B0 B1 x x], elements of the output type), so the kernel loads each patch once and
// writes the three plane rows with shuffles (the generic NCHW path copies one 2-element piece per
// plane from three slots). Crops, flips and padding work as in gather_rows.h: lay into per-plane
// scratch rows, then copy the visible span and fill the rest with the plane's padding value.
#pragma once

#include <algorithm>
#include <cstring>

#include "gather_isa.h"

namespace lowbit::kuat::kernels {
namespace {

// Portable tail of the planar layers: pieces [from, n) one at a time, 2 elements of `es` bytes
// per plane.
inline void lay_planar_tail(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride,
                            const std::uint16_t* idx, std::uint32_t from, std::uint32_t n, bool reverse,
                            std::size_t es) {
  for (std::uint32_t g = from; g < n; ++g) {
    const std::uint8_t* src = base + std::size_t{idx[reverse ? n - 1 - g : g]} * stride;
    for (int c = 0; c < 3; ++c) std::memcpy(dst[c] + 2 * g * es, src + 2 * c * es, 2 * es);
  }
}

// `count` elements of `es` bytes, each equal to `value`.
inline void fill_elements(std::uint8_t* dst, const std::uint8_t* value, std::size_t es, std::size_t count) {
  bool zero = true;
  for (std::size_t b = 0; b < es; ++b) zero &= value[b] == 0;
  if (zero) {
    std::memset(dst, 0, count * es);
    return;
  }
  for (std::size_t i = 0; i < count; ++i) std::memcpy(dst + i * es, value, es);
}

// Isa::lay_planar_u8 / lay_planar_f32 (dst, base, stride, idx, n, reverse) write exactly 2n
// elements to each dst[c].
template <class Isa>
std::uint32_t gather_planar_rows(const GatherTable& table, const std::uint8_t* packed,
                                 const SampleTransform& transform, std::uint8_t* out, const GatherScratch& scratch) {
  const ImageGeometry& g = table.geometry();
  const std::uint32_t max_index = Isa::unpack(packed, g.num_patches(), table.bits(), scratch.indices);
  const std::int64_t H = g.height, W = g.width, gw = g.grid_w();
  constexpr std::int64_t P = 2;
  const std::size_t es = table.element_size();
  const std::size_t row_bytes = static_cast<std::size_t>(W) * es;
  const std::size_t plane_bytes = static_cast<std::size_t>(H) * row_bytes;
  const std::size_t stride = table.planar_stride();
  const auto lay = es == 1 ? &Isa::lay_planar_u8 : &Isa::lay_planar_f32;

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
  // Writing straight into the output needs the laid row to be exactly the output row.
  const bool direct = x0 == 0 && x1 == W && offset == 0 && gw * P == W;
  const std::size_t scratch_row = static_cast<std::size_t>(gw * P) * es;
  std::uint8_t* const scratch_rows[3] = {scratch.row, scratch.row + scratch_row, scratch.row + 2 * scratch_row};
  const std::uint8_t* const pads[3] = {table.pad_pixel(0), table.pad_pixel(1), table.pad_pixel(2)};

  for (std::int64_t y = 0; y < H; ++y) {
    std::uint8_t* const rows[3] = {out + static_cast<std::size_t>(y) * row_bytes,
                                   out + plane_bytes + static_cast<std::size_t>(y) * row_bytes,
                                   out + 2 * plane_bytes + static_cast<std::size_t>(y) * row_bytes};
    const std::int64_t sy = y + transform.shift_y;
    if (sy < 0 || sy >= H || x0 >= x1) {
      for (int c = 0; c < 3; ++c) fill_elements(rows[c], pads[c], es, static_cast<std::size_t>(W));
      continue;
    }
    const std::uint16_t* idx = scratch.indices + (sy / P) * gw;
    const std::uint8_t* base = table.planar_piece(transform.flip, 0, static_cast<std::uint32_t>(sy % P));
    if (direct) {
      lay(rows, base, stride, idx, static_cast<std::uint32_t>(gw), transform.flip);
      continue;
    }
    lay(scratch_rows, base, stride, idx, static_cast<std::uint32_t>(gw), transform.flip);
    for (int c = 0; c < 3; ++c) {
      fill_elements(rows[c], pads[c], es, static_cast<std::size_t>(x0));
      std::memcpy(rows[c] + x0 * es, scratch_rows[c] + (x0 + offset) * es, static_cast<std::size_t>(x1 - x0) * es);
      fill_elements(rows[c] + x1 * es, pads[c], es, static_cast<std::size_t>(W - x1));
    }
  }
  return max_index;
}

}  // namespace
}  // namespace lowbit::kuat::kernels
