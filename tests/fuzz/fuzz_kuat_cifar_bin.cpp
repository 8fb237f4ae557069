// Fuzzes the CIFAR-10 / CIFAR-100 binary batch reader (record size, labels) and sample loading.
#include <cstdint>

#include "kuat/source_cifar.h"
#include "lowbit/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace kt = lowbit::kuat;
  for (const bool hundred : {false, true}) {
    try {
      kt::InMemorySource src("cifar", kt::kCifarSide, kt::kCifarSide, 3);
      kt::append_cifar_binary(data, size, hundred, "fuzz.bin", src);
      if (src.size() * (kt::kCifarImageBytes + (hundred ? 2 : 1)) != size) __builtin_trap();
      const kt::Image img = src.load(src.size() - 1, 1, kt::TargetSize{});
      if (img.width != 32 || img.height != 32 || img.channels != 1) __builtin_trap();
    } catch (const lowbit::Error&) {
    }
  }
  return 0;
}
