// BitLab bindings (lowbit._native.bitlab): quantizers, packed layouts and ternary kernels.
// Thin: shapes are checked here, the C++ API does the work with the GIL released.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/model.h"
#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"
#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"
#include "registry.h"

namespace nb = nanobind;
namespace lb = lowbit::bitlab;

namespace {

template <class T>
using In1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using In2 = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <class T>
using Out = nb::ndarray<nb::numpy, T>;

// A fresh numpy array that owns its memory.
template <class T>
Out<T> new_array(std::initializer_list<std::size_t> shape, T** data) {
  std::size_t count = 1;
  for (std::size_t s : shape) count *= s;
  T* buffer = new T[count > 0 ? count : 1];
  nb::capsule owner(buffer, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  *data = buffer;
  return Out<T>(buffer, shape, owner);
}

template <class T>
Out<T> copy_to_array(const T* src, std::initializer_list<std::size_t> shape) {
  T* dst = nullptr;
  Out<T> out = new_array<T>(shape, &dst);
  std::size_t count = 1;
  for (std::size_t s : shape) count *= s;
  if (count) std::memcpy(dst, src, count * sizeof(T));
  return out;
}

lb::PackedTernaryView packed_view(const In2<std::uint8_t>& packed, std::size_t cols, const char* what) {
  lowbit::require(cols > 0, std::string(what) + ": in_features must be positive");
  lowbit::require(packed.shape(1) == lb::packed_row_bytes(cols),
                  std::string(what) + ": packed weights have " + std::to_string(packed.shape(1)) +
                      " bytes per row but " + std::to_string(cols) + " input features need " +
                      std::to_string(lb::packed_row_bytes(cols)));
  return {packed.data(), packed.shape(0), cols, packed.shape(1)};
}

void check_layer_vectors(const lb::PackedTernaryView& w, const In1<float>& scales,
                         const std::optional<In1<float>>& bias, const char* what) {
  lowbit::require(scales.shape(0) == w.rows, std::string(what) + ": weight_scale has " +
                                                 std::to_string(scales.shape(0)) + " entries, expected " +
                                                 std::to_string(w.rows));
  if (bias) {
    lowbit::require(bias->shape(0) == w.rows, std::string(what) + ": bias has " + std::to_string(bias->shape(0)) +
                                                  " entries, expected " + std::to_string(w.rows));
  }
}

void check_width(std::size_t got, std::size_t expected, const char* what) {
  lowbit::require(got == expected, std::string(what) + ": input has " + std::to_string(got) +
                                       " features but the layer expects " + std::to_string(expected));
}

}  // namespace

LOWBIT_BINDING(bitlab) {
  m.doc() = "BitLab: ternary (1.58-bit) weights, int8 activations, packed kernels";
  m.attr("BLOCK_WEIGHTS") = lb::kBlockWeights;
  m.attr("TRITS_PER_STORAGE_BYTE") = lb::kTritsPerStorageByte;

  m.def("padded_cols", &lb::padded_cols, nb::arg("cols"), "Row length rounded up to the 256-weight block.");
  m.def("packed_row_bytes", &lb::packed_row_bytes, nb::arg("cols"), "Bytes per row of the I2_S256 layout.");
  m.def("storage_bytes", &lb::storage_bytes, nb::arg("rows"), nb::arg("cols"), "Bytes of the TQ1_B3 layout.");

  m.def("quantize_weights", [](In2<float> w, const std::string& granularity) {
    const lb::Granularity g = lb::parse_granularity(granularity);
    lb::TernaryWeights q;
    {
      nb::gil_scoped_release release;
      q = lb::quantize_weights(w.data(), w.shape(0), w.shape(1), g);
    }
    return nb::make_tuple(copy_to_array(q.trits.data(), {q.rows, q.cols}), copy_to_array(q.scales.data(), {q.rows}));
  }, nb::arg("weight").noconvert(), nb::arg("granularity"),
     "(trits int8 [N, K], scales float32 [N]) with s = mean|W| per tensor or per row.");

  m.def("quantize_activations", [](In2<float> x, const std::string& granularity) {
    const lb::Granularity g = lb::parse_granularity(granularity);
    lb::QuantizedActivations q;
    {
      nb::gil_scoped_release release;
      q = lb::quantize_activations(x.data(), x.shape(0), x.shape(1), g);
    }
    std::int8_t* values = nullptr;
    auto out = new_array<std::int8_t>({q.rows, q.cols}, &values);
    for (std::size_t r = 0; r < q.rows; ++r) std::memcpy(values + r * q.cols, q.values.data() + r * q.stride, q.cols);
    return nb::make_tuple(out, copy_to_array(q.scales.data(), {q.rows}));
  }, nb::arg("x").noconvert(), nb::arg("granularity"),
     "(x_q int8 [M, K], act_scale float32 [M]) with act_scale = max|x| / 127.");

  m.def("pack_2bit", [](In2<std::int8_t> trits) {
    lb::PackedTernary p;
    {
      nb::gil_scoped_release release;
      p = lb::pack_ternary_2bit(trits.data(), trits.shape(0), trits.shape(1));
    }
    return copy_to_array(p.data.data(), {p.rows, p.row_bytes});
  }, nb::arg("trits").noconvert(), "Trits [N, K] -> I2_S256 bytes [N, padded_cols(K) / 4].");

  m.def("unpack_2bit", [](In2<std::uint8_t> packed, std::size_t cols) {
    const lb::PackedTernaryView view = packed_view(packed, cols, "unpack_2bit");
    lb::validate_packed_2bit(view);
    std::int8_t* out = nullptr;
    auto arr = new_array<std::int8_t>({view.rows, cols}, &out);
    lb::unpack_ternary_2bit(view, out);
    return arr;
  }, nb::arg("packed").noconvert(), nb::arg("cols"));

  m.def("validate_2bit", [](In2<std::uint8_t> packed, std::size_t cols) {
    lb::validate_packed_2bit(packed_view(packed, cols, "validate_2bit"));
  }, nb::arg("packed").noconvert(), nb::arg("cols"), "ValueError unless the bytes are a valid I2_S256 matrix.");

  m.def("pack_base3", [](In2<std::int8_t> trits) {
    std::vector<std::uint8_t> bytes = lb::pack_ternary_base3(trits.data(), trits.shape(0) * trits.shape(1));
    return copy_to_array(bytes.data(), {bytes.size()});
  }, nb::arg("trits").noconvert(), "Trits [N, K] -> TQ1_B3 bytes (5 trits per byte).");

  m.def("unpack_base3", [](In1<std::uint8_t> bytes, std::size_t rows, std::size_t cols) {
    std::int8_t* out = nullptr;
    auto arr = new_array<std::int8_t>({rows, cols}, &out);
    lb::unpack_ternary_base3(bytes.data(), bytes.shape(0), rows * cols, out);
    return arr;
  }, nb::arg("data").noconvert(), nb::arg("rows"), nb::arg("cols"));

  m.def("gemm_int8", [](In2<std::int8_t> xq, In2<std::uint8_t> packed, std::size_t num_threads) {
    const std::size_t M = xq.shape(0), K = xq.shape(1);
    const lb::PackedTernaryView w = packed_view(packed, K, "gemm_int8");
    std::int32_t* out = nullptr;
    auto arr = new_array<std::int32_t>({M, w.rows}, &out);
    {
      nb::gil_scoped_release release;
      lowbit::ThreadLimit limit(num_threads);
      lb::QuantizedActivations q = lb::wrap_int8_activations(xq.data(), M, K);
      lb::ternary_gemm_int8(q, w, out);
    }
    return arr;
  }, nb::arg("x_q").noconvert(), nb::arg("packed").noconvert(), nb::arg("num_threads") = 0,
     "Exact int32 x_q @ W^T for int8 x_q [M, K] and I2_S256 W; at most num_threads threads of the pool "
     "(0: all).");

  m.def("bitlinear_int8", [](In2<float> x, In2<std::uint8_t> packed, std::size_t in_features, In1<float> w_scale,
                             std::optional<In1<float>> bias, const std::string& act_granularity,
                             std::size_t num_threads) {
    const lb::Granularity g = lb::parse_granularity(act_granularity);
    const lb::PackedTernaryView w = packed_view(packed, in_features, "bitlinear_int8");
    check_width(x.shape(1), in_features, "bitlinear_int8");
    check_layer_vectors(w, w_scale, bias, "bitlinear_int8");
    float* out = nullptr;
    auto arr = new_array<float>({x.shape(0), w.rows}, &out);
    const float* b = bias ? bias->data() : nullptr;
    {
      nb::gil_scoped_release release;
      lowbit::ThreadLimit limit(num_threads);
      lb::bitlinear_int8(x.data(), x.shape(0), w, w_scale.data(), b, g, out);
    }
    return arr;
  }, nb::arg("x").noconvert(), nb::arg("packed").noconvert(), nb::arg("in_features"),
     nb::arg("weight_scale").noconvert(), nb::arg("bias").noconvert().none(), nb::arg("activation_granularity"),
     nb::arg("num_threads") = 0,
     "y = (x_q @ W_q^T) * act_scale * weight_scale + bias, in the documented float order; at most num_threads "
     "threads of the pool (0: all; the result does not depend on it).");

  m.def("bitlinear_f32", [](In2<float> x, In2<std::uint8_t> packed, std::size_t in_features, In1<float> w_scale,
                            std::optional<In1<float>> bias, std::size_t num_threads) {
    const lb::PackedTernaryView w = packed_view(packed, in_features, "bitlinear_f32");
    check_width(x.shape(1), in_features, "bitlinear_f32");
    check_layer_vectors(w, w_scale, bias, "bitlinear_f32");
    float* out = nullptr;
    auto arr = new_array<float>({x.shape(0), w.rows}, &out);
    const float* b = bias ? bias->data() : nullptr;
    {
      nb::gil_scoped_release release;
      lowbit::ThreadLimit limit(num_threads);
      lb::bitlinear_f32(x.data(), x.shape(0), w, w_scale.data(), b, out);
    }
    return arr;
  }, nb::arg("x").noconvert(), nb::arg("packed").noconvert(), nb::arg("in_features"),
     nb::arg("weight_scale").noconvert(), nb::arg("bias").noconvert().none(), nb::arg("num_threads") = 0,
     "y = (x @ W_q^T) * weight_scale + bias with additions/subtractions only, fixed summation order; at most "
     "num_threads threads of the pool (0: all).");

  nb::class_<lb::BitMLPModel>(m, "BitMLPModel", "A deployed BitMLP loaded from an LBBITMLP file (C++ inference).")
      .def_static("load", &lb::BitMLPModel::load, nb::arg("path"), "OSError if missing or corrupt.")
      .def_prop_ro("in_features", &lb::BitMLPModel::in_features)
      .def_prop_ro("out_features", &lb::BitMLPModel::out_features)
      .def_prop_ro("num_layers", &lb::BitMLPModel::num_layers)
      .def("forward", [](const lb::BitMLPModel& model, In2<float> x) {
        check_width(x.shape(1), model.in_features(), "BitMLPModel.forward");
        std::vector<float> y;
        {
          nb::gil_scoped_release release;
          y = model.forward(x.data(), x.shape(0));
        }
        return copy_to_array(y.data(), {x.shape(0), model.out_features()});
      }, nb::arg("x").noconvert(), "float32 [M, in_features] -> float32 [M, out_features].");
}
