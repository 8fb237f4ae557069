// Scalar reference of the gather kernels: one output element at a time, straight from the
// definitions in gather.h. The SIMD levels are tested against it (and it against
// decode_image_hwc_ref), so it favours obviousness over speed.
#include <cstring>

#include "gather_isa.h"

namespace lowbit::kuat::kernels {

std::uint32_t gather_sample_ref(const GatherTable& table, const std::uint8_t* packed,
                                const SampleTransform& transform, std::uint8_t* out, const GatherScratch&) {
  const ImageGeometry& g = table.geometry();
  const std::uint32_t bits = table.bits();
  auto index_at = [&](std::size_t j) {
    std::uint32_t value = 0;
    for (std::uint32_t b = 0; b < bits; ++b) {
      const std::size_t pos = j * bits + b;
      value |= static_cast<std::uint32_t>((packed[pos >> 3] >> (pos & 7)) & 1u) << b;
    }
    return value;
  };
  std::uint32_t max_index = 0;
  for (std::size_t j = 0; j < g.num_patches(); ++j) {
    const std::uint32_t k = index_at(j);
    if (k > max_index) max_index = k;
  }

  const std::size_t es = table.element_size();
  const std::size_t E = table.elements_per_pixel();
  const std::int64_t H = g.height, W = g.width, P = g.patch;
  for (std::uint32_t plane = 0; plane < table.planes(); ++plane) {
    for (std::int64_t y = 0; y < H; ++y) {
      for (std::int64_t x = 0; x < W; ++x) {
        std::uint8_t* dst = out + ((plane * H + y) * W + x) * E * es;
        const std::int64_t sy = y + transform.shift_y;
        const std::int64_t sx = (transform.flip ? W - 1 - x : x) + transform.shift_x;
        if (sy < 0 || sy >= H || sx < 0 || sx >= W) {
          std::memcpy(dst, table.pad_pixel(plane), E * es);
          continue;
        }
        const std::uint32_t k = index_at(static_cast<std::size_t>((sy / P) * g.grid_w() + sx / P));
        const std::uint8_t* piece = table.piece(false, k, plane, static_cast<std::uint32_t>(sy % P));
        std::memcpy(dst, piece + (sx % P) * E * es, E * es);
      }
    }
  }
  return max_index;
}

}  // namespace lowbit::kuat::kernels
