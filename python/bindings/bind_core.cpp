// Core bindings: build information, SIMD control, threads, and error-translation hooks.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "lowbit/core/build_info.h"
#include "lowbit/core/distances.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"
#include "registry.h"

namespace nb = nanobind;

LOWBIT_BINDING(core) {
  m.attr("__version__") = lowbit::version();

  m.def("build_info", [] {
    lowbit::BuildInfo info = lowbit::build_info();
    nb::dict d;
    d["version"] = info.version;
    d["compiler"] = info.compiler;
    d["simd_compiled"] = info.simd_compiled;
    std::vector<std::string> available;
    for (auto l : lowbit::available_simd_levels()) available.emplace_back(lowbit::simd_level_name(l));
    d["simd_available"] = available;
    d["simd_selected"] = info.simd_selected;
    d["cuda_compiled"] = info.cuda_compiled;
    d["cuda_devices"] = info.cuda_devices;
    d["image_codecs"] = info.image_codecs;
    d["gzip"] = info.gzip;
    d["num_threads"] = info.num_threads;
    return d;
  }, "Version, compiled/available/selected SIMD levels, CUDA, thread count.");

  m.def("simd_level", [] { return std::string(lowbit::simd_level_name(lowbit::simd_level())); },
        "The SIMD level dispatched kernels use now.");
  m.def("set_simd_level", [](const std::string& name) { lowbit::set_simd_level(lowbit::parse_simd_level(name)); },
        nb::arg("level"), "Force 'scalar', 'avx2' or 'avx512' (ValueError if unavailable here).");
  m.def("available_simd_levels", [] {
    std::vector<std::string> out;
    for (auto l : lowbit::available_simd_levels()) out.emplace_back(lowbit::simd_level_name(l));
    return out;
  });
  m.def("last_dispatched_level",
        [] { return std::string(lowbit::simd_level_name(lowbit::last_dispatched_level())); },
        "The level the last dispatched kernel on this thread ran at.");
  m.def("num_threads", [] { return lowbit::default_thread_pool().size(); });

  // Small kernels exposed so Python tests can check dispatch end to end.
  m.def("_l2sqr_f32", [](nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu> a,
                         nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu> b) {
    lowbit::require(a.shape(0) == b.shape(0), "_l2sqr_f32: a and b must have the same length");
    return lowbit::l2sqr_f32(a.data(), b.data(), a.shape(0));
  }, nb::arg("a").noconvert(), nb::arg("b").noconvert());

  // Raises the given lowbit error kind from C++ so tests can check the translation.
  m.def("_raise_error", [](const std::string& kind, const std::string& message) {
    if (kind == "invalid_argument") throw lowbit::InvalidArgument(message);
    if (kind == "io") throw lowbit::IoError(message);
    if (kind == "runtime") throw lowbit::RuntimeError(message);
    throw lowbit::InvalidArgument("_raise_error: unknown kind '" + kind + "'");
  });
}
