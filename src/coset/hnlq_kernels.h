// Per-level entry points of the HNLQ block kernels (internal).
//
// encode: y is n x d, already divided by the scale (and dithered). Each vector is clamped to
// [-B, B]^d with B = overload_bound(q, M) (anything beyond is overloaded for sure, and the clamp
// keeps every later value an exact small integer), quantized, and its M levels of codes written
// to codes[i*M*d + m*d + j]; overloaded[i] = 1 when Q(g) != 0 after the last level.
// decode: out[i*d + j] = sum_m q^m x_m / C, an exact (half-)integer.
// The SIMD kernels (float and double) implement the tie-dither rule only; the reference does both.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/coset/lattice.h"

namespace lowbit::coset::kernels {

// |y_j| <= 2 q^M + 2 for every vector that is not overloaded (covering radius <= 1).
inline double overload_bound(int q, int levels) {
  double p = 1.0;
  for (int m = 0; m < levels; ++m) p *= q;
  return 2.0 * p + 2.0;
}

template <class T>
void encode_ref(LatticeType type, int q, int levels, bool nudge, const T* y, std::size_t n,
                std::uint8_t* codes, std::uint8_t* overloaded);
template <class T>
void decode_ref(LatticeType type, int q, int levels, bool nudge, const std::uint8_t* codes,
                std::size_t n, T* out);

template <class T>
using EncodeFn = void (*)(LatticeType, int, int, const T*, std::size_t, std::uint8_t*, std::uint8_t*);
template <class T>
using DecodeFn = void (*)(LatticeType, int, int, const std::uint8_t*, std::size_t, T*);

// The tie-dither kernels of each level, instantiated for T = float and T = double.
template <class T>
void encode_scalar(LatticeType, int, int, const T*, std::size_t, std::uint8_t*, std::uint8_t*);
template <class T>
void decode_scalar(LatticeType, int, int, const std::uint8_t*, std::size_t, T*);
template <class T>
void encode_avx2(LatticeType, int, int, const T*, std::size_t, std::uint8_t*, std::uint8_t*);
template <class T>
void decode_avx2(LatticeType, int, int, const std::uint8_t*, std::size_t, T*);
template <class T>
void encode_avx512(LatticeType, int, int, const T*, std::size_t, std::uint8_t*, std::uint8_t*);
template <class T>
void decode_avx512(LatticeType, int, int, const std::uint8_t*, std::size_t, T*);

}  // namespace lowbit::coset::kernels
