// Built instead of image_decode.cpp when LOWBIT_IMAGE_CODECS=OFF (no libjpeg, libpng or libwebp at
// build time): every image file is refused with the reason, so the IDX, CIFAR and in-memory
// (numpy) sources still convert and the image folders fail clearly.
#include <string>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

namespace lowbit::kuat {

bool image_codecs_available() noexcept { return false; }

const char* no_image_codecs_reason() noexcept {
  return "lowbit was built without image codecs (LOWBIT_IMAGE_CODECS=OFF): JPEG, PNG and WebP files cannot be "
         "read or written; rebuild with libjpeg, libpng and libwebp installed (IDX, CIFAR and numpy sources work)";
}

Image decode_image(const std::uint8_t*, std::size_t, std::uint32_t channels, const TargetSize&,
                   const std::string& what) {
  if (channels != 1 && channels != 3) throw InvalidArgument("channels must be 1 or 3");
  throw IoError(io_message(what, no_image_codecs_reason()));
}

Image read_image_file(const std::string& path, std::uint32_t channels, const TargetSize& target) {
  return decode_image(nullptr, 0, channels, target, path);
}

}  // namespace lowbit::kuat
