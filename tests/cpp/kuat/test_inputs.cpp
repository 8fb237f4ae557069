// The input rules of docs/kuat.md ("Rules for inputs") at the C++ level: the decoding helpers,
// the pixel limit, folder scanning, CIFAR binary records and IDX bounds. The sweeps against PIL
// are in tests/python/test_kuat_decode.py.
#include <gtest/gtest.h>
#include <unistd.h>
#if __has_include(<zlib.h>)  // absent on machines built with LOWBIT_IMAGE_CODECS=OFF and no zlib
#include <zlib.h>
#define LOWBIT_TEST_ZLIB 1
#endif

#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "kuat/image_codecs.h"
#include "kuat/source_cifar.h"
#include "kuat/source_idx.h"
#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"
#include "lowbit/kuat/source.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(KuatInputs, ParseRgb) {
  EXPECT_EQ(parse_rgb("0,0,0"), (Rgb{0, 0, 0}));
  EXPECT_EQ(parse_rgb("255,7,128"), (Rgb{255, 7, 128}));
  for (const char* bad : {"", "1,2", "1,2,3,", "1,2,256", "a,b,c", "-1,2,3", "1, 2,3", "1,2,3,4", "00001,2,3"}) {
    EXPECT_THROW(parse_rgb(bad), InvalidArgument) << bad;
  }
}

TEST(KuatInputs, CompositeEndpointsAndMonotone) {
  for (int v = 0; v < 256; ++v) {
    for (int bg : {0, 77, 255}) {
      EXPECT_EQ(composite_over(v, 255, bg), v);
      EXPECT_EQ(composite_over(v, 0, bg), bg);
      for (int a = 1; a < 256; ++a) {  // moves from the background towards the value
        const int lo = std::min(v, bg), hi = std::max(v, bg);
        const int c = composite_over(v, a, bg);
        ASSERT_TRUE(c >= lo && c <= hi) << v << " " << a << " " << bg;
      }
    }
  }
}

std::vector<std::uint8_t> tiff_with_orientation(bool little, std::uint16_t value, std::uint16_t type = 3) {
  std::vector<std::uint8_t> b = {'E', 'x', 'i', 'f', 0, 0};
  auto u16 = [&](std::uint16_t v) {
    if (little) b.insert(b.end(), {std::uint8_t(v), std::uint8_t(v >> 8)});
    else b.insert(b.end(), {std::uint8_t(v >> 8), std::uint8_t(v)});
  };
  auto u32 = [&](std::uint32_t v) {
    if (little) { u16(std::uint16_t(v)); u16(std::uint16_t(v >> 16)); }
    else { u16(std::uint16_t(v >> 16)); u16(std::uint16_t(v)); }
  };
  b.push_back(little ? 'I' : 'M');
  b.push_back(little ? 'I' : 'M');
  u16(42);
  u32(8);
  u16(2);  // two entries: another tag, then Orientation
  u16(0x010F); u16(2); u32(1); u32(0);
  u16(0x0112); u16(type); u32(1); u16(value); u16(0);
  return b;
}

TEST(KuatInputs, ExifOrientationParsing) {
  for (bool little : {true, false}) {
    for (std::uint16_t v = 1; v <= 8; ++v) {
      const auto b = tiff_with_orientation(little, v);
      EXPECT_EQ(detail::exif_orientation(b.data(), b.size()), v);
      EXPECT_EQ(detail::exif_orientation(b.data() + 6, b.size() - 6), v);  // without the prefix
    }
    const auto zero = tiff_with_orientation(little, 9);
    EXPECT_EQ(detail::exif_orientation(zero.data(), zero.size()), 1);
    // Integer types other than SHORT count as PIL reads them (a LONG whose value sits in the
    // entry's first bytes, little-endian here); BYTE, ASCII and RATIONAL entries are no orientation.
    for (std::uint16_t type : {1, 2, 5}) {
      const auto wrong_type = tiff_with_orientation(little, 6, type);
      EXPECT_EQ(detail::exif_orientation(wrong_type.data(), wrong_type.size()), 1) << type;
    }
    if (little) {
      const auto long_type = tiff_with_orientation(little, 6, 4);
      EXPECT_EQ(detail::exif_orientation(long_type.data(), long_type.size()), 6);
    }
    auto cut = tiff_with_orientation(little, 6);
    for (std::size_t n = 0; n + 1 < cut.size(); ++n) EXPECT_EQ(detail::exif_orientation(cut.data(), n), 1) << n;
  }
}

TEST(KuatInputs, OrientationsAreTheEightDihedralMaps) {
  Image img{2, 3, 1, {1, 2, 3, 4, 5, 6}};  // rows: [1 2 3] [4 5 6]
  EXPECT_EQ(apply_orientation(img, 1).pixels, img.pixels);
  EXPECT_EQ(apply_orientation(img, 2).pixels, (std::vector<std::uint8_t>{3, 2, 1, 6, 5, 4}));
  EXPECT_EQ(apply_orientation(img, 3).pixels, (std::vector<std::uint8_t>{6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(apply_orientation(img, 4).pixels, (std::vector<std::uint8_t>{4, 5, 6, 1, 2, 3}));
  EXPECT_EQ(apply_orientation(img, 5).pixels, (std::vector<std::uint8_t>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(apply_orientation(img, 6).pixels, (std::vector<std::uint8_t>{4, 1, 5, 2, 6, 3}));  // 90 clockwise
  EXPECT_EQ(apply_orientation(img, 7).pixels, (std::vector<std::uint8_t>{6, 3, 5, 2, 4, 1}));
  EXPECT_EQ(apply_orientation(img, 8).pixels, (std::vector<std::uint8_t>{3, 6, 2, 5, 1, 4}));  // 90 counter-clockwise
  for (int o = 5; o <= 8; ++o) {
    const Image r = apply_orientation(img, o);
    EXPECT_EQ(r.width, 2u);
    EXPECT_EQ(r.height, 3u);
  }
}

TEST(KuatInputs, PixelLimitIsCheckedFromTheHeader) {
  if (!image_codecs_available()) GTEST_SKIP() << "built with LOWBIT_IMAGE_CODECS=OFF";
  Image img{8, 8, 3, std::vector<std::uint8_t>(192, 9)};
  const auto png = encode_png(img);
  DecodeOptions o;
  o.max_pixels = 64;
  EXPECT_EQ(decode_image(png.data(), png.size(), 3, {}, "ok.png", o).pixels, img.pixels);
  o.max_pixels = 63;
  const std::string e = error_of([&] { decode_image(png.data(), png.size(), 3, {}, "big.png", o); });
  EXPECT_NE(e.find("big.png"), std::string::npos);
  EXPECT_NE(e.find("8 x 8 = 64 pixels, over the limit of 63"), std::string::npos) << e;
  EXPECT_EQ(kDefaultMaxPixels, 178956970u);
}

TEST(KuatInputs, HiddenNames) {
  for (const char* n : {".DS_Store", ".ipynb_checkpoints", "._a.jpg", "__MACOSX", ".git", "."}) EXPECT_TRUE(is_hidden_name(n)) << n;
  for (const char* n : {"cat", "a.jpg", "_MACOSX", "x.ipynb_checkpoints", "", "__macosx2"}) EXPECT_FALSE(is_hidden_name(n)) << n;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("kuat_inputs_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_png(const fs::path& p) {
  const auto bytes = encode_png(Image{4, 4, 3, std::vector<std::uint8_t>(48, 100)});
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
}

TEST(KuatInputs, FolderScanLeavesHiddenEntriesOut) {
  TempDir t;
  for (const char* d : {"cat", "dog", ".ipynb_checkpoints", "__MACOSX", "cat/.thumbs"}) fs::create_directories(t.path / d);
  for (const char* f : {"cat/a.png", "dog/b.png", ".ipynb_checkpoints/c.png", "__MACOSX/d.png", "cat/.thumbs/e.png", "cat/._a.png"}) {
    write_png(t.path / f);
  }
  EXPECT_EQ(detect_format(t.path.string()), "imagenet");
  const auto src = open_source(t.path.string(), {});
  EXPECT_EQ(src->classes(), (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(src->size(), 2u);
  EXPECT_EQ(src->name(0), "cat/a.png");
  EXPECT_EQ(src->ignored(), (std::vector<std::string>{".ipynb_checkpoints", "__MACOSX", "cat/._a.png", "cat/.thumbs"}));
}

TEST(KuatInputs, SymlinkLoopNamesTheLink) {
  TempDir t;
  fs::create_directories(t.path / "cat" / "deep");
  write_png(t.path / "cat" / "a.png");
  fs::create_directory_symlink("../..", t.path / "cat" / "deep" / "back");
  SourceOptions o;
  o.format = "imagenet";
  const std::string e = error_of([&] { open_source(t.path.string(), o); });
  EXPECT_NE(e.find("cat/deep/back"), std::string::npos) << e;
  EXPECT_NE(e.find("symbolic link loop"), std::string::npos) << e;
}

TEST(KuatInputs, CifarBinaryRecords) {
  std::vector<std::uint8_t> rec(3073);
  rec[0] = 7;
  for (std::size_t p = 0; p < 1024; ++p) {
    rec[1 + p] = 1;
    rec[1 + 1024 + p] = 2;
    rec[1 + 2048 + p] = 3;
  }
  InMemorySource src("cifar", 32, 32, 3);
  append_cifar_binary(rec.data(), rec.size(), false, "b.bin", src);
  ASSERT_EQ(src.size(), 1u);
  EXPECT_EQ(src.label(0), 7);
  const Image img = src.load(0, 3, {});
  EXPECT_EQ(std::vector<std::uint8_t>(img.pixels.begin(), img.pixels.begin() + 6), (std::vector<std::uint8_t>{1, 2, 3, 1, 2, 3}));
  EXPECT_NE(error_of([&] { append_cifar_binary(rec.data(), rec.size() - 1, false, "cut.bin", src); }).find("cut.bin"), std::string::npos);
  rec[0] = 10;
  EXPECT_NE(error_of([&] { append_cifar_binary(rec.data(), rec.size(), false, "l.bin", src); }).find("label 10"), std::string::npos);
  std::vector<std::uint8_t> hundred(3074);
  hundred[0] = 19;
  hundred[1] = 99;
  append_cifar_binary(hundred.data(), hundred.size(), true, "h.bin", src);
  EXPECT_EQ(src.label(1), 99);
  hundred[0] = 20;
  EXPECT_NE(error_of([&] { append_cifar_binary(hundred.data(), hundred.size(), true, "h.bin", src); }).find("coarse 20"),
            std::string::npos);
}

#if defined(LOWBIT_TEST_ZLIB)
std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::vector<std::uint8_t> out(compressBound(in.size()) + 64);
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(KuatInputs, IdxGzipIsBoundedByItsHeader) {
  std::vector<std::uint8_t> idx = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3};
  idx.resize(16 + 12, 5);
  const auto gz = gzip(idx);
  EXPECT_EQ(idx_file_bytes(gz.data(), gz.size(), "a.gz", UINT64_MAX), idx);
  const auto src = idx_images_source(idx, "a", kDefaultMaxPixels);
  EXPECT_EQ(src->size(), 2u);
  auto longer = idx;
  longer.resize(1 << 20);
  const auto lgz = gzip(longer);
  const std::string e = error_of([&] { idx_file_bytes(lgz.data(), lgz.size(), "long.gz", UINT64_MAX); });
  EXPECT_NE(e.find("longer than the 28 bytes its IDX header gives"), std::string::npos) << e;
  const auto cut = std::vector<std::uint8_t>(gz.begin(), gz.end() - 6);
  EXPECT_NE(error_of([&] { idx_file_bytes(cut.data(), cut.size(), "cut.gz", UINT64_MAX); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([&] { idx_images_source(idx, "small", 5); }).find("over the limit of 5"), std::string::npos);
}
#endif  // LOWBIT_TEST_ZLIB

}  // namespace
}  // namespace lowbit::kuat
