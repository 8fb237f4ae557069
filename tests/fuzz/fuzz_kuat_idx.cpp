// Fuzzes the IDX reader: gzip or plain bytes, the images header and data, the labels file
// check, and loading samples from the resulting source.
#include <cstdint>
#include <vector>

#include "kuat/source_idx.h"
#include "lowbit/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace kt = lowbit::kuat;
  try {
    const std::vector<std::uint8_t> bytes = kt::idx_file_bytes(data, size, "fuzz.idx", UINT64_MAX);
    try {
      kt::InMemorySource labels("idx", 1, 1, 1);
      labels.labels_.assign(3, -1);
      kt::set_idx_labels(bytes, "fuzz-labels.idx", labels);
    } catch (const lowbit::Error&) {
    }
    const auto src = kt::idx_images_source(bytes, "fuzz.idx", 1u << 16);
    for (std::size_t i = 0; i < src->size() && i < 4; ++i) {
      const kt::Image img = src->load(i, 3, kt::TargetSize{8, 8, kt::ResizeMode::CenterCrop});
      if (img.width != 8 || img.height != 8 || img.channels != 3) __builtin_trap();
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
