// BitMLPModel: validation and inference (the file format lives in model_file.cpp).
#include "lowbit/bitlab/model.h"

#include <algorithm>
#include <string>

#include "lowbit/bitlab/gemm.h"
#include "lowbit/core/error.h"

namespace lowbit::bitlab {

BitMLPModel::BitMLPModel(std::vector<BitLayerSpec> layers) {
  require(!layers.empty(), "BitMLPModel: a model needs at least one layer");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    BitLayerSpec& s = layers[i];
    const std::string where = "BitMLPModel: layer " + std::to_string(i);
    require(s.in_features > 0 && s.out_features > 0, where + " has an empty shape");
    require(s.trits.size() == s.in_features * s.out_features, where + ": trits do not match its shape");
    require(s.weight_scale.size() == s.out_features, where + ": weight_scale does not match out_features");
    require(s.bias.empty() || s.bias.size() == s.out_features, where + ": bias does not match out_features");
    if (i > 0) {
      require(s.in_features == layers[i - 1].out_features,
              where + " takes " + std::to_string(s.in_features) + " features but the previous layer gives " +
                  std::to_string(layers[i - 1].out_features));
    }
    PackedTernary packed = pack_ternary_2bit(s.trits.data(), s.out_features, s.in_features);
    layers_.push_back({std::move(s), std::move(packed)});
  }
}

std::vector<float> BitMLPModel::forward(const float* x, std::size_t rows) const {
  require(rows > 0, "BitMLPModel::forward: no input rows");
  std::vector<float> current(x, x + rows * in_features());
  std::vector<float> next;
  for (const Layer& layer : layers_) {
    const BitLayerSpec& s = layer.spec;
    next.assign(rows * s.out_features, 0.0f);
    const float* bias = s.bias.empty() ? nullptr : s.bias.data();
    if (s.int8_activations) {
      bitlinear_int8(current.data(), rows, layer.packed.view(), s.weight_scale.data(), bias,
                     s.activation_granularity, next.data());
    } else {
      bitlinear_f32(current.data(), rows, layer.packed.view(), s.weight_scale.data(), bias, next.data());
    }
    if (s.relu_after) {
      for (float& v : next) v = v > 0.0f ? v : 0.0f;
    }
    current.swap(next);
  }
  return current;
}

}  // namespace lowbit::bitlab
