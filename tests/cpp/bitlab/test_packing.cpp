#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "lowbit/bitlab/packing.h"
#include "lowbit/core/error.h"
#include "test_helpers.h"

namespace lowbit::bitlab {
namespace {

using testing::kAwkwardSizes;
using testing::random_trits;

TEST(BitlabPacking, TwoBitRoundTripsAtAwkwardSizes) {
  std::mt19937 rng(1);
  for (std::size_t rows : {1, 3, 17}) {
    for (std::size_t cols : kAwkwardSizes) {
      auto trits = random_trits(rows * cols, rng);
      PackedTernary p = pack_ternary_2bit(trits.data(), rows, cols);
      EXPECT_EQ(p.row_bytes, (cols + 255) / 256 * 64);
      std::vector<std::int8_t> back(rows * cols);
      unpack_ternary_2bit(p.view(), back.data());
      EXPECT_EQ(back, trits) << rows << "x" << cols;
    }
  }
}

TEST(BitlabPacking, TwoBitLayoutMatchesTheSpec) {
  // Weight k = 256b + 64s + j lives in byte 64b + j at bits 2s; code = trit + 1; padding code 1.
  const std::size_t cols = 300;
  std::vector<std::int8_t> trits(cols, 0);
  trits[0] = 1;      // b0 s0 j0 -> byte 0 bits 0-1 = 0b10
  trits[65] = -1;    // b0 s1 j1 -> byte 1 bits 2-3 = 0b00
  trits[255] = 1;    // b0 s3 j63 -> byte 63 bits 6-7 = 0b10
  trits[256] = -1;   // b1 s0 j0 -> byte 64 bits 0-1 = 0b00
  PackedTernary p = pack_ternary_2bit(trits.data(), 1, cols);
  ASSERT_EQ(p.row_bytes, 128u);
  EXPECT_EQ(p.data[0], 0x56);   // 01 01 01 10
  EXPECT_EQ(p.data[1], 0x51);   // 01 01 00 01
  EXPECT_EQ(p.data[63], 0x95);  // 10 01 01 01
  EXPECT_EQ(p.data[64], 0x54);  // 01 01 01 00
  EXPECT_EQ(p.data[2], 0x55);
  EXPECT_EQ(p.data[127], 0x55);  // padding weights are 0
}

TEST(BitlabPacking, RejectsNonTrits) {
  std::vector<std::int8_t> bad = {0, 1, 2};
  EXPECT_THROW(pack_ternary_2bit(bad.data(), 1, 3), InvalidArgument);
  EXPECT_THROW(pack_ternary_base3(bad.data(), 3), InvalidArgument);
}

TEST(BitlabPacking, WrapValidatesCodesAndPadding) {
  std::mt19937 rng(2);
  auto trits = random_trits(2 * 70, rng);
  PackedTernary p = pack_ternary_2bit(trits.data(), 2, 70);
  std::vector<std::uint8_t> bytes(p.data.begin(), p.data.end());
  PackedTernary ok = wrap_packed_2bit(bytes.data(), 2, 70);
  EXPECT_TRUE(std::equal(ok.data.begin(), ok.data.end(), p.data.begin()));
  auto invalid = bytes;
  invalid[3] = 0xFF;
  EXPECT_THROW(wrap_packed_2bit(invalid.data(), 2, 70), InvalidArgument);
  // Row 1 starts at byte 64; its weight 124 (>= 70, padding) is byte 60, bits 2-3: make it +1.
  auto bad_padding = bytes;
  bad_padding[64 + 60] = static_cast<std::uint8_t>((bytes[64 + 60] & ~0x0Cu) | 0x08u);
  EXPECT_THROW(wrap_packed_2bit(bad_padding.data(), 2, 70), InvalidArgument);
}

TEST(BitlabPacking, Base3RoundTripsAndIsFiveTritsPerByte) {
  std::mt19937 rng(3);
  for (std::size_t count : {1, 4, 5, 6, 99, 1000, 1001}) {
    auto trits = random_trits(count, rng);
    auto bytes = pack_ternary_base3(trits.data(), count);
    EXPECT_EQ(bytes.size(), (count + 4) / 5);
    EXPECT_EQ(bytes.size(), storage_bytes(1, count));
    std::vector<std::int8_t> back(count);
    unpack_ternary_base3(bytes.data(), bytes.size(), count, back.data());
    EXPECT_EQ(back, trits);
  }
}

TEST(BitlabPacking, Base3LayoutMatchesTheSpec) {
  std::vector<std::int8_t> trits = {-1, 0, 1, 1, -1, 0};  // codes 0 1 2 2 0 | 1 (+ four padding 1s)
  auto bytes = pack_ternary_base3(trits.data(), trits.size());
  ASSERT_EQ(bytes.size(), 2u);
  EXPECT_EQ(bytes[0], 0 + 1 * 3 + 2 * 9 + 2 * 27 + 0 * 81);
  EXPECT_EQ(bytes[1], 1 + 3 + 9 + 27 + 81);
}

TEST(BitlabPacking, Base3RejectsCorruptBytes) {
  std::vector<std::int8_t> out(10);
  std::vector<std::uint8_t> bad = {243, 0};
  EXPECT_THROW(unpack_ternary_base3(bad.data(), bad.size(), 10, out.data()), InvalidArgument);
  std::vector<std::uint8_t> short_input = {0};
  EXPECT_THROW(unpack_ternary_base3(short_input.data(), 1, 10, out.data()), InvalidArgument);
  std::vector<std::uint8_t> bad_padding = {0};  // 1 trit used, padding trits are codes 0 (= -1), not 1
  EXPECT_THROW(unpack_ternary_base3(bad_padding.data(), 1, 1, out.data()), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::bitlab
