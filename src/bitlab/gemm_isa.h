// Per-ISA ternary GEMM kernels behind gemm.h (internal).
//
// Every kernel computes output rows n in [n0, n1) for all M activation rows of a padded width
// kp (a multiple of 256) against weights in the I2_S256 layout (row n at w + n * kp / 4), and
// writes out[m * ldc + n]. Int8 kernels return exact dot products (x_sums[m] is the sum of
// activation row m, used by the unsigned-code trick); float kernels return the fixed-order sums
// documented in gemm.h, so both are bit-identical at every level.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::bitlab::kernels {

using GemmInt8Fn = void (*)(const std::int8_t* xq, const std::int32_t* x_sums, std::size_t M, std::size_t kp,
                            const std::uint8_t* w, std::size_t n0, std::size_t n1, std::int32_t* out,
                            std::size_t ldc);
using GemmF32Fn = void (*)(const float* x, std::size_t M, std::size_t kp, const std::uint8_t* w, std::size_t n0,
                           std::size_t n1, float* out, std::size_t ldc);

void gemm_int8_ref(const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, const std::uint8_t*,
                   std::size_t, std::size_t, std::int32_t*, std::size_t);
void gemm_int8_avx2(const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, const std::uint8_t*,
                    std::size_t, std::size_t, std::int32_t*, std::size_t);
void gemm_int8_avx512(const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, const std::uint8_t*,
                      std::size_t, std::size_t, std::int32_t*, std::size_t);

void gemm_f32_ref(const float*, std::size_t, std::size_t, const std::uint8_t*, std::size_t, std::size_t, float*,
                  std::size_t);
void gemm_f32_avx2(const float*, std::size_t, std::size_t, const std::uint8_t*, std::size_t, std::size_t, float*,
                   std::size_t);
void gemm_f32_avx512(const float*, std::size_t, std::size_t, const std::uint8_t*, std::size_t, std::size_t, float*,
                     std::size_t);

// The int8 kernel of the active SIMD level (gemm.cpp), for callers that split rows over their
// own threads (lm.cpp); recorded as a dispatch like every pick.
GemmInt8Fn pick_gemm_int8() noexcept;

// A decode step streams every weight from memory once, and the hardware prefetchers alone leave a
// core waiting on that stream (measured on the 2-core EPYC, 180M-weight model, 1 thread: decode
// 128 tok/s without, about 250 with prefetching 4-16 KiB ahead; 8 KiB into L2, locality 1, was
// the best of the distances and hints tried). So the SIMD kernels prefetch the packed bytes
// kPrefetchBytes ahead of the group of rows they work on, never past the rows they were given.
// Prefetches do not fault and do not change results.
inline constexpr std::size_t kPrefetchBytes = 8192;
inline void prefetch_bytes(const std::uint8_t* w, std::size_t from, std::size_t count, std::size_t limit) noexcept {
  for (std::size_t off = from; off < from + count && off < limit; off += 64) __builtin_prefetch(w + off, 0, 1);
}

// From this many activation rows on, the SIMD int8 kernels unpack each group of 4 weight rows
// once into byte codes and reuse them across all rows (a register-tiled int8 GEMM); below it
// they decode the packed bytes on the fly (GEMV).
inline constexpr std::size_t kTiledMinRows = 4;

}  // namespace lowbit::bitlab::kernels
