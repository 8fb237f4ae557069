// Fuzzes image decoding as the converter runs it: JPEG, PNG or WebP bytes through
// decode_image (pixel limit, compositing, EXIF orientation) and then the resize to a target.
// The last byte picks the options, so seeds stay valid images; the pixel limit is small so a
// mutated header is refused instead of exhausting the fuzzer's memory.
#include <cstdint>
#include <new>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace kt = lowbit::kuat;
  const std::uint8_t knob = size ? data[size - 1] : 0;
  kt::DecodeOptions options;
  options.max_pixels = 1u << 20;
  options.background = {knob, static_cast<std::uint8_t>(knob * 7), 255};
  options.exif_transpose = (knob & 1) != 0;
  kt::TargetSize target;
  if (knob & 2) {
    target.width = 1 + knob % 37;
    target.height = 1 + (knob / 4) % 29;
    target.mode = (knob & 4) ? kt::ResizeMode::Stretch : kt::ResizeMode::CenterCrop;
  }
  const std::uint32_t channels = (knob & 8) ? 1 : 3;
  try {
    const kt::Image img = kt::decode_image(data, size, channels, target, "fuzz", options);
    if (img.pixels.size() != std::size_t{img.width} * img.height * img.channels || img.channels != channels) __builtin_trap();
    const kt::Image out = kt::fit_to_target(img, target);
    if (target.active() && (out.width != target.width || out.height != target.height)) __builtin_trap();
  } catch (const lowbit::Error&) {
  }
  return 0;
}
