// Built instead of image_jpeg.cpp, image_png.cpp and image_webp.cpp when LOWBIT_IMAGE_CODECS=OFF
// (no libjpeg, libpng or libwebp at build time): the dispatcher (image_decode.cpp) still
// recognises each container, and its decoder refuses the file with the reason, so IDX, CIFAR
// and in-memory (numpy) sources convert while image folders fail clearly.
#include "image_codecs.h"

namespace lowbit::kuat::detail {

Image decode_jpeg(const std::uint8_t*, std::size_t, bool, const TargetSize&, const std::string& what,
                  const DecodeOptions&, int*) {
  bad_image(what, no_image_codecs_reason());
}

Image decode_png(const std::uint8_t*, std::size_t, bool, const std::string& what, const DecodeOptions&, int*) {
  bad_image(what, no_image_codecs_reason());
}

Image decode_webp(const std::uint8_t*, std::size_t, const std::string& what, const DecodeOptions&, int*) {
  bad_image(what, no_image_codecs_reason());
}

}  // namespace lowbit::kuat::detail
