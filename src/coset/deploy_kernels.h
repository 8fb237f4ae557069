// Per-level kernels of the deployed layers (deploy.h; internal).
//
// Weights reach the kernels as int8 w (the C-scaled integer decode, |w| <= 63) with, per block,
// wb[k] = -kActBias * sum_j w_kj; activations as unsigned bytes xu = xq + kActBias (|xq| <= 127,
// so xu in [1, 255]). The integer block sums I = wb[k] + sum_j xu_j w_j = sum_j xq_j w_j are exact
// (vpdpbusd / vpmaddubsw take the unsigned operand first), and AVX2's vpmaddubsw pairs (at most
// 2 * 255 * 63) never saturate. The weight-side correction is computed once per decoded row and
// shared by every input row.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "lowbit/coset/deploy.h"

namespace lowbit::coset::kernels {

inline constexpr int kActBias = 128;
inline constexpr std::size_t kDeployLanes = 16;  // float partial sums of the epilogue
// The epilogue (deploy.h) sums chunks of kDeployChunk blocks whose scales are all scale(0) exactly
// in integers; kernels keep those sums in int32 lanes and move them to an int64 total at least every
// kDeployIntChunk blocks (a lane then holds at most kDeployIntChunk / 8 block sums of
// |I| <= 8 * 255 * 63: below 2^31).
inline constexpr std::size_t kDeployChunk = 64;
inline constexpr std::size_t kDeployIntChunk = std::size_t{1} << 14;
inline constexpr std::size_t kDeployTileRows = 4;  // input rows per block-dot call

// Byte position of weight (or activation) j of block k in the kernels' row buffers. Blocks come
// in groups of 16; an E8 block's 8 bytes are split into its halves 0-3 and 4-7, the halves of a
// group's 16 blocks stored as two runs of 64 bytes, so that one 4-byte dot-product lane is one
// half-block and an E8 block is two chained lanes (no horizontal adds). D4 is plain (4k + j).
inline std::size_t deploy_pos(int d, std::size_t k, int j) {
  if (d != 8) return k * static_cast<std::size_t>(d) + static_cast<std::size_t>(j);
  return k / 16 * 128 + static_cast<std::size_t>(j / 4) * 64 + k % 16 * 4 + static_cast<std::size_t>(j % 4);
}

// D4 q=4 M=2: level0[idx0] + level1[idx1] are the 4 weight bytes of a block plus 64 each (little
// endian, coordinate j in byte j); each byte stays below 128, so the 32-bit add never carries.
struct D4Q4Tables {
  std::uint32_t level0[256];
  std::uint32_t level1[256];
  std::int8_t rep[4][256];  // coordinate j of rep(idx), |rep| <= 4: the byte-permute decode's tables
};

// One D4 q=4 M=2 row: codes (2 bytes per block: level 0, level 1), T nibbles -> w (4 bytes per
// block), s (scales16[T] per block) and wb.
using DecodeD4Q4Fn = void (*)(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                              const std::uint8_t* t, std::size_t blocks, std::int8_t* w, float* s, std::int32_t* wb);
// One E8 q=16 M=1 row: codes (4 bytes per block, nibble j = b_j), T nibbles -> w (8 bytes per
// block, deploy_pos layout), s and wb. Integer twin of the HNLQ decode for this format
// (deploy_e8_generic.h).
using DecodeE8Q16Fn = void (*)(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t,
                               std::size_t blocks, std::int8_t* w, float* s, std::int32_t* wb);
// The epilogue sums of deploy.h over blocks16 (a multiple of 16) blocks for `rows` (1..4) input
// rows: row r's activations at xu + r * blocks16 * d (deploy_pos layout); out[r] receives the
// reduced sum. Per block I = wb[k] + sum_j xu_j w_j (exact), then the epilogue of deploy.h with
// s0 = scale(0): the 64-block chunks flagged in `exact` (deploy_exact_chunks: their scales all equal
// s0) summed exactly (A), the other blocks p[k % 16] = fma(s_k, float(I), p[k % 16]);
// out[r] = fma(s0, float(A), tree(p)). Padding blocks (I = 0) carry T = 0, s = s0.
using BlockDotFn = void (*)(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact,
                            const std::int32_t* wb, const std::uint8_t* xu, std::size_t blocks16, std::size_t rows,
                            float s0, float* out);
// The same for a row whose T is shared by groups of kDeployTGroupBlocks blocks (deploy.h, t_group = 4; D4):
// per group u = k / 4 the exact I_u = sum of its 4 blocks' I, a chunk flagged in `exact` adds I_u to
// A, any other chunk's groups do p[u % 16] = fma(s[u], float(I_u), p[u % 16]) in group order; here
// s holds one scale per group (blocks16 / 4, padding groups scale(0)). blocks16 is a multiple of 16.
using BlockDotG4Fn = BlockDotFn;

// The epilogue's exact chunks of a decoded row (deploy.h): exact[c] = 1 when the scales of blocks
// 64 c .. min(blocks16, 64 c + 64) - 1 all equal s0, else 0 (ceil(blocks16 / 64) flags). Computed
// once per decoded row and shared by every input row.
void deploy_exact_chunks(const float* s, std::size_t blocks16, float s0, std::uint8_t* exact);

// Fused small-batch GEMV (AVX-512 VBMI; batch <= kFusedMaxBatch): n_rows consecutive weight rows
// (codes and T back to back, deploy.h layout) against `rows` (1..4) input rows, out[n * rows + r];
// the 64-block decode stays in registers (no w / s / wb row buffers). The
// activations come as signed int8 xq (deploy_pos layout, row r at xq + r * x_stride * d, zero from
// block `blocks` up to a multiple of 64) with xb[r * x_stride + k] = -bias * sum_j xq[k, j]
// (bias = fused_weight_bias(d)); the weights enter vpdpbusd as the unsigned bytes w + bias, so
// I = xb[k] + sum_j (w_j + bias) xq_j = sum_j w_j xq_j is exact and the correction is computed once
// per input row and shared by every weight row. Same I, same epilogue (deploy.h): the result
// equals block_dot of the decoded row bit for bit (with t.group = 4, D4 only: T per group and the
// group epilogue, equal to block_dot_g4 of the decoded row). The epilogue's exact chunks are told by
// T = 0, so scales16[T] != scales16[0] is required for T > 0 (packed_linear runs the panel path otherwise).
inline constexpr std::size_t kFusedMaxBatch = 4;
// T of consecutive weight rows in one of deploy.h's in-memory forms, row n (relative) at
// t + n * row_bytes; bits < 4: row n's escapes are escapes[escape_start[n] .. escape_start[n + 1]).
// group: blocks per T (1, or kDeployTGroupBlocks: T of group u = k / 4, one T per 4 blocks; the row's
// units are its groups and `t` holds blocks / 4 T values per row).
struct TRows {
  const std::uint8_t* t = nullptr;
  std::size_t row_bytes = 0;
  int bits = 4;
  const std::uint8_t* escapes = nullptr;
  const std::uint32_t* escape_start = nullptr;
  int group = 1;
};
// Row n of `t` as nibbles (`units` T values: blocks, or groups for t.group = 4;
// deploy_t_row_bytes(units) bytes, padding nibble zero); an escape past the row's list reads as
// T = 0. The scalar rule every kernel follows.
void expand_t_row(const TRows& t, std::size_t n, std::size_t units, std::uint8_t* nibbles);
// Group T nibbles (groups = blocks / 4 values; blocks a multiple of 4) -> one nibble per block (each
// group's T 4 times).
void spread_group_t(const std::uint8_t* group_nibbles, std::size_t blocks, std::uint8_t* block_nibbles);
inline constexpr int kD4FusedRepOffset = 4;                           // rep + 4 in [0, 8]: a nibble
inline constexpr int kD4FusedWeightBias = 5 * kD4FusedRepOffset;      // (rep0 + 4) + 4 (rep1 + 4) = w + 20
inline constexpr int kE8FusedWeightBias = 64;                         // |w| <= 32
inline constexpr int fused_weight_bias(int d) { return d == 4 ? kD4FusedWeightBias : kE8FusedWeightBias; }
using FusedGemvD4Q4Fn = void (*)(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                                 const TRows& t, std::size_t blocks, std::size_t n_rows,
                                 const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                                 std::size_t rows, float* out);
using FusedGemvE8Q16Fn = void (*)(const float* scales16, const std::uint8_t* codes, const TRows& t,
                                  std::size_t blocks, std::size_t n_rows, const std::int8_t* xq,
                                  const std::int32_t* xb, std::size_t x_stride, std::size_t rows, float* out);
// Scalar twins: the reference decode of the row, then I = xb + sum (w + bias) xq and the epilogue.
void fused_gemv_d4q4_ref(const D4Q4Tables&, const float*, const std::uint8_t*, const TRows&, std::size_t,
                         std::size_t, const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, float*);
void fused_gemv_e8q16_ref(const float*, const std::uint8_t*, const TRows&, std::size_t, std::size_t,
                          const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, float*);
// Need VBMI, GFNI and BMI2 (pdep expands compact T): cpu_has_avx512_vbmi() checks all three.
void fused_gemv_d4q4_avx512_vbmi(const D4Q4Tables&, const float*, const std::uint8_t*, const TRows&,
                                 std::size_t, std::size_t, const std::int8_t*, const std::int32_t*, std::size_t,
                                 std::size_t, float*);
void fused_gemv_e8q16_avx512_vbmi(const float*, const std::uint8_t*, const TRows&, std::size_t, std::size_t,
                                  const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, float*);

void decode_d4q4_ref(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                     std::int8_t*, float*, std::int32_t*);
void decode_d4q4_avx2(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                     std::int8_t*, float*, std::int32_t*);
void decode_d4q4_avx512(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                     std::int8_t*, float*, std::int32_t*);
// AVX-512 VBMI variant of decode_d4q4_avx512 (byte permutes instead of gathers); chosen at run
// time when the CPU has VBMI (cpu_has_avx512_vbmi), same output.
void decode_d4q4_avx512_vbmi(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                             std::int8_t*, float*, std::int32_t*);
bool cpu_has_avx512_vbmi() noexcept;
// AVX-512 VBMI variant of decode_e8q16_avx512: int8 lanes (64 blocks per register), the coset
// chosen from closed forms of the two cosets' distance and nudge differences, one parity fix.
void decode_e8q16_avx512_vbmi(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::int8_t*,
                              float*, std::int32_t*);
void decode_e8q16_ref(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::int8_t*, float*,
                      std::int32_t*);
void decode_e8q16_avx2(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::int8_t*, float*,
                      std::int32_t*);
void decode_e8q16_avx512(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::int8_t*, float*,
                      std::int32_t*);
void block_dot_ref(int, const std::int8_t*, const float*, const std::uint8_t*, const std::int32_t*,
                   const std::uint8_t*, std::size_t, std::size_t, float, float*);
void block_dot_avx2(int, const std::int8_t*, const float*, const std::uint8_t*, const std::int32_t*,
                    const std::uint8_t*, std::size_t, std::size_t, float, float*);
void block_dot_avx512(int, const std::int8_t*, const float*, const std::uint8_t*, const std::int32_t*,
                      const std::uint8_t*, std::size_t, std::size_t, float, float*);
// BlockDotG4Fn (d = 4): the scalar twin and the SIMD levels.
void block_dot_g4_ref(int, const std::int8_t*, const float*, const std::uint8_t*, const std::int32_t*,
                      const std::uint8_t*, std::size_t, std::size_t, float, float*);
void block_dot_g4_avx2(int, const std::int8_t*, const float*, const std::uint8_t*, const std::int32_t*,
                       const std::uint8_t*, std::size_t, std::size_t, float, float*);
void block_dot_g4_avx512(int, const std::int8_t*, const float*, const std::uint8_t*, const std::int32_t*,
                         const std::uint8_t*, std::size_t, std::size_t, float, float*);

// The end of the epilogue (deploy.h): the exact sum A of the chunks whose scales are all
// s0 = scale(0), the halving tree's result f of the other blocks' partial sums: fma(s0, float(A), f).
// Internal linkage: each ISA's translation unit keeps its own copy.
static inline float deploy_finish(float s0, std::int64_t a, float f) { return std::fma(s0, static_cast<float>(a), f); }

// AVX2 level of the fused GEMV (deploy_fused_avx2.cpp; AVX2 + FMA): 32 blocks at a time decoded in
// registers, int8 lanes (D4: vpshufb lookups of each coordinate's residual, no gathers, `tables`
// unused; E8: the closed forms of the VBMI decode); the same I and epilogue as the scalar twins
// fused_gemv_*_ref, bit for bit (D4 also with t.group = 4).
void fused_gemv_d4q4_avx2(const D4Q4Tables&, const float*, const std::uint8_t*, const TRows&, std::size_t,
                          std::size_t, const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, float*);
void fused_gemv_e8q16_avx2(const float*, const std::uint8_t*, const TRows&, std::size_t, std::size_t,
                           const std::int8_t*, const std::int32_t*, std::size_t, std::size_t, float*);

}  // namespace lowbit::coset::kernels
