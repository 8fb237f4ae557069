// AVX-512 (F/BW/VNNI) level of the deployed-layer kernels: table gathers for the D4 q=4 M=2
// decode, int16 lanes for the E8 q=16 M=1 decode, vpdpbusd for the exact integer block sums and
// 16 float partial sums in one register per input row.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized reports at every inlined call site; the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "deploy_e8_generic.h"
#include "deploy_kernels.h"

namespace lowbit::coset::kernels {

namespace {
// 16 T nibbles (8 bytes at t) -> 16 int32 indices.
inline __m512i nibbles16(const std::uint8_t* t) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t));
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(15));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
  return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
}

inline void scales16_of(const float* scales16, const std::uint8_t* t, float* s) {
  _mm512_storeu_ps(s, _mm512_permutexvar_ps(nibbles16(t), _mm512_loadu_ps(scales16)));
}

// 64 T nibbles (32 bytes at t) -> 64 scales.
inline void scales64_of(const float* scales16, const std::uint8_t* t, float* s) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t));
  const __m256i lo = _mm256_and_si256(b, _mm256_set1_epi8(15));
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(15));
  const __m256i first = _mm256_unpacklo_epi8(lo, hi);  // blocks 0-15 | 32-47
  const __m256i second = _mm256_unpackhi_epi8(lo, hi);  // blocks 16-31 | 48-63
  const __m512 table = _mm512_loadu_ps(scales16);
  _mm512_storeu_ps(s, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(first)), table));
  _mm512_storeu_ps(s + 16, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(second)), table));
  _mm512_storeu_ps(s + 32, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(first, 1)), table));
  _mm512_storeu_ps(s + 48, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(second, 1)), table));
}

struct E8V512 {
  using I = __m512i;
  using Mask = __mmask32;
  static constexpr std::size_t kBlocks = 32;
  static I set1(int a) { return _mm512_set1_epi16(static_cast<short>(a)); }
  static I add(I a, I b) { return _mm512_add_epi16(a, b); }
  static I sub(I a, I b) { return _mm512_sub_epi16(a, b); }
  static I mullo(I a, I b) { return _mm512_mullo_epi16(a, b); }
  template <int n>
  static I srai(I a) { return _mm512_srai_epi16(a, n); }
  template <int n>
  static I slli(I a) { return _mm512_slli_epi16(a, n); }
  static I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static I abs(I a) { return _mm512_abs_epi16(a); }
  static I max(I a, I b) { return _mm512_max_epi16(a, b); }
  static Mask eq(I a, I b) { return _mm512_cmpeq_epi16_mask(a, b); }
  static Mask lt(I a, I b) { return _mm512_cmplt_epi16_mask(a, b); }
  static I select(Mask m, I a, I b) { return _mm512_mask_blend_epi16(m, b, a); }
  static Mask and_m(Mask a, Mask b) { return a & b; }
  static Mask or_m(Mask a, Mask b) { return a | b; }
  static Mask not_m(Mask a) { return ~a; }
  // Blocks 0-15 and 16-31 as dwords, nibble j of each packed to 16-bit lanes: per 128-bit lane
  // [blocks 4L..4L+3, blocks 16+4L..16+4L+3]; store() undoes the interleave.
  static void codes(const std::uint8_t* p, I* b) {
    const __m512i a = _mm512_loadu_si512(p), c = _mm512_loadu_si512(p + 64);
    const __m512i mask = _mm512_set1_epi32(15);
    __m512i ra = a, rc = c;
    LOWBIT_UNROLL8
    for (int j = 0; j < 8; ++j) {
      b[j] = _mm512_packus_epi32(_mm512_and_si512(ra, mask), _mm512_and_si512(rc, mask));
      ra = _mm512_srli_epi32(ra, 4);
      rc = _mm512_srli_epi32(rc, 4);
    }
  }
  static void store(I lo_a, I lo_b, I hi_a, I hi_b, std::int8_t* u) {
    _mm512_storeu_si512(u, _mm512_unpacklo_epi16(lo_a, lo_b));         // group 0, bytes 0-3
    _mm512_storeu_si512(u + 64, _mm512_unpacklo_epi16(hi_a, hi_b));    // group 0, bytes 4-7
    _mm512_storeu_si512(u + 128, _mm512_unpackhi_epi16(lo_a, lo_b));   // group 1
    _mm512_storeu_si512(u + 192, _mm512_unpackhi_epi16(hi_a, hi_b));
  }
  static void store_sums(I sum, std::int32_t* wb) {
    const __m512i sign = _mm512_srai_epi16(sum, 15);
    const __m512i zero = _mm512_setzero_si512();
    _mm512_storeu_si512(wb, _mm512_sub_epi32(zero, _mm512_slli_epi32(_mm512_unpacklo_epi16(sum, sign), 7)));
    _mm512_storeu_si512(wb + 16, _mm512_sub_epi32(zero, _mm512_slli_epi32(_mm512_unpackhi_epi16(sum, sign), 7)));
  }
  static void store_scales(const float* scales16, const std::uint8_t* t, float* s) {
    scales16_of(scales16, t, s);
    scales16_of(scales16, t + 8, s + 16);
  }
};

inline float tree(__m512 p) {  // the halving tree of deploy.h: 8, 4, 2, 1
  const __m256 r8 = _mm256_add_ps(_mm512_castps512_ps256(p), _mm512_maskz_extractf32x8_ps(0xFF, p, 1));
  const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
  const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
  const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
  return _mm_cvtss_f32(r1);
}

inline std::int64_t sum_epi32(__m512i v) {  // the 16 lanes, each below 2^31, summed in int64
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)),
                                                  _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1))));
}

// n groups of 16 blocks from block k of block_dot_rows: exact (the epilogue's exact chunk) into the
// integer lanes ia, else into the float partial sums p.
template <int D, int R, bool kExact>
[[gnu::always_inline]] inline void block_dot_groups(const std::int8_t* w, const float* s, const std::int32_t* wb,
                                                   const std::uint8_t* xu, std::size_t xs, std::size_t k, int n,
                                                   __m512* p, __m512i* ia) {
  LOWBIT_UNROLL8
  for (int g = 0; g < n; ++g, k += 16) {
    const std::size_t off = k * D;
    const __m512i w0 = _mm512_loadu_si512(w + off);
    const __m512i w1 = D == 8 ? _mm512_loadu_si512(w + off + 64) : w0;
    const __m512i bias = _mm512_loadu_si512(wb + k);
    const __m512 sv = kExact ? _mm512_setzero_ps() : _mm512_loadu_ps(s + k);
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* x = xu + r * xs + off;
      __m512i acc = _mm512_dpbusd_epi32(bias, _mm512_loadu_si512(x), w0);
      if (D == 8) acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(x + 64), w1);
      if constexpr (kExact) ia[r] = _mm512_add_epi32(ia[r], acc);
      else p[r] = _mm512_fmadd_ps(sv, _mm512_cvtepi32_ps(acc), p[r]);
    }
  }
}

template <int D, int R>
void block_dot_rows(const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                    const std::uint8_t* xu, std::size_t blocks16, float s0, float* out) {
  __m512 p[R];
  __m512i ia[R];
  std::int64_t a[R];
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) {
    p[r] = _mm512_setzero_ps();
    ia[r] = _mm512_setzero_si512();
    a[r] = 0;
  }
  const std::size_t xs = blocks16 * D;
  bool any_exact = false;  // else A = 0: no lanes to reduce
  std::size_t c = 0;
  for (; c + kDeployChunk <= blocks16; c += kDeployChunk) {  // the epilogue's chunks (deploy.h)
    if (exact[c / kDeployChunk]) {
      any_exact = true;
      block_dot_groups<D, R, true>(w, s, wb, xu, xs, c, 4, p, ia);
    } else {
      block_dot_groups<D, R, false>(w, s, wb, xu, xs, c, 4, p, ia);
    }
    if ((c + kDeployChunk) % kDeployIntChunk == 0) {
      LOWBIT_UNROLL8
      for (int r = 0; r < R; ++r) {
        a[r] += sum_epi32(ia[r]);
        ia[r] = _mm512_setzero_si512();
      }
    }
  }
  if (c < blocks16) {  // a last chunk of 16, 32 or 48 blocks
    const int n = static_cast<int>((blocks16 - c) / 16);
    if (exact[c / kDeployChunk]) {
      any_exact = true;
      block_dot_groups<D, R, true>(w, s, wb, xu, xs, c, n, p, ia);
    } else {
      block_dot_groups<D, R, false>(w, s, wb, xu, xs, c, n, p, ia);
    }
  }
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) out[r] = deploy_finish(s0, any_exact ? a[r] + sum_epi32(ia[r]) : 0, tree(p[r]));
}

template <int D>
void block_dot_d(const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                 const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  switch (rows) {
    case 4: block_dot_rows<D, 4>(w, s, exact, wb, xu, blocks16, s0, out); break;
    case 3: block_dot_rows<D, 3>(w, s, exact, wb, xu, blocks16, s0, out); break;
    case 2: block_dot_rows<D, 2>(w, s, exact, wb, xu, blocks16, s0, out); break;
    default: block_dot_rows<D, 1>(w, s, exact, wb, xu, blocks16, s0, out); break;
  }
}


// ---- T per group of 4 blocks (deploy.h, t_group = 4; D4) ----
// A chunk's 16 groups sit in the lanes in transposed order: lane 4 i + r holds group 4 r + i (the
// order the quad sums below and the fused GEMV's coordinate dot products give). The partial sums
// are permuted back to group order (lane u % 16, deploy.h) before the halving tree.
struct G4Order {
  alignas(64) std::int32_t to_groups[16];  // p in group order = permutexvar(to_groups, p)
  constexpr G4Order() : to_groups() {
    for (int g = 0; g < 16; ++g) to_groups[g] = 4 * (g % 4) + g / 4;  // an involution: also groups -> lanes
  }
};
constexpr G4Order kG4Order{};

// Valid lanes of a chunk with n registers (16 n blocks, 4 n groups): lane 4 i + r for r < n.
inline __mmask16 g4_lanes(int n) {
  const unsigned quad = (1u << n) - 1u;
  return static_cast<__mmask16>(quad | quad << 4 | quad << 8 | quad << 12);
}

// Four registers of 16 block sums (register r: blocks 16 r .. 16 r + 15) -> the 16 group sums,
// lane 4 i + r = group 4 r + i.
inline __m512i g4_quad_sums(const __m512i i[4]) {
  const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(i[0], i[1]), _mm512_unpackhi_epi32(i[0], i[1]));
  const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(i[2], i[3]), _mm512_unpackhi_epi32(i[2], i[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
}

template <int R>
void block_dot_g4_rows(const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                       const std::uint8_t* xu, std::size_t blocks16, float s0, float* out) {
  __m512 p[R];
  __m512i ia[R];
  std::int64_t a[R];
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) {
    p[r] = _mm512_setzero_ps();
    ia[r] = _mm512_setzero_si512();
    a[r] = 0;
  }
  const std::size_t xs = blocks16 * 4;
  const __m512i order = _mm512_load_si512(kG4Order.to_groups);
  for (std::size_t c = 0; c < blocks16; c += kDeployChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(4, (blocks16 - c) / 16));
    const bool is_exact = exact[c / kDeployChunk] != 0;
    __m512i w0[4], bias[4];
    LOWBIT_UNROLL8
    for (int g = 0; g < 4; ++g) {
      w0[g] = g < n ? _mm512_loadu_si512(w + (c + 16 * g) * 4) : _mm512_setzero_si512();
      bias[g] = g < n ? _mm512_loadu_si512(wb + c + 16 * g) : _mm512_setzero_si512();
    }
    // The chunk's group scales (s: one per group, group order) in lane order; the padding past
    // blocks16 reads zeros and its lanes are masked.
    const __m512 sv = is_exact ? _mm512_setzero_ps()
                               : _mm512_permutexvar_ps(order, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (4 * n)) - 1u),
                                                                                     s + c / 4));
    const __mmask16 lanes = g4_lanes(n);
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* x = xu + r * xs + c * 4;
      __m512i acc[4];
      LOWBIT_UNROLL8
      for (int g = 0; g < 4; ++g)
        acc[g] = g < n ? _mm512_dpbusd_epi32(bias[g], _mm512_loadu_si512(x + 64 * g), w0[g]) : _mm512_setzero_si512();
      const __m512i sums = g4_quad_sums(acc);
      if (is_exact) ia[r] = _mm512_add_epi32(ia[r], sums);
      else if (n == 4) p[r] = _mm512_fmadd_ps(sv, _mm512_cvtepi32_ps(sums), p[r]);
      else p[r] = _mm512_mask_mov_ps(p[r], lanes, _mm512_fmadd_ps(sv, _mm512_cvtepi32_ps(sums), p[r]));
    }
    if ((c + kDeployChunk) % kDeployIntChunk == 0) {
      LOWBIT_UNROLL8
      for (int r = 0; r < R; ++r) {
        a[r] += sum_epi32(ia[r]);
        ia[r] = _mm512_setzero_si512();
      }
    }
  }
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r)
    out[r] = deploy_finish(s0, a[r] + sum_epi32(ia[r]), tree(_mm512_permutexvar_ps(order, p[r])));
}
}  // namespace

void decode_e8q16_avx512(const float* scales16, const std::uint8_t* codes, const std::uint8_t* t, std::size_t blocks,
                         std::int8_t* w, float* s, std::int32_t* wb) {
  generic::E8Q16Lanes<E8V512>::decode_row(scales16, codes, t, blocks, w, s, wb);
}

void decode_d4q4_avx512(const D4Q4Tables& tables, const float* scales16, const std::uint8_t* codes,
                        const std::uint8_t* t, std::size_t blocks, std::int8_t* w, float* s, std::int32_t* wb) {
  const __m512i low_byte = _mm512_set1_epi32(0xFF);
  const __m512i ones = _mm512_set1_epi8(1);
  std::size_t k = 0;
  for (; k + 16 <= blocks; k += 16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 2 * k)));
    const __m512i w0 = _mm512_i32gather_epi32(_mm512_and_si512(v, low_byte), tables.level0, 4);
    const __m512i w1 = _mm512_i32gather_epi32(_mm512_srli_epi32(v, 8), tables.level1, 4);
    const __m512i biased = _mm512_add_epi32(w0, w1);  // w + 64 per byte
    _mm512_storeu_si512(w + 4 * k, _mm512_sub_epi8(biased, _mm512_set1_epi8(64)));
    // wb = -128 * sum_j w_j = 128 * 256 - 128 * sum_j (w_j + 64)
    const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), biased, ones);
    _mm512_storeu_si512(wb + k, _mm512_sub_epi32(_mm512_set1_epi32(kActBias * 256), _mm512_slli_epi32(sum, 7)));
    scales16_of(scales16, t + k / 2, s + k);
  }
  if (k < blocks) decode_d4q4_ref(tables, scales16, codes + 2 * k, t + k / 2, blocks - k, w + 4 * k, s + k, wb + k);
}

bool cpu_has_avx512_vbmi() noexcept {
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("gfni");
}

namespace {
// Byte position p of the permuted index vectors holds block pi(p) = 16 g + 4 L + s for
// p = 16 L + 4 g + s, so that after the 4 x 64 byte transpose (unpack 8 then 16 bits, within
// 128-bit lanes) register g holds blocks 16 g .. 16 g + 15 as dwords in order.
struct VbmiIndex {
  alignas(64) std::uint8_t level0[64];
  alignas(64) std::uint8_t level1[64];
  constexpr VbmiIndex() : level0(), level1() {
    for (int p = 0; p < 64; ++p) {
      const int block = 16 * ((p % 16) / 4) + 4 * (p / 16) + p % 4;
      level0[p] = static_cast<std::uint8_t>(2 * block);
      level1[p] = static_cast<std::uint8_t>(2 * block + 1);
    }
  }
};
constexpr VbmiIndex kVbmiIndex{};

[[gnu::target("avx512vbmi")]] inline __m512i lookup256(const __m512i* table, __m512i idx, __mmask64 high) {
  const __m512i lo = _mm512_permutex2var_epi8(table[0], idx, table[1]);
  const __m512i hi = _mm512_permutex2var_epi8(table[2], idx, table[3]);
  return _mm512_mask_blend_epi8(high, lo, hi);
}

// The registers of d4_decode64: the four 256-byte coordinate tables rep[j] and the index permutes.
struct D4VbmiConsts {
  __m512i rep[4][4];
  __m512i sel0, sel1;
  [[gnu::target("avx512vbmi")]] explicit D4VbmiConsts(const D4Q4Tables& tables) {
    LOWBIT_UNROLL8
    for (int j = 0; j < 4; ++j)
      for (int q = 0; q < 4; ++q) rep[j][q] = _mm512_loadu_si512(tables.rep[j] + 64 * q);
    sel0 = _mm512_load_si512(kVbmiIndex.level0);
    sel1 = _mm512_load_si512(kVbmiIndex.level1);
  }
};

// 64 blocks (128 code bytes at c) -> out[g]: blocks 16 g .. 16 g + 15 as dwords in block order,
// w = rep0 + 4 rep1 (|w| <= 20).
[[gnu::target("avx512vbmi"), gnu::always_inline]] inline void d4_decode64(const D4VbmiConsts& k4, const std::uint8_t* c,
                                                                       __m512i out[4]) {
  const __m512i c0 = _mm512_loadu_si512(c);
  const __m512i c1 = _mm512_loadu_si512(c + 64);
  const __m512i idx0 = _mm512_permutex2var_epi8(c0, k4.sel0, c1);
  const __m512i idx1 = _mm512_permutex2var_epi8(c0, k4.sel1, c1);
  const __mmask64 high0 = _mm512_movepi8_mask(idx0), high1 = _mm512_movepi8_mask(idx1);
  __m512i wj[4];
  LOWBIT_UNROLL8
  for (int j = 0; j < 4; ++j) {
    const __m512i a = lookup256(k4.rep[j], idx0, high0);
    __m512i b = lookup256(k4.rep[j], idx1, high1);
    b = _mm512_add_epi8(b, b);
    b = _mm512_add_epi8(b, b);
    wj[j] = _mm512_add_epi8(a, b);
  }
  const __m512i a01 = _mm512_unpacklo_epi8(wj[0], wj[1]), b01 = _mm512_unpackhi_epi8(wj[0], wj[1]);
  const __m512i a23 = _mm512_unpacklo_epi8(wj[2], wj[3]), b23 = _mm512_unpackhi_epi8(wj[2], wj[3]);
  out[0] = _mm512_unpacklo_epi16(a01, a23);
  out[1] = _mm512_unpackhi_epi16(a01, a23);
  out[2] = _mm512_unpacklo_epi16(b01, b23);
  out[3] = _mm512_unpackhi_epi16(b01, b23);
}

// The fused GEMV's D4 decode: two coordinates per table byte. pair[h][q] (h = 0: coordinates 0, 1;
// h = 1: 2, 3) holds (rep_a + 4) | (rep_b + 4) << 4 (|rep| <= 4, each nibble in [0, 8]), so a
// level needs 2 table lookups instead of 4 (the byte permutes are the bottleneck). The nibbles
// are split and the level-1 part multiplied by 4 with GFNI bit-matrix moves (gf2p8affineqb), giving
// the unsigned w + kD4FusedWeightBias = (rep0 + 4) + 4 (rep1 + 4) in [0, 40].
struct D4PairConsts {
  __m512i pair[2][4];
  __m512i sel0, sel1;
  [[gnu::target("avx512vbmi")]] explicit D4PairConsts(const D4Q4Tables& tables) {
    const __m512i four = _mm512_set1_epi8(kD4FusedRepOffset);
    LOWBIT_UNROLL8
    for (int h = 0; h < 2; ++h)
      for (int q = 0; q < 4; ++q) {
        const __m512i a = _mm512_add_epi8(_mm512_loadu_si512(tables.rep[2 * h] + 64 * q), four);
        const __m512i b = _mm512_add_epi8(_mm512_loadu_si512(tables.rep[2 * h + 1] + 64 * q), four);
        pair[h][q] = _mm512_or_si512(a, _mm512_slli_epi16(b, 4));  // b <= 8: no bit crosses a byte
      }
    sel0 = _mm512_load_si512(kVbmiIndex.level0);
    sel1 = _mm512_load_si512(kVbmiIndex.level1);
  }
};

// gf2p8affineqb matrices (output bit i = parity of x & byte 7 - i): byte moves of bit fields.
constexpr long long affine_move(int from, int to, int count) {
  unsigned long long m = 0;
  for (int i = 0; i < count; ++i) m |= (1ull << (from + i)) << (8 * (7 - (to + i)));
  return static_cast<long long>(m);
}
constexpr long long kHighNibbleDown = affine_move(4, 0, 4);   // (x >> 4) & 15
constexpr long long kLowNibbleUp2 = affine_move(0, 2, 4);     // (x & 15) << 2
constexpr long long kHighNibbleDown2 = affine_move(4, 2, 4);  // ((x >> 4) & 15) << 2
// Bits 0-3 = bit 7 (the sign of an int8): 15 for a negative byte, else 0.
constexpr long long kSignToLowNibble =
    affine_move(7, 0, 1) | affine_move(7, 1, 1) | affine_move(7, 2, 1) | affine_move(7, 3, 1);

// 64 blocks (128 code bytes at c) -> wj[j]: the unsigned w + kD4FusedWeightBias of coordinate j, byte p
// holding block kD4PairBlock[p] (the index permutes' order, kVbmiIndex).
[[gnu::target("avx512vbmi,gfni"), gnu::always_inline]] inline void d4_decode64_coords(const D4PairConsts& k4,
                                                                                    const std::uint8_t* c,
                                                                                    __m512i wj[4]) {
  const __m512i c0 = _mm512_loadu_si512(c);
  const __m512i c1 = _mm512_loadu_si512(c + 64);
  const __m512i idx0 = _mm512_permutex2var_epi8(c0, k4.sel0, c1);
  const __m512i idx1 = _mm512_permutex2var_epi8(c0, k4.sel1, c1);
  const __mmask64 high0 = _mm512_movepi8_mask(idx0), high1 = _mm512_movepi8_mask(idx1);
  const __m512i low = _mm512_set1_epi8(15);
  LOWBIT_UNROLL8
  for (int h = 0; h < 2; ++h) {
    const __m512i a = lookup256(k4.pair[h], idx0, high0);  // level 0
    const __m512i b = lookup256(k4.pair[h], idx1, high1);  // level 1
    wj[2 * h] = _mm512_add_epi8(_mm512_and_si512(a, low),
                                _mm512_gf2p8affine_epi64_epi8(b, _mm512_set1_epi64(kLowNibbleUp2), 0));
    wj[2 * h + 1] = _mm512_add_epi8(_mm512_gf2p8affine_epi64_epi8(a, _mm512_set1_epi64(kHighNibbleDown), 0),
                                    _mm512_gf2p8affine_epi64_epi8(b, _mm512_set1_epi64(kHighNibbleDown2), 0));
  }
}

// The coordinates of d4_decode64_coords to block order: out[g] holds blocks 16 g .. 16 g + 15 as dwords.
[[gnu::target("avx512vbmi"), gnu::always_inline]] inline void d4_to_blocks(const __m512i wj[4], __m512i out[4]) {
  const __m512i a01 = _mm512_unpacklo_epi8(wj[0], wj[1]), b01 = _mm512_unpackhi_epi8(wj[0], wj[1]);
  const __m512i a23 = _mm512_unpacklo_epi8(wj[2], wj[3]), b23 = _mm512_unpackhi_epi8(wj[2], wj[3]);
  out[0] = _mm512_unpacklo_epi16(a01, a23);
  out[1] = _mm512_unpackhi_epi16(a01, a23);
  out[2] = _mm512_unpacklo_epi16(b01, b23);
  out[3] = _mm512_unpackhi_epi16(b01, b23);
}
}  // namespace

[[gnu::target("avx512vbmi")]] void decode_d4q4_avx512_vbmi(const D4Q4Tables& tables, const float* scales16,
                                                           const std::uint8_t* codes, const std::uint8_t* t,
                                                           std::size_t blocks, std::int8_t* w, float* s,
                                                           std::int32_t* wb) {
  const D4VbmiConsts k4(tables);
  const __m512i ones = _mm512_set1_epi8(1);
  std::size_t k = 0;
  for (; k + 64 <= blocks; k += 64) {
    __m512i out[4];
    d4_decode64(k4, codes + 2 * k, out);
    LOWBIT_UNROLL8
    for (int g = 0; g < 4; ++g) {
      _mm512_storeu_si512(w + 4 * (k + 16 * g), out[g]);
      const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, out[g]);
      _mm512_storeu_si512(wb + k + 16 * g, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
    }
    scales64_of(scales16, t + k / 2, s + k);
  }
  if (k < blocks) decode_d4q4_avx512(tables, scales16, codes + 2 * k, t + k / 2, blocks - k, w + 4 * k, s + k, wb + k);
}

namespace {
// Byte q (0..3) of the dword of block pi(p), p = 0..63, for the 64 blocks of 256 code bytes held
// in four registers: `a` indexes registers 0-1 (blocks 0-31), `b` registers 2-3 (blocks 32-63),
// `high` marks the positions whose block is >= 32. pi is the block order of kVbmiIndex.
struct E8VbmiIndex {
  alignas(64) std::uint8_t a[4][64];
  alignas(64) std::uint8_t b[4][64];
  std::uint64_t high;
  constexpr E8VbmiIndex() : a(), b(), high(0) {
    for (int p = 0; p < 64; ++p) {
      const int block = 16 * ((p % 16) / 4) + 4 * (p / 16) + p % 4;
      for (int q = 0; q < 4; ++q) {
        a[q][p] = static_cast<std::uint8_t>(block < 32 ? 4 * block + q : 0);
        b[q][p] = static_cast<std::uint8_t>(block >= 32 ? 4 * (block - 32) + q : 0);
      }
      if (block >= 32) high |= std::uint64_t{1} << p;
    }
  }
};
constexpr E8VbmiIndex kE8Index{};

// The 64-bit byte mask m of 64 int8 lanes as two int16 halves (lanes 0-31, 32-63).
[[gnu::target("avx512vbmi")]] inline __m512i widen_lo(__m512i v) { return _mm512_cvtepu8_epi16(_mm512_castsi512_si256(v)); }
[[gnu::target("avx512vbmi")]] inline __m512i widen_hi(__m512i v) {
  return _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(v, 1));
}
}  // namespace

// Per block (scalar semantics, checked against decode_e8q16_ref by the tests): v = 2 G b;
// t = v + 16; coset 0 (D8): e0 = (t & 31) - 16, parity = xor of bit 5 of t; coset 1 (D8 + 1/2):
// e1 = e0 -/+ 16 (|e1| = 16 - |e0|, e1 >= 0 iff e0 < 0), parity = xor of bit 5 of v. A parity fix
// moves the coordinate with the largest (|e|, tie) key, tie = e >= 0 ? 8 + j : 7 - j, by 32.
// With a = |e0|: (D1 - D0) / 32 = 64 - sum a + odd1 (32 - 2 max|e1|) - odd0 (32 - 2 max|e0|), and
// on a tie N1 >= N0 iff A + X >= 128, A = sum over e0_j < 0 of 2^j,
// X = odd0 s0 2^j0 - odd1 s1 2^j1 (s, j: the fixed coordinate's sign and index).
namespace {
// The constants of e8_decode64 (loaded once per row).
struct E8VbmiConsts {
  __m512i ia[4], ib[4];
  __mmask64 high;
  [[gnu::target("avx512vbmi")]] E8VbmiConsts() : high(kE8Index.high) {
    LOWBIT_UNROLL8
    for (int q = 0; q < 4; ++q) {
      ia[q] = _mm512_load_si512(kE8Index.a[q]);
      ib[q] = _mm512_load_si512(kE8Index.b[q]);
    }
  }
};

// 64 blocks (256 code bytes at c) -> halves[h][g]: group g (blocks 16 g .. 16 g + 15) bytes
// 4h..4h+3 of each block as dwords in block order (deploy_pos). Per block (scalar semantics,
// checked against decode_e8q16_ref by the tests): v = 2 G b; t = v + 16; coset 0 (D8):
// e0 = (t & 31) - 16, parity = xor of bit 5 of t; coset 1 (D8 + 1/2): e1 = e0 -/+ 16
// (|e1| = 16 - |e0|, e1 >= 0 iff e0 < 0), parity = xor of bit 5 of v. A parity fix moves the
// coordinate with the largest (|e|, tie) key, tie = e >= 0 ? 8 + j : 7 - j, by 32. With a = |e0|:
// (D1 - D0) / 32 = 64 - sum a + odd1 (32 - 2 max|e1|) - odd0 (32 - 2 max|e0|), and on a tie
// N1 >= N0 iff A + X >= 128, A = sum over e0_j < 0 of 2^j, X = odd0 s0 2^j0 - odd1 s1 2^j1
// (s, j: the fixed coordinate's sign and index).
[[gnu::target("avx512vbmi,gfni"), gnu::always_inline]] inline void e8_decode64(const E8VbmiConsts& k8, const std::uint8_t* c,
                                                                       __m512i halves[2][4]) {
  const __m512i c15 = _mm512_set1_epi8(15), c16 = _mm512_set1_epi8(16), c31 = _mm512_set1_epi8(31);
  const __m512i c32 = _mm512_set1_epi8(32), c8 = _mm512_set1_epi8(8), c7 = _mm512_set1_epi8(7);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i pow2 = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0));
  const __m512i r0 = _mm512_loadu_si512(c), r1 = _mm512_loadu_si512(c + 64);
  const __m512i r2 = _mm512_loadu_si512(c + 128), r3 = _mm512_loadu_si512(c + 192);
  __m512i b[8];
  LOWBIT_UNROLL8
  for (int q = 0; q < 4; ++q) {
    const __m512i bytes = _mm512_mask_blend_epi8(k8.high, _mm512_permutex2var_epi8(r0, k8.ia[q], r1),
                                                 _mm512_permutex2var_epi8(r2, k8.ib[q], r3));
    b[2 * q] = _mm512_and_si512(bytes, c15);
    b[2 * q + 1] = _mm512_gf2p8affine_epi64_epi8(bytes, _mm512_set1_epi64(kHighNibbleDown), 0);
  }
  __m512i v[8];
  const __m512i h = b[7];
  const __m512i b0x2 = _mm512_add_epi8(b[0], b[0]);
  const __m512i d0 = _mm512_sub_epi8(b0x2, b[1]);
  v[0] = _mm512_add_epi8(_mm512_add_epi8(d0, d0), h);
  LOWBIT_UNROLL8
  for (int j = 1; j <= 5; ++j) {
    const __m512i dj = _mm512_sub_epi8(b[j], b[j + 1]);
    v[j] = _mm512_add_epi8(_mm512_add_epi8(dj, dj), h);
  }
  v[6] = _mm512_add_epi8(_mm512_add_epi8(b[6], b[6]), h);
  v[7] = h;
  // Pass 1: residuals, parities, sum |e0|, the negative set A, max and min |e0|.
  __m512i e0[8], a[8];
  __m512i par0 = zero, par1 = zero, sum_a = zero, neg_set = zero;
  __m512i max_a = zero, min_a = c16;
  LOWBIT_UNROLL8
  for (int j = 0; j < 8; ++j) {
    const __m512i tj = _mm512_add_epi8(v[j], c16);
    e0[j] = _mm512_sub_epi8(_mm512_and_si512(tj, c31), c16);
    a[j] = _mm512_abs_epi8(e0[j]);
    par0 = _mm512_xor_si512(par0, tj);
    par1 = _mm512_xor_si512(par1, v[j]);
    sum_a = _mm512_add_epi8(sum_a, a[j]);
    neg_set = _mm512_or_si512(neg_set, _mm512_gf2p8affine_epi64_epi8(e0[j], _mm512_set1_epi64(affine_move(7, j, 1)), 0));
    max_a = _mm512_max_epu8(max_a, a[j]);
    min_a = _mm512_min_epu8(min_a, a[j]);
  }
  // Pass 2: the tie of the fixed coordinate of each coset (largest |e|, then largest tie).
  __m512i t0 = _mm512_set1_epi8(-1), t1 = _mm512_set1_epi8(-1);
  LOWBIT_UNROLL8
  for (int j = 0; j < 8; ++j) {
    // tie = e >= 0 ? 8 + j : 7 - j = (8 + j) ^ (e < 0 ? 15 : 0); coset 1's sign is the opposite.
    const __m512i sign15 = _mm512_gf2p8affine_epi64_epi8(e0[j], _mm512_set1_epi64(kSignToLowNibble), 0);
    const __m512i tie0 = _mm512_xor_si512(sign15, _mm512_set1_epi8(static_cast<char>(8 + j)));
    t0 = _mm512_mask_max_epi8(t0, _mm512_cmpeq_epi8_mask(a[j], max_a), t0, tie0);
    t1 = _mm512_mask_max_epi8(t1, _mm512_cmpeq_epi8_mask(a[j], min_a), t1, _mm512_xor_si512(tie0, c15));
  }
  const __mmask64 odd0 = _mm512_test_epi8_mask(par0, c32), odd1 = _mm512_test_epi8_mask(par1, c32);
  const __mmask64 pos0 = _mm512_cmpge_epi8_mask(t0, c8), pos1 = _mm512_cmpge_epi8_mask(t1, c8);
  const __m512i j0 = _mm512_mask_blend_epi8(pos0, _mm512_sub_epi8(c7, t0), _mm512_sub_epi8(t0, c8));
  const __m512i j1 = _mm512_mask_blend_epi8(pos1, _mm512_sub_epi8(c7, t1), _mm512_sub_epi8(t1, c8));
  // (D1 - D0) / 32; max|e1| = 16 - min|e0|, so 32 - 2 max|e1| = 2 min|e0|.
  __m512i dd = _mm512_sub_epi8(_mm512_set1_epi8(64), sum_a);
  dd = _mm512_mask_add_epi8(dd, odd1, dd, _mm512_add_epi8(min_a, min_a));
  dd = _mm512_mask_sub_epi8(dd, odd0, dd, _mm512_sub_epi8(c32, _mm512_add_epi8(max_a, max_a)));
  // Nudge tie-break in int16 halves: A + X >= 128.
  const __m512i p0 = _mm512_shuffle_epi8(pow2, j0), p1 = _mm512_shuffle_epi8(pow2, j1);
  __mmask64 nudge_ok = 0;
  LOWBIT_UNROLL8
  for (int half = 0; half < 2; ++half) {
    const int sh = 32 * half;
    const __mmask32 o0 = static_cast<__mmask32>(odd0 >> sh), o1 = static_cast<__mmask32>(odd1 >> sh);
    const __mmask32 q0 = static_cast<__mmask32>(pos0 >> sh), q1 = static_cast<__mmask32>(pos1 >> sh);
    const __m512i av = half ? widen_hi(neg_set) : widen_lo(neg_set);
    const __m512i pw0 = half ? widen_hi(p0) : widen_lo(p0);
    const __m512i pw1 = half ? widen_hi(p1) : widen_lo(p1);
    __m512i x = av;
    x = _mm512_mask_add_epi16(x, o0 & q0, x, pw0);
    x = _mm512_mask_sub_epi16(x, o0 & ~q0, x, pw0);
    x = _mm512_mask_sub_epi16(x, o1 & q1, x, pw1);
    x = _mm512_mask_add_epi16(x, o1 & ~q1, x, pw1);
    const __mmask32 ok = _mm512_cmpge_epi16_mask(x, _mm512_set1_epi16(128));
    nudge_ok |= static_cast<__mmask64>(ok) << sh;
  }
  const __mmask64 keep0 = _mm512_cmpgt_epi8_mask(dd, zero) | (_mm512_cmpeq_epi8_mask(dd, zero) & nudge_ok);
  const __m512i jc = _mm512_mask_blend_epi8(keep0, j1, j0);
  const __mmask64 odd = (keep0 & odd0) | (~keep0 & odd1);
  const __mmask64 pos = (keep0 & pos0) | (~keep0 & pos1);
  __m512i e[8];
  const __m512i cf0 = _mm512_set1_epi8(static_cast<char>(0xF0));
  const __m512i delta = _mm512_mask_blend_epi8(pos, c32, _mm512_set1_epi8(-32));  // the fix: -32 if e > 0
  const __m512i flip = _mm512_maskz_mov_epi8(~keep0, cf0);
  LOWBIT_UNROLL8
  for (int j = 0; j < 8; ++j) {
    // e1 = e0 -/+ 16 (e0 in [-16, 15]) is e0 ^ 0xF0 as a byte: flip where coset 1 is kept.
    const __m512i ej = _mm512_xor_si512(e0[j], flip);
    const __mmask64 hit = odd & _mm512_cmpeq_epi8_mask(jc, _mm512_set1_epi8(static_cast<char>(j)));
    e[j] = _mm512_mask_add_epi8(ej, hit, ej, delta);
  }
  // To block order (the permuted gather makes the in-lane transpose land in place): per group
  // of 16 blocks, bytes 0-3 of each block, then bytes 4-7 (deploy_pos).
  LOWBIT_UNROLL8
  for (int hh = 0; hh < 2; ++hh) {
    const __m512i* q = e + 4 * hh;
    const __m512i a01 = _mm512_unpacklo_epi8(q[0], q[1]), b01 = _mm512_unpackhi_epi8(q[0], q[1]);
    const __m512i a23 = _mm512_unpacklo_epi8(q[2], q[3]), b23 = _mm512_unpackhi_epi8(q[2], q[3]);
    halves[hh][0] = _mm512_unpacklo_epi16(a01, a23);
    halves[hh][1] = _mm512_unpackhi_epi16(a01, a23);
    halves[hh][2] = _mm512_unpacklo_epi16(b01, b23);
    halves[hh][3] = _mm512_unpackhi_epi16(b01, b23);
  }
}
}  // namespace

[[gnu::target("avx512vbmi,gfni")]] void decode_e8q16_avx512_vbmi(const float* scales16, const std::uint8_t* codes,
                                                            const std::uint8_t* t, std::size_t blocks,
                                                            std::int8_t* w, float* s, std::int32_t* wb) {
  const E8VbmiConsts k8;
  const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  std::size_t k = 0;
  for (; k + 64 <= blocks; k += 64) {
    __m512i halves[2][4];
    e8_decode64(k8, codes + 4 * k, halves);
    LOWBIT_UNROLL8
    for (int g = 0; g < 4; ++g) {
      std::int8_t* out = w + 8 * (k + 16 * g);
      _mm512_storeu_si512(out, halves[0][g]);
      _mm512_storeu_si512(out + 64, halves[1][g]);
      const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, ones, halves[0][g]), ones, halves[1][g]);
      _mm512_storeu_si512(wb + k + 16 * g, _mm512_sub_epi32(zero, _mm512_slli_epi32(sum, 7)));
    }
    scales64_of(scales16, t + k / 2, s + k);
  }
  if (k < blocks) decode_e8q16_avx512(scales16, codes + 4 * k, t + k / 2, blocks - k, w + 8 * k, s + k, wb + k);
}

namespace {
// 64 T nibbles (q[g]: the 16 nibbles of group g, block order) -> the scales of groups 0-3.
// Each q[g] is broadcast to every qword and vpmultishiftqb puts block i's nibble in the low bits
// of dword i (vpermps reads only bits 0-3 of an index). kMasked: lanes of blocks >= valid are
// zeroed (the reference's padding scale).
struct ScaleShift {
  alignas(64) std::uint8_t control[64];
  constexpr ScaleShift() : control() {
    for (int i = 0; i < 16; ++i)
      for (int b = 0; b < 4; ++b) control[4 * i + b] = static_cast<std::uint8_t>(4 * i);
  }
};
constexpr ScaleShift kScaleShift{};

template <bool kMasked>
[[gnu::target("avx512vbmi"), gnu::always_inline]] inline void scales64_regs(const __m512 table, const __m512i control,
                                                                         const std::uint64_t q[4], std::size_t valid,
                                                                         __m512 s[4]) {
  LOWBIT_UNROLL8
  for (int g = 0; g < 4; ++g) {
    const __m512i idx = _mm512_multishift_epi64_epi8(control, _mm512_set1_epi64(static_cast<long long>(q[g])));
    if (kMasked) {
      const std::size_t n = valid > 16 * static_cast<std::size_t>(g) ? valid - 16 * static_cast<std::size_t>(g) : 0;
      const __mmask16 m = n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
      s[g] = _mm512_maskz_permutexvar_ps(m, idx, table);
    } else {
      s[g] = _mm512_permutexvar_ps(idx, table);
    }
  }
}

// The escapes of one group's nibbles q (escape_bits: bit 4 i set for an escaped block i) replaced
// by the row's next escapes (esc, block order; past `end`: T = 0, as expand_t_row). Rare by
// construction (deploy_t_compact). Inlined: a call in the loop would make every zmm register
// caller-saved there and spill the decode tables.
[[gnu::always_inline]] inline std::uint64_t patch_escapes(std::uint64_t q, std::uint64_t escape_bits,
                                                         const std::uint8_t*& esc, const std::uint8_t* end) {
  while (escape_bits) {
    const int shift = __builtin_ctzll(escape_bits);
    const std::uint64_t v = esc < end ? (*esc++ & 15u) : 0u;
    q = (q & ~(std::uint64_t{15} << shift)) | (v << shift);
    escape_bits &= escape_bits - 1;
  }
  return q;
}

// The T nibbles of 64 blocks (q[g]: group g) from their in-memory form (deploy.h) at tp: Bits 4
// copies them; Bits 2 spreads the codes to nibbles with pdep; Bits 1 has no literal but T = 0.
// Escape codes (2^Bits - 1) take the row's next escapes.
template <int Bits>
[[gnu::target("bmi2"), gnu::always_inline]] inline void t_nibbles64(const std::uint8_t* tp, const std::uint8_t*& esc,
                                                                 const std::uint8_t* end, std::uint64_t q[4]) {
  if constexpr (Bits == 4) {
    std::memcpy(q, tp, 32);
  } else if constexpr (Bits == 2) {
    std::uint64_t x[2];
    std::memcpy(x, tp, 16);
    LOWBIT_UNROLL8
    for (int g = 0; g < 4; ++g) q[g] = _pdep_u64(static_cast<std::uint32_t>(x[g / 2] >> (32 * (g % 2))), 0x3333333333333333ull);
    const std::uint64_t e0 = x[0] & (x[0] >> 1) & 0x5555555555555555ull;
    const std::uint64_t e1 = x[1] & (x[1] >> 1) & 0x5555555555555555ull;
    if (__builtin_expect((e0 | e1) != 0, 0)) {
      for (int g = 0; g < 4; ++g) {
        const std::uint32_t e = static_cast<std::uint32_t>((g < 2 ? e0 : e1) >> (32 * (g % 2)));
        if (e) q[g] = patch_escapes(q[g], _pdep_u64(e, 0x3333333333333333ull), esc, end);  // code i: bit 4 i
      }
    }
  } else {
    std::uint64_t x;
    std::memcpy(&x, tp, 8);
    q[0] = q[1] = q[2] = q[3] = 0;
    if (__builtin_expect(x != 0, 0)) {
      for (int g = 0; g < 4; ++g) {
        const std::uint64_t e = _pdep_u64((x >> (16 * g)) & 0xFFFF, 0x1111111111111111ull);
        if (e) q[g] = patch_escapes(0, e, esc, end);
      }
    }
  }
}

// The fused GEMV's accumulators for R input rows (the epilogue of deploy.h): p[r], the float
// partial sums of the 64-block steps that hold a T > 0; ia[r][i], int32 lanes of the exact sums of
// the others (kInt per row, so that a step's dpbusd chains run side by side); a[r], their int64
// total (flushed lanes and the activation corrections xb of those steps).
template <int D, int R>
struct FusedAcc {
  static constexpr int kInt = D == 8 || R > 2 ? 1 : R == 2 ? 2 : 4;
  __m512 p[R];
  __m512i ia[R][kInt];
  std::int64_t a[R];
  bool any_float = false;  // a step went through p
  [[gnu::always_inline]] inline void zero() {
    any_float = false;
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      p[r] = _mm512_setzero_ps();
      LOWBIT_UNROLL8
      for (int i = 0; i < kInt; ++i) ia[r][i] = _mm512_setzero_si512();
      a[r] = 0;
    }
  }
  [[gnu::always_inline]] inline void flush() {  // every lane below 2^31 (kDeployIntChunk)
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      __m512i v = ia[r][0];
      LOWBIT_UNROLL8
      for (int i = 1; i < kInt; ++i) v = _mm512_add_epi32(v, ia[r][i]);
      a[r] += sum_epi32(v);
      LOWBIT_UNROLL8
      for (int i = 0; i < kInt; ++i) ia[r][i] = _mm512_setzero_si512();
    }
  }
};

// The fused GEMV's 64-block step with some T > 0: per group g and input row r,
// I = xb + sum (w + bias) xq (exact), p[r] = fma(s_g, I, p[r]).
// D4: wu[g] (one dword per block); E8: wu[g] and wu[4 + g] (halves).
template <int D, int R>
[[gnu::target("avx512vbmi"), gnu::always_inline]] inline void fused_dot64(const __m512i* wu, const __m512 s[4],
                                                                       const std::int8_t* xq, const std::int32_t* xb,
                                                                       std::size_t x_stride, FusedAcc<D, R>& acc) {
  LOWBIT_UNROLL8
  for (int g = 0; g < 4; ++g)
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      const std::int8_t* x = xq + r * x_stride * D + 16 * D * g;
      __m512i i = _mm512_loadu_si512(xb + r * x_stride + 16 * g);
      i = _mm512_dpbusd_epi32(i, wu[g], _mm512_loadu_si512(x));
      if (D == 8) i = _mm512_dpbusd_epi32(i, wu[4 + g], _mm512_loadu_si512(x + 64));
      acc.p[r] = _mm512_fmadd_ps(s[g], _mm512_cvtepi32_ps(i), acc.p[r]);
    }
}

// A 64-block step whose blocks all have T = 0 (scale s0): exact integer sums only, sum (w + bias) xq
// into the lanes and the step's xb (xb_step[r * steps]) into the int64 total.
template <int D, int R>
[[gnu::target("avx512vbmi"), gnu::always_inline]] inline void fused_dot64_s0(const __m512i* wu, const std::int8_t* xq,
                                                                          const std::int64_t* xb_step,
                                                                          std::size_t x_stride, std::size_t steps,
                                                                          FusedAcc<D, R>& acc) {
  constexpr int kInt = FusedAcc<D, R>::kInt;
  LOWBIT_UNROLL8
  for (int g = 0; g < 4; ++g)
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      const std::int8_t* x = xq + r * x_stride * D + 16 * D * g;
      __m512i& ia = acc.ia[r][g % kInt];
      ia = _mm512_dpbusd_epi32(ia, wu[g], _mm512_loadu_si512(x));
      if (D == 8) ia = _mm512_dpbusd_epi32(ia, wu[4 + g], _mm512_loadu_si512(x + 64));
    }
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) acc.a[r] += xb_step[r * steps];
}

// Byte p of d4_decode64_coords' registers holds block kD4PairBlock[p] of the 64 (kVbmiIndex).
struct D4PairBlock {
  std::uint8_t block[64];
  constexpr D4PairBlock() : block() {
    for (int p = 0; p < 64; ++p) block[p] = static_cast<std::uint8_t>(kVbmiIndex.level0[p] / 2);
  }
};
constexpr D4PairBlock kD4PairBlock{};

// The D4 exact chunk: wj[j] (coordinate j, kD4PairBlock order) against the activations in the same
// order (xq_coords: per input row and step, 4 x 64 bytes); dpbusd adds 4 blocks' products per lane,
// which the exact sum allows. The step's xb goes to the int64 total.
template <int R>
[[gnu::target("avx512vbmi"), gnu::always_inline]] inline void fused_dot64_coords(const __m512i wj[4],
                                                                              const std::int8_t* xq_coords,
                                                                              const std::int64_t* xb_step,
                                                                              std::size_t steps, FusedAcc<4, R>& acc) {
  constexpr int kInt = FusedAcc<4, R>::kInt;
  LOWBIT_UNROLL8
  for (int j = 0; j < 4; ++j)
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) {
      __m512i& ia = acc.ia[r][j % kInt];
      ia = _mm512_dpbusd_epi32(ia, wj[j], _mm512_loadu_si512(xq_coords + r * steps * 256 + 64 * j));
    }
  LOWBIT_UNROLL8
  for (int r = 0; r < R; ++r) acc.a[r] += xb_step[r * steps];
}

template <int D, int R, bool kMasked, class Consts>
[[gnu::target("avx512vbmi,gfni"), gnu::always_inline]] inline void fused_step(const Consts& consts, const __m512 table,
                                                                      const __m512i control,
                                                                      const std::uint8_t* c, const std::uint64_t tk[4],
                                                                      std::size_t valid, const std::int8_t* xq,
                                                                      const std::int32_t* xb,
                                                                      const std::int64_t* xb_step,
                                                                      const std::int8_t* xq_coords,
                                                                      std::size_t x_stride, std::size_t steps,
                                                                      FusedAcc<D, R>& acc) {
  __m512i wu[8];
  if constexpr (D == 4) {
    __m512i wj[4];
    d4_decode64_coords(consts, c, wj);
    if (!tk) {  // the exact chunk needs no block sums: coordinates against xq_coords, no transpose
      fused_dot64_coords<R>(wj, xq_coords, xb_step, steps, acc);
      return;
    }
    d4_to_blocks(wj, wu);
  } else {
    __m512i halves[2][4];
    e8_decode64(consts, c, halves);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(kE8FusedWeightBias));
    LOWBIT_UNROLL8
    for (int g = 0; g < 4; ++g) {
      wu[g] = _mm512_add_epi8(halves[0][g], bias);
      wu[4 + g] = _mm512_add_epi8(halves[1][g], bias);
    }
  }
  if (tk) {
    __m512 s[4];
    scales64_regs<kMasked>(table, control, tk, valid, s);
    fused_dot64<D, R>(wu, s, xq, xb, x_stride, acc);
    acc.any_float = true;
  } else {  // every T of the 64 blocks is 0: the epilogue's exact chunk
    fused_dot64_s0<D, R>(wu, xq, xb_step, x_stride, steps, acc);
  }
}

template <int D, int R, int Bits, class Consts>
[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_rows(const Consts& consts, const float* scales16,
                                                        const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                                                        std::size_t n_rows, const std::int8_t* xq,
                                                        const std::int32_t* xb, std::size_t x_stride, float* out) {
  constexpr std::size_t kCodeBytes = D == 4 ? 128 : 256;  // per 64 blocks
  constexpr std::size_t kTBytes = 8 * Bits;               // per 64 blocks
  static_assert(kDeployIntChunk % 64 == 0);
  const std::size_t code_row = blocks * kCodeBytes / 64;
  const __m512 table = _mm512_loadu_ps(scales16);
  const __m512i control = _mm512_load_si512(kScaleShift.control);
  const float s0 = scales16[0];
  // The activation correction summed per input row and 64-block step (steps whose T are all 0).
  const std::size_t steps = (blocks + 63) / 64;
  std::vector<std::int64_t> xb_step(R * steps + 1);
  for (int r = 0; r < R; ++r)
    for (std::size_t i = 0; i < steps; ++i) {
      std::int64_t sum = 0;
      for (std::size_t j = 0; j < 64; ++j) sum += xb[r * x_stride + 64 * i + j];
      xb_step[r * steps + i] = sum;
    }
  // D4: the activations of each step by coordinate in kD4PairBlock order (the exact chunks' layout).
  std::vector<std::int8_t> xq_coords(D == 4 ? R * steps * 256 : 0);
  if constexpr (D == 4)
    for (int r = 0; r < R; ++r)
      for (std::size_t i = 0; i < steps; ++i)
        for (int j = 0; j < 4; ++j)
          for (int p = 0; p < 64; ++p)
            xq_coords[(r * steps + i) * 256 + 64 * j + p] =
                xq[r * x_stride * 4 + (64 * i + kD4PairBlock.block[p]) * 4 + j];
  FusedAcc<D, R> acc;
  for (std::size_t n = 0; n < n_rows; ++n, codes += code_row, out += R) {
    const std::uint8_t* trow = t.t + n * t.row_bytes;
    const std::uint8_t* esc = nullptr;
    const std::uint8_t* esc_end = nullptr;
    if constexpr (Bits != 4) {
      esc = t.escapes + t.escape_start[n];
      esc_end = t.escapes + t.escape_start[n + 1];
    }
    acc.zero();
    std::uint64_t q[4];
    std::size_t k = 0;
    for (; k + 64 <= blocks; k += 64) {
      const std::uint8_t* tp = trow + k / 64 * kTBytes;
      // tk = nullptr: every T of the step is 0, the epilogue's exact chunk (deploy.h).
      const std::uint64_t* tk = nullptr;
      std::uint64_t x = 1;
      if constexpr (Bits == 1) std::memcpy(&x, tp, 8);  // no escape: T = 0 throughout
      if (x != 0) {
        t_nibbles64<Bits>(tp, esc, esc_end, q);
        if ((q[0] | q[1] | q[2] | q[3]) != 0) tk = q;
      }
      fused_step<D, R, false>(consts, table, control, codes + k * kCodeBytes / 64, tk, 64, xq + k * D, xb + k,
                              xb_step.data() + k / 64, D == 4 ? xq_coords.data() + k * 4 : nullptr, x_stride,
                              steps, acc);
      if ((k + 64) % kDeployIntChunk == 0) acc.flush();
    }
    if (k < blocks) {  // the tail through zero-filled copies (zero codes decode to w = 0, scales masked)
      alignas(64) std::uint8_t c[kCodeBytes] = {};
      alignas(32) std::uint8_t tt[32] = {};
      const std::size_t nb = blocks - k;
      std::memcpy(c, codes + k * kCodeBytes / 64, nb * kCodeBytes / 64);
      std::memcpy(tt, trow + k / 64 * kTBytes, (nb * Bits + 7) / 8);
      t_nibbles64<Bits>(tt, esc, esc_end, q);
      const std::uint64_t* tk = (q[0] | q[1] | q[2] | q[3]) == 0 ? nullptr : q;  // padding reads T = 0
      fused_step<D, R, true>(consts, table, control, c, tk, nb, xq + k * D, xb + k, xb_step.data() + k / 64,
                             D == 4 ? xq_coords.data() + k * 4 : nullptr, x_stride, steps, acc);
    }
    acc.flush();
    // A row without float steps has p = +0 throughout, whose tree is +0.
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r) out[r] = deploy_finish(s0, acc.a[r], acc.any_float ? tree(acc.p[r]) : 0.0f);
  }
}

template <int D, int R, class Consts>
[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_bits(const Consts& consts, const float* scales16,
                                                        const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                                                        std::size_t n_rows, const std::int8_t* xq,
                                                        const std::int32_t* xb, std::size_t x_stride, float* out) {
  switch (t.bits) {
    case 1: return fused_gemv_rows<D, R, 1>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 2: return fused_gemv_rows<D, R, 2>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    default: return fused_gemv_rows<D, R, 4>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
  }
}

// ---- the fused GEMV with a T per group of 4 blocks (deploy.h, t_group = 4; D4 q=4 M=2) ----
// A 64-block step holds 16 groups, and d4_decode64_coords already puts them in dword lanes: lane
// 4 L + g of coordinate register j holds coordinate j of blocks 16 g + 4 L .. + 3, i.e. of group
// 4 g + L. Four dpbusd against the activations in the same order (xq_coords) give each group's
// exact I in its lane (no transpose); one multishift + vpermps give the 16 group scales, one
// cvt + fma the partial sums (lane order of G4Order, permuted to group order at the row's end).
struct G4Shift {  // vpmultishiftqb control: lane 4 L + g <- the nibble of group 4 g + L
  alignas(64) std::uint8_t control[64];
  constexpr G4Shift() : control() {
    for (int l = 0; l < 16; ++l)
      for (int b = 0; b < 4; ++b) control[4 * l + b] = static_cast<std::uint8_t>(4 * (4 * (l % 4) + l / 4));
  }
};
constexpr G4Shift kG4Shift{};

// The 16 group T nibbles of a 64-block step (one uint64, group order) from the in-memory form.
template <int Bits>
[[gnu::target("bmi2"), gnu::always_inline]] inline std::uint64_t t_nibbles16(const std::uint8_t* tp,
                                                                          const std::uint8_t*& esc,
                                                                          const std::uint8_t* end) {
  if constexpr (Bits == 4) {
    std::uint64_t q;
    std::memcpy(&q, tp, 8);
    return q;
  } else if constexpr (Bits == 2) {
    std::uint32_t x;
    std::memcpy(&x, tp, 4);
    std::uint64_t q = _pdep_u64(x, 0x3333333333333333ull);
    const std::uint32_t e = x & (x >> 1) & 0x55555555u;
    if (__builtin_expect(e != 0, 0)) q = patch_escapes(q, _pdep_u64(e, 0x3333333333333333ull), esc, end);
    return q;
  } else {
    std::uint16_t x;
    std::memcpy(&x, tp, 2);
    if (__builtin_expect(x == 0, 1)) return 0;
    return patch_escapes(0, _pdep_u64(x, 0x1111111111111111ull), esc, end);
  }
}

template <int R, int Bits>
[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_g4_rows(const D4PairConsts& consts, const float* scales16,
                                                           const std::uint8_t* codes, const TRows& t,
                                                           std::size_t blocks, std::size_t n_rows,
                                                           const std::int8_t* xq, const std::int32_t* xb,
                                                           std::size_t x_stride, float* out) {
  constexpr std::size_t kTBytes = 2 * Bits;  // 16 groups per step
  const std::size_t code_row = blocks * 2;
  const __m512 table = _mm512_loadu_ps(scales16);
  const __m512i control = _mm512_load_si512(kG4Shift.control);
  const __m512i order = _mm512_load_si512(kG4Order.to_groups);
  const float s0 = scales16[0];
  const std::size_t steps = (blocks + 63) / 64;
  // Per input row and step: the activation correction of the step (exact steps), the corrections
  // of its 16 groups in lane order (float steps) and the activations by coordinate (kD4PairBlock).
  std::vector<std::int64_t> xb_step(R * steps + 1);
  std::vector<std::int32_t> xg(R * steps * 16);
  std::vector<std::int8_t> xq_coords(R * steps * 256);
  for (int r = 0; r < R; ++r)
    for (std::size_t i = 0; i < steps; ++i) {
      std::int64_t sum = 0;
      for (std::size_t j = 0; j < 64; ++j) sum += xb[r * x_stride + 64 * i + j];
      xb_step[r * steps + i] = sum;
      for (int l = 0; l < 16; ++l) {
        const std::size_t first = 64 * i + 16 * (l % 4) + 4 * (l / 4);  // group 4 (l % 4) + l / 4
        std::int32_t g = 0;
        for (std::size_t b = 0; b < 4; ++b) g += xb[r * x_stride + first + b];
        xg[(r * steps + i) * 16 + l] = g;
      }
      for (int j = 0; j < 4; ++j)
        for (int p = 0; p < 64; ++p)
          xq_coords[(r * steps + i) * 256 + 64 * j + p] = xq[r * x_stride * 4 + (64 * i + kD4PairBlock.block[p]) * 4 + j];
    }
  FusedAcc<4, R> acc;
  for (std::size_t n = 0; n < n_rows; ++n, codes += code_row, out += R) {
    const std::uint8_t* trow = t.t + n * t.row_bytes;
    const std::uint8_t* esc = nullptr;
    const std::uint8_t* esc_end = nullptr;
    if constexpr (Bits != 4) {
      esc = t.escapes + t.escape_start[n];
      esc_end = t.escapes + t.escape_start[n + 1];
    }
    acc.zero();
    for (std::size_t k = 0; k < blocks; k += 64) {
      const std::size_t i = k / 64;
      std::uint64_t tq;
      __m512i wj[4];
      __mmask16 lanes = 0xFFFF;
      if (k + 64 <= blocks) {
        tq = t_nibbles16<Bits>(trow + i * kTBytes, esc, esc_end);
        d4_decode64_coords(consts, codes + 2 * k, wj);
      } else {  // the tail through zero-filled copies (zero codes decode to w = 0; padding I = 0)
        alignas(64) std::uint8_t c[128] = {};
        alignas(8) std::uint8_t tt[8] = {};
        const std::size_t nb = blocks - k, groups = nb / 4;
        std::memcpy(c, codes + 2 * k, 2 * nb);
        std::memcpy(tt, trow + i * kTBytes, (groups * Bits + 7) / 8);
        tq = t_nibbles16<Bits>(tt, esc, esc_end);
        d4_decode64_coords(consts, c, wj);
        lanes = 0;
        for (int l = 0; l < 16; ++l)
          if (static_cast<std::size_t>(4 * (l % 4) + l / 4) < groups) lanes = static_cast<__mmask16>(lanes | 1u << l);
      }
      if (tq == 0) {  // every T of the step is 0: the epilogue's exact chunk
        fused_dot64_coords<R>(wj, xq_coords.data() + i * 256, xb_step.data() + i, steps, acc);
      } else {
        const __m512 s = _mm512_permutexvar_ps(
            _mm512_multishift_epi64_epi8(control, _mm512_set1_epi64(static_cast<long long>(tq))), table);
        LOWBIT_UNROLL8
        for (int r = 0; r < R; ++r) {
          const std::int8_t* x = xq_coords.data() + (r * steps + i) * 256;
          __m512i sum = _mm512_loadu_si512(xg.data() + (r * steps + i) * 16);
          LOWBIT_UNROLL8
          for (int j = 0; j < 4; ++j) sum = _mm512_dpbusd_epi32(sum, wj[j], _mm512_loadu_si512(x + 64 * j));
          acc.p[r] = _mm512_mask_mov_ps(acc.p[r], lanes, _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(sum), acc.p[r]));
        }
        acc.any_float = true;
      }
      if ((k + 64) % kDeployIntChunk == 0) acc.flush();
    }
    acc.flush();
    LOWBIT_UNROLL8
    for (int r = 0; r < R; ++r)
      out[r] = deploy_finish(s0, acc.a[r], acc.any_float ? tree(_mm512_permutexvar_ps(order, acc.p[r])) : 0.0f);
  }
}

template <int R>
[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_g4_bits(const D4PairConsts& consts, const float* scales16,
                                                           const std::uint8_t* codes, const TRows& t,
                                                           std::size_t blocks, std::size_t n_rows,
                                                           const std::int8_t* xq, const std::int32_t* xb,
                                                           std::size_t x_stride, float* out) {
  switch (t.bits) {
    case 1: return fused_gemv_g4_rows<R, 1>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 2: return fused_gemv_g4_rows<R, 2>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    default: return fused_gemv_g4_rows<R, 4>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
  }
}

template <int D, class Consts>
[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_d(const Consts& consts, const float* scales16,
                                                     const std::uint8_t* codes, const TRows& t, std::size_t blocks,
                                                     std::size_t n_rows, const std::int8_t* xq, const std::int32_t* xb,
                                                     std::size_t x_stride, std::size_t rows, float* out) {
  switch (rows) {
    case 4: return fused_gemv_bits<D, 4>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 3: return fused_gemv_bits<D, 3>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    case 2: return fused_gemv_bits<D, 2>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    default: return fused_gemv_bits<D, 1>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
  }
}
}  // namespace

[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_d4q4_avx512_vbmi(const D4Q4Tables& tables, const float* scales16,
                                                               const std::uint8_t* codes, const TRows& t,
                                                               std::size_t blocks, std::size_t n_rows,
                                                               const std::int8_t* xq, const std::int32_t* xb,
                                                               std::size_t x_stride, std::size_t rows, float* out) {
  if (t.group != 1) {  // a T per group of 4 blocks
    const D4PairConsts consts(tables);
    switch (rows) {
      case 4: return fused_gemv_g4_bits<4>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
      case 3: return fused_gemv_g4_bits<3>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
      case 2: return fused_gemv_g4_bits<2>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
      default: return fused_gemv_g4_bits<1>(consts, scales16, codes, t, blocks, n_rows, xq, xb, x_stride, out);
    }
  }
  fused_gemv_d<4>(D4PairConsts(tables), scales16, codes, t, blocks, n_rows, xq, xb, x_stride, rows, out);
}

[[gnu::target("avx512vbmi,bmi2,gfni")]] void fused_gemv_e8q16_avx512_vbmi(const float* scales16, const std::uint8_t* codes,
                                                                const TRows& t, std::size_t blocks,
                                                                std::size_t n_rows, const std::int8_t* xq,
                                                                const std::int32_t* xb, std::size_t x_stride,
                                                                std::size_t rows, float* out) {
  fused_gemv_d<8>(E8VbmiConsts(), scales16, codes, t, blocks, n_rows, xq, xb, x_stride, rows, out);
}

void block_dot_g4_avx512(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                         const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  if (d != 4) return block_dot_g4_ref(d, w, s, exact, wb, xu, blocks16, rows, s0, out);
  switch (rows) {
    case 4: return block_dot_g4_rows<4>(w, s, exact, wb, xu, blocks16, s0, out);
    case 3: return block_dot_g4_rows<3>(w, s, exact, wb, xu, blocks16, s0, out);
    case 2: return block_dot_g4_rows<2>(w, s, exact, wb, xu, blocks16, s0, out);
    default: return block_dot_g4_rows<1>(w, s, exact, wb, xu, blocks16, s0, out);
  }
}

void block_dot_avx512(int d, const std::int8_t* w, const float* s, const std::uint8_t* exact, const std::int32_t* wb,
                      const std::uint8_t* xu, std::size_t blocks16, std::size_t rows, float s0, float* out) {
  if (d == 4) return block_dot_d<4>(w, s, exact, wb, xu, blocks16, rows, s0, out);
  if (d == 8) return block_dot_d<8>(w, s, exact, wb, xu, blocks16, rows, s0, out);
  block_dot_ref(d, w, s, exact, wb, xu, blocks16, rows, s0, out);
}

}  // namespace lowbit::coset::kernels
