// Deployed Coset layers (lowbit._native.coset_deploy): thin wrappers over
// include/lowbit/coset/deploy.h. Python (python/coset/deploy.py) allocates every output; the GIL
// is released around the kernels.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <string>

#include "lowbit/core/error.h"
#include "lowbit/coset/deploy.h"
#include "registry.h"

namespace nb = nanobind;
using namespace lowbit::coset;

namespace {

template <class T>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;
template <class T>
using Out = nb::ndarray<T, nb::c_contig, nb::device::cpu>;

void require_size(std::size_t got, std::size_t want, const std::string& what) {
  lowbit::require(got == want, what + ": expected " + std::to_string(want) + " elements, got " + std::to_string(got));
}

PackedLinearView make_view(const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes,
                           In<std::uint8_t> t, In<float> row_scale, const std::string& what) {
  require_deployable(c, what);
  PackedLinearView v;
  v.config = c;
  v.rows = row_scale.size();
  v.blocks = blocks;
  require_size(codes.size(), v.rows * deploy_code_row_bytes(c, blocks), what + " codes");
  require_size(t.size(), v.rows * deploy_t_row_bytes(blocks), what + " T");
  v.codes = codes.data();
  v.t = t.data();
  v.row_scale = row_scale.data();
  return v;
}

}  // namespace

LOWBIT_BINDING(coset_deploy) {
  m.def("code_row_bytes", [](const QuantizationConfig& c, std::size_t blocks) { return deploy_code_row_bytes(c, blocks); });
  m.def("t_row_bytes", [](std::size_t blocks) { return deploy_t_row_bytes(blocks); });
  m.def("require_deployable", [](const QuantizationConfig& c, const std::string& what) { require_deployable(c, what); });
  m.def("weight_bound", [](const QuantizationConfig& c) { return deploy_weight_bound(c); });

  m.def("pack", [](const QuantizationConfig& c, std::size_t rows, std::size_t blocks, In<std::uint8_t> codes,
                   In<std::uint8_t> t, Out<std::uint8_t> codes_out, Out<std::uint8_t> t_out) {
    require_size(codes.size(), rows * blocks * c.M * c.dim(), "deploy pack b");
    require_size(t.size(), rows * blocks, "deploy pack T");
    require_size(codes_out.size(), rows * deploy_code_row_bytes(c, blocks), "deploy pack codes out");
    require_size(t_out.size(), rows * deploy_t_row_bytes(blocks), "deploy pack T out");
    nb::gil_scoped_release release;
    deploy_pack(c, rows, blocks, codes.data(), t.data(), codes_out.data(), t_out.data());
  }, nb::arg("config"), nb::arg("rows"), nb::arg("blocks"), nb::arg("codes").noconvert(), nb::arg("t").noconvert(),
     nb::arg("codes_out").noconvert(), nb::arg("t_out").noconvert());

  m.def("require_t", [](const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes, In<std::uint8_t> t,
                        In<float> row_scale, const std::string& what) {
    deploy_require_t(make_view(c, blocks, codes, t, row_scale, what), what);
  });

  m.def("linear", [](const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes, In<std::uint8_t> t,
                     In<float> row_scale, nb::object bias, In<float> x, Out<float> out, const std::string& what) {
    PackedLinearView v = make_view(c, blocks, codes, t, row_scale, what);
    const std::size_t cols = blocks * c.dim();
    lowbit::require(x.size() % cols == 0, what + ": input size is not a multiple of " + std::to_string(cols));
    const std::size_t batch = x.size() / cols;
    require_size(out.size(), batch * v.rows, what + " out");
    In<float> b;
    if (!bias.is_none()) {
      b = nb::cast<In<float>>(bias);
      require_size(b.size(), v.rows, what + " bias");
      v.bias = b.data();
    }
    nb::gil_scoped_release release;
    try {
      packed_linear(v, x.data(), batch, out.data());
    } catch (const lowbit::InvalidArgument& e) {
      throw lowbit::InvalidArgument(what + ": " + e.what());  // name the layer
    }
  }, nb::arg("config"), nb::arg("blocks"), nb::arg("codes").noconvert(), nb::arg("t").noconvert(),
     nb::arg("row_scale").noconvert(), nb::arg("bias").none(), nb::arg("x").noconvert(), nb::arg("out").noconvert(),
     nb::arg("what"));

  m.def("decode", [](const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes, In<std::uint8_t> t,
                     In<float> row_scale, Out<float> out) {
    const PackedLinearView v = make_view(c, blocks, codes, t, row_scale, "deploy decode");
    require_size(out.size(), v.rows * blocks * c.dim(), "deploy decode out");
    nb::gil_scoped_release release;
    packed_decode(v, out.data());
  });

  m.def("t_code_lengths", [](In<std::uint8_t> t) {
    const auto lengths = t_code_lengths(t.data(), t.size());
    return nb::bytes(reinterpret_cast<const char*>(lengths.data()), lengths.size());
  });
  m.def("t_encode", [](In<std::uint8_t> t, In<std::uint8_t> lengths) {
    require_size(lengths.size(), 16, "t_encode lengths");
    const auto stream = t_encode(t.data(), t.size(), lengths.data());
    return nb::bytes(reinterpret_cast<const char*>(stream.data()), stream.size());
  });
  m.def("t_decode", [](In<std::uint8_t> stream, In<std::uint8_t> lengths, int max_t, Out<std::uint8_t> out) {
    require_size(lengths.size(), 16, "t_decode lengths");
    nb::gil_scoped_release release;
    t_decode(stream.data(), stream.size(), lengths.data(), out.size(), max_t, out.data());
  });
}
