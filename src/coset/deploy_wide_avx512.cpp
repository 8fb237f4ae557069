// AVX-512 level of the wide path's row kernel (deploy_generic.h): the scalar twin's source
// compiled with this file's ISA flags (FMA in hardware, vectorised integer products; no FP contraction).
#include "deploy_generic.h"
#include "deploy_wide_dot.h"

namespace lowbit::coset::generic {

void wide_dot_avx512(int d, const std::int32_t* w, const float* s, const std::int8_t* xq, std::size_t blocks,
                    std::size_t rows, float s0, float* out) {
  wide_dot_dispatch(d, w, s, xq, blocks, rows, s0, out);
}

}  // namespace lowbit::coset::generic
