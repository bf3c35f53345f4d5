#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "patch/patch.h"

namespace fhirstone::patch {
namespace {

json::Value Parse(std::string_view text) {
  auto parsed = json::Parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed ? *parsed : json::Value();
}

// Applies `patch` to `doc` and expects `expected`.
void ExpectPatched(std::string_view doc, std::string_view patch, std::string_view expected) {
  Result<json::Value> out = ApplyJsonPatch(Parse(doc), Parse(patch));
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, Parse(expected)) << json::Write(*out);
}

Error ExpectError(std::string_view doc, std::string_view patch) {
  Result<json::Value> out = ApplyJsonPatch(Parse(doc), Parse(patch));
  EXPECT_FALSE(out) << json::Write(*out);
  return out ? Error::Internal("no error") : out.error();
}

// RFC 6902 Appendix A.

TEST(JsonPatchTest, A1AddObjectMember) {
  ExpectPatched(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux"}])",
                R"({"baz":"qux","foo":"bar"})");
}

TEST(JsonPatchTest, A2AddArrayElement) {
  ExpectPatched(R"({"foo":["bar","baz"]})", R"([{"op":"add","path":"/foo/1","value":"qux"}])",
                R"({"foo":["bar","qux","baz"]})");
}

TEST(JsonPatchTest, A3RemoveObjectMember) {
  ExpectPatched(R"({"baz":"qux","foo":"bar"})", R"([{"op":"remove","path":"/baz"}])",
                R"({"foo":"bar"})");
}

TEST(JsonPatchTest, A4RemoveArrayElement) {
  ExpectPatched(R"({"foo":["bar","qux","baz"]})", R"([{"op":"remove","path":"/foo/1"}])",
                R"({"foo":["bar","baz"]})");
}

TEST(JsonPatchTest, A5ReplaceValue) {
  ExpectPatched(R"({"baz":"qux","foo":"bar"})", R"([{"op":"replace","path":"/baz","value":"boo"}])",
                R"({"baz":"boo","foo":"bar"})");
}

TEST(JsonPatchTest, A6MoveValue) {
  ExpectPatched(R"({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}})",
                R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])",
                R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})");
}

TEST(JsonPatchTest, A7MoveArrayElement) {
  ExpectPatched(R"({"foo":["all","grass","cows","eat"]})",
                R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])",
                R"({"foo":["all","cows","eat","grass"]})");
}

TEST(JsonPatchTest, A8TestSuccess) {
  ExpectPatched(R"({"baz":"qux","foo":["a",2,"c"]})",
                R"([{"op":"test","path":"/baz","value":"qux"},
                    {"op":"test","path":"/foo/1","value":2}])",
                R"({"baz":"qux","foo":["a",2,"c"]})");
}

TEST(JsonPatchTest, A9TestFailure) {
  Error e = ExpectError(R"({"baz":"qux"})", R"([{"op":"test","path":"/baz","value":"bar"}])");
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
  EXPECT_NE(e.message().find("operation 0 (test)"), std::string::npos) << e.message();
}

TEST(JsonPatchTest, A10AddNestedMemberObject) {
  ExpectPatched(R"({"foo":"bar"})", R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])",
                R"({"foo":"bar","child":{"grandchild":{}}})");
}

TEST(JsonPatchTest, A11IgnoresUnrecognizedMembers) {
  ExpectPatched(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])",
                R"({"foo":"bar","baz":"qux"})");
}

TEST(JsonPatchTest, A12AddToNonexistentTarget) {
  Error e = ExpectError(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz/bat","value":"qux"}])");
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(JsonPatchTest, A14TildeEscapeOrdering) {
  ExpectPatched(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":10}])",
                R"({"/":9,"~1":10})");
  ExpectPatched(R"({"/":9,"~1":10})", R"([{"op":"replace","path":"/~1","value":8}])",
                R"({"/":8,"~1":10})");
}

TEST(JsonPatchTest, A15StringIsNotNumber) {
  Error e = ExpectError(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":"10"}])");
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(JsonPatchTest, A16AddArrayValue) {
  ExpectPatched(R"({"foo":["bar"]})", R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])",
                R"({"foo":["bar",["abc","def"]]})");
}

// Beyond the appendix.

TEST(JsonPatchTest, CopyAndWholeDocument) {
  ExpectPatched(R"({"a":{"b":[1]}})", R"([{"op":"copy","from":"/a","path":"/c"}])",
                R"({"a":{"b":[1]},"c":{"b":[1]}})");
  ExpectPatched(R"({"a":1})", R"([{"op":"replace","path":"","value":{"b":2}}])", R"({"b":2})");
  ExpectPatched(R"({"a":1})", R"([{"op":"add","path":"","value":[1]}])", R"([1])");
}

TEST(JsonPatchTest, AddReplacesExistingMember) {
  ExpectPatched(R"({"a":1})", R"([{"op":"add","path":"/a","value":2}])", R"({"a":2})");
}

TEST(JsonPatchTest, AddAtArrayEndIndex) {
  ExpectPatched(R"({"a":[1]})", R"([{"op":"add","path":"/a/1","value":2}])", R"({"a":[1,2]})");
  EXPECT_EQ(ExpectError(R"({"a":[1]})", R"([{"op":"add","path":"/a/2","value":2}])").code(),
            ErrorCode::kUnprocessable);
  EXPECT_EQ(ExpectError(R"({"a":[1]})", R"([{"op":"add","path":"/a/01","value":2}])").code(),
            ErrorCode::kUnprocessable);
}

TEST(JsonPatchTest, TestComparesNumbersByValueAndObjectsUnordered) {
  ExpectPatched(R"({"n":1.0,"o":{"x":1,"y":[true,null]}})",
                R"([{"op":"test","path":"/n","value":1},
                    {"op":"test","path":"/n","value":10E-1},
                    {"op":"test","path":"/o","value":{"y":[true,null],"x":1.00}}])",
                R"({"n":1.0,"o":{"x":1,"y":[true,null]}})");
  EXPECT_EQ(ExpectError(R"({"a":[1,2]})", R"([{"op":"test","path":"/a","value":[2,1]}])").code(),
            ErrorCode::kUnprocessable);
  EXPECT_EQ(ExpectError(R"({"n":0.1})", R"([{"op":"test","path":"/n","value":1}])").code(),
            ErrorCode::kUnprocessable);
}

TEST(JsonPatchTest, MoveIntoOwnChildFails) {
  Error e = ExpectError(R"({"a":{"b":1}})", R"([{"op":"move","from":"/a","path":"/a/c"}])");
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(JsonPatchTest, MissingTargetsAreUnprocessable) {
  for (std::string_view patch :
       {R"([{"op":"remove","path":"/x"}])", R"([{"op":"replace","path":"/x","value":1}])",
        R"([{"op":"remove","path":"/a/5"}])", R"([{"op":"move","from":"/x","path":"/y"}])",
        R"([{"op":"copy","from":"/x","path":"/y"}])", R"([{"op":"test","path":"/x","value":1}])"}) {
    EXPECT_EQ(ExpectError(R"({"a":[1]})", patch).code(), ErrorCode::kUnprocessable) << patch;
  }
}

TEST(JsonPatchTest, MalformedDocumentsAreInvalid) {
  for (std::string_view patch :
       {R"({"op":"add","path":"/a","value":1})", R"([1])", R"([{"path":"/a"}])",
        R"([{"op":"frobnicate","path":"/a"}])", R"([{"op":"add","value":1}])",
        R"([{"op":"add","path":"/a"}])", R"([{"op":"replace","path":"/a"}])",
        R"([{"op":"test","path":"/a"}])", R"([{"op":"move","path":"/a"}])",
        R"([{"op":"copy","path":"/a","from":7}])", R"([{"op":"add","path":"a","value":1}])",
        R"([{"op":"add","path":"/a~2","value":1}])", R"([{"op":"remove","path":"/a~"}])"}) {
    EXPECT_EQ(ExpectError(R"({"a":1})", patch).code(), ErrorCode::kInvalid) << patch;
  }
}

TEST(JsonPatchTest, MalformedOperationWinsOverEarlierFailure) {
  Error e = ExpectError(R"({"a":1})", R"([{"op":"remove","path":"/zzz"},{"op":"bogus"}])");
  EXPECT_EQ(e.code(), ErrorCode::kInvalid);
  EXPECT_NE(e.message().find("operation 1"), std::string::npos) << e.message();
}

TEST(JsonPatchTest, FailingOperationLeavesInputUnchanged) {
  json::Value doc = Parse(R"({"resourceType":"Patient","id":"p","active":true})");
  json::Value before = doc;
  Result<json::Value> out = ApplyJsonPatch(doc, Parse(R"([
      {"op":"replace","path":"/active","value":false},
      {"op":"remove","path":"/gender"}])"));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::kUnprocessable);
  EXPECT_NE(out.error().message().find("operation 1 (remove)"), std::string::npos)
      << out.error().message();
  EXPECT_EQ(doc, before);
}

TEST(JsonPatchTest, KeepsNumberText) {
  Result<json::Value> out =
      ApplyJsonPatch(Parse(R"({"v":1})"), Parse(R"([{"op":"replace","path":"/v","value":1.50}])"));
  ASSERT_TRUE(out);
  EXPECT_EQ(json::Write(*out), R"({"v":1.50})");
}

TEST(JsonPatchTest, EmptyPatchIsIdentity) { ExpectPatched(R"({"a":1})", "[]", R"({"a":1})"); }

}  // namespace
}  // namespace fhirstone::patch
