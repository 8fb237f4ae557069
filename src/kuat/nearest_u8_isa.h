// Per-ISA entry points of nearest_u8.h (internal).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::kuat::kernels {
void nearest_u8_avx2(const std::uint8_t* points, std::size_t n, std::size_t dim, const std::int32_t* blocks,
                     const std::int32_t* norms, std::size_t num_blocks, std::uint32_t* indices);
// Needs AVX512-VNNI on top of the AVX-512 level (checked by the dispatcher).
void nearest_u8_avx512vnni(const std::uint8_t* points, std::size_t n, std::size_t dim, const std::int32_t* blocks,
                           const std::int32_t* norms, std::size_t num_blocks, std::uint32_t* indices);
}  // namespace lowbit::kuat::kernels
