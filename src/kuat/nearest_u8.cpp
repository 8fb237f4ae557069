#include "lowbit/kuat/nearest_u8.h"

#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/kuat/nearest.h"
#include "nearest_u8_isa.h"

namespace lowbit::kuat {

namespace {
// The AVX-512 kernel uses VNNI, which the AVX-512 level does not guarantee: without it the
// AVX2 kernel runs (and is what last_dispatched_level() reports).
bool cpu_has_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}
}  // namespace

NearestCodewordU8::NearestCodewordU8(const std::uint8_t* codewords, std::uint32_t count, std::uint32_t dim)
    : count_(count), dim_(dim), pairs_((dim + 1) / 2), num_blocks_((count + 15) / 16) {
  require(count >= 1, "NearestCodewordU8: no codewords");
  require(dim >= 1 && dim <= kMaxCodewordDim, "NearestCodewordU8: dimension " + std::to_string(dim) + " out of range");
  blocks_.resize(num_blocks_ * pairs_ * 16);
  blocks_.zero();
  norms_.resize(num_blocks_ * 16);
  for (std::size_t k = 0; k < num_blocks_ * 16; ++k) norms_[k] = kernels::kPadNormU8;
  for (std::size_t k = 0; k < count; ++k) {
    const std::uint8_t* c = codewords + k * dim;
    std::int32_t norm = 0;
    for (std::size_t d = 0; d < dim; ++d) norm += std::int32_t{c[d]} * c[d];
    norms_[k] = norm;
    for (std::size_t q = 0; q < pairs_; ++q) {
      const std::int32_t hi = 2 * q + 1 < dim ? c[2 * q + 1] : 0;
      blocks_[((k / 16) * pairs_ + q) * 16 + k % 16] = static_cast<std::int32_t>(c[2 * q]) | (hi << 16);
    }
  }
}

void NearestCodewordU8::search(const std::uint8_t* points, std::size_t n, std::uint32_t* indices) const {
  static const KernelSet<kernels::NearestU8Fn> kSet{
      kernels::nearest_u8_ref, LOWBIT_AVX2_FN(kernels::nearest_u8_avx2),
      cpu_has_vnni() ? LOWBIT_AVX512_FN(kernels::nearest_u8_avx512vnni) : nullptr};
  kSet.pick()(points, n, dim_, blocks_.data(), norms_.data(), num_blocks_, indices);
}

}  // namespace lowbit::kuat
