// xxHash64 (Yann Collet's XXH64, seed-able), one-shot and streaming.
//
// Used for on-disk checksums (Kuat sections) and content hashes (codebook identity). The
// implementation follows the published specification and is tested against its test vectors.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit {

std::uint64_t xxhash64(const void* data, std::size_t size, std::uint64_t seed = 0) noexcept;

// Incremental form: update() in any pieces gives the same digest as one xxhash64() call.
class XxHash64 {
 public:
  explicit XxHash64(std::uint64_t seed = 0) noexcept;
  void update(const void* data, std::size_t size) noexcept;
  std::uint64_t digest() const noexcept;

 private:
  std::uint64_t acc_[4];
  std::uint64_t seed_;
  std::uint64_t total_ = 0;
  unsigned char buffer_[32];
  std::size_t buffered_ = 0;
};

}  // namespace lowbit
