// WebP decoding through libwebp: still images directly, animations through the demux API (the
// first frame composed on its canvas), alpha composited.
#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>
#include <new>

#include "image_codecs.h"

namespace lowbit::kuat::detail {
namespace {

struct DemuxGuard {
  WebPDemuxer* demux = nullptr;
  ~DemuxGuard() { WebPDemuxDelete(demux); }
};

struct IterGuard {
  WebPIterator* it;
  ~IterGuard() { WebPDemuxReleaseIterator(it); }
};

int webp_exif_orientation(const std::uint8_t* data, std::size_t size) {
  const WebPData bytes{data, size};
  DemuxGuard g{WebPDemux(&bytes)};
  if (!g.demux) return 1;
  WebPChunkIterator it;
  int orientation = 1;
  if (WebPDemuxGetChunk(g.demux, "EXIF", 1, &it)) orientation = exif_orientation(it.chunk.bytes, it.chunk.size);
  WebPDemuxReleaseChunkIterator(&it);
  return orientation;
}

// The first frame of an animation as libwebp's WebPAnimDecoder composes it (PIL's reader uses
// that): RGBA on a canvas that starts transparent black, the frame at its offset, not blended
// (the first frame is a key frame). Composed here, into `img.pixels` (canvas size x 4 bytes,
// zero): WebPAnimDecoder keeps two more canvases (12 bytes per canvas pixel in all; a 144-byte
// file with a 16000 x 10000 canvas and a 1 x 1 frame took 1.9 GB).
void decode_first_frame(const std::uint8_t* data, std::size_t size, const std::string& what, Image& img) {
  const WebPData bytes{data, size};
  DemuxGuard g{WebPDemux(&bytes)};
  if (!g.demux) bad_image(what, "corrupt animated WebP");
  if (WebPDemuxGetI(g.demux, WEBP_FF_CANVAS_WIDTH) != img.width ||
      WebPDemuxGetI(g.demux, WEBP_FF_CANVAS_HEIGHT) != img.height) {
    bad_image(what, "corrupt animated WebP (canvas size)");
  }
  WebPIterator it;
  std::memset(&it, 0, sizeof it);
  const IterGuard release{&it};
  if (!WebPDemuxGetFrame(g.demux, 1, &it)) bad_image(what, "corrupt animated WebP (first frame)");
  // The demuxer has checked that the frame lies inside the canvas; checked again before writing.
  if (it.x_offset < 0 || it.y_offset < 0 || it.width <= 0 || it.height <= 0 ||
      std::uint64_t(it.x_offset) + std::uint64_t(it.width) > img.width ||
      std::uint64_t(it.y_offset) + std::uint64_t(it.height) > img.height) {
    bad_image(what, "corrupt animated WebP (first frame outside the canvas)");
  }
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) bad_image(what, "libwebp version mismatch");
  const std::size_t stride = std::size_t{img.width} * 4;
  config.output.colorspace = MODE_RGBA;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = img.pixels.data() + std::size_t(it.y_offset) * stride + std::size_t(it.x_offset) * 4;
  config.output.u.RGBA.stride = static_cast<int>(stride);
  config.output.u.RGBA.size = stride * std::size_t(it.height - 1) + std::size_t(it.width) * 4;
  const VP8StatusCode status = WebPDecode(it.fragment.bytes, it.fragment.size, &config);
  WebPFreeDecBuffer(&config.output);  // external memory: frees nothing of ours
  if (status == VP8_STATUS_OUT_OF_MEMORY) throw std::bad_alloc();
  if (status != VP8_STATUS_OK) bad_image(what, "corrupt animated WebP (first frame)");
}

}  // namespace

Image decode_webp(const std::uint8_t* data, std::size_t size, const std::string& what, const DecodeOptions& options,
                  int* orientation) {
  WebPBitstreamFeatures f;
  if (WebPGetFeatures(data, size, &f) != VP8_STATUS_OK || f.width <= 0 || f.height <= 0) {
    bad_image(what, "corrupt WebP header");
  }
  // For extended files these are the canvas size: checked before anything is allocated.
  check_pixel_limit(static_cast<std::uint64_t>(f.width), static_cast<std::uint64_t>(f.height), options, what, "WebP");
  // A file shorter than its RIFF header says is truncated, which libwebp finds only after the
  // pixels are allocated (a 1 KB cut of a WebP claiming 13000 x 13000 cost 518 MB).
  const std::uint64_t riff_size = std::uint64_t{data[4]} | std::uint64_t{data[5]} << 8 | std::uint64_t{data[6]} << 16 |
                                  std::uint64_t{data[7]} << 24;
  if (riff_size + 8 > size) {
    bad_image(what, "truncated WebP: its RIFF header gives " + std::to_string(riff_size + 8) + " bytes, the file has " +
                        std::to_string(size));
  }
  *orientation = options.exif_transpose ? webp_exif_orientation(data, size) : 1;
  Image img;
  img.width = static_cast<std::uint32_t>(f.width);
  img.height = static_cast<std::uint32_t>(f.height);
  img.channels = 3;
  const std::size_t count = std::size_t{img.width} * img.height;
  if (f.has_animation) {
    img.pixels.resize(count * 4);
    decode_first_frame(data, size, what, img);
    composite_rgba_in_place(img.pixels, count, options.background);
  } else if (f.has_alpha) {
    img.pixels.resize(count * 4);
    if (!WebPDecodeRGBAInto(data, size, img.pixels.data(), img.pixels.size(), f.width * 4)) bad_image(what, "corrupt WebP data");
    composite_rgba_in_place(img.pixels, count, options.background);
  } else {
    img.pixels.resize(count * 3);
    if (!WebPDecodeRGBInto(data, size, img.pixels.data(), img.pixels.size(), f.width * 3)) bad_image(what, "corrupt WebP data");
  }
  return img;
}

}  // namespace lowbit::kuat::detail
