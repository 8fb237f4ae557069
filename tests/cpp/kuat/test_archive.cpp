#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "archive_fixtures.h"
#include "lowbit/core/error.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/format.h"

namespace lowbit::kuat {
namespace {

namespace fs = std::filesystem;
using testing::ArchiveSpec;

std::vector<std::uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("kuat_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// Expected pixels of a spec sample, computed independently of the library's decode:
// pixel (y, x, c) is byte ((y % P) * P + x % P) * C + c of the codeword of patch (y / P, x / P).
std::vector<std::uint8_t> expected_pixels(const ArchiveSpec& a, const testing::SampleSpec& s) {
  std::vector<std::uint8_t> out;
  const std::uint32_t P = a.patch, C = a.channels, gw = (s.width + P - 1) / P;
  for (std::uint32_t y = 0; y < s.height; ++y)
    for (std::uint32_t x = 0; x < s.width; ++x)
      for (std::uint32_t c = 0; c < C; ++c) {
        const std::uint32_t k = s.indices[(y / P) * gw + x / P];
        out.push_back(a.codebook[k * P * P * C + ((y % P) * P + x % P) * C + c]);
      }
  return out;
}

void expect_matches_spec(const Archive& ar, const ArchiveSpec& a) {
  ASSERT_EQ(ar.size(), a.samples.size());
  EXPECT_EQ(ar.codebook_size(), a.codebook_size);
  EXPECT_EQ(std::vector<std::uint8_t>(ar.codebook(), ar.codebook() + a.codebook.size()), a.codebook);
  for (std::size_t i = 0; i < a.samples.size(); ++i) {
    const auto& s = a.samples[i];
    const ImageGeometry g = ar.sample_geometry(i);
    EXPECT_EQ(g.height, s.height);
    EXPECT_EQ(g.width, s.width);
    EXPECT_EQ(ar.label(i), s.label);
    EXPECT_EQ(ar.source_name(i), s.name);
    std::vector<std::uint8_t> pixels(g.pixel_bytes());
    ar.decode(i, pixels.data());
    EXPECT_EQ(pixels, expected_pixels(a, s)) << "sample " << i;
  }
}

// Golden files: a format change that breaks old archives fails here. Regenerate only for a
// deliberate format version bump: KUAT_REGENERATE_GOLDEN=1.
TEST(KuatArchive, GoldenFilesReadAndDecode) {
  const fs::path dir = fs::path(LOWBIT_TEST_DATA_DIR) / "kuat";
  const std::pair<const char*, ArchiveSpec> goldens[] = {{"golden_v1_fixed.kuat", testing::golden_fixed_spec()},
                                                         {"golden_v1_variable.kuat", testing::golden_variable_spec()}};
  for (const auto& [name, spec] : goldens) {
    if (std::getenv("KUAT_REGENERATE_GOLDEN")) testing::write_archive((dir / name).string(), spec);
    Archive ar((dir / name).string());
    expect_matches_spec(ar, spec);
    EXPECT_EQ(ar.version_major(), 1);
    ar.verify();
  }
  Archive fixed((dir / "golden_v1_fixed.kuat").string());
  ASSERT_TRUE(fixed.fixed_shape());
  EXPECT_EQ(fixed.geometry().height, 3u);
  EXPECT_EQ(fixed.geometry().width, 5u);
  EXPECT_EQ(fixed.class_names(), (std::vector<std::string>{"zero", "one"}));
  // Hand-checked pixels of sample 0 (indices 0 1 2 / 3 0 1, codeword k = 16k..16k+3).
  std::vector<std::uint8_t> px(15);
  fixed.decode(0, px.data());
  EXPECT_EQ(px, (std::vector<std::uint8_t>{0, 1, 16, 17, 32, 2, 3, 18, 19, 34, 48, 49, 0, 1, 16}));
  Archive variable((dir / "golden_v1_variable.kuat").string());
  EXPECT_FALSE(variable.fixed_shape());
  EXPECT_THROW(variable.geometry(), InvalidArgument);
  EXPECT_THROW(variable.view(), InvalidArgument);
}

TEST(KuatArchive, WriterIsDeterministicAndMatchesGolden) {
  const fs::path out = temp_dir() / "again.kuat";
  testing::write_archive(out.string(), testing::golden_fixed_spec());
  EXPECT_EQ(read_file(out), read_file(fs::path(LOWBIT_TEST_DATA_DIR) / "kuat" / "golden_v1_fixed.kuat"));
  fs::remove(out);
}

TEST(KuatArchive, ViewPointsIntoTheMap) {
  Archive ar(std::string(LOWBIT_TEST_DATA_DIR) + "/kuat/golden_v1_fixed.kuat");
  const ArchiveView v = ar.view();
  EXPECT_EQ(v.num_samples, 3u);
  EXPECT_EQ(v.codebook_size, 4u);
  EXPECT_EQ(v.index_stride, packed_bytes(6, 2));
  EXPECT_EQ(v.codebook_hash, ar.codebook_hash());
  EXPECT_EQ(v.labels[1], 1);
  for (std::uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(v.sample_indices(i), ar.sample_indices(i).data());
  }
  EXPECT_THROW(ar.sample_indices(3), InvalidArgument);
  EXPECT_THROW(ar.label(99), InvalidArgument);
}

TEST(KuatArchive, AlignmentAndLayout) {
  const auto bytes = read_file(fs::path(LOWBIT_TEST_DATA_DIR) / "kuat" / "golden_v1_fixed.kuat");
  ASSERT_EQ(bytes.size() % format::kSectionAlignment, 0u);
  format::FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  for (std::uint32_t s = 0; s < h.section_count; ++s) {
    format::SectionEntry e;
    std::memcpy(&e, bytes.data() + format::kSectionTableOffset + s * sizeof e, sizeof e);
    EXPECT_EQ(e.offset % format::kSectionAlignment, 0u);
  }
}

TEST(KuatArchive, EveryFlippedByteIsDetected) {
  const auto good = read_file(fs::path(LOWBIT_TEST_DATA_DIR) / "kuat" / "golden_v1_variable.kuat");
  for (std::size_t pos = 0; pos < good.size(); ++pos) {
    auto bad = good;
    bad[pos] ^= 0x10;
    bool detected = false;
    try {
      Archive ar = Archive::from_bytes(bad, "flipped");
      ar.verify();
    } catch (const IoError&) {
      detected = true;
    }
    ASSERT_TRUE(detected) << "flip at byte " << pos << " went unnoticed";
  }
}

TEST(KuatArchive, TruncatedFilesAreRejectedWithTheReason) {
  const auto good = read_file(fs::path(LOWBIT_TEST_DATA_DIR) / "kuat" / "golden_v1_fixed.kuat");
  for (std::size_t len : {std::size_t{0}, std::size_t{10}, std::size_t{127}, std::size_t{128}, std::size_t{4096},
                          good.size() - 4096, good.size() - 1}) {
    std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<long>(len));
    try {
      Archive::from_bytes(cut, "cut.kuat");
      FAIL() << "truncated to " << len << " bytes was accepted";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("cut.kuat"), std::string::npos) << e.what();
    }
  }
}

TEST(KuatArchive, OpenErrorsNameThePath) {
  try {
    Archive ar("/nonexistent/x.kuat");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.kuat"), std::string::npos);
  }
  const fs::path p = temp_dir() / "notkuat.kuat";
  std::ofstream(p) << std::string(200, 'x');
  try {
    Archive ar(p.string());
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

TEST(KuatArchive, WriterLeavesNothingBehindOnFailure) {
  const fs::path dir = temp_dir() / "writer_fail";
  fs::create_directories(dir);
  const auto spec = testing::golden_fixed_spec();
  {
    ArchiveWriter w((dir / "x.kuat").string(), 2, 1, spec.codebook.data(), 4);
    std::vector<std::uint8_t> packed(3);  // 6 patches x 2 bits need 2 bytes
    EXPECT_THROW(w.add(packed.data(), packed.size(), 3, 5, 0), InvalidArgument);  // wrong block size
  }
  EXPECT_TRUE(fs::is_empty(dir));
  {
    ArchiveWriter w((dir / "x.kuat").string(), 2, 1, spec.codebook.data(), 4);
    EXPECT_THROW(w.finish("{}"), InvalidArgument);  // no samples
  }
  EXPECT_TRUE(fs::is_empty(dir));
  EXPECT_THROW(ArchiveWriter((dir / "missing" / "x.kuat").string(), 2, 1, spec.codebook.data(), 4), IoError);
  fs::remove_all(dir);
}

TEST(KuatArchive, IdentityHashDependsOnShapeAndContent) {
  std::vector<std::uint8_t> cb(48, 1);
  const auto h = codebook_identity_hash(cb.data(), 4, 2, 3);
  EXPECT_NE(h, codebook_identity_hash(cb.data(), 12, 2, 1));
  cb[5] = 2;
  EXPECT_NE(h, codebook_identity_hash(cb.data(), 4, 2, 3));
}

}  // namespace
}  // namespace lowbit::kuat
