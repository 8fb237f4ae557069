// Deployed lattice-quantized linear layers: y = x W^T + b evaluated from the packed codes.
//
// Packed weight (docs/coset.md, "Deployed layers"): W is out x in, in padded with zeros to
// blocks * d. Row n, block k holds M levels of d codes of b = ceil(log2 q) bits each (any q in
// [2, 16]: b = 1 for q = 2, 2 for q = 3..4, 3 for q = 5..8, 4 for q = 9..16), LSB-first, code
// (m, j) at bit offset (m * d + j) * b of the block's record; records back to back (bit
// (k * M * d + m * d + j) * b of the row, so a 3-bit code may straddle two bytes), each row
// starting on a byte, unused high bits of its last byte zero. A stored code must be < q (values
// q .. 2^b - 1 are invalid; deploy_pack refuses them, loaders check). T of (n, k) is at most 15,
// held as a nibble (block k at byte k / 2, low nibble first) or in the compact form described at
// PackedLinearView. With t_group = 4 (D4 only: one T per 16 weights) the 4 blocks 4u .. 4u + 3 of
// group u share one T, stored per group (unit u where the per-block layout has block k), blocks a
// multiple of 4. The decoded weight is
//   W^[n, k*d + j] = row_scale[n] * config.scale(T[n, k]) * w[n, k, j] / C,   (T[n, k]: its group's)
// w = sum_m q^m e_m the C-scaled integer decode of the codes (C = 2 for E8, else 1).
//
// The kernels quantize each input row x to int8 with one scale, xs = max|x| / 127 (xq = 0 where xs
// rounds to 0),
// xq = clamp(rint(x / xs), -127, 127), and compute per block the exact integer
// I[n, k] = sum_j w[n, k, j] * xq[k*d + j]; the epilogue (docs/coset.md, "Kernels", the one
// description of the order) sums the 64-block chunks whose scales are all s0 = config.scale(0)
// exactly (A, int64), accumulates every unit u of the other chunks (a unit: a block, or with
// t_group = 4 a group, whose exact I_u is the sum of its 4 blocks' I) in unit order as
// p[u % 16] = fma(s_u, I_u, p[u % 16]) (s_u = config.scale(T)), reduces the 16 partial sums
// as a halving tree (8, 4, 2, 1) to f, and returns ((fma(s0, A, f) * xs) * row_scale[n]) * (1 / C)
// (+ bias). That order is fixed, so every path and SIMD level gives the scalar reference's result
// bit for bit. The float matrix is never formed: at batch <= 4 with AVX-512 VBMI a fused GEMV decodes each
// weight row in registers (docs/coset.md); otherwise each thread decodes a panel of 16 rows into
// small buffers and reuses them for every input row (the decode amortised over the batch, a GEMM).
//
// Two paths, the same arithmetic. Configs with |w| <= kDeployInt8Bound (63; deploy_weight_bound)
// run the int8 kernels above (D4 q=4 M=2 and E8 q=16 M=1 with dedicated decoders, the others
// through the HNLQ decode kernel). Wider configs (e.g. D4 q=4 M=4, E8 q=16 M=2, Z2 q=16 M=2, D4 q=8
// M=2) take the wide path: row by row, the codes decoded to int32 weights, I[n, k] summed exactly
// in int32 (|I| <= 8 * 127 * |w| < 2^31), then the same epilogue in the same order; only the
// conversions of I and A to float can round (when above 2^24). It is scalar and slower, and like
// the int8 path it never forms the float matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/coset/hnlq.h"

namespace lowbit::coset {

// T is one nibble per block in memory: deployable configs allow at most 15 scaling retries.
inline constexpr int kDeployMaxT = 15;
// The int8 kernels' largest |w| (vpmaddubsw pairs never saturate below it); wider configs take the
// wide path.
inline constexpr int kDeployInt8Bound = 63;
// The wide path's largest |w|: int32 block sums stay exact (every valid config is far below it).
inline constexpr int kDeployMaxWeightBound = (1 << 20) - 1;

// T in memory: t_bits = 4, one nibble per block (block k of a row at byte k / 2, low nibble
// first); or the compact form of deploy_t_compact, t_bits = 1 or 2 bits per block (block k at bit
// k * t_bits of its row, LSB first, each row starting on a byte) where the largest code 2^t_bits - 1
// is an escape: that block's T is the row's next byte of t_escapes (row n's escapes, in block
// order, are t_escapes[t_escape_start[n] .. t_escape_start[n + 1])).
// t_group: blocks per T, 1 or kDeployTGroupBlocks (D4 configs on the int8 path only; blocks a
// multiple of it). The T arrays below then hold one T per group: every "block" of their
// description reads "unit" (blocks / t_group units per row).
inline constexpr int kDeployTGroupBlocks = 4;
struct PackedLinearView {
  QuantizationConfig config;
  std::size_t rows = 0;               // out_features
  std::size_t blocks = 0;             // padded in_features / d
  int t_group = 1;                    // blocks per T: 1 or kDeployTGroupBlocks
  const std::uint8_t* codes = nullptr;  // rows x deploy_code_row_bytes(config, blocks)
  const std::uint8_t* t = nullptr;      // rows x deploy_t_row_bytes(blocks, t_bits)
  const float* row_scale = nullptr;     // rows
  const float* bias = nullptr;          // rows, or nullptr
  int t_bits = 4;                             // 4 (nibbles), 2 or 1 (compact, with escapes)
  const std::uint8_t* t_escapes = nullptr;    // t_bits < 4
  const std::uint32_t* t_escape_start = nullptr;  // t_bits < 4: rows + 1 offsets into t_escapes
};

// Bits of one stored code: ceil(log2 q).
int deploy_code_bits(const QuantizationConfig& config);
std::size_t deploy_code_row_bytes(const QuantizationConfig& config, std::size_t blocks);
// Bytes of one row of T at t_bits bits per block (4: nibbles).
std::size_t deploy_t_row_bytes(std::size_t blocks, int t_bits = 4);

// The compact in-memory T: the smallest t_bits in {1, 2} whose escapes (T >= 2^t_bits - 1) are at
// most 1/64 of the blocks (so the kernels' escape path stays rare), else 4 (nibbles, no escapes).
struct CompactT {
  int bits = 4;
  std::vector<std::uint8_t> t;                // rows x deploy_t_row_bytes(blocks, bits)
  std::vector<std::uint8_t> escapes;          // empty for bits = 4
  std::vector<std::uint32_t> escape_start;    // rows + 1 (all zero for bits = 4)
};
// From T (rows x blocks, one per byte, each <= 15); bits = 0 chooses as above. Throws
// InvalidArgument on T > 15 or more than 2^32 - 1 escapes.
CompactT deploy_t_compact(const std::uint8_t* t, std::size_t rows, std::size_t blocks, int bits = 0);
// Row n's T as nibbles (deploy_t_row_bytes(blocks) bytes, padding nibble zero). An escape past
// the row's list reads as T = 0 (deploy_require_t refuses such views).
void deploy_t_expand_row(const PackedLinearView& w, std::size_t n, std::uint8_t* nibbles);
// Throws InvalidArgument (prefixed by `what`) unless the config can be deployed: no dither, the
// tie-dither rule, T <= 15 and |w| <= kDeployMaxWeightBound (any valid q and M).
void require_deployable(const QuantizationConfig& config, const std::string& what);
// The largest |w| (C-scaled integer decode) the config can produce.
int deploy_weight_bound(const QuantizationConfig& config);

// Throws InvalidArgument (prefixed by `what`) unless t_group is 1, or kDeployTGroupBlocks for a D4
// config on the int8 path (deploy_weight_bound <= kDeployInt8Bound) and blocks a multiple of it.
void require_t_group(const QuantizationConfig& config, std::size_t blocks, int t_group, const std::string& what);

// Packs codes (rows x blocks x M x d, each < q) and T (rows x blocks / t_group, each <= 15) into the
// view's layout: codes_out rows x deploy_code_row_bytes, t_out rows x deploy_t_row_bytes(units).
void deploy_pack(const QuantizationConfig& config, std::size_t rows, std::size_t blocks,
                 const std::uint8_t* codes, const std::uint8_t* t, std::uint8_t* codes_out,
                 std::uint8_t* t_out, int t_group = 1);

// Encodes a weight for deployment: x is rows x blocks x d (each row already divided by its row
// scale), codes rows x blocks x M x d, t rows x blocks / t_group. t_group = 1 is coset::encode
// (Algorithm 1, each block its own smallest T). t_group = kDeployTGroupBlocks gives each group of 4
// blocks the smallest T at which none of them overloads (each block encoded at its group's T;
// the decode is then scale(T_u) * Q(x / scale(T_u)) for every block of the group, like Algorithm
// 1's). Blocks that still overload at the config's largest T are clipped: shrunk towards 0 by
// 2^(-i/16), i = 1 .. 64, and encoded at the first factor that fits (bounded error instead of a
// wrapped-around decode). Returns the counts of units retried (T > 0), of blocks clipped and of
// blocks still overloaded after that. Throws InvalidArgument on NaN/Inf in x or an invalid t_group.
EncodeStats deploy_encode(const QuantizationConfig& config, const float* x, std::size_t rows, std::size_t blocks,
                          int t_group, std::uint8_t* codes, std::uint8_t* t);

// Throws InvalidArgument (prefixed by `what`) if a T exceeds the config's max_scaling_iterations,
// a row's padding nibble or bits are not zero, or (compact T) the escape offsets are not
// monotonic or a row's escape count differs from its escape codes. Owners of a view check once
// (packed_linear does not).
void deploy_require_t(const PackedLinearView& w, const std::string& what);

// y (batch x rows) = x (batch x blocks*d) W^T + bias, as documented above. Multi-threaded over
// rows; throws InvalidArgument on NaN/Inf in x. A T beyond max_t scales its block by 0.
void packed_linear(const PackedLinearView& w, const float* x, std::size_t batch, float* y);

// W^ (rows x blocks*d), for tests and inspection only.
void packed_decode(const PackedLinearView& w, float* out);

// Entropy code of T (symbols 0..15): a canonical Huffman code whose 16 code lengths (0 = unused,
// at most 15) are stored beside the stream. Codes are written MSB first into an LSB-first stream.
std::vector<std::uint8_t> t_code_lengths(const std::uint8_t* t, std::size_t n);
std::vector<std::uint8_t> t_encode(const std::uint8_t* t, std::size_t n, const std::uint8_t* lengths);
// Throws InvalidArgument on invalid lengths, a truncated stream or a symbol beyond max_t.
void t_decode(const std::uint8_t* stream, std::size_t bytes, const std::uint8_t* lengths, std::size_t n,
              int max_t, std::uint8_t* t);

}  // namespace lowbit::coset
