// Scalar reference of the integer nearest-codeword search.
#include "lowbit/kuat/nearest_u8.h"

namespace lowbit::kuat::kernels {

void nearest_u8_ref(const std::uint8_t* points, std::size_t n, std::size_t dim, const std::int32_t* blocks,
                    const std::int32_t* norms, std::size_t num_blocks, std::uint32_t* indices) {
  const std::size_t pairs = (dim + 1) / 2;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* x = points + i * dim;
    std::int32_t best = INT32_MAX;
    std::uint32_t best_k = 0;
    for (std::size_t b = 0; b < num_blocks; ++b) {
      for (std::size_t lane = 0; lane < 16; ++lane) {
        std::int32_t dot = 0;
        for (std::size_t q = 0; q < pairs; ++q) {
          const std::int32_t w = blocks[(b * pairs + q) * 16 + lane];
          const std::int32_t x1 = 2 * q + 1 < dim ? x[2 * q + 1] : 0;
          dot += x[2 * q] * static_cast<std::int16_t>(w & 0xFFFF) + x1 * static_cast<std::int16_t>(w >> 16);
        }
        const std::int32_t score = norms[b * 16 + lane] - 2 * dot;
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
