// The lookup-table kernels written once over a lane abstraction V (see hnlq_simd_generic.h),
// included by lut_avx2.cpp and lut_avx512.cpp. Same operations in the same order as lut_ref.cpp.
//
// V provides: F (float lanes), I (int32 lanes), kWidth, set1, add, mul, load, store,
// gather(base, I), indices_u16(p) and indices_u8(p) (kWidth indices widened to int32),
// small_table(p) (16 floats held in registers) and lookup_small(table, I) (indices < 16).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lut_kernels.h"

namespace lowbit::coset::kernels::generic {

template <class V>
struct LutLanes {
  using F = typename V::F;
  static constexpr std::size_t W = V::kWidth;
  static_assert(kPanelRows % W == 0, "a panel is a whole number of registers");

  static void build_tables(int d, std::size_t entries, const float* reps_t, const float* y,
                           std::size_t blocks, float* table) {
    const std::size_t vec_end = entries - entries % W;
    for (std::size_t k = 0; k < blocks; ++k) {
      float* out = table + k * entries;
      for (std::size_t e = 0; e < vec_end; e += W) {
        F acc = V::set1(0.0f);
        for (int j = 0; j < d; ++j) acc = V::add(acc, V::mul(V::load(reps_t + j * entries + e), V::set1(y[k * d + j])));
        V::store(out + e, acc);
      }
      for (std::size_t e = vec_end; e < entries; ++e) {  // tail: the scalar twin's sum
        float acc = 0.0f;
        for (int j = 0; j < d; ++j) acc = acc + reps_t[j * entries + e] * y[k * d + j];
        out[e] = acc;
      }
    }
  }

  // With T below 16 (the default max_scaling_iterations is 10) the scales of a register of rows
  // come from an in-register permute instead of a third gather.
  template <bool kSmallT>
  static void matvec_panels_impl(const PanelMatvec& a, std::size_t p0, std::size_t p1, std::size_t k0,
                                 std::size_t k1, float* acc) {
    const int levels = a.levels;
    const F qv = V::set1(a.q);
    const auto small_scales = V::small_table(a.scales);
    for (std::size_t p = p0; p < p1; ++p)
      for (std::size_t lane = 0; lane < kPanelRows; lane += W) {
        float* out = acc + (p - p0) * kPanelRows + lane;
        F sum = V::load(out);
        for (std::size_t k = k0; k < k1; ++k) {
          const float* tab = a.table + k * a.entries;
          const std::uint16_t* ix = a.index + (p * a.blocks + k) * levels * kPanelRows + lane;
          F v = V::gather(tab, V::indices_u16(ix + (levels - 1) * kPanelRows));
          for (int m = levels - 2; m >= 0; --m)
            v = V::add(V::mul(v, qv), V::gather(tab, V::indices_u16(ix + m * kPanelRows)));
          const auto t = V::indices_u8(a.t + (p * a.blocks + k) * kPanelRows + lane);
          const F s = kSmallT ? V::lookup_small(small_scales, t) : V::gather(a.scales, t);
          sum = V::add(sum, V::mul(s, v));
        }
        V::store(out, sum);
      }
  }

  static void matvec_panels(const PanelMatvec& a, std::size_t p0, std::size_t p1, std::size_t k0,
                            std::size_t k1, float* acc) {
    if (a.max_t < 16) {
      matvec_panels_impl<true>(a, p0, p1, k0, k1, acc);
    } else {
      matvec_panels_impl<false>(a, p0, p1, k0, k1, acc);
    }
  }
};

}  // namespace lowbit::coset::kernels::generic
