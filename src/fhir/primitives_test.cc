#include "fhir/primitives.h"

#include <gtest/gtest.h>

#include <string>

namespace fhirstone::fhir {
namespace {

json::Value Num(const char* text) { return json::Value::NumberText(text); }

TEST(PrimitivesTest, NamesRoundTrip) {
  for (const char* name :
       {"base64Binary", "boolean",     "canonical", "code",     "date", "dateTime",    "decimal",
        "id",           "instant",     "integer",   "markdown", "oid",  "positiveInt", "string",
        "time",         "unsignedInt", "uri",       "url",      "uuid", "xhtml"}) {
    auto type = PrimitiveTypeFromName(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_EQ(PrimitiveTypeName(*type), name);
  }
  EXPECT_FALSE(PrimitiveTypeFromName("Quantity").has_value());
  EXPECT_FALSE(PrimitiveTypeFromName("integer64").has_value());
}

TEST(PrimitivesTest, JsonTypes) {
  EXPECT_TRUE(IsValidPrimitive("boolean", json::Value(true)));
  EXPECT_FALSE(IsValidPrimitive("boolean", json::Value("true")));
  EXPECT_TRUE(IsValidPrimitive("integer", Num("5")));
  EXPECT_FALSE(IsValidPrimitive("integer", json::Value("5")));
  EXPECT_FALSE(IsValidPrimitive("decimal", json::Value("1.5")));
  EXPECT_FALSE(IsValidPrimitive("string", Num("1")));
  EXPECT_FALSE(IsValidPrimitive("string", json::Value()));
  EXPECT_FALSE(IsValidPrimitive("date", json::Value(json::Array{})));
  EXPECT_FALSE(IsValidPrimitive("no-such-type", json::Value("x")));
}

TEST(PrimitivesTest, Integer) {
  for (const char* ok : {"0", "-0", "1", "-1", "2147483647", "-2147483648"})
    EXPECT_TRUE(IsValidPrimitive("integer", Num(ok))) << ok;
  for (const char* bad :
       {"2147483648", "-2147483649", "1.0", "1e2", "01", "", "-", "+1", "99999999999"})
    EXPECT_FALSE(IsValidInteger(bad)) << bad;
}

TEST(PrimitivesTest, PositiveAndUnsignedInt) {
  EXPECT_TRUE(IsValidPositiveInt("1"));
  EXPECT_TRUE(IsValidPositiveInt("2147483647"));
  EXPECT_FALSE(IsValidPositiveInt("0"));
  EXPECT_FALSE(IsValidPositiveInt("-1"));
  EXPECT_FALSE(IsValidPositiveInt("2147483648"));
  EXPECT_TRUE(IsValidUnsignedInt("0"));
  EXPECT_TRUE(IsValidUnsignedInt("2147483647"));
  EXPECT_FALSE(IsValidUnsignedInt("-1"));
  EXPECT_FALSE(IsValidUnsignedInt("1.5"));
  EXPECT_FALSE(IsValidPrimitive("positiveInt", Num("0")));
}

TEST(PrimitivesTest, Decimal) {
  for (const char* ok : {"0", "-0", "1.0", "1.00", "-12.5", "1.000000000000000000E-245", "1e10",
                         "3.14159265358979323846264338327950288419716939937510"})
    EXPECT_TRUE(IsValidPrimitive("decimal", Num(ok))) << ok;
  for (const char* bad : {"", ".5", "1.", "01", "+1", "1e", "NaN", "Infinity", "0x10", "1.0 "})
    EXPECT_FALSE(IsValidDecimal(bad)) << bad;
}

TEST(PrimitivesTest, StringAndMarkdown) {
  EXPECT_TRUE(IsValidPrimitive("string", json::Value("a")));
  EXPECT_TRUE(IsValidPrimitive("string", json::Value(" with\nnewline\t ")));
  EXPECT_TRUE(IsValidPrimitive("markdown", json::Value("# Title\n\n*text*")));
  EXPECT_FALSE(IsValidPrimitive("string", json::Value("")));
  EXPECT_FALSE(IsValidPrimitive("markdown", json::Value("")));
  EXPECT_TRUE(IsValidString(std::string(1024 * 1024, 'x')));
  EXPECT_FALSE(IsValidString(std::string(1024 * 1024 + 1, 'x')));
  // The limit counts characters: 600,000 two-byte characters are fine.
  std::string wide;
  for (int i = 0; i < 600000; ++i) wide += "\xc3\xa9";
  EXPECT_TRUE(IsValidString(wide));
}

TEST(PrimitivesTest, Code) {
  for (const char* ok : {"final", "a b", "urn:x", "entered-in-error", "ü"})
    EXPECT_TRUE(IsValidCode(ok)) << ok;
  for (const char* bad : {"", " a", "a ", "a  b", "a\tb", "a\nb"}) EXPECT_FALSE(IsValidCode(bad));
}

TEST(PrimitivesTest, Id) {
  EXPECT_TRUE(IsValidId("example"));
  EXPECT_TRUE(IsValidId("a.b-C9"));
  EXPECT_TRUE(IsValidId(std::string(64, 'a')));
  EXPECT_FALSE(IsValidId(std::string(65, 'a')));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("a_b"));
  EXPECT_FALSE(IsValidId("a b"));
  EXPECT_FALSE(IsValidId("a/b"));
}

TEST(PrimitivesTest, UriUrlCanonical) {
  for (const char* type : {"uri", "url", "canonical"}) {
    EXPECT_TRUE(IsValidPrimitive(type, json::Value("http://example.org/fhir|1.0"))) << type;
    EXPECT_TRUE(IsValidPrimitive(type, json::Value("#p1"))) << type;
    EXPECT_FALSE(IsValidPrimitive(type, json::Value("http://a b"))) << type;
    EXPECT_FALSE(IsValidPrimitive(type, json::Value(""))) << type;
  }
}

TEST(PrimitivesTest, Oid) {
  EXPECT_TRUE(IsValidOid("urn:oid:1.2.3.4.5"));
  EXPECT_TRUE(IsValidOid("urn:oid:2.16.840.1.113883.4.1"));
  EXPECT_TRUE(IsValidOid("urn:oid:0.0"));
  EXPECT_FALSE(IsValidOid("urn:oid:1"));
  EXPECT_FALSE(IsValidOid("urn:oid:3.1"));
  EXPECT_FALSE(IsValidOid("urn:oid:1.02"));
  EXPECT_FALSE(IsValidOid("urn:oid:1..2"));
  EXPECT_FALSE(IsValidOid("urn:oid:1.2."));
  EXPECT_FALSE(IsValidOid("1.2.3"));
}

TEST(PrimitivesTest, Uuid) {
  EXPECT_TRUE(IsValidUuid("urn:uuid:c757873d-ec9a-4326-a141-556f43239520"));
  EXPECT_FALSE(IsValidUuid("urn:uuid:C757873D-EC9A-4326-A141-556F43239520"));
  EXPECT_FALSE(IsValidUuid("c757873d-ec9a-4326-a141-556f43239520"));
  EXPECT_FALSE(IsValidUuid("urn:uuid:c757873d-ec9a-4326-a141-556f4323952"));
  EXPECT_FALSE(IsValidUuid("urn:uuid:c757873dxec9a-4326-a141-556f43239520"));
}

TEST(PrimitivesTest, Date) {
  for (const char* ok : {"2018", "2018-01", "2018-01-31", "2000-02-29", "0001-01-01", "1900-12"})
    EXPECT_TRUE(IsValidDate(ok)) << ok;
  for (const char* bad :
       {"0000", "18", "2018-1", "2018-00", "2018-13", "2018-01-00", "2018-01-32", "2018-04-31",
        "2019-02-29", "1900-02-29", "2018-01-01T00:00:00Z", "2018/01/01", "2018-01-01 ", ""})
    EXPECT_FALSE(IsValidDate(bad)) << bad;
}

TEST(PrimitivesTest, DateTime) {
  for (const char* ok :
       {"2018", "2018-05", "2018-05-06", "2018-05-06T10:20:30Z", "2018-05-06T10:20:30.123+02:00",
        "2018-05-06T23:59:60-14:00", "2018-05-06T00:00:00+14:00", "2015-02-07T13:28:17.239+13:59"})
    EXPECT_TRUE(IsValidDateTime(ok)) << ok;
  for (const char* bad :
       {"2018-05-06T10:20:30", "2018-05-06T10:20Z", "2018-05T10:20:30Z", "2018-05-06T24:00:00Z",
        "2018-05-06T10:60:00Z", "2018-05-06T10:20:61Z", "2018-05-06T10:20:30.Z",
        "2018-05-06T10:20:30+14:01", "2018-05-06T10:20:30+0200", "2018-05-06T10:20:30z",
        "2018-05-06t10:20:30Z", "2018-05-06T"})
    EXPECT_FALSE(IsValidDateTime(bad)) << bad;
}

TEST(PrimitivesTest, Instant) {
  EXPECT_TRUE(IsValidInstant("2015-02-07T13:28:17.239+02:00"));
  EXPECT_TRUE(IsValidInstant("2015-02-07T13:28:17Z"));
  EXPECT_FALSE(IsValidInstant("2015-02-07"));
  EXPECT_FALSE(IsValidInstant("2015-02-07T13:28:17"));
  EXPECT_FALSE(IsValidInstant("2015-02-07T13:28Z"));
  EXPECT_FALSE(IsValidInstant("2015"));
}

TEST(PrimitivesTest, Time) {
  for (const char* ok : {"00:00:00", "23:59:59", "12:30:60", "08:00:00.5"})
    EXPECT_TRUE(IsValidTime(ok)) << ok;
  for (const char* bad : {"24:00:00", "12:60:00", "12:00", "8:00:00", "12:00:00Z", "12:00:00.", ""})
    EXPECT_FALSE(IsValidTime(bad)) << bad;
}

TEST(PrimitivesTest, Base64Binary) {
  for (const char* ok : {"AAAA", "aGVsbG8=", "aGk=", "aGVs\nbG8h", " aGVsbG8h ", "+/+/"})
    EXPECT_TRUE(IsValidBase64(ok)) << ok;
  for (const char* bad : {"", "   ", "aGVsbG8", "aGk", "a===", "aG=k", "aGk*", "====", "aGk=aGk="})
    EXPECT_FALSE(IsValidBase64(bad)) << bad;
}

TEST(PrimitivesTest, Xhtml) {
  EXPECT_TRUE(IsValidXhtml("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"));
  EXPECT_TRUE(IsValidXhtml("  \n<div>x</div>"));
  EXPECT_FALSE(IsValidXhtml("<p>x</p>"));
  EXPECT_FALSE(IsValidXhtml("text"));
  EXPECT_FALSE(IsValidXhtml("<divx>"));
  EXPECT_FALSE(IsValidXhtml(""));
  EXPECT_TRUE(IsValidPrimitive("xhtml", json::Value("<div>a</div>")));
}

TEST(PrimitivesTest, Boolean) {
  EXPECT_TRUE(IsValidPrimitive(PrimitiveType::kBoolean, json::Value(false)));
  EXPECT_FALSE(IsValidPrimitive(PrimitiveType::kBoolean, Num("1")));
  EXPECT_TRUE(IsValidPrimitiveText(PrimitiveType::kBoolean, "true"));
  EXPECT_FALSE(IsValidPrimitiveText(PrimitiveType::kBoolean, "True"));
}

}  // namespace
}  // namespace fhirstone::fhir
