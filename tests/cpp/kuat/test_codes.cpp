#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/kuat/codes.h"

namespace lowbit::kuat {
namespace {

TEST(KuatCodes, IndexBits) {
  EXPECT_EQ(index_bits_for(2), 1u);
  EXPECT_EQ(index_bits_for(3), 2u);
  EXPECT_EQ(index_bits_for(512), 9u);
  EXPECT_EQ(index_bits_for(513), 10u);
  EXPECT_EQ(index_bits_for(65536), 16u);
  EXPECT_THROW(index_bits_for(1), InvalidArgument);
  EXPECT_THROW(index_bits_for(65537), InvalidArgument);
}

TEST(KuatCodes, PackUnpackRoundTripEveryWidth) {
  std::mt19937 rng(7);
  for (std::uint32_t bits = 1; bits <= 16; ++bits) {
    for (std::size_t count : {1, 3, 7, 8, 15, 17, 33, 100}) {
      std::vector<std::uint32_t> in(count), back(count);
      for (auto& v : in) v = rng() & ((1u << bits) - 1);
      std::vector<std::uint8_t> packed(packed_bytes(count, bits), 0xAB);
      pack_indices(in.data(), count, bits, packed.data());
      unpack_indices_ref(packed.data(), count, bits, back.data());
      ASSERT_EQ(in, back) << "bits=" << bits << " count=" << count;
    }
  }
}

TEST(KuatCodes, PackingIsLsbFirst) {
  std::uint32_t idx[3] = {1, 2, 3};  // 2 bits each: 01 10 11 -> 0b00111001
  std::uint8_t out[1];
  pack_indices(idx, 3, 2, out);
  EXPECT_EQ(out[0], 0b00111001);
}

TEST(KuatCodes, ReferenceDecodeGathersAndCrops) {
  ImageGeometry g{3, 5, 1, 2};  // 2x3 grid, cropped to 3x5
  std::vector<std::uint8_t> codebook(4 * 4);
  for (std::size_t i = 0; i < codebook.size(); ++i) codebook[i] = static_cast<std::uint8_t>(i);
  std::uint32_t idx[6] = {0, 1, 2, 3, 0, 1};
  std::vector<std::uint8_t> packed(packed_bytes(6, 2));
  pack_indices(idx, 6, 2, packed.data());
  std::vector<std::uint8_t> out(g.pixel_bytes());
  decode_image_hwc_ref(g, codebook.data(), 4, packed.data(), out.data());
  const std::vector<std::uint8_t> expected = {0, 1, 4, 5, 8,  2, 3, 6, 7, 10,  12, 13, 0, 1, 4};
  EXPECT_EQ(out, expected);
}

TEST(KuatCodes, DecodeRejectsOutOfRangeIndex) {
  ImageGeometry g{2, 2, 1, 2};
  std::vector<std::uint8_t> codebook(3 * 4, 0);
  std::uint32_t idx[1] = {3};
  std::uint8_t packed[1];
  pack_indices(idx, 1, 2, packed);
  std::vector<std::uint8_t> out(4);
  EXPECT_THROW(decode_image_hwc_ref(g, codebook.data(), 3, packed, out.data()), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::kuat
