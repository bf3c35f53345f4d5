#include "http/client.h"

#include <gtest/gtest.h>

#include "http/server.h"

namespace fhirstone::http {
namespace {

TEST(ClientTest, GetsFromAServer) {
  ServerOptions options;
  options.port = 0;
  options.threads = 1;
  auto server = Server::Start(
      options,
      [](Request& request) {
        Response r;
        r.body = request.Path() == "/keys" ? R"({"keys":[]})" : "other";
        r.status = request.Path() == "/keys" ? 200 : 404;
        r.SetHeader("Content-Type", "application/json");
        return r;
      },
      [](int status, std::string_view message) {
        Response r;
        r.status = status;
        return r;
      });
  ASSERT_TRUE(server);
  std::string base = "http://127.0.0.1:" + std::to_string((*server)->port());
  auto ok = Get(base + "/keys");
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, R"({"keys":[]})");
  EXPECT_EQ(ok->Header("Content-Type"), "application/json");
  auto missing = Get(base + "/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  FetchOptions small;
  small.max_body_bytes = 3;
  EXPECT_FALSE(Get(base + "/keys", small));  // body over the limit
  (*server)->Stop();
}

TEST(ClientTest, RefusesWhatItCannotFetch) {
  EXPECT_EQ(Get("ftp://example.org/x").error().code(), ErrorCode::kInvalid);
  EXPECT_EQ(Get("http://user@example.org/x").error().code(), ErrorCode::kInvalid);
  FetchOptions quick;
  quick.timeout = std::chrono::milliseconds(500);
  // Nothing listens on port 1.
  auto refused = Get("http://127.0.0.1:1/keys", quick);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace fhirstone::http
