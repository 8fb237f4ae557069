// Per-ISA entry points of nearest.h (internal).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::kuat::kernels {
void nearest_codeword_avx2(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                           const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores);
void nearest_codeword_avx512(const float* points, std::size_t n, std::size_t dim, const float* blocks,
                             const float* norms, std::size_t num_blocks, std::uint32_t* indices, float* scores);
}  // namespace lowbit::kuat::kernels
