#include "common/time.h"

#include <gtest/gtest.h>

namespace fhirstone {
namespace {

constexpr int64_t kSecond = 1000000;

TEST(TimeTest, FormatsInstantsAndHttpDates) {
  EXPECT_EQ(FormatInstant(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(784111777 * kSecond + 123456), "1994-11-06T08:49:37.123Z");
  EXPECT_EQ(FormatHttpDate(784111777 * kSecond), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777 * kSecond);
  EXPECT_FALSE(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"));
}

TEST(TimeTest, DateTimeRangesHonourPrecision) {
  auto year = ParseFhirDateTime("2020");
  ASSERT_TRUE(year);
  EXPECT_EQ(year->low, *ParseHttpDate("Wed, 01 Jan 2020 00:00:00 GMT"));
  EXPECT_EQ(year->high, *ParseHttpDate("Fri, 01 Jan 2021 00:00:00 GMT"));
  auto month = ParseFhirDateTime("2020-02");
  EXPECT_EQ(month->high - month->low, 29LL * 86400 * kSecond);
  auto instant = ParseFhirDateTime("1994-11-06T09:49:37.5+01:00");
  ASSERT_TRUE(instant);
  EXPECT_EQ(instant->low, 784111777 * kSecond + 500000);
  EXPECT_EQ(instant->high - instant->low, 100000);
  auto minute = ParseFhirDateTime("1994-11-06T08:49Z");
  EXPECT_EQ(minute->high - minute->low, 60 * kSecond);
  for (const char* bad : {"20", "2020-13", "2020-02-30", "2020-01-01T25:00:00Z", "2020-01-01X",
                          "2020-01-01T10:00:00+1:00", "2020-01-01T10:00:00."})
    EXPECT_FALSE(ParseFhirDateTime(bad)) << bad;
}

}  // namespace
}  // namespace fhirstone
