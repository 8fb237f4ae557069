#include <gtest/gtest.h>

#include "lowbit/core/error.h"
#include "lowbit/kuat/json.h"

namespace lowbit::kuat {
namespace {

TEST(KuatJson, RoundTrip) {
  Json o = Json::object();
  o.set("name", "caf\xc3\xa9 \"q\"\n");
  o.set("n", 42);
  o.set("x", 31.25);
  o.set("ok", true);
  o.set("none", nullptr);
  Json a = Json::array();
  a.push("a");
  a.push(-1);
  o.set("list", a);
  for (int indent : {0, 2}) {
    const Json back = parse_json(o.dump(indent));
    EXPECT_EQ(back.dump(), o.dump());
  }
  EXPECT_EQ(o.find("n")->as_number(), 42);
  EXPECT_EQ(o.find("missing"), nullptr);
  EXPECT_EQ(parse_json(R"("\u00e9\ud83d\ude00")").as_string(), "\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(KuatJson, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "01", "\"abc", "tru", "{} x", "\"\\x\"", "[\"\\ud800\"]",
                          "1e", "-"}) {
    EXPECT_THROW(parse_json(bad), InvalidArgument) << bad;
  }
  EXPECT_THROW(parse_json(std::string(100, '[') + std::string(100, ']')), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::kuat
