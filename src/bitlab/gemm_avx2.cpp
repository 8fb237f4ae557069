// AVX2 level of the ternary kernels: maddubs on unsigned 2-bit codes. Each 64-byte block of the
// I2_S256 layout is taken as two 32-byte halves h; codes of half h at shift s are the weights
// 256b + 64s + 32h + (0..31), so the matching activations are 32 consecutive bytes.
#include <immintrin.h>

#include <algorithm>

#include "gemm_isa.h"
#include "lowbit/core/aligned_buffer.h"

namespace lowbit::bitlab::kernels {

namespace {

inline std::int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

template <int NR>
void dot_rows_packed(const std::int8_t* x, std::int32_t x_sum, std::size_t kp, const std::uint8_t* w,
                     std::size_t rb, std::int32_t* out) {
  const __m256i mask = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_si256();
  for (std::size_t b = 0; b < kp / 256; ++b) {
    for (std::size_t h = 0; h < 2; ++h) {
      const std::int8_t* xb = x + 256 * b + 32 * h;
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 64));
      const __m256i x2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 128));
      const __m256i x3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 192));
      for (int r = 0; r < NR; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * rb + 64 * b + 32 * h));
        // Each maddubs lane is a pair sum in [-512, 508]; four of them fit int16 easily.
        __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(v, mask), x0);
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 2), mask), x1));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask), x2));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 6), mask), x3));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, ones));
      }
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum_epi32(acc[r]) - x_sum;
}

// MR activation rows x 2 code rows (8 accumulators at MR = 4: AVX2 has 16 registers).
template <int MR>
void tile_unpacked(const std::int8_t* x, const std::int32_t* x_sums, std::size_t kp, const std::uint8_t* codes,
                   std::size_t nr, std::int32_t* out, std::size_t ldc) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (std::size_t k = 0; k < kp; k += 32) {
    const __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + k));
    const __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + kp + k));
    for (int i = 0; i < MR; ++i) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i * kp + k));
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(c0, xv), ones));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(c1, xv), ones));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (std::size_t r = 0; r < nr; ++r) out[i * ldc + r] = hsum_epi32(acc[i][r]) - x_sums[i];
}

// Up to 2 packed rows -> one code byte per weight; a missing row gets code 0 (contributes nothing).
void unpack_rows(const std::uint8_t* w, std::size_t rb, std::size_t kp, std::size_t nr, std::uint8_t* codes) {
  const __m256i mask = _mm256_set1_epi8(3);
  for (std::size_t r = 0; r < 2; ++r) {
    std::uint8_t* dst = codes + r * kp;
    for (std::size_t b = 0; b < kp / 256; ++b) {
      for (std::size_t h = 0; h < 2; ++h) {
        __m256i v = r < nr ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * rb + 64 * b + 32 * h))
                           : _mm256_setzero_si256();
        for (std::size_t s = 0; s < 4; ++s) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 256 * b + 64 * s + 32 * h), _mm256_and_si256(v, mask));
          v = _mm256_srli_epi16(v, 2);
        }
      }
    }
  }
}

}  // namespace

void gemm_int8_avx2(const std::int8_t* xq, const std::int32_t* x_sums, std::size_t M, std::size_t kp,
                    const std::uint8_t* w, std::size_t n0, std::size_t n1, std::int32_t* out, std::size_t ldc) {
  const std::size_t rb = kp / 4;
  if (M < kTiledMinRows) {
    for (std::size_t m = 0; m < M; ++m) {
      std::size_t n = n0;
      for (; n + 4 <= n1; n += 4) {
        prefetch_bytes(w, n * rb + kPrefetchBytes, 4 * rb, n1 * rb);
        dot_rows_packed<4>(xq + m * kp, x_sums[m], kp, w + n * rb, rb, out + m * ldc + n);
      }
      for (; n < n1; ++n) dot_rows_packed<1>(xq + m * kp, x_sums[m], kp, w + n * rb, rb, out + m * ldc + n);
    }
    return;
  }
  thread_local AlignedBuffer<std::uint8_t> codes;
  codes.resize(2 * kp);
  for (std::size_t n = n0; n < n1; n += 2) {
    const std::size_t nr = std::min<std::size_t>(2, n1 - n);
    unpack_rows(w + n * rb, rb, kp, nr, codes.data());
    prefetch_bytes(w, (n + 2) * rb, 2 * rb, n1 * rb);  // the next rows, while these run over all of x
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

void gemm_f32_avx2(const float* x, std::size_t M, std::size_t kp, const std::uint8_t* w, std::size_t n0,
                   std::size_t n1, float* out, std::size_t ldc) {
  const std::size_t rb = kp / 4;
  const __m256i three = _mm256_set1_epi32(3);
  const __m256i two = _mm256_set1_epi32(2);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  for (std::size_t n = n0; n < n1; ++n) {
    const std::uint8_t* row = w + n * rb;
    for (std::size_t m = 0; m < M; ++m) {
      const float* xm = x + m * kp;
      // p[q] holds the partial sums k % 64 == 8q + lane.
      __m256 p[8];
      for (auto& v : p) v = _mm256_setzero_ps();
      for (std::size_t b = 0; b < kp / 256; ++b) {
        for (std::size_t q = 0; q < 8; ++q) {
          const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 64 * b + 8 * q)));
          for (unsigned s = 0; s < 4; ++s) {
            const __m256i c = _mm256_and_si256(_mm256_srli_epi32(bytes, static_cast<int>(2 * s)), three);
            // +x for code 2, -x (sign flip, exact) for code 0, +0 for code 1: one add per lane.
            const __m256i negate = _mm256_and_si256(_mm256_cmpeq_epi32(c, zero), sign);
            const __m256i keep = _mm256_or_si256(_mm256_cmpeq_epi32(c, two), _mm256_cmpeq_epi32(c, zero));
            const __m256i xv = _mm256_castps_si256(_mm256_loadu_ps(xm + 256 * b + 64 * s + 8 * q));
            const __m256 term = _mm256_castsi256_ps(_mm256_and_si256(_mm256_xor_si256(xv, negate), keep));
            p[q] = _mm256_add_ps(p[q], term);
          }
        }
      }
      const __m256 r32a = _mm256_add_ps(p[0], p[4]), r32b = _mm256_add_ps(p[1], p[5]);
      const __m256 r32c = _mm256_add_ps(p[2], p[6]), r32d = _mm256_add_ps(p[3], p[7]);
      const __m256 r16a = _mm256_add_ps(r32a, r32c), r16b = _mm256_add_ps(r32b, r32d);
      const __m256 r8 = _mm256_add_ps(r16a, r16b);
      const __m128 r4 = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
      const __m128 r2 = _mm_add_ps(r4, _mm_movehl_ps(r4, r4));
      const __m128 r1 = _mm_add_ss(r2, _mm_shuffle_ps(r2, r2, 1));
      out[m * ldc + n] = _mm_cvtss_f32(r1);
    }
  }
}

}  // namespace lowbit::bitlab::kernels
