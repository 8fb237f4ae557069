// A deployed BitMLP on disk and in memory: load, save and run it without Python.
//
// File format "LBBITMLP" version 1, all integers little-endian (spec: docs/bitlab.md):
//   header   char magic[8] = "LBBITMLP"; u32 version = 1; u32 num_layers;
//            u32 in_features; u32 out_features; u64 payload_bytes (layer records only)
//   layer    u32 in; u32 out; u8 activation_dtype (0 int8, 1 float32);
//            u8 activation_granularity (0 per_tensor, 1 per_channel); u8 has_bias; u8 relu_after;
//            u32 reserved = 0; f32 weight_scale[out]; f32 bias[out] if has_bias;
//            u8 trits[ceil(in * out / 5)] in the TQ1_B3 layout (packing.h)
//   trailer  u32 CRC-32 (IEEE 802.3, as zlib.crc32) of every byte before it
// A layer's output feeds the next (ReLU first when relu_after); the last layer's is the model's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"

namespace lowbit::bitlab {

inline constexpr char kModelMagic[8] = {'L', 'B', 'B', 'I', 'T', 'M', 'L', 'P'};
inline constexpr std::uint32_t kModelVersion = 1;

struct BitLayerSpec {
  std::size_t in_features = 0;
  std::size_t out_features = 0;
  bool int8_activations = true;
  Granularity activation_granularity = Granularity::PerTensor;
  bool relu_after = false;
  std::vector<std::int8_t> trits;  // out x in, row-major
  std::vector<float> weight_scale; // out
  std::vector<float> bias;         // out, or empty
};

class BitMLPModel {
 public:
  // Validates shapes and chaining; InvalidArgument otherwise.
  explicit BitMLPModel(std::vector<BitLayerSpec> layers);
  BitMLPModel(BitMLPModel&&) noexcept = default;
  BitMLPModel& operator=(BitMLPModel&&) noexcept = default;
  BitMLPModel(const BitMLPModel&) = delete;  // owns packed weights: move it
  BitMLPModel& operator=(const BitMLPModel&) = delete;

  // IoError when the file cannot be read or is not a valid model (bad magic, version, sizes, checksum).
  static BitMLPModel load(const std::string& path);
  static BitMLPModel from_bytes(const std::uint8_t* data, std::size_t size, const std::string& name);
  std::vector<std::uint8_t> to_bytes() const;
  // Writes path.tmp then renames it over path: never a half-written model.
  void save(const std::string& path) const;

  std::size_t in_features() const noexcept { return layers_.front().spec.in_features; }
  std::size_t out_features() const noexcept { return layers_.back().spec.out_features; }
  std::size_t num_layers() const noexcept { return layers_.size(); }

  // x is rows x in_features float32; returns rows x out_features.
  std::vector<float> forward(const float* x, std::size_t rows) const;

 private:
  struct Layer {
    BitLayerSpec spec;
    PackedTernary packed;
  };
  std::vector<Layer> layers_;
};

// CRC-32 (IEEE, reflected, as zlib.crc32).
std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0) noexcept;

}  // namespace lowbit::bitlab
