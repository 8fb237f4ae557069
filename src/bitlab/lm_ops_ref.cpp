// The scalar reference level of lm_ops.h (bodies in lm_ops_impl.h, kept scalar here), and the
// per-level pick.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-vectorize")
#endif
#include "lm_ops_impl.h"
#include "lowbit/core/simd.h"

namespace lowbit::bitlab::kernels {

const LmOps lm_ops_ref{dot_impl, columns_impl, rows_impl, softmax_impl, glu_impl, quantize_impl, epilogue_impl};

const LmOps& lm_ops() noexcept {
  static constexpr KernelSet<const LmOps*> kSet{&lm_ops_ref, LOWBIT_AVX2_FN(&lm_ops_avx2), LOWBIT_AVX512_FN(&lm_ops_avx512)};
  return *kSet.pick();
}

}  // namespace lowbit::bitlab::kernels
