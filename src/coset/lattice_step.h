// One closest-point step, shared by the scalar reference of every Coset kernel (internal).
//
// lattice_step finds the closest lattice point to v / div and returns it in C-scaled integer
// coordinates (C = coordinate_scale: 2 for E8, whose points have half-integer coordinates) and
// the residual e = v - div * point / C. With div = 1 it is the closest point of a float input;
// with div = C q on C-scaled integer points it is Q(lambda / q) of the hierarchy, exactly.
// The SIMD kernels (hnlq_simd_generic.h) perform the same operations in the same order.
#pragma once

#include <algorithm>
#include <cmath>

#include "lowbit/coset/lattice.h"

namespace lowbit::coset::detail {

// Ties of the closest point of float data are ties up to this relative tolerance (the tie
// snap, docs/coset.md): a float input is usually a rounded rational (G b / q in Algorithm 2),
// and an exact comparison would break its ties by the rounding error instead of by the rule.
inline constexpr double kTieSnap = 0x1p-20;

template <class T>
struct StepParams {
  T div;      // the point is v / div
  T inv_div;  // 1 / div (rounded); the rounding below corrects its error
  T half;     // div / 2
  bool nudge; // the tie-dither rule of lattice.h, else plain Conway & Sloane
  T snap;     // kTieSnap for the closest point of float data (div = 1), else 0 (exact)
};

template <class T>
StepParams<T> make_step(double div, bool nudge, bool snap = false) {
  return {static_cast<T>(div), static_cast<T>(1.0 / div), static_cast<T>(div / 2), nudge,
          snap ? static_cast<T>(kTieSnap) : T(0)};
}

// The absolute tie tolerance of one vector: snap * max(1, max_j |v_j|) (0 when snap is 0).
template <class T>
inline T tie_tolerance(int d, const T* v, const StepParams<T>& p) {
  if (p.snap == T(0)) return T(0);
  T m = T(1);
  for (int j = 0; j < d; ++j) m = std::max(m, std::fabs(v[j]));
  return p.snap * m;
}

// r = the integer nearest v / div (ties up with the nudge, to even without), e = v - div r.
// With a tolerance tol, e within tol of div/2 counts as a tie: e ends in [-div/2 - tol, div/2 - tol),
// and without the nudge a tie (e within tol of -div/2) goes to the even integer.
template <class T>
inline void round_coord(T v, const StepParams<T>& p, T& r, T& e, T tol = T(0)) {
  r = std::nearbyint(v * p.inv_div);
  e = v - p.div * r;
  if (e >= p.half - tol) {
    r = r + T(1);
    e = e - p.div;
  } else if (e < -p.half - tol) {
    r = r - T(1);
    e = e + p.div;
  }
  if (!p.nudge && std::fabs(e + p.half) <= tol && r - T(2) * std::floor(r * T(0.5)) != T(0)) {
    r = r - T(1);  // a tie went up to an odd integer: round half to even instead
    e = e + p.div;
  }
}

// D_n: if the coordinate sum of r is odd, move the worst coordinate to its other neighbour.
// With a tolerance tol, |e| values within tol of each other tie (then the nudge order decides).
template <class T>
inline void dn_fix(int d, T* r, T* e, const StepParams<T>& p, T tol = T(0)) {
  T sum = r[0];
  for (int j = 1; j < d; ++j) sum = sum + r[j];
  if (sum - T(2) * std::floor(sum * T(0.5)) == T(0)) return;
  int best = 0;
  T best_abs = std::fabs(e[0]);
  T best_sw = e[0] >= T(0) ? T(1) : T(-1);
  for (int j = 1; j < d; ++j) {
    const T a = std::fabs(e[j]);
    const T w = static_cast<T>(1 << j);
    const T sw = e[j] >= T(0) ? w : -w;
    const bool take =
        p.nudge ? (a > best_abs + tol || (a >= best_abs - tol && sw > best_sw)) : a > best_abs + tol;
    if (take) {
      best = j;
      best_abs = a;
      best_sw = sw;
    }
  }
  const T s = e[best] >= T(0) ? T(1) : T(-1);
  r[best] = r[best] + s;
  e[best] = e[best] - s * p.div;
}

template <class T>
inline T squared_norm(int d, const T* e) {
  T acc = T(0);
  for (int j = 0; j < d; ++j) acc = acc + e[j] * e[j];
  return acc;
}

// <w, e> with w_j = 2^j: the first-order term of the nudge.
template <class T>
inline T nudge_dot(int d, const T* e) {
  T acc = T(0);
  for (int j = 0; j < d; ++j) acc = acc + static_cast<T>(1 << j) * e[j];
  return acc;
}

template <class T>
inline void lattice_step(LatticeType type, const T* v, const StepParams<T>& p, T* point, T* e) {
  const int d = lattice_dim(type);
  const T tol = tie_tolerance(d, v, p);
  if (type != LatticeType::E8) {
    for (int j = 0; j < d; ++j) round_coord(v[j], p, point[j], e[j], tol);
    if (type == LatticeType::D4) dn_fix(d, point, e, p, tol);
    return;
  }
  T r0[8], e0[8], r1[8], e1[8];
  for (int j = 0; j < 8; ++j) round_coord(v[j], p, r0[j], e0[j], tol);
  dn_fix(8, r0, e0, p, tol);
  for (int j = 0; j < 8; ++j) round_coord(v[j] - p.half, p, r1[j], e1[j], tol);
  dn_fix(8, r1, e1, p, tol);
  const T d0 = squared_norm(8, e0);
  const T d1 = squared_norm(8, e1);
  const T tol_d = T(8) * tol;  // |d error| <= 2 sum_j |e_j| |e_j error| < 8 tol
  const bool integer_coset =
      p.nudge ? (d0 < d1 - tol_d || (d0 <= d1 + tol_d && nudge_dot(8, e0) <= nudge_dot(8, e1))) : d0 <= d1 + tol_d;
  for (int j = 0; j < 8; ++j) {
    point[j] = integer_coset ? T(2) * r0[j] : T(2) * r1[j] + T(1);
    e[j] = integer_coset ? e0[j] : e1[j];
  }
}

}  // namespace lowbit::coset::detail
