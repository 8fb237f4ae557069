// Coset bindings (lowbit._native.coset): thin wrappers over include/lowbit/coset. Python
// (python/coset) allocates the outputs and passes them in, so nothing here owns memory; the
// GIL is released around every kernel.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <string>
#include <tuple>

#include "lowbit/core/error.h"
#include "lowbit/coset/hnlq.h"
#include "lowbit/coset/lattice.h"
#include "lowbit/coset/lut.h"
#include "lowbit/coset/packing.h"
#include "registry.h"

namespace nb = nanobind;
using namespace lowbit::coset;

namespace {

template <class T, class... Extra>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu, Extra...>;
template <class T, class... Extra>
using Out = nb::ndarray<T, nb::c_contig, nb::device::cpu, Extra...>;

void require_size(std::size_t got, std::size_t want, const char* what) {
  lowbit::require(got == want, std::string(what) + ": expected " + std::to_string(want) + " elements, got " +
                                   std::to_string(got));
}

template <class T>
void bind_typed(nb::module_& m) {
  m.def("closest_points", [](const std::string& lattice, In<T> x, Out<T> out, bool tie_dither) {
    const LatticeType type = parse_lattice(lattice);
    const std::size_t d = static_cast<std::size_t>(lattice_dim(type));
    lowbit::require(x.size() % d == 0, "x: size is not a multiple of the lattice dimension");
    require_size(out.size(), x.size(), "closest_points out");
    nb::gil_scoped_release release;
    closest_points<T>(type, x.data(), x.size() / d, out.data(), tie_dither);
  }, nb::arg("lattice"), nb::arg("x").noconvert(), nb::arg("out").noconvert(), nb::arg("tie_dither") = true);

  m.def("encode", [](const QuantizationConfig& c, In<T> x, Out<std::uint8_t> codes, Out<std::uint8_t> t) {
    const std::size_t d = static_cast<std::size_t>(c.dim());
    const std::size_t n = x.size() / d;
    lowbit::require(x.size() % d == 0, "x: size is not a multiple of the lattice dimension");
    require_size(codes.size(), n * c.M * d, "encode codes");
    require_size(t.size(), n, "encode T");
    EncodeStats s;
    {
      nb::gil_scoped_release release;
      s = encode<T>(c, x.data(), n, codes.data(), t.data());
    }
    return std::make_tuple(s.retried, s.overloaded);
  }, nb::arg("config"), nb::arg("x").noconvert(), nb::arg("codes").noconvert(), nb::arg("t").noconvert());

  m.def("decode", [](const QuantizationConfig& c, In<std::uint8_t> codes, In<std::uint8_t> t, Out<T> out) {
    const std::size_t d = static_cast<std::size_t>(c.dim());
    const std::size_t n = t.size();
    require_size(codes.size(), n * c.M * d, "decode b");
    require_size(out.size(), n * d, "decode out");
    nb::gil_scoped_release release;
    decode<T>(c, codes.data(), t.data(), n, out.data());
  }, nb::arg("config"), nb::arg("codes").noconvert(), nb::arg("t").noconvert(), nb::arg("out").noconvert());

  m.def("quantize_reference", [](const QuantizationConfig& c, In<T> x, Out<T> out) {
    const std::size_t d = static_cast<std::size_t>(c.dim());
    lowbit::require(x.size() % d == 0, "x: size is not a multiple of the lattice dimension");
    require_size(out.size(), x.size(), "quantize_reference out");
    nb::gil_scoped_release release;
    quantize_reference<T>(c, x.data(), x.size() / d, out.data());
  }, nb::arg("config"), nb::arg("x").noconvert(), nb::arg("out").noconvert());
}

}  // namespace

LOWBIT_BINDING(coset) {
  nb::class_<QuantizationConfig>(m, "NativeConfig", "The C++ QuantizationConfig (see include/lowbit/coset/hnlq.h).")
      .def(nb::init<>())
      .def_prop_rw("lattice", [](const QuantizationConfig& c) { return std::string(lattice_name(c.lattice)); },
                   [](QuantizationConfig& c, const std::string& s) { c.lattice = parse_lattice(s); })
      .def_rw("q", &QuantizationConfig::q)
      .def_rw("M", &QuantizationConfig::M)
      .def_rw("beta", &QuantizationConfig::beta)
      .def_rw("alpha", &QuantizationConfig::alpha)
      .def_rw("max_scaling_iterations", &QuantizationConfig::max_scaling_iterations)
      .def_rw("with_tie_dither", &QuantizationConfig::with_tie_dither)
      .def_rw("with_dither", &QuantizationConfig::with_dither)
      .def_rw("dither_seed", &QuantizationConfig::dither_seed)
      .def_rw("disable_scaling", &QuantizationConfig::disable_scaling)
      .def_rw("disable_overload_protection", &QuantizationConfig::disable_overload_protection)
      .def("validate", &QuantizationConfig::validate)
      .def("scale", [](const QuantizationConfig& c, int t) { return c.scale<double>(t); });

  m.def("lattice_dim", [](const std::string& s) { return lattice_dim(parse_lattice(s)); });
  m.def("generator_matrix", [](const std::string& s, Out<double> out) {
    const LatticeType type = parse_lattice(s);
    const int d = lattice_dim(type);
    require_size(out.size(), static_cast<std::size_t>(d * d), "generator_matrix out");
    const auto g = generator_matrix(type);
    for (int k = 0; k < d * d; ++k) out.data()[k] = g[static_cast<std::size_t>(k)];
  }, nb::arg("lattice"), nb::arg("out").noconvert());

  bind_typed<float>(m);
  bind_typed<double>(m);

  m.def("packed_bytes", [](const QuantizationConfig& c, std::size_t n) { return packed_bytes(c, n); });
  m.def("record_bits", [](const QuantizationConfig& c) { return code_layout(c).record_bits; });
  m.def("pack_codes", [](const QuantizationConfig& c, In<std::uint8_t> codes, In<std::uint8_t> t, Out<std::uint8_t> out) {
    const std::size_t n = t.size();
    require_size(codes.size(), n * c.M * c.dim(), "pack_codes b");
    require_size(out.size(), packed_bytes(c, n), "pack_codes out");
    nb::gil_scoped_release release;
    pack_codes(c, codes.data(), t.data(), n, out.data());
  }, nb::arg("config"), nb::arg("codes").noconvert(), nb::arg("t").noconvert(), nb::arg("out").noconvert());
  m.def("unpack_codes", [](const QuantizationConfig& c, In<std::uint8_t> packed, Out<std::uint8_t> codes, Out<std::uint8_t> t) {
    const std::size_t n = t.size();
    require_size(packed.size(), packed_bytes(c, n), "unpack_codes packed");
    require_size(codes.size(), n * c.M * c.dim(), "unpack_codes b");
    nb::gil_scoped_release release;
    unpack_codes(c, packed.data(), n, codes.data(), t.data());
  }, nb::arg("config"), nb::arg("packed").noconvert(), nb::arg("codes").noconvert(), nb::arg("t").noconvert());

  m.def("coset_representatives", [](const QuantizationConfig& c, Out<float> out) {
    const auto reps = coset_representatives(c);
    require_size(out.size(), reps.size(), "coset_representatives out");
    std::copy(reps.begin(), reps.end(), out.data());
  }, nb::arg("config"), nb::arg("out").noconvert());

  nb::class_<OneSidedLut>(m, "OneSidedLut")
      .def("__init__", [](OneSidedLut* self, const QuantizationConfig& c, In<float> y) {
        new (self) OneSidedLut(c, y.data(), y.size());
      }, nb::arg("config"), nb::arg("y").noconvert())
      .def_prop_ro("blocks", &OneSidedLut::blocks)
      .def_prop_ro("entries", &OneSidedLut::entries)
      .def("table", [](const OneSidedLut& l, Out<float> out) {
        require_size(out.size(), l.blocks() * l.entries(), "table out");
        std::copy(l.table(0), l.table(0) + l.blocks() * l.entries(), out.data());
      })
      .def("dot", [](const OneSidedLut& l, In<std::uint8_t> codes, In<std::uint8_t> t) {
        require_size(t.size(), l.blocks(), "dot T");
        require_size(codes.size(), l.blocks() * l.config().M * l.config().dim(), "dot b");
        return l.dot(codes.data(), t.data());
      }, nb::arg("codes").noconvert(), nb::arg("t").noconvert());

  nb::class_<TwoSidedLut>(m, "TwoSidedLut")
      .def(nb::init<const QuantizationConfig&>(), nb::arg("config"))
      .def_prop_ro("entries", &TwoSidedLut::entries)
      .def("dot", [](const TwoSidedLut& l, const QuantizationConfig& c, In<std::uint8_t> bx, In<std::uint8_t> tx,
                     In<std::uint8_t> by, In<std::uint8_t> ty) {
        require_size(ty.size(), tx.size(), "dot T_y");
        require_size(bx.size(), tx.size() * c.M * c.dim(), "dot b_x");
        require_size(by.size(), tx.size() * c.M * c.dim(), "dot b_y");
        return l.dot(bx.data(), tx.data(), by.data(), ty.data(), tx.size());
      });

  nb::class_<QuantizedMatrix>(m, "QuantizedMatrix")
      .def_static("encode", [](const QuantizationConfig& c, In<float, nb::ndim<2>> a) {
        nb::gil_scoped_release release;
        return QuantizedMatrix::encode(c, a.data(), a.shape(0), a.shape(1));
      }, nb::arg("config"), nb::arg("a").noconvert())
      .def_prop_ro("rows", &QuantizedMatrix::rows)
      .def_prop_ro("cols", &QuantizedMatrix::cols)
      .def("decode", [](const QuantizedMatrix& qm, Out<float> out) {
        require_size(out.size(), qm.rows() * qm.cols(), "decode out");
        nb::gil_scoped_release release;
        qm.decode(out.data());
      })
      .def("matvec_lut", [](const QuantizedMatrix& qm, In<float> y, Out<float> out) {
        require_size(y.size(), qm.cols(), "matvec y");
        require_size(out.size(), qm.rows(), "matvec out");
        nb::gil_scoped_release release;
        qm.matvec_lut(y.data(), out.data());
      });
}
