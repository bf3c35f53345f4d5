#include "common/strings.h"

#include <gtest/gtest.h>

namespace fhirstone {
namespace {

TEST(StringsTest, Basics) {
  EXPECT_EQ(AsciiLower("AbC-1"), "abc-1");
  EXPECT_TRUE(EqualsIgnoreCase("Content-Type", "content-type"));
  EXPECT_FALSE(EqualsIgnoreCase("a", "ab"));
  EXPECT_EQ(Trim("  x y \r\n"), "x y");
  EXPECT_EQ(Split("a,,b", ',').size(), 3u);
  EXPECT_EQ(ParseInt64("-12"), -12);
  EXPECT_FALSE(ParseInt64("12a"));
  EXPECT_FALSE(ParseInt64("+1"));
  EXPECT_FALSE(ParseInt64("99999999999999999999"));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
}

}  // namespace
TEST(StringsTest, MakeValidUtf8ReplacesWhatIsNotUtf8) {
  auto valid = [](std::string s) {
    MakeValidUtf8(s);
    return s;
  };
  EXPECT_EQ(valid("plain ascii"), "plain ascii");
  EXPECT_EQ(valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(valid(std::string("a\0b", 3)),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(valid("\xff\xc3"), "\xef\xbf\xbd\xef\xbf\xbd");                  // stray and truncated
  EXPECT_EQ(valid("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong
  EXPECT_EQ(valid("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  EXPECT_EQ(valid("\xf5\x80\x80\x80").substr(0, 3), "\xef\xbf\xbd");         // beyond U+10FFFF
}

}  // namespace fhirstone
