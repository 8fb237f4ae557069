// Scalar reference of the nearest-codeword search: the ground truth for the SIMD levels.
#include <cmath>

#include "lowbit/kuat/nearest.h"

namespace lowbit::kuat::kernels {

void nearest_codeword_ref(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                          const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores) {
  float m2x[kMaxCodewordDim];
  for (std::size_t i = 0; i < n; ++i) {
    const float* x = points + i * dim;
    for (std::size_t d = 0; d < dim; ++d) m2x[d] = -2.0f * x[d];
    float best = INFINITY;
    std::uint32_t best_k = 0;
    for (std::size_t b = 0; b < num_blocks; ++b) {
      const float* block = blocks + b * dim * 16;
      for (std::size_t lane = 0; lane < 16; ++lane) {
        float acc = norms[b * 16 + lane];
        for (std::size_t d = 0; d < dim; ++d) acc = std::fma(m2x[d], block[d * 16 + lane], acc);
        if (acc < best) {
          best = acc;
          best_k = static_cast<std::uint32_t>(b * 16 + lane);
        }
      }
    }
    indices[i] = best_k;
    if (scores) scores[i] = best;
  }
}

}  // namespace lowbit::kuat::kernels
