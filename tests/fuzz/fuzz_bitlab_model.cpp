// Fuzzes the BitLab model-file reader. Random bytes almost never carry a valid CRC-32 and
// payload size, so for odd-sized inputs the harness first rewrites both to match: the fuzzer
// then reaches the layer records behind them. A model that loads must save to bytes that load
// back to the same model.
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/bitlab/model.h"
#include "lowbit/core/error.h"

namespace {
constexpr std::size_t kHeaderBytes = 32;  // magic, version, layers, in, out, payload size
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> b(data, data + size);
  if (size >= kHeaderBytes + 4 && (size & 1)) {
    const std::uint64_t payload = size - kHeaderBytes - 4;
    for (int i = 0; i < 8; ++i) b[24 + i] = static_cast<std::uint8_t>(payload >> (8 * i));
    const std::uint32_t crc = lowbit::bitlab::crc32(b.data(), size - 4);
    for (int i = 0; i < 4; ++i) b[size - 4 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
  }
  try {
    const auto model = lowbit::bitlab::BitMLPModel::from_bytes(b.data(), b.size(), "fuzz.bitlab");
    const std::vector<std::uint8_t> saved = model.to_bytes();
    const auto again = lowbit::bitlab::BitMLPModel::from_bytes(saved.data(), saved.size(), "fuzz-saved.bitlab");
    if (again.to_bytes() != saved) __builtin_trap();
  } catch (const lowbit::Error&) {
  }
  return 0;
}
