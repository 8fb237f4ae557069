#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "lowbit/core/hash.h"

namespace lowbit {
namespace {

// The sanity buffer of the reference xxhsum: byte i is the top byte of PRIME32 * PRIME64^i.
std::vector<unsigned char> sanity_buffer(std::size_t n) {
  std::vector<unsigned char> b(n);
  std::uint64_t gen = 2654435761ULL;
  for (auto& c : b) {
    c = static_cast<unsigned char>(gen >> 56);
    gen *= 11400714785074694797ULL;
  }
  return b;
}

TEST(XxHash64, PublishedTestVectors) {
  const auto b = sanity_buffer(2367);
  const std::uint64_t p32 = 2654435761ULL;
  EXPECT_EQ(xxhash64(b.data(), 0, 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(xxhash64(b.data(), 1, 0), 0xE934A84ADB052768ULL);
  EXPECT_EQ(xxhash64(b.data(), 1, p32), 0x5014607643A9B4C3ULL);
  EXPECT_EQ(xxhash64(b.data(), 14, 0), 0x8282DCC4994E35C8ULL);
  EXPECT_EQ(xxhash64(b.data(), 14, p32), 0xC3BD6BF63DEB6DF0ULL);
  EXPECT_EQ(xxhash64(b.data(), 222, 0), 0xB641AE8CB691C174ULL);
  EXPECT_EQ(xxhash64(b.data(), 222, p32), 0x20CB8AB7AE10C14AULL);
  EXPECT_EQ(xxhash64(b.data(), 2367, 0), 0xA82418DDEC0EA581ULL);
  EXPECT_EQ(xxhash64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
}

TEST(XxHash64, StreamingMatchesOneShotForAnySplit) {
  const auto b = sanity_buffer(300);
  for (std::size_t n : {0, 1, 7, 31, 32, 33, 63, 64, 65, 100, 300}) {
    for (std::size_t piece : {1, 3, 7, 17, 32, 33}) {
      XxHash64 h(42);
      for (std::size_t i = 0; i < n; i += piece) h.update(b.data() + i, std::min(piece, n - i));
      ASSERT_EQ(h.digest(), xxhash64(b.data(), n, 42)) << n << " " << piece;
    }
  }
}

}  // namespace
}  // namespace lowbit
