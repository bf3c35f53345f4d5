// Unit tests of the oracle's own building blocks (accent folding, date ranges, exact decimals)
// and of the query round trip, so that a mismatch in the differential test points at the server
// and not at the oracle.
#include "differential/oracle.h"

#include <gtest/gtest.h>

#include "differential/query_generator.h"

namespace fhirstone::differential {
namespace {

using oracle_internal::Compare;
using oracle_internal::Decimal;
using oracle_internal::Fold;
using oracle_internal::ParseDateRange;
using oracle_internal::ParseDecimal;

constexpr int64_t kSecond = 1000000;

TEST(OracleTest, FoldsCaseAndAccents) {
  EXPECT_EQ(Fold("Sánchez310"), "sanchez310");
  EXPECT_EQ(Fold("MONDRAGÓN"), "mondragon");
  EXPECT_EQ(Fold("Sa\xCC\x81nchez"), "sanchez");  // decomposed: a + U+0301
  EXPECT_EQ(Fold("Zürich Øre Straße"), "zurich ore strasse");
  EXPECT_EQ(Fold("日本"), "日本");
}

TEST(OracleTest, DateRangesFollowPrecision) {
  int64_t lo, hi;
  ASSERT_TRUE(ParseDateRange("2020", &lo, &hi));
  EXPECT_EQ(lo, 1577836800 * kSecond);
  EXPECT_EQ(hi, 1609459200 * kSecond);
  ASSERT_TRUE(ParseDateRange("2016-02", &lo, &hi));
  EXPECT_EQ(lo, 1454284800 * kSecond);
  EXPECT_EQ(hi, 1456790400 * kSecond);  // a leap February
  ASSERT_TRUE(ParseDateRange("1900-03-01", &lo, &hi));
  EXPECT_EQ(lo, -2203891200 * kSecond);
  EXPECT_EQ(hi - lo, 86400 * kSecond);
  ASSERT_TRUE(ParseDateRange("2012-06-26T01:48:40+02:00", &lo, &hi));
  EXPECT_EQ(lo, 1340668120 * kSecond);
  EXPECT_EQ(hi - lo, kSecond);
  ASSERT_TRUE(ParseDateRange("2012-06-26T01:48:40.048+02:00", &lo, &hi));
  EXPECT_EQ(lo, 1340668120 * kSecond + 48000);
  EXPECT_EQ(hi - lo, 1000);
  ASSERT_TRUE(ParseDateRange("2012-06-25T23:48:40Z", &lo, &hi));
  EXPECT_EQ(lo, 1340668120 * kSecond);
  EXPECT_FALSE(ParseDateRange("2012-02-30", &lo, &hi));
  EXPECT_FALSE(ParseDateRange("2012-06-26T01:48:40+0200", &lo, &hi));
  EXPECT_FALSE(ParseDateRange("12-06-26", &lo, &hi));
}

TEST(OracleTest, DecimalsCompareExactly) {
  Decimal a, b;
  ASSERT_TRUE(ParseDecimal("4.085", &a));
  ASSERT_TRUE(ParseDecimal("4.0850", &b));
  EXPECT_EQ(Compare(a, b), 0);
  ASSERT_TRUE(ParseDecimal("1e2", &b));
  ASSERT_TRUE(ParseDecimal("100", &a));
  EXPECT_EQ(Compare(a, b), 0);
  ASSERT_TRUE(ParseDecimal("-0.5", &a));
  ASSERT_TRUE(ParseDecimal("0.49999999999999999999", &b));
  EXPECT_EQ(Compare(a, b), -1);
  EXPECT_FALSE(ParseDecimal("1.2.3", &a));
  EXPECT_FALSE(ParseDecimal("", &a));
}

TEST(OracleTest, QueriesRoundTripThroughTheirEncoding) {
  GeneratedQuery q;
  q.type = "Observation";
  q.params = {{"date", "ge2012-06-26T01:48:40+02:00"},
              {"code", "http://loinc.org|8302-2"},
              {"name", "Sánchez a&b=c"}};
  std::string encoded = q.Encoded();
  EXPECT_EQ(encoded.find('+'), std::string::npos);
  EXPECT_EQ(encoded.find('|'), std::string::npos);
  auto back = ParseDescribed(encoded);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->type, q.type);
  EXPECT_EQ(back->params, q.params);
}

}  // namespace
}  // namespace fhirstone::differential
