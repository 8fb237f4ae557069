#include "lowbit/kuat/nearest.h"

#include <cmath>

#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "nearest_isa.h"

namespace lowbit::kuat {

NearestCodeword::NearestCodeword(const float* codewords, std::uint32_t count, std::uint32_t dim)
    : count_(count), dim_(dim), num_blocks_((count + 15) / 16) {
  require(count >= 1, "NearestCodeword: no codewords");
  require(dim >= 1 && dim <= kMaxCodewordDim, "NearestCodeword: dimension " + std::to_string(dim) + " out of range");
  blocks_.resize(num_blocks_ * dim * 16);
  blocks_.zero();
  norms_.resize(num_blocks_ * 16);
  for (std::size_t k = 0; k < num_blocks_ * 16; ++k) norms_[k] = kernels::kPadNorm;
  for (std::size_t k = 0; k < count; ++k) {
    const float* c = codewords + k * dim;
    float norm = 0.0f;
    for (std::size_t d = 0; d < dim; ++d) {
      blocks_[(k / 16) * dim * 16 + d * 16 + k % 16] = c[d];
      norm = std::fma(c[d], c[d], norm);
    }
    norms_[k] = norm;
  }
}

NearestCodeword NearestCodeword::from_uint8(const std::uint8_t* codewords, std::uint32_t count, std::uint32_t dim) {
  std::vector<float> f(std::size_t{count} * dim);
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = codewords[i];
  return NearestCodeword(f.data(), count, dim);
}

void NearestCodeword::search(const float* points, std::size_t n, std::uint32_t* indices, float* scores) const {
  static constexpr KernelSet<kernels::NearestFn> kSet{kernels::nearest_codeword_ref,
                                                      LOWBIT_AVX2_FN(kernels::nearest_codeword_avx2),
                                                      LOWBIT_AVX512_FN(kernels::nearest_codeword_avx512)};
  kSet.pick()(points, n, dim_, blocks_.data(), norms_.data(), num_blocks_, indices, scores);
}

}  // namespace lowbit::kuat
