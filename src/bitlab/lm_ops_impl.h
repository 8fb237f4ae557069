// The bodies of lm_ops.h, included once per SIMD level by lm_ops_ref.cpp, lm_ops_avx2.cpp and
// lm_ops_avx512.cpp (each compiled with its ISA flags, so the element-wise loops below are
// vectorized at that width); the scalar meaning of every loop is the definition in lm_ops.h.
// Loops that should vectorize run over fixed blocks of 16 lanes (kLanes), which the compiler
// turns into whole vectors at every width.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lm_ops.h"
#include "lowbit/bitlab/gemm.h"

namespace lowbit::bitlab::kernels {
namespace {

constexpr std::size_t kLanes = 16;

float dot_impl(const float* a, const float* b, std::size_t n) {
  float part[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) part[l] += a[i + l] * b[i + l];
  }
  float s = 0.0f;
  for (std::size_t l = 0; l < kLanes; ++l) s += part[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One x row against kBlock columns in independent accumulators (registers), each summed over e
// in order: the output head's product (one row, thousands of columns).
constexpr std::size_t kBlock = 64;

inline void columns_block(const float* x, const float* wt, std::size_t d, std::size_t ld, float scale, float* y) {
  float acc[kBlock] = {};
  for (std::size_t e = 0; e < d; ++e) {
    const float xe = x[e];
    const float* col = wt + e * ld;
    for (std::size_t j = 0; j < kBlock; ++j) acc[j] += xe * col[j];
  }
  for (std::size_t j = 0; j < kBlock; ++j) y[j] = acc[j] * scale;
}

// 16 floats as one GCC vector (a zmm register with AVX-512, two ymm with AVX2, four xmm with
// SSE2): element-wise arithmetic, so each lane computes exactly the scalar expression. The tiles
// below use it because the compiler's own vectorization of their nested loops gathers across rows.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

// (an out parameter: a function returning a 64-byte vector warns about the ABI below AVX-512)
inline void load_lanes(Lanes& v, const float* p) { std::memcpy(&v, p, sizeof v); }

// R x rows against one tile of 16 columns (read in full, the first w stored): the attention
// scores of the query heads that share a KV head, each column loaded once for the R rows.
template <std::size_t R>
inline void columns_tile(const float* x, std::size_t ldx, const float* wt, std::size_t d, std::size_t ld, float scale,
                         float* y, std::size_t ldy, std::size_t w) {
  Lanes acc[R] = {};
  for (std::size_t e = 0; e < d; ++e) {
    Lanes col;
    load_lanes(col, wt + e * ld);
    for (std::size_t r = 0; r < R; ++r) acc[r] += x[r * ldx + e] * col;
  }
  for (std::size_t r = 0; r < R; ++r) {
    const Lanes out = acc[r] * scale;
    if (w == kLanes) {
      std::memcpy(y + r * ldy, &out, sizeof out);
    } else {
      for (std::size_t k = 0; k < w; ++k) y[r * ldy + k] = out[k];
    }
  }
}

constexpr std::size_t kTileRows = 4;

void columns_impl(const float* x, std::size_t ldx, std::size_t nx, const float* wt, std::size_t d, std::size_t ld,
                  std::size_t n, float scale, float* y, std::size_t ldy) {
  std::size_t j = 0;
  if (nx == 1) {
    for (; j + kBlock <= n; j += kBlock) columns_block(x, wt + j, d, ld, scale, y + j);
  }
  for (; j < n; j += kLanes) {
    const std::size_t w = std::min(kLanes, n - j);
    std::size_t r = 0;
    for (; r + kTileRows <= nx; r += kTileRows) {
      columns_tile<kTileRows>(x + r * ldx, ldx, wt + j, d, ld, scale, y + r * ldy + j, ldy, w);
    }
    for (; r < nx; ++r) columns_tile<1>(x + r * ldx, ldx, wt + j, d, ld, scale, y + r * ldy + j, ldy, w);
  }
}

// R probability rows against W value columns (W = 16: a whole tile in vectors; else the last
// w < 16 columns, element by element).
template <std::size_t R, std::size_t W>
inline void rows_tile(const float* p, std::size_t ldp, const float* v, std::size_t ldv, std::size_t n, std::size_t w,
                      float* out, std::size_t ldo) {
  if constexpr (W == kLanes) {
    Lanes acc[R] = {};
    for (std::size_t j = 0; j < n; ++j) {
      Lanes row;
      load_lanes(row, v + j * ldv);
      for (std::size_t r = 0; r < R; ++r) acc[r] += p[r * ldp + j] * row;
    }
    for (std::size_t r = 0; r < R; ++r) std::memcpy(out + r * ldo, &acc[r], sizeof acc[r]);
  } else {
    float acc[R][kLanes] = {};
    for (std::size_t j = 0; j < n; ++j) {
      const float* row = v + j * ldv;
      for (std::size_t r = 0; r < R; ++r) {
        const float pj = p[r * ldp + j];
        for (std::size_t k = 0; k < w; ++k) acc[r][k] += pj * row[k];
      }
    }
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t k = 0; k < w; ++k) out[r * ldo + k] = acc[r][k];
  }
}

template <std::size_t R>
inline void rows_of(const float* p, std::size_t ldp, const float* v, std::size_t ldv, std::size_t n, std::size_t d,
                    float* out, std::size_t ldo) {
  std::size_t e = 0;
  for (; e + kLanes <= d; e += kLanes) rows_tile<R, kLanes>(p, ldp, v + e, ldv, n, kLanes, out + e, ldo);
  if (e < d) rows_tile<R, 0>(p, ldp, v + e, ldv, n, d - e, out + e, ldo);
}

void rows_impl(const float* p, std::size_t ldp, std::size_t np, const float* v, std::size_t ldv, std::size_t n,
               std::size_t d, float* out, std::size_t ldo) {
  std::size_t r = 0;
  for (; r + kTileRows <= np; r += kTileRows) rows_of<kTileRows>(p + r * ldp, ldp, v, ldv, n, d, out + r * ldo, ldo);
  for (; r < np; ++r) rows_of<1>(p + r * ldp, ldp, v, ldv, n, d, out + r * ldo, ldo);
}

void softmax_impl(float* x, std::size_t n) {
  float part[kLanes];
  std::fill(part, part + kLanes, x[0]);
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) part[l] = part[l] < x[i + l] ? x[i + l] : part[l];
  }
  float m = part[0];
  for (std::size_t l = 1; l < kLanes; ++l) m = m < part[l] ? part[l] : m;
  for (; i < n; ++i) m = m < x[i] ? x[i] : m;
  i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) x[i + l] = lm_exp(x[i + l] - m);
  }
  for (; i < n; ++i) x[i] = lm_exp(x[i] - m);
  std::fill(part, part + kLanes, 0.0f);
  i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) part[l] += x[i + l];
  }
  float s = 0.0f;
  for (std::size_t l = 0; l < kLanes; ++l) s += part[l];
  for (; i < n; ++i) s += x[i];
  for (i = 0; i < n; ++i) x[i] = x[i] / s;
}

void glu_impl(const std::int32_t* acc_gate, const std::int32_t* acc_up, const float* w_gate, const float* w_up,
              float act_scale, std::size_t n, bool relu2, float* out) {
  if (relu2) {
    for (std::size_t j = 0; j < n; ++j) {
      float g = int8_epilogue(acc_gate[j], act_scale, w_gate[j]);
      g = g > 0.0f ? g : 0.0f;
      out[j] = (g * g) * int8_epilogue(acc_up[j], act_scale, w_up[j]);
    }
    return;
  }
  for (std::size_t j = 0; j < n; ++j) {
    const float g = int8_epilogue(acc_gate[j], act_scale, w_gate[j]);
    out[j] = (g / (1.0f + lm_exp(-g))) * int8_epilogue(acc_up[j], act_scale, w_up[j]);
  }
}

void epilogue_impl(const std::int32_t* acc, const float* w_scale, float act_scale, std::size_t n, bool add, float* y) {
  if (add) {
    for (std::size_t r = 0; r < n; ++r) y[r] = y[r] + int8_epilogue(acc[r], act_scale, w_scale[r]);
  } else {
    for (std::size_t r = 0; r < n; ++r) y[r] = int8_epilogue(acc[r], act_scale, w_scale[r]);
  }
}

typedef std::int32_t IntLanes __attribute__((vector_size(kLanes * sizeof(std::int32_t))));
typedef std::int8_t ByteLanes __attribute__((vector_size(kLanes)));

// quantize_row of quantize.cpp for one element, or 16 at once (Lanes): clamp, then round half to
// even by adding and subtracting 1.5 * 2^23 (exact for |v| <= 128); in place (a function taking
// or returning a 64-byte vector by value warns about the ABI below AVX-512).
template <class V>
inline void quantize_rounded(V& v, float inv) {
  constexpr float kMagic = 12582912.0f;
  v = v * inv;
  v = v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v);
  v = (v + kMagic) - kMagic;
}

bool quantize_impl(const float* x, std::size_t n, std::int8_t* dst, float* scale, std::int32_t* sum) {
  // max |x| (exact in any order) and a finiteness check (|x| <= FLT_MAX is false for NaN and Inf)
  Lanes part = {};
  IntLanes finite = ~IntLanes{};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Lanes v;
    load_lanes(v, x + i);
    const Lanes a = reinterpret_cast<Lanes>(reinterpret_cast<IntLanes>(v) & 0x7FFFFFFF);  // |v|
    part = part < a ? a : part;
    finite &= a <= FLT_MAX;
  }
  float a = 0.0f;
  bool ok = true;
  for (std::size_t l = 0; l < kLanes; ++l) {
    a = a < part[l] ? part[l] : a;
    ok = ok && finite[l] != 0;
  }
  for (std::size_t k = i; k < n; ++k) {
    const float v = std::fabs(x[k]);
    a = a < v ? v : a;
    ok = ok && v <= FLT_MAX;
  }
  if (!ok) return false;
  *scale = a / 127.0f;
  const float inv = activation_inv(a);
  IntLanes total = {};
  for (i = 0; i + kLanes <= n; i += kLanes) {
    Lanes v;
    load_lanes(v, x + i);
    quantize_rounded(v, inv);
    const IntLanes q = __builtin_convertvector(v, IntLanes);
    const ByteLanes b = __builtin_convertvector(q, ByteLanes);
    std::memcpy(dst + i, &b, sizeof b);
    total += q;
  }
  std::int32_t s = 0;
  for (std::size_t l = 0; l < kLanes; ++l) s += total[l];
  for (; i < n; ++i) {
    float v = x[i];
    quantize_rounded(v, inv);
    const auto q = static_cast<std::int32_t>(v);
    dst[i] = static_cast<std::int8_t>(q);
    s += q;
  }
  *sum = s;
  return true;
}

}  // namespace
}  // namespace lowbit::bitlab::kernels
