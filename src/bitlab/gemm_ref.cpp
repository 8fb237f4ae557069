// Scalar reference twins of the ternary kernels: the definition the SIMD levels must match.
#include <cstring>

#include "gemm_isa.h"

namespace lowbit::bitlab::kernels {

namespace {
// The trit of weight 256b + 64s + j, read straight from the layout.
inline int trit_at(const std::uint8_t* row, std::size_t b, unsigned s, std::size_t j) {
  return static_cast<int>((row[64 * b + j] >> (2 * s)) & 3u) - 1;
}
}  // namespace

void gemm_int8_ref(const std::int8_t* xq, const std::int32_t* /*x_sums*/, std::size_t M, std::size_t kp,
                   const std::uint8_t* w, std::size_t n0, std::size_t n1, std::int32_t* out, std::size_t ldc) {
  const std::size_t rb = kp / 4;
  for (std::size_t n = n0; n < n1; ++n) {
    const std::uint8_t* row = w + n * rb;
    for (std::size_t m = 0; m < M; ++m) {
      const std::int8_t* x = xq + m * kp;
      std::int32_t acc = 0;
      for (std::size_t b = 0; b < kp / 256; ++b)
        for (unsigned s = 0; s < 4; ++s)
          for (std::size_t j = 0; j < 64; ++j) acc += trit_at(row, b, s, j) * x[256 * b + 64 * s + j];
      out[m * ldc + n] = acc;
    }
  }
}

void gemm_f32_ref(const float* x, std::size_t M, std::size_t kp, const std::uint8_t* w, std::size_t n0,
                  std::size_t n1, float* out, std::size_t ldc) {
  const std::size_t rb = kp / 4;
  for (std::size_t n = n0; n < n1; ++n) {
    const std::uint8_t* row = w + n * rb;
    for (std::size_t m = 0; m < M; ++m) {
      const float* xm = x + m * kp;
      float p[64];
      std::memset(p, 0, sizeof p);
      // Weight k = 256b + 64s + j goes to partial sum k % 64 == j, in increasing k.
      for (std::size_t b = 0; b < kp / 256; ++b)
        for (unsigned s = 0; s < 4; ++s)
          for (std::size_t j = 0; j < 64; ++j) {
            const int t = trit_at(row, b, s, j);
            const float v = xm[256 * b + 64 * s + j];
            if (t > 0) p[j] = p[j] + v;
            if (t < 0) p[j] = p[j] - v;
          }
      for (std::size_t h = 32; h >= 1; h /= 2)
        for (std::size_t i = 0; i < h; ++i) p[i] = p[i] + p[i + h];
      out[m * ldc + n] = p[0];
    }
  }
}

}  // namespace lowbit::bitlab::kernels
