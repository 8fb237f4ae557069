// The extension module lowbit._native: error translation plus every registered binding.
#include <Python.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.h"
#include "registry.h"

namespace nb = nanobind;

namespace lowbit::py {
namespace {
struct Entry {
  const char* name;
  BindFn fn;
};
std::vector<Entry>& entries() {
  static std::vector<Entry> list;
  return list;
}
}  // namespace

int register_binding(const char* name, BindFn fn) {
  entries().push_back({name, fn});
  return 0;
}

}  // namespace lowbit::py

NB_MODULE(_native, m) {
  m.doc() = "lowbit native core: Kuat, Coset and BitLab kernels";

  // nanobind reports objects still alive when the interpreter shuts down as "leaked". Objects
  // held by another library's module globals are: a DataLoader worker started with "spawn" keeps
  // its dataset (and so our archives and loaders) in torch's worker-info global until shutdown,
  // and then printed some 30 lines of "nanobind: leaked ..." to stderr at every worker's exit.
  // Those are not leaks; the check stays available for development (LOWBIT_LEAK_WARNINGS=1).
  const char* leak_env = std::getenv("LOWBIT_LEAK_WARNINGS");
  nb::set_leak_warnings(leak_env != nullptr && std::strcmp(leak_env, "1") == 0);

  // lowbit::Error -> ValueError / OSError / RuntimeError with the message intact.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const lowbit::Error& e) {
      PyObject* type = PyExc_RuntimeError;
      if (e.kind() == lowbit::ErrorKind::InvalidArgument) type = PyExc_ValueError;
      if (e.kind() == lowbit::ErrorKind::Io) type = PyExc_OSError;
      // Messages name files, whose names need not be UTF-8 (Latin-1 names): decode them as
      // os.fsdecode does, so the message is never lost (PyErr_SetString gave an empty one).
      const std::string_view what = e.what();
      PyObject* message = PyUnicode_DecodeUTF8(what.data(), static_cast<Py_ssize_t>(what.size()), "surrogateescape");
      if (message == nullptr) {
        PyErr_Clear();
        PyErr_SetString(type, "(error message could not be decoded)");
        return;
      }
      PyErr_SetObject(type, message);
      Py_DECREF(message);
    }
  });

  auto& list = lowbit::py::entries();
  std::sort(list.begin(), list.end(),
            [](const auto& a, const auto& b) { return std::strcmp(a.name, b.name) < 0; });
  for (const auto& entry : list) {
    if (std::strcmp(entry.name, "core") == 0) {
      entry.fn(m);
    } else {
      nb::module_ sub = m.def_submodule(entry.name);
      entry.fn(sub);
    }
  }
}
