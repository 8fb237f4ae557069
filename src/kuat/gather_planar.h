// The planar row algorithm of the SIMD gather kernels for uint8 NCHW, 2x2 patches, 3 channels
// (GatherTable::has_planar()), compiled once per ISA like gather_rows.h (included only by
// gather_avx2.cpp and gather_avx512.cpp, which supply Isa::unpack and Isa::lay_planar).
//
// Per output row: one 8-byte planar slot per source patch holds the patch row of all three
// planes, so the kernel loads each patch once and writes the three plane rows with shuffles
// (the generic NCHW path copies one 2-byte piece per plane from three slots). Crops, flips and
// padding work as in gather_rows.h: lay into per-plane scratch rows, then copy the visible span.
#pragma once

#include <algorithm>
#include <cstring>

#include "gather_isa.h"

namespace lowbit::kuat::kernels {
namespace {

// Portable tail of the planar layers: pieces [from, n) one at a time, 2 bytes per plane.
inline void lay_planar_tail(std::uint8_t* const dst[3], const std::uint8_t* base, std::size_t stride,
                            const std::uint16_t* idx, std::uint32_t from, std::uint32_t n, bool reverse) {
  for (std::uint32_t g = from; g < n; ++g) {
    const std::uint8_t* src = base + std::size_t{idx[reverse ? n - 1 - g : g]} * stride;
    for (int c = 0; c < 3; ++c) std::memcpy(dst[c] + 2 * g, src + 2 * c, 2);
  }
}

// Isa::lay_planar(dst, base, stride, idx, n, reverse) writes exactly 2n bytes to each dst[c].
template <class Isa>
std::uint32_t gather_planar_rows(const GatherTable& table, const std::uint8_t* packed,
                                 const SampleTransform& transform, std::uint8_t* out, const GatherScratch& scratch) {
  const ImageGeometry& g = table.geometry();
  const std::uint32_t max_index = Isa::unpack(packed, g.num_patches(), table.bits(), scratch.indices);
  const std::int64_t H = g.height, W = g.width, gw = g.grid_w();
  constexpr std::int64_t P = 2;
  const std::size_t plane_bytes = static_cast<std::size_t>(H * W);
  const std::size_t stride = table.planar_stride();

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
  std::uint8_t* const scratch_rows[3] = {scratch.row, scratch.row + gw * P, scratch.row + 2 * gw * P};

  for (std::int64_t y = 0; y < H; ++y) {
    std::uint8_t* const rows[3] = {out + static_cast<std::size_t>(y * W), out + plane_bytes + static_cast<std::size_t>(y * W),
                                   out + 2 * plane_bytes + static_cast<std::size_t>(y * W)};
    const std::int64_t sy = y + transform.shift_y;
    if (sy < 0 || sy >= H || x0 >= x1) {
      for (std::uint8_t* row : rows) std::memset(row, 0, static_cast<std::size_t>(W));  // uint8 padding is 0
      continue;
    }
    const std::uint16_t* idx = scratch.indices + (sy / P) * gw;
    const std::uint8_t* base = table.planar_piece(transform.flip, 0, static_cast<std::uint32_t>(sy % P));
    if (direct) {
      Isa::lay_planar(rows, base, stride, idx, static_cast<std::uint32_t>(gw), transform.flip);
      continue;
    }
    Isa::lay_planar(scratch_rows, base, stride, idx, static_cast<std::uint32_t>(gw), transform.flip);
    for (int c = 0; c < 3; ++c) {
      std::memset(rows[c], 0, static_cast<std::size_t>(x0));
      std::memcpy(rows[c] + x0, scratch_rows[c] + x0 + offset, static_cast<std::size_t>(x1 - x0));
      std::memset(rows[c] + x1, 0, static_cast<std::size_t>(W - x1));
    }
  }
  return max_index;
}

}  // namespace
}  // namespace lowbit::kuat::kernels
