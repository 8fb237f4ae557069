#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/model.h"
#include "lowbit/bitlab/npy.h"
#include "lowbit/core/error.h"
#include "test_helpers.h"

namespace lowbit::bitlab {
namespace {

BitLayerSpec random_layer(std::size_t in, std::size_t out, bool relu, bool int8, std::mt19937& rng) {
  BitLayerSpec s;
  s.in_features = in;
  s.out_features = out;
  s.relu_after = relu;
  s.int8_activations = int8;
  s.activation_granularity = Granularity::PerRow;
  s.trits = testing::random_trits(in * out, rng);
  s.weight_scale = testing::random_floats(out, rng);
  for (auto& v : s.weight_scale) v = std::fabs(v);
  s.bias = testing::random_floats(out, rng);
  return s;
}

BitMLPModel small_model() {
  std::mt19937 rng(21);
  return BitMLPModel({random_layer(37, 19, true, true, rng), random_layer(19, 5, false, false, rng)});
}

std::filesystem::path temp_path(const char* name) { return std::filesystem::temp_directory_path() / name; }

TEST(BitlabModel, CrcMatchesZlib) {
  const char* text = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const std::uint8_t*>(text), 9), 0xCBF43926u);
}

TEST(BitlabModel, ForwardChainsLayersWithRelu) {
  const BitMLPModel model = small_model();
  std::mt19937 rng(22);
  auto x = testing::random_floats(3 * 37, rng);
  const auto y = model.forward(x.data(), 3);
  ASSERT_EQ(y.size(), 3u * 5u);
  // Recompute by hand with the layer API.
  std::mt19937 rng2(21);
  BitLayerSpec a = random_layer(37, 19, true, true, rng2), b = random_layer(19, 5, false, false, rng2);
  PackedTernary pa = pack_ternary_2bit(a.trits.data(), 19, 37), pb = pack_ternary_2bit(b.trits.data(), 5, 19);
  std::vector<float> h(3 * 19), expected(3 * 5);
  bitlinear_int8(x.data(), 3, pa.view(), a.weight_scale.data(), a.bias.data(), Granularity::PerRow, h.data());
  for (auto& v : h) v = v > 0.0f ? v : 0.0f;
  bitlinear_f32(h.data(), 3, pb.view(), b.weight_scale.data(), b.bias.data(), expected.data());
  EXPECT_EQ(0, std::memcmp(y.data(), expected.data(), y.size() * sizeof(float)));
}

TEST(BitlabModel, SaveLoadRoundTripsBitIdentically) {
  const BitMLPModel model = small_model();
  const auto path = temp_path("lowbit_bitlab_roundtrip.blm");
  model.save(path.string());
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  const BitMLPModel loaded = BitMLPModel::load(path.string());
  EXPECT_EQ(loaded.to_bytes(), model.to_bytes());
  std::vector<float> x(2 * 37, 0.5f);
  EXPECT_EQ(loaded.forward(x.data(), 2), model.forward(x.data(), 2));
  std::filesystem::remove(path);
}

TEST(BitlabModel, CorruptFilesAreRejected) {
  const auto bytes = small_model().to_bytes();
  EXPECT_NO_THROW(BitMLPModel::from_bytes(bytes.data(), bytes.size(), "ok"));
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{31}, bytes.size() - 1}) {
    EXPECT_THROW(BitMLPModel::from_bytes(bytes.data(), cut, "cut"), IoError) << cut;
  }
  for (std::size_t at : {std::size_t{0}, std::size_t{8}, std::size_t{40}, bytes.size() / 2, bytes.size() - 2}) {
    auto bad = bytes;
    bad[at] ^= 0x40;
    EXPECT_THROW(BitMLPModel::from_bytes(bad.data(), bad.size(), "flipped"), IoError) << at;
  }
  EXPECT_THROW(BitMLPModel::load("/nonexistent/model.blm"), IoError);
}

TEST(BitlabModel, RejectsInconsistentLayers) {
  std::mt19937 rng(23);
  EXPECT_THROW(BitMLPModel({random_layer(4, 3, true, true, rng), random_layer(4, 2, false, true, rng)}), InvalidArgument);
  EXPECT_THROW(BitMLPModel(std::vector<BitLayerSpec>{}), InvalidArgument);
}

TEST(BitlabNpy, RoundTrips) {
  FloatArray a;
  a.shape = {3, 4};
  for (int i = 0; i < 12; ++i) a.values.push_back(static_cast<float>(i) * 0.5f);
  const auto path = temp_path("lowbit_bitlab_test.npy");
  write_npy_f32(path.string(), a);
  FloatArray b = read_npy_f32(path.string());
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.values, a.values);
  std::ofstream(path, std::ios::binary) << "not numpy";
  EXPECT_THROW(read_npy_f32(path.string()), IoError);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lowbit::bitlab
