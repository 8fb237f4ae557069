// Fuzzes the .npy float32 reader (header dictionary, shape, data size).
#include <cstdint>

#include "lowbit/bitlab/npy.h"
#include "lowbit/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const lowbit::bitlab::FloatArray a = lowbit::bitlab::parse_npy_f32(data, size, "fuzz.npy");
    std::size_t count = 1;
    for (const std::size_t d : a.shape) count *= d;
    if (count != a.values.size()) __builtin_trap();
  } catch (const lowbit::Error&) {
  }
  return 0;
}
