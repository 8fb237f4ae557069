// Scalar reference of the HNLQ kernels: the algorithms exactly as written, with the generator
// matrices of lattice.cpp (the SIMD kernels use closed forms of the same matrices instead).
#include <algorithm>
#include <cmath>

#include "hnlq_kernels.h"
#include "lattice_step.h"

namespace lowbit::coset::kernels {

namespace {
// b = G^-1 (point / C) mod q, computed in double (exact: dyadic entries, small integers).
void codes_of_point(LatticeType type, int q, const double* ginv, const double* point_c,
                    std::uint8_t* b) {
  const int d = lattice_dim(type);
  const double inv_c = 1.0 / coordinate_scale(type);
  for (int r = 0; r < d; ++r) {
    double acc = 0.0;
    for (int k = 0; k < d; ++k) acc += ginv[r * d + k] * (point_c[k] * inv_c);
    const long long v = std::llround(acc);
    b[r] = static_cast<std::uint8_t>(((v % q) + q) % q);
  }
}
}  // namespace

template <class T>
void encode_ref(LatticeType type, int q, int levels, bool nudge, const T* y, std::size_t n,
                std::uint8_t* codes, std::uint8_t* overloaded) {
  const int d = lattice_dim(type);
  const int c = coordinate_scale(type);
  const auto ginv = inverse_generator_matrix(type);
  const T bound = static_cast<T>(overload_bound(q, levels));
  const auto first = detail::make_step<T>(1.0, nudge, /*snap=*/true);
  const auto level = detail::make_step<double>(static_cast<double>(c) * q, nudge);
  for (std::size_t i = 0; i < n; ++i) {
    T v[kMaxDim], point[kMaxDim], e[kMaxDim];
    bool over = false;
    for (int j = 0; j < d; ++j) {
      const T yj = y[i * d + j];
      over = over || std::fabs(yj) > bound;
      v[j] = std::min(std::max(yj, -bound), bound);
    }
    detail::lattice_step(type, v, first, point, e);
    double lam[kMaxDim], next[kMaxDim], res[kMaxDim];
    for (int j = 0; j < d; ++j) lam[j] = static_cast<double>(point[j]);
    for (int m = 0; m < levels; ++m) {
      codes_of_point(type, q, ginv.data(), lam, codes + (i * levels + m) * d);
      detail::lattice_step(type, lam, level, next, res);  // lambda_{m+1} = Q(lambda_m / q)
      std::copy(next, next + d, lam);
    }
    for (int j = 0; j < d; ++j) over = over || lam[j] != 0.0;
    overloaded[i] = over ? 1 : 0;
  }
}

template <class T>
void decode_ref(LatticeType type, int q, int levels, bool nudge, const std::uint8_t* codes,
                std::size_t n, T* out) {
  const int d = lattice_dim(type);
  const int c = coordinate_scale(type);
  const auto g = generator_matrix(type);
  const auto level = detail::make_step<double>(static_cast<double>(c) * q, nudge);
  for (std::size_t i = 0; i < n; ++i) {
    double acc[kMaxDim] = {};
    double weight = 1.0;
    for (int m = 0; m < levels; ++m) {
      const std::uint8_t* b = codes + (i * levels + m) * d;
      double v[kMaxDim], point[kMaxDim], e[kMaxDim];
      for (int r = 0; r < d; ++r) {  // v = C G b
        double s = 0.0;
        for (int k = 0; k < d; ++k) s += g[r * d + k] * b[k];
        v[r] = s * c;
      }
      detail::lattice_step(type, v, level, point, e);  // e = C (G b - q Q(G b / q))
      for (int j = 0; j < d; ++j) acc[j] += weight * e[j];
      weight *= q;
    }
    for (int j = 0; j < d; ++j) out[i * d + j] = static_cast<T>(acc[j] / c);
  }
}

template void encode_ref<float>(LatticeType, int, int, bool, const float*, std::size_t,
                                std::uint8_t*, std::uint8_t*);
template void encode_ref<double>(LatticeType, int, int, bool, const double*, std::size_t,
                                 std::uint8_t*, std::uint8_t*);
template void decode_ref<float>(LatticeType, int, int, bool, const std::uint8_t*, std::size_t, float*);
template void decode_ref<double>(LatticeType, int, int, bool, const std::uint8_t*, std::size_t, double*);

template <class T>
void encode_scalar(LatticeType type, int q, int levels, const T* y, std::size_t n,
                   std::uint8_t* codes, std::uint8_t* overloaded) {
  encode_ref<T>(type, q, levels, true, y, n, codes, overloaded);
}

template <class T>
void decode_scalar(LatticeType type, int q, int levels, const std::uint8_t* codes, std::size_t n,
                   T* out) {
  decode_ref<T>(type, q, levels, true, codes, n, out);
}

template void encode_scalar<float>(LatticeType, int, int, const float*, std::size_t, std::uint8_t*, std::uint8_t*);
template void encode_scalar<double>(LatticeType, int, int, const double*, std::size_t, std::uint8_t*, std::uint8_t*);
template void decode_scalar<float>(LatticeType, int, int, const std::uint8_t*, std::size_t, float*);
template void decode_scalar<double>(LatticeType, int, int, const std::uint8_t*, std::size_t, double*);

}  // namespace lowbit::coset::kernels
