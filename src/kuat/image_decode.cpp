// Image decoding through libjpeg-turbo, libpng (simplified API) and libwebp.
#include <png.h>
#include <webp/decode.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

namespace lowbit::kuat {
namespace {

[[noreturn]] void bad_image(const std::string& what, const std::string& reason) {
  throw IoError(io_message(what, reason));
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool warned = false;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  err->mgr.format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// libjpeg reports truncated or corrupt entropy data as warnings and fills in grey; a dataset
// converter must not silently store such images, so the first warning fails the decode.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  if (level < 0 && !err->warned) {
    err->warned = true;
    err->mgr.format_message(cinfo, err->message);
  }
}

// Smallest M/8 (M = 1..8) whose output still covers the size the target needs.
unsigned jpeg_scale_numerator(std::uint32_t w, std::uint32_t h, const TargetSize& target) {
  if (!target.active()) return 8;
  double need_w = target.width, need_h = target.height;
  if (target.mode == ResizeMode::CenterCrop) {
    const double s = std::max(double(target.width) / w, double(target.height) / h);
    need_w = w * s;
    need_h = h * s;
  }
  for (unsigned m = 1; m < 8; ++m) {
    const double sw = std::ceil(w * m / 8.0), sh = std::ceil(h * m / 8.0);
    if (sw >= need_w && sh >= need_h) return m;
  }
  return 8;
}

Image decode_jpeg(const std::uint8_t* data, std::size_t size, std::uint32_t channels, const TargetSize& target,
                  const std::string& what) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit_message;
  // Objects with destructors are declared before setjmp so a longjmp never skips their construction.
  Image img;
  std::vector<std::uint8_t> raw;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    bad_image(what, std::string("corrupt JPEG: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  if (cmyk) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  }
  cinfo.scale_num = jpeg_scale_numerator(cinfo.image_width, cinfo.image_height, target);
  cinfo.scale_denom = 8;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  const std::uint32_t w = cinfo.output_width, h = cinfo.output_height, oc = cinfo.output_components;
  raw.resize(std::size_t{w} * h * oc);
  while (cinfo.output_scanline < h) {
    JSAMPROW row = raw.data() + std::size_t{cinfo.output_scanline} * w * oc;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  const bool adobe_inverted = cinfo.saw_Adobe_marker;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (err.warned) bad_image(what, std::string("corrupt JPEG: ") + err.message);
  img.height = h;
  img.width = w;
  if (cmyk) {
    // Adobe CMYK JPEGs store inverted values: R = C * K / 255 on the stored bytes.
    img.channels = 3;
    img.pixels.resize(std::size_t{w} * h * 3);
    for (std::size_t i = 0; i < std::size_t{w} * h; ++i) {
      const std::uint8_t* p = &raw[i * 4];
      for (int c = 0; c < 3; ++c) {
        const unsigned v = adobe_inverted ? p[c] : 255u - p[c];
        const unsigned k = adobe_inverted ? p[3] : 255u - p[3];
        img.pixels[i * 3 + c] = static_cast<std::uint8_t>((v * k + 127) / 255);
      }
    }
    return channels == 3 ? img : convert_channels(img, channels);
  }
  img.channels = oc;
  img.pixels = std::move(raw);
  return img;
}

Image decode_png(const std::uint8_t* data, std::size_t size, std::uint32_t channels, const std::string& what) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, data, size)) {
    bad_image(what, std::string("corrupt PNG: ") + png.message);
  }
  png.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image img;
  img.height = png.height;
  img.width = png.width;
  img.channels = channels;
  if (png.width == 0 || png.height == 0 || std::uint64_t{png.width} * png.height > (std::uint64_t{1} << 31)) {
    png_image_free(&png);
    bad_image(what, "PNG size out of range");
  }
  img.pixels.resize(PNG_IMAGE_SIZE(png));
  png_color background{0, 0, 0};  // transparent pixels are composited onto black
  if (!png_image_finish_read(&png, &background, img.pixels.data(), 0, nullptr)) {
    const std::string msg = png.message;
    png_image_free(&png);
    bad_image(what, "corrupt PNG: " + msg);
  }
  return img;
}

Image decode_webp(const std::uint8_t* data, std::size_t size, std::uint32_t channels, const std::string& what) {
  int w = 0, h = 0;
  if (!WebPGetInfo(data, size, &w, &h) || w <= 0 || h <= 0) bad_image(what, "corrupt WebP header");
  Image img;
  img.height = static_cast<std::uint32_t>(h);
  img.width = static_cast<std::uint32_t>(w);
  img.channels = 3;
  img.pixels.resize(std::size_t(w) * h * 3);
  if (!WebPDecodeRGBInto(data, size, img.pixels.data(), img.pixels.size(), w * 3)) bad_image(what, "corrupt WebP data");
  return channels == 3 ? img : convert_channels(img, channels);
}

}  // namespace

Image decode_image(const std::uint8_t* data, std::size_t size, std::uint32_t channels, const TargetSize& target,
                   const std::string& what) {
  if (channels != 1 && channels != 3) throw InvalidArgument("channels must be 1 or 3");
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return decode_jpeg(data, size, channels, target, what);
  if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return decode_png(data, size, channels, what);
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
    return decode_webp(data, size, channels, what);
  }
  if (size == 0) bad_image(what, "file is empty");
  bad_image(what, "not a JPEG, PNG or WebP image");
}

bool image_codecs_available() noexcept { return true; }
const char* no_image_codecs_reason() noexcept { return ""; }

Image read_image_file(const std::string& path, std::uint32_t channels, const TargetSize& target) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path);
  return decode_image(bytes.data(), bytes.size(), channels, target, path);
}

}  // namespace lowbit::kuat
