// Per-vector HNLQ encode/decode for the CUDA kernels (coset_hnlq.cu), written once for device
// and host.
//
// Every function mirrors src/coset/lattice_step.h, hnlq_ref.cpp and hnlq.cpp operation for
// operation (docs/coset.md, "The tie rule"), so the GPU's codes, T and decoded values equal the
// CPU's bit for bit. Float arithmetic goes through the *_rn helpers below: on the device they are
// the round-to-nearest intrinsics, which nvcc never contracts into a fused multiply-add; on the
// host they are plain ISO C++ operators (no contraction either). The header has no CUDA
// dependency when compiled by a host compiler, so tests/cpp/coset/test_coset_device_logic.cpp
// runs this exact code against the reference on machines without a GPU.
//
// Differences from the reference that cannot change a result:
// * The hierarchy (every step after the first closest point) runs in T instead of double: its
//   values are integers below 2^24 and the correction step of round_coord makes r and e unique,
//   whatever the rounding of 1 / div (the SIMD kernels rely on the same fact).
// * G^-1 and G are applied in closed form on integers (docs/coset.md, "Generators") instead of
//   as double matrix products: both are exact.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LOWBIT_HD __host__ __device__ __forceinline__
#else
#define LOWBIT_HD inline
#endif

namespace lowbit::cuda::coset_device {

// Lattice ids as in lowbit::coset::LatticeType.
inline constexpr int kZ2 = 0;
inline constexpr int kD4 = 1;
inline constexpr int kE8 = 2;
inline constexpr int kMaxDim = 8;
inline constexpr int kMaxLevels = 4;
inline constexpr int kMaxScales = 256;  // T is one byte

template <int L>
struct Lattice;
template <>
struct Lattice<kZ2> {
  static constexpr int d = 2, c = 1;
};
template <>
struct Lattice<kD4> {
  static constexpr int d = 4, c = 1;
};
template <>
struct Lattice<kE8> {
  static constexpr int d = 8, c = 2;
};

// ---- IEEE round-to-nearest arithmetic, never contracted --------------------------------------
LOWBIT_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
LOWBIT_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
LOWBIT_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
LOWBIT_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
LOWBIT_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
LOWBIT_HD double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
template <class T>
LOWBIT_HD T sub_rn(T a, T b) {
  return add_rn(a, -b);  // a + (-b) is a - b exactly in IEEE arithmetic
}
#if defined(__CUDA_ARCH__)
LOWBIT_HD float round_even(float v) { return rintf(v); }  // the default mode: = std::nearbyint
LOWBIT_HD double round_even(double v) { return rint(v); }
LOWBIT_HD float floor_of(float v) { return floorf(v); }
LOWBIT_HD double floor_of(double v) { return floor(v); }
LOWBIT_HD float abs_of(float v) { return fabsf(v); }
LOWBIT_HD double abs_of(double v) { return fabs(v); }
LOWBIT_HD bool finite(float v) { return isfinite(v); }
LOWBIT_HD bool finite(double v) { return isfinite(v); }
#else
template <class T>
inline T round_even(T v) { return std::nearbyint(v); }
template <class T>
inline T floor_of(T v) { return std::floor(v); }
template <class T>
inline T abs_of(T v) { return std::fabs(v); }
template <class T>
inline bool finite(T v) { return std::isfinite(v); }
#endif

// ---- one closest-point step (lattice_step.h) ---------------------------------------------------
// snap: the relative tie tolerance of the closest point of float data where the CPU reference
// has one (lattice_step.h's kTieSnap: the first step, with or without the nudge, and the
// dither), else 0.
// With snap 0 every comparison below is the exact one.
template <class T>
struct Step {
  T div, inv_div, half;
  bool nudge;
  T snap;
};

// The absolute tie tolerance of one vector: snap * max(1, max_j |v_j|) (0 when snap is 0).
template <class T, int D>
LOWBIT_HD T tie_tolerance(const T* v, const Step<T>& p) {
  if (p.snap == T(0)) return T(0);
  T m = T(1);
#pragma unroll
  for (int j = 0; j < D; ++j) {
    const T a = abs_of(v[j]);
    m = (m < a) ? a : m;  // std::max(m, a)
  }
  return mul_rn(p.snap, m);
}

template <class T>
LOWBIT_HD void round_coord(T v, const Step<T>& p, T& r, T& e, T tol) {
  r = round_even(mul_rn(v, p.inv_div));
  e = sub_rn(v, mul_rn(p.div, r));
  if (e >= sub_rn(p.half, tol)) {
    r = add_rn(r, T(1));
    e = sub_rn(e, p.div);
  } else if (e < sub_rn(-p.half, tol)) {
    r = sub_rn(r, T(1));
    e = add_rn(e, p.div);
  }
  if (!p.nudge && abs_of(add_rn(e, p.half)) <= tol && sub_rn(r, mul_rn(T(2), floor_of(mul_rn(r, T(0.5))))) != T(0)) {
    r = sub_rn(r, T(1));
    e = add_rn(e, p.div);
  }
}

template <class T, int D>
LOWBIT_HD void dn_fix(T* r, T* e, const Step<T>& p, T tol) {
  T sum = r[0];
#pragma unroll
  for (int j = 1; j < D; ++j) sum = add_rn(sum, r[j]);
  if (sub_rn(sum, mul_rn(T(2), floor_of(mul_rn(sum, T(0.5))))) == T(0)) return;
  int best = 0;
  T best_abs = abs_of(e[0]);
  T best_sw = e[0] >= T(0) ? T(1) : T(-1);
#pragma unroll
  for (int j = 1; j < D; ++j) {
    const T a = abs_of(e[j]);
    const T w = static_cast<T>(1 << j);
    const T sw = e[j] >= T(0) ? w : -w;
    const bool take = p.nudge ? (a > add_rn(best_abs, tol) || (a >= sub_rn(best_abs, tol) && sw > best_sw))
                              : a > add_rn(best_abs, tol);
    if (take) {
      best = j;
      best_abs = a;
      best_sw = sw;
    }
  }
  // Select by unrolled compare, not a run-time index: the arrays stay in registers.
#pragma unroll
  for (int j = 0; j < D; ++j) {
    if (j == best) {
      const T s = e[j] >= T(0) ? T(1) : T(-1);
      r[j] = add_rn(r[j], s);
      e[j] = sub_rn(e[j], mul_rn(s, p.div));
    }
  }
}

template <class T, int D>
LOWBIT_HD T squared_norm(const T* e) {
  T acc = T(0);
#pragma unroll
  for (int j = 0; j < D; ++j) acc = add_rn(acc, mul_rn(e[j], e[j]));
  return acc;
}

template <class T, int D>
LOWBIT_HD T nudge_dot(const T* e) {
  T acc = T(0);
#pragma unroll
  for (int j = 0; j < D; ++j) acc = add_rn(acc, mul_rn(static_cast<T>(1 << j), e[j]));
  return acc;
}

// point: the closest point in C-scaled coordinates; e = v - div * point / C.
template <class T, int L>
LOWBIT_HD void lattice_step(const T* v, const Step<T>& p, T* point, T* e) {
  constexpr int d = Lattice<L>::d;
  const T tol = tie_tolerance<T, d>(v, p);
  if constexpr (L != kE8) {
#pragma unroll
    for (int j = 0; j < d; ++j) round_coord(v[j], p, point[j], e[j], tol);
    if constexpr (L == kD4) dn_fix<T, d>(point, e, p, tol);
  } else {
    T r0[8], e0[8], r1[8], e1[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) round_coord(v[j], p, r0[j], e0[j], tol);
    dn_fix<T, 8>(r0, e0, p, tol);
#pragma unroll
    for (int j = 0; j < 8; ++j) round_coord(sub_rn(v[j], p.half), p, r1[j], e1[j], tol);
    dn_fix<T, 8>(r1, e1, p, tol);
    const T d0 = squared_norm<T, 8>(e0);
    const T d1 = squared_norm<T, 8>(e1);
    const T tol_d = mul_rn(T(8), tol);  // |d error| <= 2 sum_j |e_j| |e_j error| < 8 tol
    const bool integer_coset =
        p.nudge ? (d0 < sub_rn(d1, tol_d) || (d0 <= add_rn(d1, tol_d) && nudge_dot<T, 8>(e0) <= nudge_dot<T, 8>(e1)))
                : d0 <= add_rn(d1, tol_d);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      point[j] = integer_coset ? mul_rn(T(2), r0[j]) : add_rn(mul_rn(T(2), r1[j]), T(1));
      e[j] = integer_coset ? e0[j] : e1[j];
    }
  }
}

// ---- generator in closed form, on C-scaled integer points ---------------------------------------
// b = G^-1 (p / C) mod q (docs/coset.md, "Generators").
template <int L>
LOWBIT_HD void codes_of_point(const int* p, int q, std::uint8_t* b) {
  int v[8];
  if constexpr (L == kZ2) {
    v[0] = p[0];
    v[1] = p[1];
  } else if constexpr (L == kD4) {
    v[3] = p[3];
    v[2] = p[2] + v[3];
    v[1] = p[1] + v[2];
    v[0] = (p[0] + v[1]) / 2;  // exact: a D4 point has an even coordinate sum
  } else {
    // p = 2x; b8 = 2 x8 = p8; 2 t_k = p_k - p8; b_k = t_k + ... + t_7; b1 = (t_1 + ... + t_7) / 2.
    const int p8 = p[7];
    v[7] = p8;
    int twice_tail = 0;  // 2 (t_k + ... + t_7)
#pragma unroll
    for (int k = 6; k >= 1; --k) {
      twice_tail += p[k] - p8;
      v[k] = twice_tail / 2;
    }
    twice_tail += p[0] - p8;
    v[0] = twice_tail / 4;
  }
#pragma unroll
  for (int j = 0; j < Lattice<L>::d; ++j) b[j] = static_cast<std::uint8_t>(((v[j] % q) + q) % q);
}

// p = C G b (integers).
template <int L>
LOWBIT_HD void point_of_codes(const std::uint8_t* b, int* p) {
  if constexpr (L == kZ2) {
    p[0] = b[0];
    p[1] = b[1];
  } else if constexpr (L == kD4) {
    p[0] = 2 * b[0] - b[1];
    p[1] = b[1] - b[2];
    p[2] = b[2] - b[3];
    p[3] = b[3];
  } else {
    const int h = b[7];  // C * b8 / 2
    p[0] = 2 * (2 * b[0] - b[1]) + h;
#pragma unroll
    for (int k = 1; k < 6; ++k) p[k] = 2 * (b[k] - b[k + 1]) + h;
    p[6] = 2 * b[6] + h;
    p[7] = h;
  }
}

// ---- encode and decode of one vector ---------------------------------------------------------
template <class T>
struct Levels {
  int q, levels;
  bool nudge;
  T bound;         // overload_bound(q, M) (hnlq_kernels.h)
  Step<T> first;   // div 1
  Step<T> level;   // div C q
};

template <class T, int L>
LOWBIT_HD Levels<T> make_levels(int q, int levels, bool nudge, T snap) {
  constexpr int c = Lattice<L>::c;
  double qm = 1.0;
  for (int m = 0; m < levels; ++m) qm *= q;
  Levels<T> lv;
  lv.q = q;
  lv.levels = levels;
  lv.nudge = nudge;
  lv.bound = static_cast<T>(2.0 * qm + 2.0);
  lv.first = {T(1), T(1), T(0.5), nudge, snap};
  const double div = static_cast<double>(c) * q;
  lv.level = {static_cast<T>(div), static_cast<T>(1.0 / div), static_cast<T>(div / 2), nudge, T(0)};
  return lv;
}

// encode_ref for one vector y (already divided by the scale and dithered): codes[m * d + j];
// returns whether the vector is overloaded. M (= lv.levels) is a template parameter so that the
// level loop unrolls and every array stays in registers.
template <class T, int L, int M>
LOWBIT_HD bool encode_vector(const Levels<T>& lv, const T* y, std::uint8_t* codes) {
  constexpr int d = Lattice<L>::d;
  T v[d], point[d], e[d];
  bool over = false;
#pragma unroll
  for (int j = 0; j < d; ++j) {
    const T yj = y[j];
    over = over || abs_of(yj) > lv.bound;
    const T lo = (yj < -lv.bound) ? -lv.bound : yj;  // std::max(yj, -bound)
    v[j] = (lv.bound < lo) ? lv.bound : lo;           // std::min(lo, bound)
  }
  lattice_step<T, L>(v, lv.first, point, e);
  int p[d];
#pragma unroll
  for (int j = 0; j < d; ++j) p[j] = static_cast<int>(point[j]);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    codes_of_point<L>(p, lv.q, codes + m * d);
    T lam[d];
#pragma unroll
    for (int j = 0; j < d; ++j) lam[j] = static_cast<T>(p[j]);
    lattice_step<T, L>(lam, lv.level, point, e);  // lambda_{m+1} = Q(lambda_m / q)
#pragma unroll
    for (int j = 0; j < d; ++j) p[j] = static_cast<int>(point[j]);
  }
#pragma unroll
  for (int j = 0; j < d; ++j) over = over || p[j] != 0;
  return over;
}

// decode_ref for one vector: out[j] = sum_m q^m e_m / C (exact), before scaling.
template <class T, int L, int M>
LOWBIT_HD void decode_vector(const Levels<T>& lv, const std::uint8_t* codes, T* out) {
  constexpr int d = Lattice<L>::d;
  constexpr int c = Lattice<L>::c;
  T acc[d];
#pragma unroll
  for (int j = 0; j < d; ++j) acc[j] = T(0);
  T weight = T(1);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    int p[d];
    point_of_codes<L>(codes + m * d, p);
    T v[d], point[d], e[d];
#pragma unroll
    for (int j = 0; j < d; ++j) v[j] = static_cast<T>(p[j]);
    lattice_step<T, L>(v, lv.level, point, e);  // e = C (G b - q Q(G b / q))
#pragma unroll
    for (int j = 0; j < d; ++j) acc[j] = add_rn(acc[j], mul_rn(weight, e[j]));
    weight = mul_rn(weight, static_cast<T>(lv.q));
  }
#pragma unroll
  for (int j = 0; j < d; ++j) out[j] = div_rn(acc[j], static_cast<T>(c));
}

// ---- subtractive dither (hnlq.cpp, dither_vector) ---------------------------------------------
LOWBIT_HD std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// u of vector `index`. g: the generator matrix, row-major d x d, as lattice.cpp builds it.
template <class T, int L>
LOWBIT_HD void dither_vector(const double* g, std::uint64_t seed, std::uint64_t index, T snap, T* u) {
  constexpr int d = Lattice<L>::d;
  std::uint64_t state = seed ^ (index * 0xD1B54A32D192ED03ull);
  double t[d];
#pragma unroll
  for (int j = 0; j < d; ++j) t[j] = mul_rn(static_cast<double>(splitmix64(state) >> 11), 0x1.0p-53);
  T z[d], point[d], e[d];
#pragma unroll
  for (int r = 0; r < d; ++r) {
    double s = 0.0;
#pragma unroll
    for (int k = 0; k < d; ++k) s = add_rn(s, mul_rn(g[r * d + k], t[k]));
    z[r] = static_cast<T>(s);
  }
  lattice_step<T, L>(z, Step<T>{T(1), T(1), T(0.5), true, snap}, point, e);
  const T inv_c = T(1) / static_cast<T>(Lattice<L>::c);
#pragma unroll
  for (int j = 0; j < d; ++j) u[j] = sub_rn(z[j], mul_rn(point[j], inv_c));
}

// ---- the whole per-vector encode of hnlq.cpp: scale, dither, retries -------------------------
template <class T>
struct EncodeConfig {
  Levels<T> lv;
  int max_t;              // 0 with overload protection off
  bool with_dither;
  T dither_snap;          // the tie tolerance of the dither's closest point (as the first step's)
  std::uint64_t dither_seed;
  double g[kMaxDim * kMaxDim];  // generator (dither only)
  T scales[kMaxScales];   // QuantizationConfig::scale<T>(k), k = 0..max_t
};

// x: the d inputs of vector `index`. Writes M*d codes; returns T; *over: still overloaded.
// The caller has checked that x is finite.
template <class T, int L, int M>
LOWBIT_HD int encode_full(const EncodeConfig<T>& cfg, const T* x, std::uint64_t index, std::uint8_t* codes,
                          bool* over) {
  constexpr int d = Lattice<L>::d;
  T u[d];
  if (cfg.with_dither) dither_vector<T, L>(cfg.g, cfg.dither_seed, index, cfg.dither_snap, u);
  int k = 0;
  bool o;
  for (;;) {
    const T s = cfg.scales[k];
    T y[d];
#pragma unroll
    for (int j = 0; j < d; ++j) {
      y[j] = s == T(1) ? x[j] : div_rn(x[j], s);
      if (cfg.with_dither) y[j] = sub_rn(y[j], u[j]);
    }
    o = encode_vector<T, L, M>(cfg.lv, y, codes);
    if (!o || k >= cfg.max_t) break;
    ++k;
  }
  *over = o;
  return k;
}

// The decode of hnlq.cpp: (x_m sum (+ u)) * scale[t].
template <class T, int L, int M>
LOWBIT_HD void decode_full(const EncodeConfig<T>& cfg, const std::uint8_t* codes, int t, std::uint64_t index,
                           T* out) {
  constexpr int d = Lattice<L>::d;
  decode_vector<T, L, M>(cfg.lv, codes, out);
  const T s = cfg.scales[t];
  if (cfg.with_dither) {
    T u[d];
    dither_vector<T, L>(cfg.g, cfg.dither_seed, index, cfg.dither_snap, u);
#pragma unroll
    for (int j = 0; j < d; ++j) out[j] = mul_rn(add_rn(out[j], u[j]), s);
  } else {
#pragma unroll
    for (int j = 0; j < d; ++j) out[j] = mul_rn(out[j], s);
  }
}

}  // namespace lowbit::cuda::coset_device
