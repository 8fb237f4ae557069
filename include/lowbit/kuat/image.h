// Images for the converter: decoding (libjpeg-turbo, libpng, libwebp), channel conversion,
// antialiased resizing, and PNG output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::kuat {

struct Image {
  std::uint32_t height = 0, width = 0, channels = 0;
  std::vector<std::uint8_t> pixels;  // HWC, height * width * channels bytes
};

enum class ResizeMode { CenterCrop, Stretch };

// Parses "crop" / "center-crop" / "stretch"; InvalidArgument otherwise.
ResizeMode parse_resize_mode(const std::string& name);
const char* resize_mode_name(ResizeMode mode);

// The size an image is brought to, and how.
struct TargetSize {
  std::uint32_t width = 0, height = 0;  // 0 x 0: keep the native size
  ResizeMode mode = ResizeMode::CenterCrop;
  bool active() const { return width > 0 && height > 0; }
};

// PIL's decompression-bomb *error* threshold (2 * Image.MAX_IMAGE_PIXELS): the default limit.
constexpr std::uint64_t kDefaultMaxPixels = 2ull * 89478485ull;

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// How a file's stored values become pixels; the rule is written in docs/kuat.md ("Image
// pixels"): stored values (16-bit samples: the high byte; no gamma, chromaticity or ICC
// transform), palette expanded, transparent and translucent pixels composited onto
// `background` (PIL's Image.alpha_composite, integer-exact), the first frame of an animation.
struct DecodeOptions {
  std::uint64_t max_pixels = kDefaultMaxPixels;  // width * height above this: refused before any allocation
  Rgb background;                                // black by default
  bool exif_transpose = false;                   // apply the EXIF orientation (PIL's ImageOps.exif_transpose)
};

// Parses "R,G,B" (each 0..255); InvalidArgument otherwise.
Rgb parse_rgb(const std::string& text);

// One channel of `value` with opacity `alpha` over an opaque `background`, exactly as PIL's
// Image.alpha_composite rounds it.
inline std::uint8_t composite_over(std::uint8_t value, std::uint8_t alpha, std::uint8_t background) {
  const std::uint32_t x = std::uint32_t{value} * alpha + std::uint32_t{background} * (255u - alpha);
  const std::uint32_t t = (x << 7) + (0x80u << 7);
  return static_cast<std::uint8_t>((((t >> 8) + t) >> 8) >> 7);
}

// Decodes a JPEG, PNG or WebP (detected from its first bytes) into `channels` (1 or 3)
// channels by the rule of DecodeOptions (1 channel: the RGB result's luma, convert_channels).
// With an active target, JPEGs are decoded at the smallest DCT scale (M/8) that still leaves at
// least the target's resolution, so large photos decode much faster. Throws IoError("'what':
// reason") for unknown, truncated, corrupt or over-limit data and when memory runs out.
Image decode_image(const std::uint8_t* data, std::size_t size, std::uint32_t channels, const TargetSize& target,
                   const std::string& what, const DecodeOptions& options = {});
Image read_image_file(const std::string& path, std::uint32_t channels, const TargetSize& target,
                      const DecodeOptions& options = {});

// EXIF orientation (1..8) as PIL's ImageOps.exif_transpose applies it; 1 and unknown values
// return the image unchanged.
Image apply_orientation(const Image& image, int orientation);

// False in a build without image codecs (LOWBIT_IMAGE_CODECS=OFF): decode_image, read_image_file
// and encode_png then throw IoError with no_image_codecs_reason(), and so does opening an
// "images" or "imagenet" source.
bool image_codecs_available() noexcept;
const char* no_image_codecs_reason() noexcept;

// Grayscale <-> RGB. RGB -> gray is PIL's convert("L") exactly: the ITU-R BT.601 luma in 16-bit
// fixed point, (19595 R + 38470 G + 7471 B + 32768) >> 16.
// Takes the image by value: a temporary (or std::move) that already has `channels` is returned
// as it is, without a copy.
Image convert_channels(Image image, std::uint32_t channels);

// Antialiased bicubic resampling of the box [x0, x1) x [y0, y1) of `image` to width x height.
Image resample(const Image& image, double x0, double y0, double x1, double y1, std::uint32_t width,
               std::uint32_t height);
// Applies a target: stretch to it, or scale the shorter side to it and crop the centre.
// Returns the image unchanged when the target is inactive or already met (a temporary or
// std::move is then returned without a copy: at native size the decoded image is never doubled).
Image fit_to_target(Image image, const TargetSize& target);

std::vector<std::uint8_t> encode_png(const Image& image);
// Writes a PNG through a temporary file and a rename.
void write_png(const std::string& path, const Image& image);
// Writes bytes to `path` through a temporary file and a rename (IoError naming the path).
void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> read_whole_file(const std::string& path);

}  // namespace lowbit::kuat
