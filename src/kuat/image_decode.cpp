// Image decoding: container detection, the pixel limit, alpha compositing, EXIF orientation.
// The per-container decoders are image_jpeg.cpp, image_png.cpp and image_webp.cpp.
#include <cstring>
#include <new>
#include <utility>

#include "image_codecs.h"
#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

namespace lowbit::kuat {
namespace detail {

void bad_image(const std::string& what, const std::string& reason) { throw IoError(io_message(what, reason)); }

void check_pixel_limit(std::uint64_t width, std::uint64_t height, const DecodeOptions& options, const std::string& what,
                       const char* container) {
  if (width == 0 || height == 0) bad_image(what, std::string(container) + " header gives an empty image");
  const std::uint64_t pixels = width * height;  // both < 2^32: no overflow
  if (pixels > options.max_pixels) {
    bad_image(what, std::string(container) + " is " + std::to_string(width) + " x " + std::to_string(height) + " = " +
                        std::to_string(pixels) + " pixels, over the limit of " + std::to_string(options.max_pixels) +
                        " (--max-pixels / max_pixels)");
  }
}

void composite_rgba_in_place(std::vector<std::uint8_t>& pixels, std::size_t count, Rgb background) {
  std::uint8_t* p = pixels.data();
  const std::uint8_t bg[3] = {background.r, background.g, background.b};
  // Output pixel i (3 bytes at 3i) never overtakes input pixel i (4 bytes at 4i).
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* s = p + 4 * i;
    std::uint8_t* d = p + 3 * i;
    const std::uint8_t a = s[3];
    if (a == 255) {
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    } else {
      const std::uint8_t r = composite_over(s[0], a, bg[0]), g = composite_over(s[1], a, bg[1]),
                         b = composite_over(s[2], a, bg[2]);
      d[0] = r;
      d[1] = g;
      d[2] = b;
    }
  }
  pixels.resize(count * 3);
}

int exif_orientation(const std::uint8_t* data, std::size_t size) {
  if (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) {
    data += 6;
    size -= 6;
  }
  if (size < 8) return 1;
  const bool little = data[0] == 'I' && data[1] == 'I';
  if (!little && !(data[0] == 'M' && data[1] == 'M')) return 1;
  auto u16 = [&](std::size_t at) {
    return little ? std::uint32_t{data[at]} | std::uint32_t{data[at + 1]} << 8
                  : std::uint32_t{data[at]} << 8 | std::uint32_t{data[at + 1]};
  };
  auto u32 = [&](std::size_t at) { return little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2); };
  if (u16(2) != 42) return 1;
  const std::uint64_t ifd = u32(4);
  if (ifd + 2 > size) return 1;
  const std::uint32_t entries = u16(static_cast<std::size_t>(ifd));
  for (std::uint32_t e = 0; e < entries; ++e) {
    const std::uint64_t at = ifd + 2 + 12ull * e;
    if (at + 12 > size) return 1;
    if (u16(at) != 0x0112) continue;
    // An integer, as PIL reads it (SHORT per the standard; some writers store LONG, SSHORT,
    // SLONG or SBYTE; of several values PIL takes the first); an unsigned BYTE PIL keeps as
    // bytes, which is no orientation to it.
    const std::uint32_t type = u16(at + 2), count = u32(at + 4);
    const std::uint64_t width = type == 6 ? 1 : type == 3 || type == 8 ? 2 : type == 4 || type == 9 ? 4 : 0;
    if (width == 0 || count == 0) return 1;
    const std::uint64_t where = width * count <= 4 ? at + 8 : u32(at + 8);  // inline, else an offset
    if (where + width > size) return 1;
    const auto w = static_cast<std::size_t>(where);
    const std::uint32_t v = width == 1 ? data[w] : width == 2 ? u16(w) : u32(w);
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

// What a file that is not JPEG, PNG or WebP is, from its first bytes (a GIF or an HTML error
// page saved as .jpg is common in scraped sets), or nullptr.
const char* other_format(const std::uint8_t* d, std::size_t n) {
  auto starts = [&](const char* magic, std::size_t len, std::size_t at = 0) {
    return n >= at + len && std::memcmp(d + at, magic, len) == 0;
  };
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "a GIF image";
  if (starts("II*\0", 4) || starts("MM\0*", 4) || starts("II+\0", 4) || starts("MM\0+", 4)) return "a TIFF image";
  if (starts("BM", 2) && n >= 18 && d[15] == 0 && d[16] == 0 && d[17] == 0 &&
      (d[14] == 12 || d[14] == 40 || d[14] == 52 || d[14] == 56 || d[14] == 64 || d[14] == 108 || d[14] == 124)) {
    return "a BMP image";
  }
  if (starts("ftypavif", 8, 4) || starts("ftypavis", 8, 4)) return "an AVIF image";
  if (starts("ftypheic", 8, 4) || starts("ftypheix", 8, 4) || starts("ftypmif1", 8, 4) || starts("ftypmsf1", 8, 4) ||
      starts("ftyphevc", 8, 4)) {
    return "a HEIF/HEIC image";
  }
  if (starts("\xff\x0a", 2) || starts("\0\0\0\x0cJXL \r\n\x87\n", 12)) return "a JPEG XL image";
  if (starts("\0\0\0\x0cjP  \r\n\x87\n", 12) || starts("\xff\x4f\xff\x51", 4)) return "a JPEG 2000 image";
  if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7' && (d[2] == '\n' || d[2] == ' ' || d[2] == '\r' || d[2] == '\t')) {
    return "a PNM (PBM/PGM/PPM) image";
  }
  if (starts("\0\0\1\0", 4) || starts("\0\0\2\0", 4)) return "an ICO/CUR image";
  if (starts("8BPS", 4)) return "a Photoshop (PSD) file";
  if (starts("RIFF", 4)) return "a RIFF file that is not WebP";
  if (starts("%PDF", 4)) return "a PDF document";
  if (starts("\x1f\x8b", 2)) return "a gzip file";
  if (starts("PK\3\4", 4)) return "a ZIP file";
  std::size_t at = starts("\xef\xbb\xbf", 3) ? 3 : 0;  // UTF-8 byte-order mark
  while (at < n && at < 256 && (d[at] == ' ' || d[at] == '\t' || d[at] == '\r' || d[at] == '\n')) ++at;
  if (at < n && d[at] == '<') return "an HTML/XML document (often an error page saved under an image name)";
  return nullptr;
}

}  // namespace detail

Rgb parse_rgb(const std::string& text) {
  unsigned v[3] = {0, 0, 0};
  std::size_t at = 0;
  for (int c = 0; c < 3; ++c) {
    std::size_t digits = 0;
    unsigned value = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9' && digits < 4) {
      value = value * 10 + static_cast<unsigned>(text[at++] - '0');
      ++digits;
    }
    const bool sep_ok = c == 2 ? at == text.size() : at < text.size() && text[at] == ',';
    if (digits == 0 || value > 255 || !sep_ok) {
      throw InvalidArgument("background must be R,G,B with each value 0..255, got '" + text + "'");
    }
    v[c] = value;
    ++at;
  }
  return Rgb{static_cast<std::uint8_t>(v[0]), static_cast<std::uint8_t>(v[1]), static_cast<std::uint8_t>(v[2])};
}

Image apply_orientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const std::uint32_t W = image.width, H = image.height, C = image.channels;
  const bool swap = orientation >= 5;
  Image out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.channels = C;
  out.pixels.resize(image.pixels.size());
  for (std::uint32_t y = 0; y < out.height; ++y) {
    for (std::uint32_t x = 0; x < out.width; ++x) {
      std::uint32_t sx = x, sy = y;
      switch (orientation) {
        case 2: sx = W - 1 - x; break;                      // FLIP_LEFT_RIGHT
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;      // ROTATE_180
        case 4: sy = H - 1 - y; break;                      // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                      // TRANSPOSE
        case 6: sx = y; sy = H - 1 - x; break;              // ROTATE_270 (90 clockwise)
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;      // TRANSVERSE
        case 8: sx = W - 1 - y; sy = x; break;              // ROTATE_90 (90 counter-clockwise)
      }
      std::memcpy(&out.pixels[(std::size_t{y} * out.width + x) * C], &image.pixels[(std::size_t{sy} * W + sx) * C], C);
    }
  }
  return out;
}

bool image_codecs_available() noexcept { return LOWBIT_IMAGE_CODECS != 0; }

const char* no_image_codecs_reason() noexcept {
  return LOWBIT_IMAGE_CODECS ? ""
                             : "lowbit was built without image codecs (LOWBIT_IMAGE_CODECS=OFF): JPEG, PNG and WebP "
                               "files cannot be read or written; rebuild with libjpeg, libpng and libwebp installed "
                               "(IDX, CIFAR and numpy sources work)";
}

Image decode_image(const std::uint8_t* data, std::size_t size, std::uint32_t channels, const TargetSize& target,
                   const std::string& what, const DecodeOptions& options) {
  if (channels != 1 && channels != 3) throw InvalidArgument("channels must be 1 or 3");
  const bool want_gray = channels == 1;
  int orientation = 1;
  Image img;
  try {
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
      img = detail::decode_jpeg(data, size, want_gray, target, what, options, &orientation);
    } else if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
      img = detail::decode_png(data, size, want_gray, what, options, &orientation);
    } else if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
      img = detail::decode_webp(data, size, what, options, &orientation);
    } else if (size == 0) {
      detail::bad_image(what, "file is empty");
    } else {
      const std::string other = detail::other_format(data, size) ? detail::other_format(data, size) : "";
      const bool image = other.size() > 6 && other.compare(other.size() - 6, 6, " image") == 0;
      detail::bad_image(what, other.empty() ? std::string("not a JPEG, PNG or WebP image")
                              : image ? other + ", not a JPEG, PNG or WebP image (the formats kuat reads; convert it first)"
                                      : other + ", not a JPEG, PNG or WebP image");
    }
    if (options.exif_transpose && orientation != 1) img = apply_orientation(img, orientation);
    // Returned by move: `cond ? img : convert_channels(...)` copied every decoded image once more
    // (the peak was twice the image).
    if (img.channels != channels) img = convert_channels(std::move(img), channels);
    return img;
  } catch (const std::bad_alloc&) {
    img = Image{};
    detail::bad_image(what, "out of memory while decoding (lower --max-pixels or --threads)");
  }
}

Image read_image_file(const std::string& path, std::uint32_t channels, const TargetSize& target,
                      const DecodeOptions& options) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = read_whole_file(path);
  } catch (const std::bad_alloc&) {
    detail::bad_image(path, "out of memory reading the file");
  }
  return decode_image(bytes.data(), bytes.size(), channels, target, path, options);
}

}  // namespace lowbit::kuat
