// Scalar reference of the integer nearest-codeword search: the exact score of every codeword
// from the layout, compared one by one (lowest index wins ties).
#include <climits>

#include "lowbit/kuat/nearest.h"
#include "lowbit/kuat/nearest_u8.h"

namespace lowbit::kuat::kernels {

void nearest_u8_ref(const std::uint8_t* points, std::size_t n, const NearestU8Layout& L, std::uint32_t* indices) {
  std::int32_t xq[kMaxCodewordDim / 4];
  for (std::size_t i = 0; i < n; ++i) {
    nearest_u8_point_quads(points + i * L.dim, L.dim, xq);
    std::int64_t best = INT64_MAX;
    std::uint32_t best_k = 0;
    for (std::size_t b = 0; b < L.num_blocks; ++b) {
      for (std::size_t lane = 0; lane < 16; ++lane) {
        std::int64_t dot = 0;
        for (std::size_t q = 0; q < L.quads; ++q) {
          const auto c = static_cast<std::uint32_t>(L.words[(b * L.quads + q) * 16 + lane]);
          const auto x = static_cast<std::uint32_t>(xq[q]);
          for (unsigned j = 0; j < 4; ++j) {
            dot += std::int64_t{std::uint8_t(c >> (8 * j))} * std::int64_t{std::int8_t(std::uint8_t(x >> (8 * j)))};
          }
        }
        const std::int64_t t = L.keys[b * 16 + lane] >> L.shift;
        const std::int64_t score = t - 2 * dot;
        if (score < best) {
          best = score;
          best_k = static_cast<std::uint32_t>(b * 16 + lane);
        }
      }
    }
    indices[i] = best_k;
  }
}

}  // namespace lowbit::kuat::kernels
