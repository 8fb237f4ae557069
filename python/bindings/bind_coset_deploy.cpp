// Deployed Coset layers (lowbit._native.coset_deploy): thin wrappers over
// include/lowbit/coset/deploy.h. Python (python/coset/deploy.py) allocates every output; the GIL
// is released around the kernels.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <string>
#include <vector>

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

// T in memory (deploy.h): t_bits 4 (nibbles) or 1 / 2 with the escapes and their int32 row
// offsets (rows + 1, from 0 to escapes.size(), non-decreasing: checked here, O(rows)).
// t_group: blocks per T (1, or 4 for D4: T then holds blocks / 4 values per row).
PackedLinearView make_view(const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes,
                           In<std::uint8_t> t, int t_bits, In<std::uint8_t> t_escapes,
                           In<std::int32_t> t_escape_start, int t_group, In<float> row_scale,
                           const std::string& what) {
  require_deployable(c, what);
  require_t_group(c, blocks, t_group, what);
  PackedLinearView v;
  v.config = c;
  v.rows = row_scale.size();
  v.blocks = blocks;
  v.t_group = t_group;
  lowbit::require(t_bits == 1 || t_bits == 2 || t_bits == 4, what + ": t_bits must be 1, 2 or 4");
  require_size(codes.size(), v.rows * deploy_code_row_bytes(c, blocks), what + " codes");
  require_size(t.size(), v.rows * deploy_t_row_bytes(blocks / static_cast<std::size_t>(t_group), t_bits), what + " T");
  v.codes = codes.data();
  v.t = t.data();
  v.row_scale = row_scale.data();
  v.t_bits = t_bits;
  if (t_bits != 4) {
    require_size(t_escape_start.size(), v.rows + 1, what + " T escape offsets");
    const std::int32_t* start = t_escape_start.data();
    lowbit::require(start[0] == 0 && static_cast<std::size_t>(start[v.rows]) == t_escapes.size(),
                    what + ": the T escape offsets must run from 0 to the number of escapes");
    for (std::size_t n = 0; n < v.rows; ++n)
      if (start[n + 1] < start[n])
        throw lowbit::InvalidArgument(what + ": the T escape offsets decrease at row " + std::to_string(n));
    v.t_escapes = t_escapes.data();
    v.t_escape_start = reinterpret_cast<const std::uint32_t*>(start);  // non-negative int32
  }
  return v;
}

}  // namespace

LOWBIT_BINDING(coset_deploy) {
  m.def("code_row_bytes", [](const QuantizationConfig& c, std::size_t blocks) { return deploy_code_row_bytes(c, blocks); });
  m.def("t_row_bytes", [](std::size_t blocks, int bits) { return deploy_t_row_bytes(blocks, bits); },
        nb::arg("blocks"), nb::arg("bits") = 4);
  // Compact in-memory T of rows x blocks T values: (bits, T bytes, escapes, int32 escape offsets).
  m.def("t_compact", [](In<std::uint8_t> t, std::size_t rows, std::size_t blocks, int bits) {
    require_size(t.size(), rows * blocks, "t_compact T");
    CompactT ct;
    {
      nb::gil_scoped_release release;
      ct = deploy_t_compact(t.data(), rows, blocks, bits);
    }
    lowbit::require(ct.escapes.size() < (std::size_t{1} << 31), "t_compact: more than 2^31 - 1 escapes");
    std::vector<std::int32_t> start(ct.escape_start.begin(), ct.escape_start.end());
    return nb::make_tuple(ct.bits, nb::bytes(reinterpret_cast<const char*>(ct.t.data()), ct.t.size()),
                          nb::bytes(reinterpret_cast<const char*>(ct.escapes.data()), ct.escapes.size()),
                          nb::bytes(reinterpret_cast<const char*>(start.data()), 4 * start.size()));
  }, nb::arg("t").noconvert(), nb::arg("rows"), nb::arg("blocks"), nb::arg("bits") = 0);
  m.def("require_deployable", [](const QuantizationConfig& c, const std::string& what) { require_deployable(c, what); });
  m.def("require_t_group", [](const QuantizationConfig& c, std::size_t blocks, int t_group, const std::string& what) {
    require_t_group(c, blocks, t_group, what);
  });
  m.def("weight_bound", [](const QuantizationConfig& c) { return deploy_weight_bound(c); });

  m.def("pack", [](const QuantizationConfig& c, std::size_t rows, std::size_t blocks, In<std::uint8_t> codes,
                   In<std::uint8_t> t, Out<std::uint8_t> codes_out, Out<std::uint8_t> t_out, int t_group) {
    require_t_group(c, blocks, t_group, "deploy pack");
    const std::size_t units = blocks / static_cast<std::size_t>(t_group);
    require_size(codes.size(), rows * blocks * c.M * c.dim(), "deploy pack b");
    require_size(t.size(), rows * units, "deploy pack T");
    require_size(codes_out.size(), rows * deploy_code_row_bytes(c, blocks), "deploy pack codes out");
    require_size(t_out.size(), rows * deploy_t_row_bytes(units), "deploy pack T out");
    nb::gil_scoped_release release;
    deploy_pack(c, rows, blocks, codes.data(), t.data(), codes_out.data(), t_out.data(), t_group);
  }, nb::arg("config"), nb::arg("rows"), nb::arg("blocks"), nb::arg("codes").noconvert(), nb::arg("t").noconvert(),
     nb::arg("codes_out").noconvert(), nb::arg("t_out").noconvert(), nb::arg("t_group") = 1);

  // deploy_encode: x rows x blocks x d (float32, rows divided by their scales) -> codes (rows x
  // blocks x M x d) and T (rows x blocks / t_group); returns (units retried, blocks still overloaded,
  // blocks clipped).
  m.def("encode", [](const QuantizationConfig& c, In<float> x, std::size_t rows, std::size_t blocks, int t_group,
                     Out<std::uint8_t> codes, Out<std::uint8_t> t) {
    require_t_group(c, blocks, t_group, "deploy encode");
    require_size(x.size(), rows * blocks * c.dim(), "deploy encode x");
    require_size(codes.size(), rows * blocks * c.M * c.dim(), "deploy encode codes");
    require_size(t.size(), rows * (blocks / static_cast<std::size_t>(t_group)), "deploy encode T");
    EncodeStats stats;
    {
      nb::gil_scoped_release release;
      stats = deploy_encode(c, x.data(), rows, blocks, t_group, codes.data(), t.data());
    }
    return nb::make_tuple(stats.retried, stats.overloaded, stats.clipped);
  }, nb::arg("config"), nb::arg("x").noconvert(), nb::arg("rows"), nb::arg("blocks"), nb::arg("t_group"),
     nb::arg("codes").noconvert(), nb::arg("t").noconvert());

  m.def("require_t", [](const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes, In<std::uint8_t> t,
                        int t_bits, In<std::uint8_t> t_escapes, In<std::int32_t> t_escape_start, int t_group,
                        In<float> row_scale, const std::string& what) {
    deploy_require_t(make_view(c, blocks, codes, t, t_bits, t_escapes, t_escape_start, t_group, row_scale, what),
                     what);
  });

  m.def("linear", [](const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes, In<std::uint8_t> t,
                     int t_bits, In<std::uint8_t> t_escapes, In<std::int32_t> t_escape_start, int t_group,
                     In<float> row_scale, nb::object bias, In<float> x, Out<float> out, const std::string& what) {
    PackedLinearView v = make_view(c, blocks, codes, t, t_bits, t_escapes, t_escape_start, t_group, row_scale, what);
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
     nb::arg("t_bits"), nb::arg("t_escapes").noconvert(), nb::arg("t_escape_start").noconvert(), nb::arg("t_group"),
     nb::arg("row_scale").noconvert(), nb::arg("bias").none(), nb::arg("x").noconvert(), nb::arg("out").noconvert(),
     nb::arg("what"));

  m.def("decode", [](const QuantizationConfig& c, std::size_t blocks, In<std::uint8_t> codes, In<std::uint8_t> t,
                     int t_bits, In<std::uint8_t> t_escapes, In<std::int32_t> t_escape_start, int t_group,
                     In<float> row_scale, Out<float> out) {
    const PackedLinearView v =
        make_view(c, blocks, codes, t, t_bits, t_escapes, t_escape_start, t_group, row_scale, "deploy decode");
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
