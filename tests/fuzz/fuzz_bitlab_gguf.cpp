// Fuzzes the GGUF reader (header, metadata values and arrays, tensor table, data bounds) and the
// tensor decoders (F32, F16, TQ1_0, TQ2_0): any input either parses, and then every tensor decodes
// without reading outside the file, or raises lowbit::Error.
#include <cstdint>
#include <vector>

#include "lowbit/bitlab/gguf.h"
#include "lowbit/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = lowbit::bitlab::GgufFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz.gguf");
    for (const auto& t : f.tensors()) {
      if (t.elements() <= (std::size_t{1} << 22)) {
        const std::vector<float> v = lowbit::bitlab::GgufFile::to_float(t);
        if (v.size() != t.elements()) __builtin_trap();
      }
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
