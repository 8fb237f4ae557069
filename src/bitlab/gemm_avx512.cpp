// AVX-512 (F/BW/VNNI) level of the ternary kernels: vpdpbusd on unsigned 2-bit codes.
#include <immintrin.h>

#include <algorithm>

#include "gemm_isa.h"
#include "lowbit/core/aligned_buffer.h"

namespace lowbit::bitlab::kernels {

namespace {

// Horizontal sum; the zero-masked extract avoids GCC 12's false "uninitialized" warning that the
// _mm512_reduce_add_epi32 helper triggers.
inline std::int32_t hsum_epi32(__m512i v) {
  const __m256i half = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, v, 0), _mm512_maskz_extracti64x4_epi64(0xFF, v, 1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// The horizontal sums of a, b, c, d as the 4 lanes of one 128-bit vector (exact integer sums).
inline __m128i hsum4_epi32(__m512i a, __m512i b, __m512i c, __m512i d) {
  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3], then [a, b, c, d] partial sums (the all-ones
  // zero-masked forms avoid GCC 12's false "uninitialized" warning, as in hsum_epi32)
  const __m512i ab = _mm512_add_epi32(_mm512_maskz_unpacklo_epi32(0xFFFF, a, b), _mm512_maskz_unpackhi_epi32(0xFFFF, a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_maskz_unpacklo_epi32(0xFFFF, c, d), _mm512_maskz_unpackhi_epi32(0xFFFF, c, d));
  const __m512i abcd = _mm512_add_epi32(_mm512_maskz_unpacklo_epi64(0xFF, ab, cd), _mm512_maskz_unpackhi_epi64(0xFF, ab, cd));
  const __m256i half = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, abcd, 0),
                                        _mm512_maskz_extracti64x4_epi64(0xFF, abcd, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
}

// Codes of weights 256b + 64S + (0..63) from the 64-byte block v, one per byte.
template <int S>
inline __m512i codes_of(__m512i v, __m512i mask) {
  if constexpr (S == 0) return _mm512_and_si512(v, mask);
  else return _mm512_and_si512(_mm512_srli_epi16(v, 2 * S), mask);
}

// GEMV step: NR weight rows against one activation row, decoding the packed bytes on the fly.
template <int NR>
void dot_rows_packed(const std::int8_t* x, std::int32_t x_sum, std::size_t kp, const std::uint8_t* w,
                     std::size_t rb, std::int32_t* out, std::size_t out_stride) {
  const __m512i mask = _mm512_set1_epi8(3);
  __m512i acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_si512();
  for (std::size_t b = 0; b < kp / 256; ++b) {
    const std::int8_t* xb = x + 256 * b;
    const __m512i x0 = _mm512_loadu_si512(xb);
    const __m512i x1 = _mm512_loadu_si512(xb + 64);
    const __m512i x2 = _mm512_loadu_si512(xb + 128);
    const __m512i x3 = _mm512_loadu_si512(xb + 192);
    for (int r = 0; r < NR; ++r) {
      const __m512i v = _mm512_loadu_si512(w + r * rb + 64 * b);
      acc[r] = _mm512_dpbusd_epi32(acc[r], codes_of<0>(v, mask), x0);
      acc[r] = _mm512_dpbusd_epi32(acc[r], codes_of<1>(v, mask), x1);
      acc[r] = _mm512_dpbusd_epi32(acc[r], codes_of<2>(v, mask), x2);
      acc[r] = _mm512_dpbusd_epi32(acc[r], codes_of<3>(v, mask), x3);
    }
  }
  if constexpr (NR == 4) {
    if (out_stride == 1) {
      const __m128i sums = _mm_sub_epi32(hsum4_epi32(acc[0], acc[1], acc[2], acc[3]), _mm_set1_epi32(x_sum));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), sums);
      return;
    }
  }
  for (int r = 0; r < NR; ++r) out[r * out_stride] = hsum_epi32(acc[r]) - x_sum;
}

// GEMM micro-kernel: MR activation rows x 4 unpacked code rows (16 accumulators at MR = 4).
template <int MR>
void tile_unpacked(const std::int8_t* x, const std::int32_t* x_sums, std::size_t kp, const std::uint8_t* codes,
                   std::size_t nr, std::int32_t* out, std::size_t ldc) {
  __m512i acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < 4; ++r) acc[i][r] = _mm512_setzero_si512();
  for (std::size_t k = 0; k < kp; k += 64) {
    __m512i c[4];
    for (int r = 0; r < 4; ++r) c[r] = _mm512_load_si512(codes + r * kp + k);
    for (int i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_loadu_si512(x + i * kp + k);
      for (int r = 0; r < 4; ++r) acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], c[r], xv);
    }
  }
  const __mmask8 keep = static_cast<__mmask8>((1u << nr) - 1);
  for (int i = 0; i < MR; ++i) {
    const __m128i sums = _mm_sub_epi32(hsum4_epi32(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), _mm_set1_epi32(x_sums[i]));
    _mm_mask_storeu_epi32(out + i * ldc, keep, sums);
  }
}

// Expands up to 4 packed rows into one code byte per weight; missing rows get code 0, which
// contributes nothing, so the micro-kernel always works on 4 rows.
void unpack_rows(const std::uint8_t* w, std::size_t rb, std::size_t kp, std::size_t nr, std::uint8_t* codes) {
  const __m512i mask = _mm512_set1_epi8(3);
  for (std::size_t r = 0; r < 4; ++r) {
    std::uint8_t* dst = codes + r * kp;
    if (r >= nr) {
      for (std::size_t k = 0; k < kp; k += 64) _mm512_store_si512(dst + k, _mm512_setzero_si512());
      continue;
    }
    for (std::size_t b = 0; b < kp / 256; ++b) {
      const __m512i v = _mm512_loadu_si512(w + r * rb + 64 * b);
      _mm512_store_si512(dst + 256 * b, codes_of<0>(v, mask));
      _mm512_store_si512(dst + 256 * b + 64, codes_of<1>(v, mask));
      _mm512_store_si512(dst + 256 * b + 128, codes_of<2>(v, mask));
      _mm512_store_si512(dst + 256 * b + 192, codes_of<3>(v, mask));
    }
  }
}

}  // namespace

void gemm_int8_avx512(const std::int8_t* xq, const std::int32_t* x_sums, std::size_t M, std::size_t kp,
                      const std::uint8_t* w, std::size_t n0, std::size_t n1, std::int32_t* out, std::size_t ldc) {
  const std::size_t rb = kp / 4;
  if (M < kTiledMinRows) {
    for (std::size_t m = 0; m < M; ++m) {
      std::size_t n = n0;
      for (; n + 4 <= n1; n += 4) {
        prefetch_bytes(w, n * rb + kPrefetchBytes, 4 * rb, n1 * rb);
        dot_rows_packed<4>(xq + m * kp, x_sums[m], kp, w + n * rb, rb, out + m * ldc + n, 1);
      }
      for (; n < n1; ++n) dot_rows_packed<1>(xq + m * kp, x_sums[m], kp, w + n * rb, rb, out + m * ldc + n, 1);
    }
    return;
  }
  thread_local AlignedBuffer<std::uint8_t> codes;
  codes.resize(4 * kp);
  for (std::size_t n = n0; n < n1; n += 4) {
    const std::size_t nr = std::min<std::size_t>(4, n1 - n);
    unpack_rows(w + n * rb, rb, kp, nr, codes.data());
    prefetch_bytes(w, (n + 4) * rb, 4 * rb, n1 * rb);  // the next rows, while these run over all of x
    std::size_t m = 0;
    for (; m + 4 <= M; m += 4) tile_unpacked<4>(xq + m * kp, x_sums + m, kp, codes.data(), nr, out + m * ldc + n, ldc);
    switch (M - m) {
      case 3: tile_unpacked<3>(xq + m * kp, x_sums + m, kp, codes.data(), nr, out + m * ldc + n, ldc); break;
      case 2: tile_unpacked<2>(xq + m * kp, x_sums + m, kp, codes.data(), nr, out + m * ldc + n, ldc); break;
      case 1: tile_unpacked<1>(xq + m * kp, x_sums + m, kp, codes.data(), nr, out + m * ldc + n, ldc); break;
      default: break;
    }
  }
}

void gemm_f32_avx512(const float* x, std::size_t M, std::size_t kp, const std::uint8_t* w, std::size_t n0,
                     std::size_t n1, float* out, std::size_t ldc) {
  const std::size_t rb = kp / 4;
  const __m512i mask = _mm512_set1_epi8(3);
  const __m512i two = _mm512_set1_epi8(2);
  const __m512i zero = _mm512_setzero_si512();
  for (std::size_t n = n0; n < n1; ++n) {
    const std::uint8_t* row = w + n * rb;
    for (std::size_t m = 0; m < M; ++m) {
      const float* xm = x + m * kp;
      // p[q] holds the partial sums k % 64 == 16q + lane.
      __m512 p[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (std::size_t b = 0; b < kp / 256; ++b) {
        const __m512i v = _mm512_loadu_si512(row + 64 * b);
        for (unsigned s = 0; s < 4; ++s) {
          const __m512i c = _mm512_and_si512(_mm512_srl_epi16(v, _mm_cvtsi32_si128(static_cast<int>(2 * s))), mask);
          const __mmask64 plus = _mm512_cmpeq_epi8_mask(c, two);
          const __mmask64 minus = _mm512_cmpeq_epi8_mask(c, zero);
          const float* xs = xm + 256 * b + 64 * s;
          for (unsigned q = 0; q < 4; ++q) {
            const __m512 xv = _mm512_loadu_ps(xs + 16 * q);
            p[q] = _mm512_mask_add_ps(p[q], static_cast<__mmask16>(plus >> (16 * q)), p[q], xv);
            p[q] = _mm512_mask_sub_ps(p[q], static_cast<__mmask16>(minus >> (16 * q)), p[q], xv);
          }
        }
      }
      // Halving tree of gemm.h: h = 32, 16, 8, 4, 2, 1.
      const __m512 r16 = _mm512_add_ps(_mm512_add_ps(p[0], p[2]), _mm512_add_ps(p[1], p[3]));
      const __m256 r8 = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, r16, 0), _mm512_maskz_extractf32x8_ps(0xFF, r16, 1));
      const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
      const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
      const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
      out[m * ldc + n] = _mm_cvtss_f32(r1);
    }
  }
}

}  // namespace lowbit::bitlab::kernels
