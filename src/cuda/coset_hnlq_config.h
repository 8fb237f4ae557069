// Host side of the CUDA HNLQ kernels: a QuantizationConfig turned into the parameter block the
// per-vector code of coset_hnlq_device.h reads (internal; also used by the CPU test of that code).
#pragma once

#include <type_traits>

#include "coset/lattice_step.h"
#include "coset_hnlq_device.h"
#include "lowbit/coset/hnlq.h"
#include "lowbit/coset/lattice.h"

namespace lowbit::cuda::coset_device {

// The CPU reference's tie tolerance for the closest point of float data: the `snap` of
// make_step(1, nudge, snap = true) where lattice_step.h has one (the tie snap), else 0, so the
// kernels follow whichever reference they are built with.
template <class T, class = void>
struct CpuTieSnap {
  static T value() { return T(0); }
};
template <class T>
struct CpuTieSnap<T, std::void_t<decltype(coset::detail::make_step<T>(1.0, true, true).snap)>> {
  static T value() { return coset::detail::make_step<T>(1.0, true, true).snap; }
};

template <class T, int L>
EncodeConfig<T> make_encode_config(const coset::QuantizationConfig& cfg) {
  cfg.validate();
  EncodeConfig<T> out{};
  const T snap = CpuTieSnap<T>::value();
  out.lv = make_levels<T, L>(cfg.q, cfg.M, cfg.with_tie_dither, snap);
  out.dither_snap = snap;
  out.max_t = cfg.disable_overload_protection ? 0 : cfg.max_scaling_iterations;
  out.with_dither = cfg.with_dither;
  out.dither_seed = cfg.dither_seed;
  const auto g = coset::generator_matrix(cfg.lattice);
  for (int k = 0; k < kMaxDim * kMaxDim; ++k) out.g[k] = g[static_cast<std::size_t>(k)];
  for (int k = 0; k <= out.max_t; ++k) out.scales[k] = cfg.scale<T>(k);  // as hnlq.cpp's scale table
  return out;
}

}  // namespace lowbit::cuda::coset_device
