// The avx2 level of lm_ops.h (bodies in lm_ops_impl.h).
#include "lm_ops_impl.h"

namespace lowbit::bitlab::kernels {
const LmOps lm_ops_avx2{dot_impl, columns_impl, rows_impl, softmax_impl, glu_impl, quantize_impl, epilogue_impl};
}  // namespace lowbit::bitlab::kernels
