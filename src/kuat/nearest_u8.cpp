#include "lowbit/kuat/nearest_u8.h"

#include <cstring>

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

namespace kernels {

std::uint32_t nearest_u8_score_bits(std::size_t dim) {
  const std::uint64_t bound = std::uint64_t{dim} * 81154;  // max |t(c) - 2 x'.c| per byte: 16384 + 2 * 32385
  std::uint32_t bits = 2;
  while ((std::uint64_t{1} << (bits - 1)) <= bound) ++bits;
  return bits;
}

void nearest_u8_point_quads(const std::uint8_t* x, std::size_t dim, std::int32_t* quads) {
  const std::size_t n = (dim + 3) / 4;
  for (std::size_t q = 0; q < n; ++q) {
    std::uint32_t w = 0;
    for (std::size_t j = 0; j < 4 && 4 * q + j < dim; ++j) w |= std::uint32_t{std::uint8_t(x[4 * q + j] ^ 0x80u)} << (8 * j);
    quads[q] = static_cast<std::int32_t>(w);
  }
}

}  // namespace kernels

NearestCodewordU8::NearestCodewordU8(const std::uint8_t* codewords, std::uint32_t count, std::uint32_t dim)
    : count_(count), dim_(dim), quads_((dim + 3) / 4), shift_(0), num_blocks_((count + 15) / 16) {
  require(count >= 1, "NearestCodewordU8: no codewords");
  require(dim >= 1 && dim <= kMaxCodewordDim, "NearestCodewordU8: dimension " + std::to_string(dim) + " out of range");
  const std::uint32_t score_bits = kernels::nearest_u8_score_bits(dim);
  shift_ = 32 - score_bits;
  const std::size_t chunk_blocks = std::size_t{1} << shift_;
  const std::int32_t pad_score = (std::int32_t{1} << (score_bits - 1)) - 1;  // above every real score
  words_.resize(num_blocks_ * quads_ * 16);
  words_.zero();
  keys_.resize(num_blocks_ * 16);
  for (std::size_t k = 0; k < num_blocks_ * 16; ++k) {
    const std::size_t block = k / 16;
    std::int64_t t = pad_score;
    if (k < count) {
      const std::uint8_t* c = codewords + k * dim;
      t = 0;
      for (std::size_t d = 0; d < dim; ++d) t += std::int64_t{c[d]} * (std::int64_t{c[d]} - 256);
      for (std::size_t q = 0; q < quads_; ++q) {
        std::uint32_t w = 0;
        for (std::size_t j = 0; j < 4 && 4 * q + j < dim; ++j) w |= std::uint32_t{c[4 * q + j]} << (8 * j);
        words_[(block * quads_ + q) * 16 + k % 16] = static_cast<std::int32_t>(w);
      }
    }
    // t << shift, written through uint32 so a negative t shifts without undefined behaviour.
    const std::uint32_t key = (static_cast<std::uint32_t>(static_cast<std::int32_t>(t)) << shift_) |
                              static_cast<std::uint32_t>(block % chunk_blocks);
    keys_[k] = static_cast<std::int32_t>(key);
  }
}

NearestU8Layout NearestCodewordU8::layout() const {
  NearestU8Layout l;
  l.dim = dim_;
  l.quads = quads_;
  l.num_blocks = num_blocks_;
  l.shift = shift_;
  l.words = words_.data();
  l.keys = keys_.data();
  return l;
}

void NearestCodewordU8::search(const std::uint8_t* points, std::size_t n, std::uint32_t* indices) const {
  static const KernelSet<kernels::NearestU8Fn> kSet{
      kernels::nearest_u8_ref, LOWBIT_AVX2_FN(kernels::nearest_u8_avx2),
      cpu_has_vnni() ? LOWBIT_AVX512_FN(kernels::nearest_u8_avx512vnni) : nullptr};
  kSet.pick()(points, n, layout(), indices);
}

}  // namespace lowbit::kuat
