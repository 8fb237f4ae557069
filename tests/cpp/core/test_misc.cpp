#include <gtest/gtest.h>

#include <cstdint>

#include "lowbit/core/aligned_buffer.h"
#include "lowbit/core/build_info.h"
#include "lowbit/core/error.h"
#include "lowbit/core/progress.h"

namespace lowbit {
namespace {

TEST(AlignedBuffer, IsAlignedAndMovable) {
  for (std::size_t n : {1, 3, 64, 1000}) {
    AlignedBuffer<float> buf(n, 1.5f);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buf.data()) % kCacheLine, 0u);
    EXPECT_EQ(buf.size(), n);
    EXPECT_EQ(buf[n - 1], 1.5f);
    AlignedBuffer<float> moved(std::move(buf));
    EXPECT_EQ(moved.size(), n);
    EXPECT_EQ(buf.size(), 0u);
    EXPECT_EQ(buf.data(), nullptr);
  }
  AlignedBuffer<std::uint8_t> empty;
  EXPECT_TRUE(empty.empty());
}

TEST(Error, KindsAndMessages) {
  try {
    require(false, "batch_size must be positive, got 0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_STREQ(e.what(), "batch_size must be positive, got 0");
  }
  IoError io(io_message("/nope/x.kuat", "cannot open", 2));
  EXPECT_EQ(io.kind(), ErrorKind::Io);
  EXPECT_NE(std::string(io.what()).find("'/nope/x.kuat': cannot open ("), std::string::npos);
}

TEST(ProgressBar, RendersAndIsSilentWithoutTty) {
  ProgressBar bar("convert", 200, /*enabled=*/false);
  EXPECT_FALSE(bar.active());
  bar.add(50);
  const std::string line = bar.render(2.0);
  EXPECT_NE(line.find("convert ["), std::string::npos);
  EXPECT_NE(line.find(" 25% 50/200"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0/s"), std::string::npos) << line;
}

TEST(BuildInfo, ReportsVersionAndSimd) {
  BuildInfo info = build_info();
  EXPECT_FALSE(info.version.empty());
  EXPECT_STREQ(version(), info.version.c_str());
  ASSERT_FALSE(info.simd_compiled.empty());
  EXPECT_EQ(info.simd_compiled.front(), "scalar");
  EXPECT_GE(info.num_threads, 1u);
}

}  // namespace
}  // namespace lowbit
