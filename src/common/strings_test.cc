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
}  // namespace fhirstone
