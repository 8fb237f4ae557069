// PNG decoding through libpng's low-level API: stored values (16-bit samples: the high byte),
// no gamma, chromaticity or ICC transform, palette and tRNS expanded, alpha composited.
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

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

// The tRNS chunk of a palette PNG as stored (before the first IDAT), or empty. libpng drops a
// tRNS longer than PLTE as invalid; PIL applies it to the indices it covers, and so do we.
std::vector<std::uint8_t> raw_palette_trns(const std::uint8_t* data, std::size_t size) {
  std::size_t at = 8;
  while (at + 12 <= size) {
    const std::uint32_t len = std::uint32_t{data[at]} << 24 | std::uint32_t{data[at + 1]} << 16 |
                              std::uint32_t{data[at + 2]} << 8 | data[at + 3];
    const std::uint8_t* type = data + at + 4;
    if (len > size - at - 12) break;
    if (std::memcmp(type, "IDAT", 4) == 0) break;
    if (std::memcmp(type, "tRNS", 4) == 0) return {data + at + 8, data + at + 8 + std::min<std::uint32_t>(len, 256)};
    at += 12 + std::size_t{len};
  }
  return {};
}

struct ReadGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadGuard() { png_destroy_read_struct(&png, &info, nullptr); }
};

}  // namespace

namespace {

// Palette images are expanded here rather than by libpng, as PIL does it: indices beyond PLTE
// take PIL's default palette entry (i, i, i) (libpng gives black), and the tRNS alpha covers the
// indices it lists, also when it is longer than PLTE (libpng drops such a chunk). Fills `table`
// (RGBA per index) after png_read_info; returns whether there is a tRNS. Never calls png_error.
bool palette_table(png_structp png, png_infop info, const std::uint8_t* data, std::size_t size,
                   std::uint8_t (&table)[256][4]) {
  for (int i = 0; i < 256; ++i) {
    table[i][0] = table[i][1] = table[i][2] = static_cast<std::uint8_t>(i);
    table[i][3] = 255;
  }
  png_colorp plte = nullptr;
  int num_plte = 0;
  if ((png_get_PLTE(png, info, &plte, &num_plte) & PNG_INFO_PLTE) && plte) {
    for (int i = 0; i < num_plte && i < 256; ++i) {
      table[i][0] = plte[i].red;
      table[i][1] = plte[i].green;
      table[i][2] = plte[i].blue;
    }
  }
  png_bytep trns = nullptr;
  int num_trns = 0;
  if ((png_get_tRNS(png, info, &trns, &num_trns, nullptr) & PNG_INFO_tRNS) && trns && num_trns > 0) {
    for (int i = 0; i < num_trns && i < 256; ++i) table[i][3] = trns[i];
    return true;
  }
  const std::vector<std::uint8_t> raw = raw_palette_trns(data, size);
  for (std::size_t i = 0; i < raw.size(); ++i) table[i][3] = raw[i];
  return !raw.empty();
}

}  // namespace

Image decode_png(const std::uint8_t* data, std::size_t size, bool want_gray, const std::string& what,
                 const DecodeOptions& options, int* orientation) {
  *orientation = 1;
  PngSource src{data, size, 0, {}};
  ReadGuard g;
  Image img;
  std::vector<png_bytep> rows;
  std::vector<std::uint8_t> index;  // palette images: one index per pixel
  std::uint8_t table[256][4];
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
  const bool palette = color == PNG_COLOR_TYPE_PALETTE;
  bool gray_out = false;
  if (palette) {
    alpha = palette_table(g.png, g.info, data, size, table);
    if (depth < 8) png_set_packing(g.png);  // one index per byte
  } else {
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(g.png);
    if (png_get_valid(g.png, g.info, PNG_INFO_tRNS)) {
      png_set_tRNS_to_alpha(g.png);  // compares 16-bit keys before the high byte is taken
      alpha = true;
    }
    if (depth == 16) png_set_strip_16(g.png);  // the high byte, as PIL's "RGB;16B" rawmodes
    const bool gray_source = (color & PNG_COLOR_MASK_COLOR) == 0;
    gray_out = gray_source && want_gray && !alpha;
    if (gray_source && !gray_out) png_set_gray_to_rgb(g.png);
  }
  png_set_interlace_handling(g.png);
  png_read_update_info(g.png, g.info);
  const std::uint32_t oc = gray_out ? 1 : alpha ? 4 : 3;
  const std::uint32_t read_channels = palette ? 1 : oc;
  if (png_get_rowbytes(g.png, g.info) != std::size_t{w} * read_channels) bad_image(what, "unexpected PNG row layout");
  std::vector<std::uint8_t>& target = palette ? index : img.pixels;
  target.resize(std::size_t{w} * h * read_channels);
  rows.resize(h);
  for (std::uint32_t y = 0; y < h; ++y) rows[y] = target.data() + std::size_t{y} * w * read_channels;
  png_read_image(g.png, rows.data());
  // The image is complete; problems after it (a missing IEND, junk) do not change it.
  if (setjmp(png_jmpbuf(g.png)) == 0) png_read_end(g.png, g.info);
  if (options.exif_transpose) {
    png_uint_32 exif_size = 0;
    png_bytep exif = nullptr;
    if (png_get_eXIf_1(g.png, g.info, &exif_size, &exif) && exif) *orientation = exif_orientation(exif, exif_size);
  }
  if (palette) {
    img.pixels.resize(index.size() * oc);
    for (std::size_t i = 0; i < index.size(); ++i) std::memcpy(&img.pixels[i * oc], table[index[i]], oc);
    index = std::vector<std::uint8_t>();
  }
  img.width = w;
  img.height = h;
  img.channels = oc == 4 ? 3 : oc;
  if (oc == 4) composite_rgba_in_place(img.pixels, std::size_t{w} * h, options.background);
  return img;
}

}  // namespace lowbit::kuat::detail
