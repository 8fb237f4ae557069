// Self-registration of per-product binding files.
//
// Each python/bindings/bind_<product>.cpp defines its bindings with
//   LOWBIT_BINDING(kuat) { m.def(...); }
// and is compiled into the one extension module lowbit._native, where the bindings land in the
// submodule lowbit._native.<product> ("core" binds at the top level). No central list to edit.
#pragma once

#include <nanobind/nanobind.h>

namespace lowbit::py {

using BindFn = void (*)(nanobind::module_&);

// Called from static initialisers; returns a dummy so it can initialise a variable.
int register_binding(const char* name, BindFn fn);

}  // namespace lowbit::py

#define LOWBIT_BINDING(name)                                                                   \
  static void lowbit_bind_##name(nanobind::module_& m);                                       \
  [[maybe_unused]] static const int lowbit_binding_registered_##name =                        \
      ::lowbit::py::register_binding(#name, &lowbit_bind_##name);                             \
  static void lowbit_bind_##name(nanobind::module_& m)
