#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kuat/pickle.h"
#include "lowbit/core/error.h"

namespace lowbit::kuat {
namespace {

std::string le32(std::uint32_t v) {
  return std::string{static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF), static_cast<char>((v >> 16) & 0xFF),
                     static_cast<char>(v >> 24)};
}

// A CIFAR batch exactly as Python 2's cPickle (protocol 2) writes it: BINSTRING keys and data,
// numpy.core.multiarray._reconstruct + BUILD, labels as a list of BININT1.
std::string python2_cifar_batch(const std::string& pixels, std::uint32_t n) {
  using namespace std::string_literals;
  std::string s = "\x80\x02}q\x01(U\x04"s + "dataq\x02"s;
  s += "cnumpy.core.multiarray\n_reconstruct\nq\x03"s + "cnumpy\nndarray\nq\x04"s + "K\x00\x85U\x01"s + "b\x87Rq\x05(K\x01"s;
  s += "K"s + static_cast<char>(n) + "M\x00\x0c\x86"s;
  s += "cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"s;
  s += "\x89T"s + le32(static_cast<std::uint32_t>(pixels.size())) + pixels + "tbU\x06labels]q\x08("s;
  for (std::uint32_t i = 0; i < n; ++i) s += "K"s + static_cast<char>(i % 10);
  s += "eU\x0b"s + "batch_labelU\x0f"s + "testing batch 1u."s;
  return s;
}

pickle::Document parse(const std::string& s) {
  return pickle::parse(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), "test.pkl");
}

TEST(KuatPickle, ReadsPython2CifarBatch) {
  std::string pixels(2 * 3072, '\0');
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i * 7);
  const std::string bytes = python2_cifar_batch(pixels, 2);
  const auto doc = parse(bytes);
  const pickle::Value* data = pickle::dict_get(doc.root(), "data");
  ASSERT_NE(data, nullptr);
  ASSERT_EQ(data->kind, pickle::Kind::NDArray);
  EXPECT_EQ(data->shape, (std::vector<std::uint64_t>{2, 3072}));
  EXPECT_EQ(data->data, pixels);
  std::vector<std::int64_t> labels;
  ASSERT_TRUE(pickle::to_int_vector(pickle::dict_get(doc.root(), "labels"), &labels));
  EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(pickle::dict_get(doc.root(), "batch_label")->s, "testing batch 1");
}

TEST(KuatPickle, ReadsLatin1EncodedBytesOfPython3Protocol2) {
  // _codecs.encode('\xe9A', 'latin1') with protocol-2 opcodes.
  using namespace std::string_literals;
  const std::string s = "\x80\x02"s + "c_codecs\nencode\nq\x00X\x03\x00\x00\x00\xc3\xa9"s + "AX\x06\x00\x00\x00latin1\x86R."s;
  const auto doc = parse(s);
  EXPECT_EQ(doc.root()->kind, pickle::Kind::Bytes);
  EXPECT_EQ(doc.root()->s, "\xe9" "A");
}

TEST(KuatPickle, RefusesToCallAnythingElse) {
  using namespace std::string_literals;
  const std::string evil = "\x80\x02"s + "cos\nsystem\nX\x02\x00\x00\x00lsh\x85R."s;
  try {
    parse(evil);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("os.system"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test.pkl"), std::string::npos);
  }
}

TEST(KuatPickle, MalformedStreamsAreErrorsNeverCrashes) {
  std::string pixels(3072, '\x05');
  const std::string good = python2_cifar_batch(pixels, 1);
  for (std::size_t len = 0; len < good.size(); len += 97) {
    EXPECT_THROW(parse(good.substr(0, len)), IoError) << len;
  }
  using namespace std::string_literals;
  for (const std::string& bad : {"\x80\x07."s, "."s, "a."s, "\x80\x02h\x05."s, "\x80\x02(u."s, "\x80\x02\xff."s,
                                 "\x80\x02}K\x01s."s, "\x80\x02K\x01K\x02."s}) {
    EXPECT_THROW(parse(bad), IoError);
  }
  // Array data that does not match the shape.
  std::string wrong = python2_cifar_batch(pixels, 2);
  EXPECT_THROW(parse(wrong), IoError);
}

}  // namespace
}  // namespace lowbit::kuat
