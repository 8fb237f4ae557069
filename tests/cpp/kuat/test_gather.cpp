// Every SIMD level of gather_sample against decode_image_hwc_ref plus a direct statement of
// the layout, normalisation, crop and flip definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/gather.h"

namespace lowbit::kuat {
namespace {

// float32 outputs are table values rounded once from double: within half an ulp of the exact
// (v/255 - mean)/std, so a relative 1e-6 (about 8 float ulps) is a strict but safe bound.
constexpr double kFloatRelTolerance = 1e-6;

struct Sample {
  ImageGeometry g;
  std::uint32_t K;
  std::vector<std::uint8_t> codebook;
  std::vector<std::uint8_t> packed;  // exactly one block: ASan catches any over-read
};

Sample make_sample(ImageGeometry g, std::uint32_t K, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Sample s{g, K, std::vector<std::uint8_t>(std::size_t{K} * g.codeword_bytes()), {}};
  for (auto& b : s.codebook) b = static_cast<std::uint8_t>(rng());
  std::vector<std::uint32_t> idx(g.num_patches());
  for (auto& k : idx) k = rng() % K;
  if (!idx.empty()) idx.back() = K - 1;  // the largest index at the very end of the block
  s.packed.resize(packed_bytes(idx.size(), index_bits_for(K)));
  pack_indices(idx.data(), idx.size(), index_bits_for(K), s.packed.data());
  return s;
}

// Expected output as doubles, from the reference HWC decode and the definitions in gather.h.
std::vector<double> expected(const Sample& s, const OutputFormat& f, const SampleTransform& t) {
  const ImageGeometry& g = s.g;
  std::vector<std::uint8_t> hwc(g.pixel_bytes());
  decode_image_hwc_ref(g, s.codebook.data(), s.K, s.packed.data(), hwc.data());
  const int H = g.height, W = g.width, C = g.channels;
  std::vector<double> out(hwc.size());
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const int sy = y + t.shift_y, sx = (t.flip ? W - 1 - x : x) + t.shift_x;
      const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
      for (int c = 0; c < C; ++c) {
        double v = inside ? hwc[(std::size_t(sy) * W + sx) * C + c] : 0.0;
        if (f.dtype == PixelType::Float32) {
          const double mean = f.mean.empty() ? 0.0 : f.mean[f.mean.size() == 1 ? 0 : c];
          const double stdv = f.std.empty() ? 1.0 : f.std[f.std.size() == 1 ? 0 : c];
          v = (v / 255.0 - mean) / stdv;
        }
        const std::size_t at = f.layout == Layout::NHWC ? (std::size_t(y) * W + x) * C + c
                                                        : (std::size_t(c) * H + y) * W + x;
        out[at] = v;
      }
    }
  }
  return out;
}

void check_every_level(const Sample& s, const OutputFormat& f, const SampleTransform& t, const std::string& what) {
  ScopedSimdLevel guard;
  const GatherTable table(s.g, s.codebook.data(), s.K, f);
  const std::vector<double> want = expected(s, f, t);
  // Every level must give the scalar reference's bytes exactly (float32 too: all levels copy the
  // same table values); the definitions are checked against `want` below.
  set_simd_level(SimdLevel::Scalar);
  std::vector<std::uint8_t> reference(table.sample_bytes());
  gather_sample(table, s.packed.data(), t, reference.data());
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(level);
    std::vector<std::uint8_t> out(table.sample_bytes() + 64, 0xCD);
    gather_sample(table, s.packed.data(), t, out.data());
    ASSERT_EQ(last_dispatched_level(), level) << what;
    ASSERT_EQ(0, std::memcmp(out.data(), reference.data(), reference.size()))
        << what << ": not the scalar reference's bytes at " << simd_level_name(level);
    for (std::size_t b = table.sample_bytes(); b < out.size(); ++b) {
      ASSERT_EQ(out[b], 0xCD) << what << ": wrote past the sample at " << simd_level_name(level);
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (f.dtype == PixelType::UInt8) {
        ASSERT_EQ(out[i], want[i]) << what << " level=" << simd_level_name(level) << " element " << i;
      } else {
        float v;
        std::memcpy(&v, out.data() + 4 * i, 4);
        ASSERT_NEAR(v, want[i], kFloatRelTolerance * std::max(1.0, std::fabs(want[i])))
            << what << " level=" << simd_level_name(level) << " element " << i;
      }
    }
  }
}

std::string describe(const Sample& s, const OutputFormat& f, const SampleTransform& t) {
  return std::to_string(s.g.height) + "x" + std::to_string(s.g.width) + "x" + std::to_string(s.g.channels) +
         " P=" + std::to_string(s.g.patch) + " K=" + std::to_string(s.K) + " " + layout_name(f.layout) + " " +
         pixel_type_name(f.dtype) + " shift=(" + std::to_string(t.shift_y) + "," + std::to_string(t.shift_x) +
         ") flip=" + std::to_string(t.flip);
}

TEST(KuatGather, Uint8EveryLevelAwkwardSizes) {
  const std::uint32_t sizes[] = {1, 3, 7, 15, 17, 33};
  const std::uint32_t ks[] = {2, 3, 17, 256, 300, 4097};
  std::uint32_t seed = 1;
  for (std::uint32_t P : {2u, 4u}) {
    for (std::uint32_t C : {1u, 3u}) {
      for (std::uint32_t h : sizes) {
        for (std::uint32_t w : {1u, 7u, 33u, 17u}) {
          const std::uint32_t K = ks[seed % 6];
          const Sample s = make_sample({h, w, C, P}, K, seed++);
          for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
            OutputFormat f;
            f.layout = layout;
            f.mirrored = true;
            for (SampleTransform t : {SampleTransform{0, 0, false}, SampleTransform{0, 0, true},
                                      SampleTransform{2, -3, false}, SampleTransform{-1, 4, true},
                                      SampleTransform{0, 1, false}, SampleTransform{40, 0, false},
                                      SampleTransform{0, -40, true}}) {
              check_every_level(s, f, t, describe(s, f, t));
            }
          }
        }
      }
    }
  }
}

TEST(KuatGather, Float32NormalisedEveryLevel) {
  std::uint32_t seed = 100;
  for (std::uint32_t P : {2u, 4u}) {
    for (std::uint32_t C : {1u, 3u}) {
      for (std::uint32_t h : {3u, 16u, 17u}) {
        const Sample s = make_sample({h, h + 4, C, P}, 512, seed++);
        for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
          OutputFormat f;
          f.layout = layout;
          f.dtype = PixelType::Float32;
          f.mirrored = true;
          if (C == 3) {
            f.mean = {0.485f, 0.456f, 0.406f};
            f.std = {0.229f, 0.224f, 0.225f};
          } else {
            f.mean = {0.5f};
            f.std = {0.25f};
          }
          for (SampleTransform t : {SampleTransform{0, 0, false}, SampleTransform{-3, 2, true}, SampleTransform{1, 0, false}}) {
            check_every_level(s, f, t, describe(s, f, t));
          }
        }
      }
    }
  }
}

TEST(KuatGather, EveryIndexWidth) {
  for (std::uint32_t K : {2u, 4u, 5u, 64u, 129u, 1000u, 2048u, 8191u, 16384u, 40000u, 65536u}) {
    const Sample s = make_sample({33, 31, 3, 2}, K, K);
    OutputFormat f;
    check_every_level(s, f, {}, describe(s, f, {}));
  }
}

TEST(KuatGather, ImageNetShapeWithCropAndFlip) {
  const Sample s = make_sample({224, 224, 3, 2}, 512, 9);
  OutputFormat f;
  f.mirrored = true;
  for (SampleTransform t : {SampleTransform{0, 0, false}, SampleTransform{4, -4, true}}) {
    check_every_level(s, f, t, describe(s, f, t));
  }
}

// uint8 NCHW with 2x2 patches and 3 channels takes the planar kernels (GatherTable::has_planar):
// even widths (rows laid straight into the output), odd ones (through the scratch rows), grid
// widths around the 4- and 8-piece SIMD blocks, every shift/flip case, several index widths.
TEST(KuatGather, PlanarNchwEveryLevel) {
  std::uint32_t seed = 500;
  for (PixelType dtype : {PixelType::UInt8, PixelType::Float32}) {
    for (std::uint32_t w : {1u, 2u, 6u, 7u, 8u, 14u, 16u, 17u, 18u, 30u, 32u, 34u, 224u}) {
      for (std::uint32_t h : {1u, 2u, 5u, 16u}) {
        for (std::uint32_t K : {2u, 300u, 512u, 65536u}) {
          const Sample s = make_sample({h, w, 3, 2}, K, seed++);
          OutputFormat f;
          f.layout = Layout::NCHW;
          f.dtype = dtype;
          f.mirrored = true;
          if (dtype == PixelType::Float32) {  // padding is then a non-zero value per plane
            f.mean = {0.485f, 0.456f, 0.406f};
            f.std = {0.229f, 0.224f, 0.225f};
          }
          ASSERT_TRUE(GatherTable(s.g, s.codebook.data(), s.K, f).has_planar());
          for (SampleTransform t : {SampleTransform{0, 0, false}, SampleTransform{0, 0, true},
                                    SampleTransform{1, -2, false}, SampleTransform{-3, 3, true},
                                    SampleTransform{0, 1, true}, SampleTransform{0, -1, false},
                                    SampleTransform{-20, 0, false}, SampleTransform{0, 300, true}}) {
            check_every_level(s, f, t, describe(s, f, t));
          }
        }
      }
    }
  }
}

TEST(KuatGather, ImageNetShapeNchwWithCropAndFlip) {
  const Sample s = make_sample({224, 224, 3, 2}, 512, 11);
  for (PixelType dtype : {PixelType::UInt8, PixelType::Float32}) {
    OutputFormat f;
    f.layout = Layout::NCHW;
    f.dtype = dtype;
    f.mirrored = true;
    for (SampleTransform t : {SampleTransform{0, 0, false}, SampleTransform{0, 0, true}, SampleTransform{4, -4, true}}) {
      check_every_level(s, f, t, describe(s, f, t));
    }
  }
}

TEST(KuatGather, OutOfRangeIndexNamesThePatchAtEveryLevel) {
  ScopedSimdLevel guard;
  const ImageGeometry g{5, 6, 3, 2};  // 3x3 grid
  const std::uint32_t K = 300;        // 9 bits: values 300..511 are representable but invalid
  std::vector<std::uint8_t> codebook(std::size_t{K} * g.codeword_bytes(), 7);
  std::vector<std::uint32_t> idx(g.num_patches(), 1);
  idx[5] = 400;  // patch (1, 2)
  std::vector<std::uint8_t> packed(packed_bytes(idx.size(), 9));
  pack_indices(idx.data(), idx.size(), 9, packed.data());
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    OutputFormat f;
    f.layout = layout;
    const GatherTable table(g, codebook.data(), K, f);
    std::vector<std::uint8_t> out(table.sample_bytes());
    for (SimdLevel level : available_simd_levels()) {
      set_simd_level(level);
      try {
        gather_sample(table, packed.data(), {}, out.data());
        FAIL() << "no error at " << simd_level_name(level) << " " << layout_name(layout);
      } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("patch (1, 2) has index 400 >= codebook size 300"), std::string::npos)
            << e.what();
      }
    }
  }
}

TEST(KuatGather, BadFormatsAreRejected) {
  std::vector<std::uint8_t> codebook(16 * 12);
  const ImageGeometry g{4, 4, 3, 2};
  OutputFormat f;
  f.mean = {0.5f};
  EXPECT_THROW(GatherTable(g, codebook.data(), 16, f), InvalidArgument);  // mean with uint8
  f.dtype = PixelType::Float32;
  f.std = {0.0f};
  EXPECT_THROW(GatherTable(g, codebook.data(), 16, f), InvalidArgument);
  f.std = {1.0f, 2.0f};
  EXPECT_THROW(GatherTable(g, codebook.data(), 16, f), InvalidArgument);
  EXPECT_THROW(GatherTable(g, codebook.data(), 1, OutputFormat{}), InvalidArgument);
  EXPECT_THROW(parse_layout("NWHC"), InvalidArgument);
  EXPECT_THROW(parse_pixel_type("float16"), InvalidArgument);
  EXPECT_EQ(parse_layout("nchw"), Layout::NCHW);
  EXPECT_EQ(parse_pixel_type("FLOAT32"), PixelType::Float32);
  const GatherTable plain(g, codebook.data(), 16, OutputFormat{});
  std::vector<std::uint8_t> packed(packed_bytes(4, 4)), out(plain.sample_bytes());
  EXPECT_THROW(gather_sample(plain, packed.data(), SampleTransform{0, 0, true}, out.data()), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::kuat
