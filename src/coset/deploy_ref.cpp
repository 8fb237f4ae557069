// Scalar reference of the deployed-layer kernels (deploy_kernels.h).
#include "deploy_kernels.h"

#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <vector>

namespace lowbit::coset::kernels {

void decode_d4q4_ref(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                     const std::uint8_t* t, std::size_t blocks, std::int8_t* w, float* s, std::int32_t* wb) {
  for (std::size_t k = 0; k < blocks; ++k) {
    const std::uint32_t biased = tables.level0[codes[2 * k]] + tables.level1[codes[2 * k + 1]];
    std::int32_t sum = 0;
    for (int j = 0; j < 4; ++j) {
      const int v = static_cast<int>((biased >> (8 * j)) & 0xFF) - 64;
      w[4 * k + j] = static_cast<std::int8_t>(v);
      sum += v;
    }
    wb[k] = -kActBias * sum;
    s[k] = scales16[(t[k / 2] >> (4 * (k % 2))) & 15];
  }
}

namespace {
// Residual of one D8 coset at div = 32 (ties up), then the parity fix of the tie-dither rule.
void e8_coset(const int* v, int* e) {
  int parity = 0;
  for (int j = 0; j < 8; ++j) {
    const int r = (v[j] + 16) >> 5;  // floor: arithmetic shift
    e[j] = v[j] - 32 * r;
    parity += r;
  }
  if ((parity & 1) == 0) return;
  int best = 0, best_key = -1;
  for (int j = 0; j < 8; ++j) {
    const int key = 16 * std::abs(e[j]) + (e[j] < 0 ? 7 - j : 8 + j);
    if (key > best_key) {
      best_key = key;
      best = j;
    }
  }
  e[best] += e[best] < 0 ? 32 : -32;
}
}  // namespace

void decode_e8q16_ref(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t, std::size_t blocks,
                      std::int8_t* w, float* s, std::int32_t* wb) {
  for (std::size_t k = 0; k < blocks; ++k) {
    int b[8];
    for (int j = 0; j < 8; ++j) b[j] = (codes[4 * k + j / 2] >> (4 * (j % 2))) & 15;
    int v[8], v1[8], e0[8], e1[8];
    v[0] = 2 * (2 * b[0] - b[1]) + b[7];
    for (int j = 1; j <= 5; ++j) v[j] = 2 * (b[j] - b[j + 1]) + b[7];
    v[6] = 2 * b[6] + b[7];
    v[7] = b[7];
    e8_coset(v, e0);
    for (int j = 0; j < 8; ++j) v1[j] = v[j] - 16;
    e8_coset(v1, e1);
    int d0 = 0, d1 = 0, n0 = 0, n1 = 0;
    for (int j = 0; j < 8; ++j) {
      d0 += e0[j] * e0[j];
      d1 += e1[j] * e1[j];
      n0 += e0[j] << j;
      n1 += e1[j] << j;
    }
    const bool keep0 = d0 < d1 || (d0 == d1 && n0 <= n1);
    std::int32_t sum = 0;
    for (int j = 0; j < 8; ++j) {
      const int v = keep0 ? e0[j] : e1[j];
      w[deploy_pos(8, k, j)] = static_cast<std::int8_t>(v);
      sum += v;
    }
    wb[k] = -kActBias * sum;
    s[k] = scales16[(t[k / 2] >> (4 * (k % 2))) & 15];
  }
}

void deploy_exact_chunks(const float* s, std::size_t blocks16, float s0, std::uint8_t* exact) {
  for (std::size_t c = 0; c < blocks16; c += kDeployChunk) {
    bool all = true;
    for (std::size_t k = c; k < std::min(blocks16, c + kDeployChunk); ++k) all = all && s[k] == s0;
    exact[c / kDeployChunk] = all ? 1 : 0;
  }
}

namespace {
// The epilogue of deploy.h on one input row's exact block sums I_k (blocks16 blocks, padding I = 0),
// in units of `group` blocks (1, or 4 for a T per group): a unit's I_u is the exact sum of its
// blocks' I; a chunk flagged in `exact` adds its I_u to A (int64); every unit u of any other chunk
// adds fma(s_u, float(I_u), p[u % 16]), in unit order (s_u: the scale of the unit's first block).
float epilogue(const float* s, const std::uint8_t* exact, const std::int32_t* i, std::size_t blocks16, float s0,
               int group = 1) {
  float p[kDeployLanes] = {};
  std::int64_t a = 0;
  const std::size_t g = static_cast<std::size_t>(group);
  for (std::size_t k = 0; k < blocks16; k += g) {
    std::int64_t unit = 0;
    for (std::size_t b = k; b < k + g; ++b) unit += i[b];
    const std::size_t lane = k / g % kDeployLanes;
    if (exact[k / kDeployChunk]) a += unit;
    else p[lane] = std::fma(s[k], static_cast<float>(unit), p[lane]);
  }
  for (std::size_t h = kDeployLanes / 2; h >= 1; h /= 2)
    for (std::size_t k = 0; k < h; ++k) p[k] = p[k] + p[k + h];
  return deploy_finish(s0, a, p[0]);
}

// I_k = wb[k] + sum_j xu_j w_j of every block, then the epilogue in units of `group` blocks.
void block_dot_units(int d, int group, const std::int8_t* w, const float* s, const std::uint8_t* exact,
                     const std::int32_t* wb, const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0,
                     float* out) {
  std::vector<std::int32_t> sums(blocks16);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::uint8_t* x = xu + r * blocks16 * d;
    for (std::size_t k = 0; k < blocks16; ++k) {
      std::int32_t acc = wb[k];
      for (int j = 0; j < d; ++j) {
        const std::size_t i = deploy_pos(d, k, j);
        acc += static_cast<std::int32_t>(x[i]) * w[i];
      }
      sums[k] = acc;
    }
    out[r] = epilogue(s, exact, sums.data(), blocks16, s0, group);
  }
}
}  // namespace

void block_dot_ref(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                   const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  block_dot_units(d, 1, w, s, exact, wb, xu, blocks16, rows, s0, out);
}

void block_dot_g4_ref(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                      const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  block_dot_units(d, kDeployTGroupBlocks, w, s, exact, wb, xu, blocks16, rows, s0, out);
}

namespace {
// The fused GEMV's arithmetic on a decoded row (w in deploy_pos layout, blocks16 blocks).
void fused_dot_ref(int d, int group, const std::int8_t* w, const float* s, std::size_t blocks16,
                   const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride, std::size_t rows, float s0,
                   float* out) {
  const int bias = fused_weight_bias(d);
  std::vector<std::int32_t> sums(blocks16);
  std::vector<std::uint8_t> exact((blocks16 + kDeployChunk - 1) / kDeployChunk);
  deploy_exact_chunks(s, blocks16, s0, exact.data());
  for (std::size_t r = 0; r < rows; ++r) {
    const std::int8_t* x = xq + r * x_stride * d;
    for (std::size_t k = 0; k < blocks16; ++k) {
      std::int32_t acc = xb[r * x_stride + k];
      for (int j = 0; j < d; ++j) {
        const std::size_t i = deploy_pos(d, k, j);
        acc += (w[i] + bias) * static_cast<std::int32_t>(x[i]);
      }
      sums[k] = acc;
    }
    out[r] = epilogue(s, exact.data(), sums.data(), blocks16, s0, group);
  }
}
}  // namespace

namespace {
// A byte of 2-bit T codes as 4 nibbles (little endian) and a mask of its escape codes (3).
struct TwoBitTable {
  std::uint16_t nibbles[256];
  std::uint8_t escapes[256];
  constexpr TwoBitTable() : nibbles(), escapes() {
    for (int b = 0; b < 256; ++b)
      for (int j = 0; j < 4; ++j) {
        const int v = (b >> (2 * j)) & 3;
        nibbles[b] = static_cast<std::uint16_t>(nibbles[b] | (v << (4 * j)));
        if (v == 3) escapes[b] = static_cast<std::uint8_t>(escapes[b] | (1 << j));
      }
  }
};
constexpr TwoBitTable kTwoBit{};
}  // namespace

void expand_t_row(const TRows& t, std::size_t n, std::size_t blocks, std::uint8_t* nibbles) {  // blocks: units
  const std::size_t nibble_bytes = (blocks + 1) / 2;
  const std::uint8_t* row = t.t + n * t.row_bytes;
  if (t.bits == 4) {
    for (std::size_t i = 0; i < nibble_bytes; ++i) nibbles[i] = row[i];
    return;
  }
  // Escapes in block order; one past the row's list reads as T = 0.
  std::size_t pos = t.escape_start[n];
  const std::size_t end = t.escape_start[n + 1];
  const auto put = [&](std::size_t k) {
    const int v = pos < end ? (t.escapes[pos++] & 15) : 0;
    nibbles[k / 2] = static_cast<std::uint8_t>((nibbles[k / 2] & ~(15 << (4 * (k % 2)))) | (v << (4 * (k % 2))));
  };
  for (std::size_t i = 0; i < nibble_bytes; ++i) nibbles[i] = 0;
  if (t.bits == 1) {  // the only literal is T = 0: visit the escape codes (set bits) only
    if (pos == end) return;  // no escape values: every block reads T = 0
    for (std::size_t i = 0; i < t.row_bytes; ++i)
      for (unsigned b = row[i]; b; b &= b - 1) {
        const std::size_t k = 8 * i + static_cast<std::size_t>(__builtin_ctz(b));
        if (k < blocks) put(k);
      }
    return;
  }
  for (std::size_t i = 0; i < t.row_bytes; ++i) {  // 2 bits: 4 codes per byte, nibbles 2i and 2i+1
    const std::uint16_t v = kTwoBit.nibbles[row[i]];
    for (std::size_t h = 0; h < 2 && 2 * i + h < nibble_bytes; ++h) nibbles[2 * i + h] = static_cast<std::uint8_t>(v >> (8 * h));
    for (unsigned e = kTwoBit.escapes[row[i]]; e; e &= e - 1) {
      const std::size_t k = 4 * i + static_cast<std::size_t>(__builtin_ctz(e));
      if (k < blocks) put(k);
    }
  }
  if (blocks % 2) nibbles[nibble_bytes - 1] &= 15;  // the padding nibble
}

void spread_group_t(const std::uint8_t* group_nibbles, std::size_t blocks, std::uint8_t* block_nibbles) {
  // Group u's T, 0x11 times, is the byte of blocks 4u, 4u + 1 and the byte of blocks 4u + 2, 4u + 3.
  for (std::size_t u = 0; u < blocks / kDeployTGroupBlocks; ++u) {
    const int v = (group_nibbles[u / 2] >> (4 * (u % 2))) & 15;
    block_nibbles[2 * u] = block_nibbles[2 * u + 1] = static_cast<std::uint8_t>(v * 0x11);
  }
}

namespace {
// Row n's T as one nibble per block (`nibbles`, (blocks + 1) / 2 bytes), whatever t.group.
void block_t_row(const TRows& t, std::size_t n, std::size_t blocks, std::vector<std::uint8_t>& units,
                 std::uint8_t* nibbles) {
  if (t.group == 1) return expand_t_row(t, n, blocks, nibbles);
  const std::size_t groups = blocks / static_cast<std::size_t>(t.group);
  units.resize((groups + 1) / 2);
  expand_t_row(t, n, groups, units.data());
  spread_group_t(units.data(), blocks, nibbles);
}
}  // namespace

void fused_gemv_d4q4_ref(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes, const TRows& t,
                         std::size_t blocks, std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb,
                         std::size_t x_stride, std::size_t rows, float* out) {
  const std::size_t blocks16 = (blocks + 15) / 16 * 16;
  std::vector<std::int8_t> w(blocks16 * 4, 0);
  std::vector<float> s(blocks16, scales16[0]);  // padding blocks: T = 0
  std::vector<std::int32_t> wb(blocks16, 0);
  std::vector<std::uint8_t> nibbles((blocks + 1) / 2), units;
  for (std::size_t n = 0; n < n_rows; ++n) {
    block_t_row(t, n, blocks, units, nibbles.data());
    decode_d4q4_ref(tables, scales16, codes + n * 2 * blocks, nibbles.data(), blocks, w.data(), s.data(), wb.data());
    fused_dot_ref(4, t.group, w.data(), s.data(), blocks16, xq, xb, x_stride, rows, scales16[0], out + n * rows);
  }
}

void fused_gemv_e8q16_ref(const float* scales16, const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                          std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb, std::size_t x_stride,
                          std::size_t rows, float* out) {
  const std::size_t blocks16 = (blocks + 15) / 16 * 16;
  std::vector<std::int8_t> w(blocks16 * 8, 0);
  std::vector<float> s(blocks16, scales16[0]);  // padding blocks: T = 0
  std::vector<std::int32_t> wb(blocks16, 0);
  std::vector<std::uint8_t> nibbles((blocks + 1) / 2), units;
  for (std::size_t n = 0; n < n_rows; ++n) {
    block_t_row(t, n, blocks, units, nibbles.data());
    decode_e8q16_ref(scales16, codes + n * 4 * blocks, nibbles.data(), blocks, w.data(), s.data(), wb.data());
    fused_dot_ref(8, t.group, w.data(), s.data(), blocks16, xq, xb, x_stride, rows, scales16[0], out + n * rows);
  }
}

}  // namespace lowbit::coset::kernels
