#include "common/json.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace fhirstone::json {
namespace {

TEST(JsonTest, NumbersKeepTheirText) {
  auto v = Parse(R"({"a":1.0,"b":1.000000000000000000E-245,"c":-0,"d":12345678901234567890123})");
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(Write(*v),
            R"({"a":1.0,"b":1.000000000000000000E-245,"c":-0,"d":12345678901234567890123})");
}

TEST(JsonTest, KeepsMemberOrderAndEscapes) {
  auto v = Parse("{\"z\":\"a\\\"b\\\\c\\n\\u0001\\u00e9\",\"a\":[true,false,null,{}]}");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_object()[0].first, "z");
  EXPECT_EQ(v->GetString("z"), "a\"b\\c\n\x01\xc3\xa9");
  EXPECT_EQ(Write(*v), "{\"z\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",\"a\":[true,false,null,{}]}");
}

TEST(JsonTest, PrettyPrints) {
  auto v = Parse(R"({"a":[1,2],"b":{}})");
  ASSERT_TRUE(v);
  EXPECT_EQ(Write(*v, {.pretty = true}), "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}");
}

TEST(JsonTest, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "{\"a\":}", "{\"a\":1,}", "[1 2]", "{\"a\":01}", "{\"a\":1.}",
                          "{\"a\":-}", "{\"a\":tru}", "{} {}", "{\"a\":1}x", "{'a':1}",
                          "{\"a\":\"\xff\"}", "{\"a\":1,\"a\":2}", "nul", "[1e]"}) {
    auto v = Parse(bad);
    EXPECT_FALSE(v) << "accepted: " << bad;
    if (!v) {
      EXPECT_EQ(v.error().code(), ErrorCode::kInvalid);
    }
  }
}

TEST(JsonTest, RejectsDuplicateKeysIncludingEmptyOnes) {
  EXPECT_FALSE(Parse(R"({"":1,"":2})"));
  std::string many = "{";
  for (int i = 0; i < 20; ++i) many += "\"k" + std::to_string(i) + "\":1,";
  many += "\"\":1,\"\":2,\"k3\":2}";
  EXPECT_FALSE(Parse(many));
  EXPECT_TRUE(Parse(R"({"":1,"a":2})"));
}

TEST(JsonTest, LimitsDepth) {
  std::string deep(50, '[');
  deep += std::string(50, ']');
  EXPECT_TRUE(Parse(deep));
  std::string too_deep(5000, '[');
  too_deep += std::string(5000, ']');
  auto v = Parse(too_deep);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().message().find("Invalid JSON"), std::string::npos);
}

TEST(JsonTest, EqualityIgnoresMemberOrderButNotNumberText) {
  EXPECT_EQ(*Parse(R"({"a":1,"b":[1,2]})"), *Parse(R"({"b":[1,2],"a":1})"));
  EXPECT_FALSE(*Parse(R"({"a":1.0})") == *Parse(R"({"a":1.00})"));
  EXPECT_FALSE(*Parse(R"({"a":[1,2]})") == *Parse(R"({"a":[2,1]})"));
}

TEST(JsonTest, SetFindErase) {
  Value o = Value::EmptyObject();
  o.Set("a", Value::Number(1));
  o.Set("b", "x");
  o.Set("a", true);
  EXPECT_EQ(Write(o), R"({"a":true,"b":"x"})");
  EXPECT_TRUE(o.Erase("a"));
  EXPECT_FALSE(o.Erase("a"));
  EXPECT_EQ(o.Find("a"), nullptr);
  EXPECT_EQ(Write(o), R"({"b":"x"})");
}

TEST(JsonTest, ScalarDocuments) {
  EXPECT_EQ(Write(*Parse(" 42 ")), "42");
  EXPECT_EQ(Write(*Parse("\"s\"")), "\"s\"");
  EXPECT_EQ(Write(*Parse("null")), "null");
}

// Strings escaped eight bytes at a time: a character to escape at each position of strings up
// to 40 bytes, among plain ASCII and UTF-8 bytes, gives what escaping byte by byte gives.
TEST(JsonTest, EscapesEveryCharacterWhereverItIs) {
  auto reference = [](std::string_view s) {
    std::string out;
    for (char ch : s) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c == '\b') {
        out += "\\b";
      } else if (c == '\f') {
        out += "\\f";
      } else if (c < 0x20) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\u%04x", c);
        out += hex;
      } else {
        out += ch;
      }
    }
    return out;
  };
  const std::string specials = std::string("\"\\\n\x01\x1f\t") + '\0';
  const std::string fillers[] = {"a", "\xc3\xa9", "\x7f", " ", "!", "#", "[", "]", "\x80"};
  for (size_t length = 0; length <= 40; ++length) {
    for (const std::string& filler : fillers) {
      std::string base;
      while (base.size() < length) base += filler;
      base.resize(length);
      std::string out;
      AppendEscaped(base, out);
      EXPECT_EQ(out, reference(base)) << length;
      for (size_t at = 0; at < length; ++at) {
        for (char special : specials) {
          std::string s = base;
          s[at] = special;
          out.clear();
          AppendEscaped(s, out);
          ASSERT_EQ(out, reference(s)) << "length " << length << ", at " << at;
          // A second one at every place after the first (the last eight bytes, read as one word,
          // then hold one of them or both).
          for (size_t second = at + 1; second < length; ++second) {
            std::string two = s;
            two[second] = special;
            out.clear();
            AppendEscaped(two, out);
            ASSERT_EQ(out, reference(two))
                << "length " << length << ", at " << at << " and " << second;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace fhirstone::json
