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

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// Walks the chunks as stored (signature checked by the caller), calling `visit(type, payload,
// length, before_idat)` for each whole chunk until one returns true or the data ends.
template <class Visit>
void walk_chunks(const std::uint8_t* data, std::size_t size, Visit visit) {
  std::size_t at = 8;
  bool before_idat = true;
  while (at + 12 <= size) {
    const std::uint32_t len = be32(data + at);
    const std::uint8_t* type = data + at + 4;
    if (len > size - at - 12) return;
    if (std::memcmp(type, "IDAT", 4) == 0) before_idat = false;
    if (visit(type, data + at + 8, len, before_idat)) return;
    at += 12 + std::size_t{len};
  }
}

// The tRNS chunk of a palette PNG as stored (before the first IDAT), or empty. libpng drops a
// tRNS longer than PLTE as invalid; PIL applies it to the indices it covers, and so do we.
std::vector<std::uint8_t> raw_palette_trns(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> out;
  walk_chunks(data, size, [&](const std::uint8_t* type, const std::uint8_t* payload, std::uint32_t len, bool before) {
    if (!before) return true;
    if (std::memcmp(type, "tRNS", 4) != 0) return false;
    out.assign(payload, payload + std::min<std::uint32_t>(len, 256));
    return true;
  });
  return out;
}

// The EXIF orientation of the eXIf chunk PIL uses: the last one before the first IDAT, else the
// last one after it. Read from the stored bytes: libpng is told to skip every ancillary chunk.
int raw_exif_orientation(const std::uint8_t* data, std::size_t size) {
  const std::uint8_t* before = nullptr;
  const std::uint8_t* after = nullptr;
  std::uint32_t before_len = 0, after_len = 0;
  walk_chunks(data, size, [&](const std::uint8_t* type, const std::uint8_t* payload, std::uint32_t len, bool is_before) {
    if (std::memcmp(type, "eXIf", 4) == 0) {
      (is_before ? before : after) = payload;
      (is_before ? before_len : after_len) = len;
    }
    return false;
  });
  if (before) return exif_orientation(before, before_len);
  return after ? exif_orientation(after, after_len) : 1;
}

// Everything the libpng read touches lives here, outside the frame that calls setjmp.
struct PngRead {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0, at = 0;
  char message[200] = {};
  // Rows libpng has decoded (over all interlace passes) and the count the image has: once they
  // are equal the image is complete and nothing more is read.
  std::uint64_t rows_seen = 0, rows_expected = 0;
  bool complete() const { return rows_expected != 0 && rows_seen >= rows_expected; }
  png_uint_32 w = 0, h = 0;
  std::uint32_t oc = 0;  // 1 (gray), 3 (RGB) or 4 (RGBA) channels out of the read
  bool palette = false;
  std::vector<std::uint8_t> pixels, index;  // palette images: one index per pixel in `index`
  std::vector<png_bytep> rows;
  std::uint8_t table[256][4];
};

void png_read_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* src = static_cast<PngRead*>(png_get_io_ptr(png));
  // After its last row libpng would inflate whatever the IDAT stream still holds, however much
  // that is (a 1 MB file can hide a gigabyte there); the image is complete, so stop reading.
  if (src->complete()) png_error(png, "image complete");
  if (length > src->size - src->at) png_error(png, "truncated PNG data");
  std::memcpy(out, src->data + src->at, length);
  src->at += length;
}

// A read "transform" that changes nothing: libpng calls it once per decoded row, before it
// moves on (and before it reads past the image data after the last row).
void png_count_row(png_structp png, png_row_infop, png_bytep) { ++static_cast<PngRead*>(png_get_io_ptr(png))->rows_seen; }

void png_on_error(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngRead*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", message ? message : "unknown error");
  png_longjmp(png, 1);
}

// Warnings concern ancillary data (PIL ignores it too); the pixels are still right.
void png_on_warning(png_structp, png_const_charp) {}

// Rows libpng decodes for a w x h image: h, or for Adam7 the rows of every pass that has pixels.
std::uint64_t decoded_rows(png_uint_32 w, png_uint_32 h, bool interlaced) {
  if (!interlaced) return h;
  std::uint64_t rows = 0;
  for (int pass = 0; pass < 7; ++pass) {
    if (PNG_PASS_COLS(w, pass) != 0) rows += PNG_PASS_ROWS(h, pass);
  }
  return rows;
}

struct ReadGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadGuard() { png_destroy_read_struct(&png, &info, nullptr); }
};

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

// Reads header and rows into `r` (stored values, palette as indices). The only function with a
// setjmp: its own locals are never changed after it, and it holds no object with a destructor.
void read_png(PngRead& r, png_structp png, png_infop info, bool want_gray, const std::string& what,
              const DecodeOptions& options) {
  if (setjmp(png_jmpbuf(png))) {
    // libpng stops reading once every row is in (png_read_memory); errors after that point
    // (extra IDAT data, a bad chunk after the image) do not change the image.
    if (r.complete()) return;
    bad_image(what, std::string("corrupt PNG: ") + r.message);
  }
  // Our pixel limit is the one that applies (libpng's default stops at 1,000,000 per side).
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  // Every ancillary chunk but tRNS is skipped unread: no text, ICC or sPLT chunk is inflated or
  // kept (1000 zTXt chunks of 8 MB each took a minute). eXIf is read from the stored bytes.
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, -1);
  png_set_read_fn(png, &r, png_read_memory);
  png_read_info(png, info);
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(png, info, &r.w, &r.h, &depth, &color, &interlace, nullptr, nullptr);
  check_pixel_limit(r.w, r.h, options, what, "PNG");
  // Deflate expands at most 1032:1, so IDAT chunks of N bytes hold at most ~1032 N bytes of
  // rows: a file too short for its header's size is refused before the pixels are allocated (a
  // 69-byte PNG claiming 13000 x 13000 cost 518 MB before failing as truncated).
  std::uint64_t idat_bytes = 0;
  walk_chunks(r.data, r.size, [&](const std::uint8_t* type, const std::uint8_t*, std::uint32_t len, bool) {
    if (std::memcmp(type, "IDAT", 4) == 0) idat_bytes += len;
    return false;
  });
  const int samples = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                      : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
  const std::uint64_t row_bytes = (std::uint64_t{r.w} * static_cast<unsigned>(samples * depth) + 7) / 8;
  if (row_bytes * r.h > 1032 * idat_bytes + 4096) {
    bad_image(what, "truncated PNG: " + std::to_string(idat_bytes) + " bytes of image data cannot hold " +
                        std::to_string(r.w) + " x " + std::to_string(r.h) + " pixels (deflate expands at most 1032:1)");
  }
  bool alpha = (color & PNG_COLOR_MASK_ALPHA) != 0;
  r.palette = color == PNG_COLOR_TYPE_PALETTE;
  bool gray_out = false;
  if (r.palette) {
    alpha = palette_table(png, info, r.data, r.size, r.table);
    if (depth < 8) png_set_packing(png);  // one index per byte
  } else {
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) {
      png_set_tRNS_to_alpha(png);  // compares 16-bit keys before the high byte is taken
      alpha = true;
    }
    if (depth == 16) png_set_strip_16(png);  // the high byte, as PIL's "RGB;16B" rawmodes
    const bool gray_source = (color & PNG_COLOR_MASK_COLOR) == 0;
    gray_out = gray_source && want_gray && !alpha;
    if (gray_source && !gray_out) png_set_gray_to_rgb(png);
  }
  png_set_interlace_handling(png);
  png_set_read_user_transform_fn(png, png_count_row);
  png_read_update_info(png, info);
  r.oc = gray_out ? 1 : alpha ? 4 : 3;
  const std::uint32_t read_channels = r.palette ? 1 : r.oc;
  if (png_get_rowbytes(png, info) != std::size_t{r.w} * read_channels) bad_image(what, "unexpected PNG row layout");
  std::vector<std::uint8_t>& target = r.palette ? r.index : r.pixels;
  target.resize(std::size_t{r.w} * r.h * read_channels);
  r.rows.resize(r.h);
  for (std::uint32_t y = 0; y < r.h; ++y) r.rows[y] = target.data() + std::size_t{y} * r.w * read_channels;
  r.rows_expected = decoded_rows(r.w, r.h, interlace != PNG_INTERLACE_NONE);
  png_read_image(png, r.rows.data());
  // Not reached when the image data ends exactly with the zlib stream and the IDAT chunk: the
  // image is complete either way (nothing after it is read).
  if (!r.complete()) bad_image(what, "corrupt PNG: not enough image data");
}

}  // namespace

Image decode_png(const std::uint8_t* data, std::size_t size, bool want_gray, const std::string& what,
                 const DecodeOptions& options, int* orientation) {
  *orientation = options.exif_transpose ? raw_exif_orientation(data, size) : 1;
  PngRead r;
  r.data = data;
  r.size = size;
  {
    ReadGuard g;
    g.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_on_error, png_on_warning);
    if (!g.png) bad_image(what, "out of memory while decoding the PNG");
    g.info = png_create_info_struct(g.png);
    if (!g.info) bad_image(what, "out of memory while decoding the PNG");
    read_png(r, g.png, g.info, want_gray, what, options);
  }
  Image img;
  const std::uint32_t oc = r.oc;
  if (r.palette) {
    img.pixels.resize(r.index.size() * oc);
    for (std::size_t i = 0; i < r.index.size(); ++i) std::memcpy(&img.pixels[i * oc], r.table[r.index[i]], oc);
    r.index = std::vector<std::uint8_t>();
  } else {
    img.pixels = std::move(r.pixels);
  }
  img.width = r.w;
  img.height = r.h;
  img.channels = oc == 4 ? 3 : oc;
  if (oc == 4) composite_rgba_in_place(img.pixels, std::size_t{r.w} * r.h, options.background);
  return img;
}

}  // namespace lowbit::kuat::detail
