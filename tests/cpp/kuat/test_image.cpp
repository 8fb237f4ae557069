#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

namespace lowbit::kuat {
namespace {

Image gradient(std::uint32_t h, std::uint32_t w, std::uint32_t c) {
  Image img{h, w, c, std::vector<std::uint8_t>(std::size_t{h} * w * c)};
  for (std::uint32_t y = 0; y < h; ++y)
    for (std::uint32_t x = 0; x < w; ++x)
      for (std::uint32_t k = 0; k < c; ++k) img.pixels[(std::size_t{y} * w + x) * c + k] = static_cast<std::uint8_t>((x * 255) / (w - 1));
  return img;
}

TEST(KuatImage, ResizeKeepsConstantsAndLinearRamps) {
  Image flat{10, 13, 3, std::vector<std::uint8_t>(10 * 13 * 3, 77)};
  for (auto [h, w] : {std::pair{5u, 6u}, std::pair{20u, 31u}, std::pair{1u, 1u}, std::pair{3u, 13u}}) {
    const Image r = resample(flat, 0, 0, 13, 10, w, h);
    ASSERT_EQ(r.pixels.size(), std::size_t{h} * w * 3);
    for (auto v : r.pixels) ASSERT_EQ(v, 77);
  }
  // Downscaling a horizontal ramp 4x keeps it a ramp (interior within 1 level of the box mean).
  const Image ramp = gradient(8, 256, 1);
  const Image r = resample(ramp, 0, 0, 256, 8, 64, 2);
  for (std::uint32_t x = 2; x < 62; ++x) {
    double mean = 0;
    for (int k = 0; k < 4; ++k) mean += ramp.pixels[x * 4 + k];
    EXPECT_NEAR(r.pixels[x], mean / 4, 1.01) << x;
  }
}

TEST(KuatImage, CenterCropTakesTheMiddle) {
  // Left half 0, right half 255, wide image: a square crop keeps both halves symmetric.
  Image img{10, 40, 1, std::vector<std::uint8_t>(400)};
  for (std::uint32_t y = 0; y < 10; ++y)
    for (std::uint32_t x = 0; x < 40; ++x) img.pixels[y * 40 + x] = x < 20 ? 0 : 255;
  const Image c = fit_to_target(img, TargetSize{10, 10, ResizeMode::CenterCrop});
  ASSERT_EQ(c.width, 10u);
  EXPECT_EQ(c.pixels[0], 0);
  EXPECT_EQ(c.pixels[9], 255);
  const Image s = fit_to_target(img, TargetSize{10, 10, ResizeMode::Stretch});
  EXPECT_EQ(s.pixels[0], 0);
  EXPECT_EQ(s.pixels[9], 255);
}

TEST(KuatImage, ChannelConversion) {
  Image rgb{1, 2, 3, {255, 0, 0, 10, 20, 30}};
  const Image g = convert_channels(rgb, 1);
  EXPECT_EQ(g.pixels, (std::vector<std::uint8_t>{76, 18}));  // BT.601 luma, rounded
  EXPECT_EQ(convert_channels(g, 3).pixels, (std::vector<std::uint8_t>{76, 76, 76, 18, 18, 18}));
  // PIL's convert("L") fixed point, where a /1000 rounding gives one more (29, 22, 15).
  Image edge{1, 3, 3, {0, 0, 250, 0, 4, 168, 0, 8, 86}};
  EXPECT_EQ(convert_channels(edge, 1).pixels, (std::vector<std::uint8_t>{28, 21, 14}));
}

TEST(KuatImage, WithoutCodecsImageFilesFailWithTheReason) {
  if (image_codecs_available()) GTEST_SKIP() << "image codecs are built in";
  const std::uint8_t png_magic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  try {
    decode_image(png_magic, sizeof png_magic, 3, {}, "x.png");
    FAIL() << "decode_image succeeded without codecs";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("LOWBIT_IMAGE_CODECS=OFF"), std::string::npos) << e.what();
  }
  EXPECT_THROW(encode_png(Image{1, 1, 1, {0}}), IoError);
}

TEST(KuatImage, PngRoundTripAndDecodeErrors) {
  if (!image_codecs_available()) GTEST_SKIP() << "built with LOWBIT_IMAGE_CODECS=OFF";
  const Image img = gradient(5, 7, 3);
  const auto png = encode_png(img);
  const Image back = decode_image(png.data(), png.size(), 3, {}, "mem.png");
  EXPECT_EQ(back.pixels, img.pixels);
  auto cut = png;
  cut.resize(cut.size() / 2);
  EXPECT_THROW(decode_image(cut.data(), cut.size(), 3, {}, "cut.png"), IoError);
  const std::uint8_t junk[] = {1, 2, 3, 4};
  try {
    decode_image(junk, 4, 3, {}, "junk.bin");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.bin"), std::string::npos);
  }
  const std::uint8_t fake_jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0};
  EXPECT_THROW(decode_image(fake_jpeg, sizeof fake_jpeg, 3, {}, "fake.jpg"), IoError);
}

TEST(KuatImage, JpegUsesDctScalingForSmallTargets) {
  if (!image_codecs_available()) GTEST_SKIP() << "built with LOWBIT_IMAGE_CODECS=OFF";
  const std::string path = "/usr/lib/python3/dist-packages/skimage/data/hubble_deep_field.jpg";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "needs scikit-image's sample JPEG";
  const Image full = read_image_file(path, 3, {});
  const Image small = read_image_file(path, 3, TargetSize{64, 64, ResizeMode::CenterCrop});
  EXPECT_LT(small.width, full.width / 3);  // decoded at 1/4 or less of the full size
  EXPECT_GE(std::min(small.width, small.height), 64u);
  const Image truncated_source = [&] {
    auto bytes = read_whole_file(path);
    bytes.resize(bytes.size() / 2);
    try {
      decode_image(bytes.data(), bytes.size(), 3, {}, "half.jpg");
    } catch (const IoError&) {
      return Image{};
    }
    return Image{1, 1, 1, {0}};
  }();
  EXPECT_EQ(truncated_source.width, 0u) << "a truncated JPEG must not decode silently";
}

}  // namespace
}  // namespace lowbit::kuat
