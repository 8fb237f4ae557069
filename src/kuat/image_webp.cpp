// WebP decoding through libwebp: still images directly, animations through the demux API's
// animation decoder (the first frame's full canvas), alpha composited.
#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>

#include "image_codecs.h"

namespace lowbit::kuat::detail {
namespace {

struct DemuxGuard {
  WebPDemuxer* demux = nullptr;
  ~DemuxGuard() { WebPDemuxDelete(demux); }
};

struct AnimGuard {
  WebPAnimDecoder* decoder = nullptr;
  ~AnimGuard() { WebPAnimDecoderDelete(decoder); }
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

// The first frame of an animation as WebPAnimDecoder composes it (PIL's reader does the same):
// RGBA on a canvas that starts transparent.
void decode_first_frame(const std::uint8_t* data, std::size_t size, const std::string& what, Image& img) {
  const WebPData bytes{data, size};
  WebPAnimDecoderOptions o;
  if (!WebPAnimDecoderOptionsInit(&o)) bad_image(what, "libwebp version mismatch");
  o.color_mode = MODE_RGBA;
  o.use_threads = 0;
  AnimGuard g{WebPAnimDecoderNew(&bytes, &o)};
  if (!g.decoder) bad_image(what, "corrupt animated WebP");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(g.decoder, &info) || info.canvas_width != img.width || info.canvas_height != img.height) {
    bad_image(what, "corrupt animated WebP (canvas size)");
  }
  std::uint8_t* frame = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(g.decoder, &frame, &timestamp) || !frame) bad_image(what, "corrupt animated WebP (first frame)");
  std::memcpy(img.pixels.data(), frame, img.pixels.size());
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
