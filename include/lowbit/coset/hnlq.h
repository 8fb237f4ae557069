// Hierarchical nested-lattice quantization (Kaplan & Ordentlich, arXiv 2505.13164).
//
// Encode (Algorithm 1), for a vector x, scale s = beta * 2^(alpha T) and generator G:
//   g <- x / s (- u with subtractive dither u);  for m = 0..M-1: g <- Q(g); b_m <- G^-1 g mod q;
//   g <- g / q.  Overload when Q(g) != 0 at the end; then T += 1 and retry (up to
//   max_scaling_iterations). Decode (Algorithm 2): x_m = G b_m - q Q(G b_m / q);
//   x^ = s * (sum_m q^m x_m (+ u)). Without overload x^ = s * Q(x / s) exactly (bit for bit).
//
// The hierarchy after the first closest point runs on exact integers (held in float lanes),
// so the result is identical at every SIMD level and in the scalar reference.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/coset/lattice.h"

namespace lowbit::coset {

inline constexpr int kMinQ = 2;
inline constexpr int kMaxQ = 16;
inline constexpr int kMinLevels = 1;
inline constexpr int kMaxLevels = 4;
inline constexpr int kMaxScalingIterations = 255;  // T is stored in one byte

struct QuantizationConfig {
  LatticeType lattice = LatticeType::D4;
  int q = 4;   // alphabet size per coordinate and level, 2..16
  int M = 2;   // hierarchical levels, 1..4
  double beta = 1.0;   // base scale: encode x / beta
  double alpha = 1.0;  // each overload retry divides by a further 2^alpha
  int max_scaling_iterations = 10;
  bool with_tie_dither = true;   // shift-invariant tie rule (lattice.h); exact decode at ties
  bool with_dither = false;      // subtractive dither, uniform over the Voronoi cell
  std::uint64_t dither_seed = 0; // the dither of vector i depends on (seed, i) only
  bool disable_scaling = false;  // use beta = 1
  bool disable_overload_protection = false;  // never retry: T = 0 always

  int dim() const noexcept { return lattice_dim(lattice); }
  // Throws InvalidArgument naming the field and the reason.
  void validate() const;
  // The scale used for a given T: beta_eff * 2^(alpha T), rounded once to T.
  template <class T>
  T scale(int t) const;
};

struct EncodeStats {
  std::size_t retried = 0;     // vectors that needed T > 0
  std::size_t overloaded = 0;  // vectors still overloaded after the last allowed T
  std::size_t clipped = 0;     // deploy_encode: vectors shrunk to fit at the last T (deploy.h)
};

// x: n x d (row-major). codes: n x M x d bytes in [0, q). t: n bytes (the T of each vector).
// Non-finite input throws InvalidArgument. Multi-threaded; SIMD kernels for float and double.
template <class T>
EncodeStats encode(const QuantizationConfig& config, const T* x, std::size_t n, std::uint8_t* codes,
                   std::uint8_t* t);

// The inverse: out = n x d. Codes >= q or T > max_scaling_iterations throw InvalidArgument.
template <class T>
void decode(const QuantizationConfig& config, const std::uint8_t* codes, const std::uint8_t* t,
            std::size_t n, T* out);

// The reference quantizer the round trip must reproduce: out = s * (Q(x / s - u) + u) with
// s = scale(0) and the config's tie rule; for comparisons in tests and benchmarks.
template <class T>
void quantize_reference(const QuantizationConfig& config, const T* x, std::size_t n, T* out);

// The subtractive dither of vector `index` (d values, uniform over the Voronoi cell of Q).
template <class T>
void dither_vector(const QuantizationConfig& config, std::uint64_t index, T* u);

}  // namespace lowbit::coset
