#include "http/message.h"

#include <gtest/gtest.h>

namespace fhirstone::http {
namespace {

TEST(MessageTest, FindHeaderIgnoresCase) {
  Headers headers = {{"Content-Type", "application/fhir+json"}, {"X-A", "1"}, {"x-a", "2"}};
  EXPECT_EQ(FindHeader(headers, "content-type"), "application/fhir+json");
  EXPECT_EQ(FindHeader(headers, "X-a"), "1");  // the first one
  EXPECT_EQ(FindHeader(headers, "Accept"), "");
  EXPECT_TRUE(HasHeader(headers, "CONTENT-TYPE"));
  EXPECT_FALSE(HasHeader(headers, "Content-Typ"));
}

TEST(MessageTest, PathAndQuery) {
  Request request;
  request.target = "/Patient?name=a%20b&_count=2";
  EXPECT_EQ(request.Path(), "/Patient");
  EXPECT_EQ(request.Query(), "name=a%20b&_count=2");
  request.target = "/metadata";
  EXPECT_EQ(request.Path(), "/metadata");
  EXPECT_EQ(request.Query(), "");
  request.target = "/x?";
  EXPECT_EQ(request.Path(), "/x");
  EXPECT_EQ(request.Query(), "");
}

TEST(MessageTest, SetHeaderReplacesIgnoringCase) {
  Response response;
  response.SetHeader("Content-Type", "text/plain");
  response.SetHeader("ETag", "W/\"1\"");
  response.headers.emplace_back("content-type", "duplicate");
  response.SetHeader("CONTENT-TYPE", "application/json");
  ASSERT_EQ(response.headers.size(), 2u);
  EXPECT_EQ(response.headers[0].first, "CONTENT-TYPE");
  EXPECT_EQ(response.Header("content-type"), "application/json");
  EXPECT_EQ(response.Header("etag"), "W/\"1\"");
}

}  // namespace
}  // namespace fhirstone::http
