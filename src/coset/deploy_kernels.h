// Per-level kernels of the deployed layers (deploy.h; internal).
//
// Weights reach the kernels as biased bytes u = w + kDeployBias (w the C-scaled integer decode,
// |w| <= 63, so u in [1, 127]) and activations as int8 (|xq| <= 127): the integer block sums
// I = sum_j u_j xq_j - xbias[k] (xbias[k] = kDeployBias * sum_j xq_j) are exact, and AVX2's
// vpmaddubsw pairs (at most 2 * 127 * 127) never saturate.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::coset::kernels {

inline constexpr int kDeployBias = 64;
inline constexpr std::size_t kDeployLanes = 16;  // float partial sums of the epilogue
inline constexpr std::size_t kDeployTileRows = 4;  // input rows per block-dot call

// Byte position of weight (or activation) j of block k in the kernels' row buffers. Blocks come
// in groups of 16; an E8 block's 8 bytes are split into its halves 0-3 and 4-7, the halves of a
// group's 16 blocks stored as two runs of 64 bytes, so that one 4-byte dot-product lane is one
// half-block and an E8 block is two chained lanes (no horizontal adds). D4 is plain (4k + j).
inline std::size_t deploy_pos(int d, std::size_t k, int j) {
  if (d != 8) return k * static_cast<std::size_t>(d) + static_cast<std::size_t>(j);
  return k / 16 * 128 + static_cast<std::size_t>(j / 4) * 64 + k % 16 * 4 + static_cast<std::size_t>(j % 4);
}

// D4 q=4 M=2: level0[idx0] + level1[idx1] are the 4 biased weight bytes of a block (little
// endian, coordinate j in byte j); each byte stays below 128, so the 32-bit add never carries.
struct D4Q4Tables {
  std::uint32_t level0[256];
  std::uint32_t level1[256];
};

// One D4 q=4 M=2 row: codes (2 bytes per block: level 0, level 1), T nibbles -> u (4 bytes per
// block) and s (scales16[T] per block).
using DecodeD4Q4Fn = void (*)(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                              const std::uint8_t* t, std::size_t blocks, std::uint8_t* u, float* s);
// One E8 q=16 M=1 row: codes (4 bytes per block, nibble j = b_j), T nibbles -> u (8 bytes per
// block, deploy_pos layout) and s. Integer twin of the HNLQ decode for this format (deploy_e8_generic.h).
using DecodeE8Q16Fn = void (*)(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t,
                               std::size_t blocks, std::uint8_t* u, float* s);
// The epilogue sums of deploy.h over blocks16 (a multiple of 16) blocks for `rows` (1..4) input
// rows: row r's activations at xq + r * blocks16 * d (deploy_pos layout), its -kDeployBias *
// block sums at nxbias + r * blocks16; out[r] receives the reduced sum. Per block
// I = nxbias + sum_j u_j xq_j (exact), then p[k % 16] = fma(s_k, float(I), p[k % 16]).
using BlockDotFn = void (*)(int d, const std::uint8_t* u, const float* s, const std::int8_t* xq,
                            const std::int32_t* nxbias, std::size_t blocks16, std::size_t rows, float* out);

void decode_d4q4_ref(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                     std::uint8_t*, float*);
void decode_d4q4_avx2(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                      std::uint8_t*, float*);
void decode_d4q4_avx512(const D4Q4Tables&, const float*, const std::uint8_t*, const std::uint8_t*, std::size_t,
                        std::uint8_t*, float*);
void decode_e8q16_ref(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::uint8_t*, float*);
void decode_e8q16_avx2(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::uint8_t*, float*);
void decode_e8q16_avx512(const float*, const std::uint8_t*, const std::uint8_t*, std::size_t, std::uint8_t*, float*);
void block_dot_ref(int, const std::uint8_t*, const float*, const std::int8_t*, const std::int32_t*, std::size_t,
                   std::size_t, float*);
void block_dot_avx2(int, const std::uint8_t*, const float*, const std::int8_t*, const std::int32_t*, std::size_t,
                    std::size_t, float*);
void block_dot_avx512(int, const std::uint8_t*, const float*, const std::int8_t*, const std::int32_t*, std::size_t,
                      std::size_t, float*);

}  // namespace lowbit::coset::kernels
