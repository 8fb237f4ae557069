// Internals of image decoding shared by the per-container files (image_jpeg.cpp,
// image_png.cpp, image_webp.cpp) and the dispatcher (image_decode.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/kuat/image.h"

namespace lowbit::kuat::detail {

[[noreturn]] void bad_image(const std::string& what, const std::string& reason);

// IoError naming the input when width x height is zero or above options.max_pixels; called
// with the header's size before anything is allocated for the pixels.
void check_pixel_limit(std::uint64_t width, std::uint64_t height, const DecodeOptions& options,
                       const std::string& what, const char* container);

// RGBA (4 bytes per pixel) to RGB (3 bytes) composited onto `background`, in place; the vector
// shrinks to 3 bytes per pixel.
void composite_rgba_in_place(std::vector<std::uint8_t>& pixels, std::size_t count, Rgb background);

// The Orientation tag (0x0112) of an EXIF block (TIFF structure, with or without the
// "Exif\0\0" prefix); 1 when it is absent, malformed or out of range.
int exif_orientation(const std::uint8_t* data, std::size_t size);

// Each decoder returns 8-bit RGB, or gray when the file is gray without transparency and
// `want_gray` is set; *orientation receives the EXIF orientation when options.exif_transpose
// is set (the JPEG decoder uses it to pick its DCT scale), else 1.
Image decode_jpeg(const std::uint8_t* data, std::size_t size, bool want_gray, const TargetSize& target,
                  const std::string& what, const DecodeOptions& options, int* orientation);
Image decode_png(const std::uint8_t* data, std::size_t size, bool want_gray, const std::string& what,
                 const DecodeOptions& options, int* orientation);
Image decode_webp(const std::uint8_t* data, std::size_t size, const std::string& what, const DecodeOptions& options,
                  int* orientation);

}  // namespace lowbit::kuat::detail
