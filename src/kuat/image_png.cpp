// PNG decoding through libpng's low-level API: stored values (16-bit samples: the high byte),
// no gamma, chromaticity or ICC transform, palette and tRNS expanded, alpha composited.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "image_codecs.h"

namespace lowbit::kuat::detail {
namespace {

struct PngSource {
  const std::uint8_t* data;
  std::size_t size, at;
  char message[200];
};

void png_read_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (length > src->size - src->at) png_error(png, "truncated PNG data");
  std::memcpy(out, src->data + src->at, length);
  src->at += length;
}

void png_on_error(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", message ? message : "unknown error");
  png_longjmp(png, 1);
}

// Warnings concern ancillary data (PIL ignores it too); the pixels are still right.
void png_on_warning(png_structp, png_const_charp) {}

struct ReadGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadGuard() { png_destroy_read_struct(&png, &info, nullptr); }
};

}  // namespace

Image decode_png(const std::uint8_t* data, std::size_t size, bool want_gray, const std::string& what,
                 const DecodeOptions& options, int* orientation) {
  *orientation = 1;
  PngSource src{data, size, 0, {}};
  ReadGuard g;
  Image img;
  std::vector<png_bytep> rows;
  g.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  if (!g.png) bad_image(what, "out of memory while decoding the PNG");
  g.info = png_create_info_struct(g.png);
  if (!g.info) bad_image(what, "out of memory while decoding the PNG");
  if (setjmp(png_jmpbuf(g.png))) bad_image(what, std::string("corrupt PNG: ") + src.message);
  // Our pixel limit is the one that applies (libpng's default stops at 1,000,000 per side).
  png_set_user_limits(g.png, 0x7fffffff, 0x7fffffff);
  png_set_read_fn(g.png, &src, png_read_memory);
  png_read_info(g.png, g.info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(g.png, g.info, &w, &h, &depth, &color, &interlace, nullptr, nullptr);
  check_pixel_limit(w, h, options, what, "PNG");
  bool alpha = (color & PNG_COLOR_MASK_ALPHA) != 0;
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(g.png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(g.png);
  if (png_get_valid(g.png, g.info, PNG_INFO_tRNS)) {
    png_set_tRNS_to_alpha(g.png);  // compares 16-bit keys before the high byte is taken
    alpha = true;
  }
  if (depth == 16) png_set_strip_16(g.png);  // the high byte, as PIL's "RGB;16B" rawmodes
  const bool gray_source = (color & PNG_COLOR_MASK_COLOR) == 0;
  const bool gray_out = gray_source && want_gray && !alpha;
  if (gray_source && !gray_out) png_set_gray_to_rgb(g.png);
  png_set_interlace_handling(g.png);
  png_read_update_info(g.png, g.info);
  const std::uint32_t oc = gray_out ? 1 : alpha ? 4 : 3;
  if (png_get_rowbytes(g.png, g.info) != std::size_t{w} * oc) bad_image(what, "unexpected PNG row layout");
  img.pixels.resize(std::size_t{w} * h * oc);
  rows.resize(h);
  for (std::uint32_t y = 0; y < h; ++y) rows[y] = img.pixels.data() + std::size_t{y} * w * oc;
  png_read_image(g.png, rows.data());
  // The image is complete; problems after it (a missing IEND, junk) do not change it.
  if (setjmp(png_jmpbuf(g.png)) == 0) png_read_end(g.png, g.info);
  if (options.exif_transpose) {
    png_uint_32 exif_size = 0;
    png_bytep exif = nullptr;
    if (png_get_eXIf_1(g.png, g.info, &exif_size, &exif) && exif) *orientation = exif_orientation(exif, exif_size);
  }
  img.width = w;
  img.height = h;
  img.channels = oc == 4 ? 3 : oc;
  if (oc == 4) composite_rgba_in_place(img.pixels, std::size_t{w} * h, options.background);
  return img;
}

}  // namespace lowbit::kuat::detail
