#include "fhirpath/internal/parser.h"

#include <gtest/gtest.h>

#include <string>

#include "fhirpath/fhirpath.h"

namespace fhirstone::fhirpath::internal {
namespace {

std::string Tree(std::string_view text) {
  Result<Program> p = Parse(text);
  if (!p) return "error: " + p.error().message();
  return DebugString(*p);
}

TEST(ParserTest, Precedence) {
  EXPECT_EQ(Tree("1 + 2 * 3"), "(+ 1 (* 2 3))");
  EXPECT_EQ(Tree("(1 + 2) * 3"), "(* (+ 1 2) 3)");
  EXPECT_EQ(Tree("1 - 2 - 3"), "(- (- 1 2) 3)");
  EXPECT_EQ(Tree("a and b or c"), "(or (and a b) c)");
  EXPECT_EQ(Tree("a or b and c"), "(or a (and b c))");
  EXPECT_EQ(Tree("a implies b or c"), "(implies a (or b c))");
  EXPECT_EQ(Tree("a xor b implies c"), "(implies (xor a b) c)");
  EXPECT_EQ(Tree("a = b and c != d"), "(and (= a b) (!= c d))");
  EXPECT_EQ(Tree("a < b = c > d"), "(= (< a b) (> c d))");
  EXPECT_EQ(Tree("a | b = c"), "(= (| a b) c)");
  EXPECT_EQ(Tree("a in b | c"), "(in a (| b c))");
  EXPECT_EQ(Tree("a contains b and c"), "(and (contains a b) c)");
  EXPECT_EQ(Tree("status in ('a' | 'b') or value.exists()"),
            "(or (in status (| 'a' 'b')) value.exists())");
  EXPECT_EQ(Tree("a & b + c"), "(+ (& a b) c)");
  EXPECT_EQ(Tree("a div b mod c"), "(mod (div a b) c)");
  EXPECT_EQ(Tree("a + b is Integer"), "(is (+ a b) Integer)");
  EXPECT_EQ(Tree("a is Quantity | b"), "(| (is a Quantity) b)");
  EXPECT_EQ(Tree("-a.b"), "(- a.b)");
  EXPECT_EQ(Tree("-5 + 2"), "(+ -5 2)");
  EXPECT_EQ(Tree("2 * -1.5"), "(* 2 -1.5)");
  EXPECT_EQ(Tree("a.b[0].c"), "([] a.b 0).c");
  EXPECT_EQ(Tree("x ~ y or x !~ z"), "(or (~ x y) (!~ x z))");
  EXPECT_EQ(Tree("a >= 1 and a <= 2"), "(and (>= a 1) (<= a 2))");
}

TEST(ParserTest, PathsAndFunctions) {
  EXPECT_EQ(Tree("Patient.name.where(use = 'official').given"),
            "Patient.name.where((= use 'official')).given");
  EXPECT_EQ(Tree("Observation.value.as(Quantity)"), "Observation.value.as(Quantity)");
  EXPECT_EQ(Tree("(Observation.value as Quantity).unit"), "(as Observation.value Quantity).unit");
  EXPECT_EQ(Tree("value.ofType(FHIR.Quantity)"), "value.ofType(FHIR.Quantity)");
  EXPECT_EQ(Tree("x is System.String"), "(is x System.String)");
  EXPECT_EQ(Tree("iif(a, 1, 2)"), "iif(a, 1, 2)");
  EXPECT_EQ(Tree("$this.given.exists() and $index > 0"), "(and $this.given.exists() (> $index 0))");
  EXPECT_EQ(Tree("%resource.id | %`vs-x` | %'ext-y'"), "(| (| %resource.id %vs-x) %ext-y)");
  EXPECT_EQ(Tree("`div`.contains('a')"), "div.contains('a')");
  EXPECT_EQ(Tree("{}.empty()"), "{}.empty()");
  EXPECT_EQ(Tree("Patient.contains"), "Patient.contains");
}

TEST(ParserTest, Literals) {
  EXPECT_EQ(Tree("'a\\'b\\nc'"), "'a'b\nc'");
  EXPECT_EQ(Tree("'\\u00e9'"), "'\xc3\xa9'");
  EXPECT_EQ(Tree("true and false"), "(and true false)");
  EXPECT_EQ(Tree("4 'mg'"), "4 'mg'");
  EXPECT_EQ(Tree("1 year + 2.5 'cm'"), "(+ 1 'year' 2.5 'cm')");
  EXPECT_EQ(Tree("@2015-02-04T14:34:28.123+09:00"), "@2015-02-04T14:34:28.123+09:00");
  EXPECT_EQ(Tree("@2015T"), "@2015T");
  EXPECT_EQ(Tree("@2015-02"), "@2015-02");
  EXPECT_EQ(Tree("@T14:34"), "@T14:34");
  EXPECT_EQ(Tree("@2014-01-01 - 1 day"), "(- @2014-01-01 1 'day')");
  EXPECT_EQ(Tree("1.5.round()"), "1.5.round()");
  EXPECT_EQ(Tree("5.toString()"), "5.toString()");
  EXPECT_EQ(Tree("a // comment\n + /* block */ b"), "(+ a b)");
}

void ExpectError(std::string_view text, ErrorCode code, std::string_view fragment) {
  Result<Program> p = Parse(text);
  ASSERT_FALSE(p) << text;
  EXPECT_EQ(p.error().code(), code) << text;
  EXPECT_NE(p.error().message().find(fragment), std::string::npos)
      << text << " -> " << p.error().message();
}

TEST(ParserTest, ErrorsHavePositions) {
  ExpectError("Patient.name.", ErrorCode::kInvalid, "at position 13");
  ExpectError("(1 + 2", ErrorCode::kInvalid, "expected ')'");
  ExpectError("1 +", ErrorCode::kInvalid, "at position 3");
  ExpectError("a b", ErrorCode::kInvalid, "unexpected 'b' at position 2");
  ExpectError("'abc", ErrorCode::kInvalid, "unterminated string at position 0");
  ExpectError("a ! b", ErrorCode::kInvalid, "at position 2");
  ExpectError("a # b", ErrorCode::kInvalid, "unexpected character at position 2");
  ExpectError("x is Nonsense", ErrorCode::kInvalid, "unknown type 'Nonsense'");
  ExpectError("x.ofType(1)", ErrorCode::kInvalid, "expected a type name");
  ExpectError("@2015-13-01", ErrorCode::kInvalid, "invalid date/time literal at position 0");
  ExpectError("$that", ErrorCode::kInvalid, "unknown special variable");
  ExpectError("name.where()", ErrorCode::kInvalid, "wrong number of arguments to where()");
  ExpectError("name.first(1)", ErrorCode::kInvalid, "wrong number of arguments");
  ExpectError("and", ErrorCode::kInvalid, "unexpected 'and' at position 0");
  ExpectError("x.matches('(a')", ErrorCode::kInvalid, "at position 10");
  ExpectError("x.matches('(a)\\\\1')", ErrorCode::kInvalid, "back-references");
  ExpectError("x.matches('a{33333333333333333333')", ErrorCode::kInvalid, "too large");
  ExpectError("x.matches('a{1,33333333333333333333}')", ErrorCode::kInvalid, "too large");
  ExpectError("99999999999999999999", ErrorCode::kInvalid, "integer out of range");
  ExpectError("", ErrorCode::kInvalid, "unexpected 'end of expression' at position 0");
  ExpectError("Patient.name.foo()", ErrorCode::kNotSupported, "'foo()' at position 13");
  ExpectError("code.memberOf('http://x')", ErrorCode::kNotSupported, "memberOf");
}

TEST(ParserTest, NestingIsBounded) {
  std::string deep(kMaxDepth + 5, '(');
  deep += "1";
  deep += std::string(kMaxDepth + 5, ')');
  ExpectError(deep, ErrorCode::kInvalid, "nested too deeply");

  std::string chain = "a";
  for (int i = 0; i < kMaxDepth + 5; ++i) chain += ".b";
  ExpectError(chain, ErrorCode::kInvalid, "nested too deeply");

  std::string sum = "1";
  for (int i = 0; i < kMaxDepth + 5; ++i) sum += " + 1";
  ExpectError(sum, ErrorCode::kInvalid, "nested too deeply");

  std::string minus(kMaxDepth + 5, '-');
  ExpectError(minus + "1", ErrorCode::kInvalid, "nested too deeply");

  std::string ok = "1";
  for (int i = 0; i < 100; ++i) ok += " + 1";
  EXPECT_TRUE(Parse(ok));
}

TEST(ParserTest, CompileKeepsText) {
  auto e = Compile("Patient.name");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)->text(), "Patient.name");
}

}  // namespace
}  // namespace fhirstone::fhirpath::internal
