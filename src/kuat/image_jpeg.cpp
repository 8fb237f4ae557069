// JPEG decoding through libjpeg-turbo: stored values, DCT scaling for small targets, CMYK as PIL.
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>

#include "image_codecs.h"

namespace lowbit::kuat::detail {
namespace {

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool warned = false;
  bool too_many_scans = false;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  err->mgr.format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Every scan of a progressive JPEG is a pass over the whole image, however few bytes it takes
// (an AC scan of end-of-band runs is a few bytes): a 366 KB file of 10000 scans over 4096 x 4096
// took 15 s. libjpeg has no limit of its own (TurboJPEG's TJPARAM_SCANLIMIT is this check), so
// more than kMaxJpegScans fail the image: encoders write 10 or fewer (jpeg_simple_progression),
// scan optimizers a few dozen; 100 passes cost about what decoding the image once does.
constexpr int kMaxJpegScans = 100;

// libjpeg calls this while it absorbs input, at least once per iMCU row of every scan.
void jpeg_check_scans(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegError*>(cinfo->err);
    err->too_many_scans = true;
    std::longjmp(err->jump, 1);
  }
}

// Warnings that leave every pixel as stored: junk bytes before a marker (libjpeg skips them;
// "N extraneous bytes before marker 0xd9" is common in scraped sets), an unknown JFIF revision,
// an unknown Adobe transform code (the component count decides, as in PIL). PIL reads all
// of these files.
bool jpeg_warning_is_benign(int code) {
  return code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM;
}

// libjpeg reports truncated or corrupt entropy data as warnings and fills in grey; a dataset
// converter must not silently store such images, so the first such warning fails the decode,
// at once (libjpeg would otherwise go on through every remaining scan of a broken file).
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  if (level < 0 && !err->warned && !jpeg_warning_is_benign(err->mgr.msg_code)) {
    err->warned = true;
    err->mgr.format_message(cinfo, err->message);
    std::longjmp(err->jump, 1);
  }
}

// Files libjpeg-turbo cannot decode although they are valid JPEG (12- and 16-bit samples,
// lossless and hierarchical processes) are "unsupported", not "corrupt".
bool jpeg_error_is_unsupported(int code) {
  return code == JERR_BAD_PRECISION || code == JERR_SOF_UNSUPPORTED || code == JERR_NOT_COMPILED;
}

// Destroys the decompressor on every way out (jpeg_destroy is a no-op on a zeroed struct).
struct DecompressGuard {
  jpeg_decompress_struct* cinfo;
  ~DecompressGuard() { jpeg_destroy_decompress(cinfo); }
};

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

int jpeg_exif_orientation(const jpeg_decompress_struct& cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      return exif_orientation(m->data, m->data_length);
    }
  }
  return 1;
}

// PIL reads every CMYK JPEG with Adobe's inverted polarity ("CMYK;I") and converts CMYK to RGB
// as R = (255 - K) - round((C * (255 - K)) / 255) on the un-inverted values.
void cmyk_to_rgb(const std::uint8_t* cmyk, std::size_t count, std::uint8_t* rgb) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* p = cmyk + 4 * i;
    const std::uint32_t nk = p[3];  // 255 - K, K = 255 - stored
    for (int c = 0; c < 3; ++c) {
      const std::uint32_t t = (255u - p[c]) * nk + 128u;
      rgb[3 * i + c] = static_cast<std::uint8_t>(nk - (((t >> 8) + t) >> 8));
    }
  }
}

}  // namespace

Image decode_jpeg(const std::uint8_t* data, std::size_t size, bool want_gray, const TargetSize& target,
                  const std::string& what, const DecodeOptions& options, int* orientation) {
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit_message;
  // Objects with destructors live outside the setjmp region, so a longjmp never skips one.
  const DecompressGuard guard{&cinfo};
  Image img;
  std::vector<std::uint8_t> cmyk;
  jpeg_progress_mgr progress{};
  progress.progress_monitor = jpeg_check_scans;
  if (setjmp(err.jump)) {
    if (err.too_many_scans) {
      bad_image(what, "progressive JPEG with more than " + std::to_string(kMaxJpegScans) +
                          " scans (each one is a pass over the whole image); refused");
    }
    if (err.warned) bad_image(what, std::string("corrupt JPEG: ") + err.message);
    const int code = err.mgr.msg_code;
    if (code == JERR_OUT_OF_MEMORY) bad_image(what, "out of memory while decoding the JPEG");
    if (jpeg_error_is_unsupported(code)) {
      bad_image(what, std::string("unsupported JPEG (libjpeg-turbo reads 8-bit baseline, extended, progressive and "
                                  "arithmetic-coded JPEG): ") + err.message);
    }
    bad_image(what, std::string("corrupt JPEG: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  if (options.exif_transpose) jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  check_pixel_limit(cinfo.image_width, cinfo.image_height, options, what, "JPEG");
  *orientation = options.exif_transpose ? jpeg_exif_orientation(cinfo) : 1;
  const bool cmyk_source = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  if (cmyk_source) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    cinfo.out_color_space = want_gray && cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  }
  // The DCT scale is chosen for the image as it will stand (rotated by EXIF when asked).
  const bool swapped = *orientation >= 5;
  cinfo.scale_num = swapped ? jpeg_scale_numerator(cinfo.image_height, cinfo.image_width, target)
                            : jpeg_scale_numerator(cinfo.image_width, cinfo.image_height, target);
  cinfo.scale_denom = 8;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  const std::uint32_t w = cinfo.output_width, h = cinfo.output_height, oc = cinfo.output_components;
  std::vector<std::uint8_t>& raw = cmyk_source ? cmyk : img.pixels;
  // Reserved, then grown a row at a time: memory is touched only for rows actually decoded, so
  // a truncated file claiming a large size fails at its first missing row having cost little (a
  // 632-byte JPEG claiming 13000 x 13000 cost 518 MB).
  const std::size_t row_bytes = std::size_t{w} * oc;
  raw.reserve(row_bytes * h);
  while (cinfo.output_scanline < h && !err.warned) {
    raw.resize(std::size_t{cinfo.output_scanline + 1} * row_bytes);
    JSAMPROW row = raw.data() + std::size_t{cinfo.output_scanline} * row_bytes;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) bad_image(what, "corrupt JPEG: no more scanlines");
  }
  if (err.warned) bad_image(what, std::string("corrupt JPEG: ") + err.message);
  jpeg_finish_decompress(&cinfo);
  if (err.warned) bad_image(what, std::string("corrupt JPEG: ") + err.message);
  img.height = h;
  img.width = w;
  if (cmyk_source) {
    img.channels = 3;
    img.pixels.resize(std::size_t{w} * h * 3);
    cmyk_to_rgb(cmyk.data(), std::size_t{w} * h, img.pixels.data());
  } else {
    img.channels = oc;
  }
  return img;
}

}  // namespace lowbit::kuat::detail
