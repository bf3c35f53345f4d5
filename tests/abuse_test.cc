// Bad input never crashes, hangs or corrupts: the whole server (App) under raw abuse, each
// refusal a precise OperationOutcome. Complements the scenarios, which cannot carry raw bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/json.h"
#include "server/app.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class AbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-abuse-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    server::ServeConfig config;
    config.listen = "127.0.0.1:0";
    config.db = "sqlite:" + (dir_ / "db.sqlite").string();
    config.open = true;
    config.threads = 2;
    config.max_body_bytes = 64 * 1024;
    config.read_timeout_ms = 300;
    config.idle_timeout_ms = 1000;
    auto app = server::App::Start(config);
    ASSERT_TRUE(app) << app.error().message();
    app_ = std::move(app).value();
  }
  void TearDown() override {
    app_.reset();
    fs::remove_all(dir_);
  }

  http::Response Post(std::string target, std::string body) {
    http::Request request = test::MakeRequest("POST", std::move(target), std::move(body));
    request.headers.emplace_back("Content-Type", "application/fhir+json");
    auto response = test::Fetch("127.0.0.1", app_->port(), request);
    EXPECT_TRUE(response) << response.error().message();
    return response ? *response : http::Response{};
  }

  static void ExpectOutcome(const http::Response& response, std::string_view diagnostics_part) {
    auto body = json::Parse(response.body);
    ASSERT_TRUE(body) << response.body;
    EXPECT_EQ(body->GetString("resourceType"), "OperationOutcome");
    EXPECT_NE(response.body.find(diagnostics_part), std::string::npos) << response.body;
  }

  void ExpectStillServing() {
    auto response =
        test::Fetch("127.0.0.1", app_->port(), test::MakeRequest("GET", "/fhir/metadata"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }

  fs::path dir_;
  std::unique_ptr<server::App> app_;
};

TEST_F(AbuseTest, InvalidUtf8IsRefused) {
  auto response =
      Post("/fhir/Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xc3\x28\"}]}");
  EXPECT_EQ(response.status, 400);
  ExpectOutcome(response, "UTF-8");
}

TEST_F(AbuseTest, BodyOverTheLimitIs413WithAnOutcome) {
  std::string big =
      "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"<div>" +
      std::string(100 * 1024, 'x') + "</div>\"}}";
  auto response = Post("/fhir/Patient", big);
  EXPECT_EQ(response.status, 413);
  ExpectOutcome(response, "");
  ExpectStillServing();
}

// A query is bounded as a request line is (64 KiB), whichever way it comes: a URL over it gets
// 431 from the transport, a POST _search form over it 400 (on a server whose bodies may be
// larger: this fixture's take 64 KiB, the default 16 MiB).
TEST_F(AbuseTest, HundredKilobyteQueriesAreRefused) {
  std::string value(100 * 1024, 'x');
  auto get = test::Fetch("127.0.0.1", app_->port(),
                         test::MakeRequest("GET", "/fhir/Patient?name=" + value));
  ASSERT_TRUE(get) << get.error().message();
  EXPECT_EQ(get->status, 431);
  server::ServeConfig config;
  config.listen = "127.0.0.1:0";
  config.db = "sqlite:" + (dir_ / "default-limits.sqlite").string();
  config.open = true;
  config.threads = 1;
  auto started = server::App::Start(config);
  ASSERT_TRUE(started) << started.error().message();
  std::unique_ptr<server::App> app = std::move(started).value();
  auto search = [&](std::string body) {
    http::Request form = test::MakeRequest("POST", "/fhir/Patient/_search", std::move(body));
    form.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    auto response = test::Fetch("127.0.0.1", app->port(), form);
    EXPECT_TRUE(response) << response.error().message();
    return response ? *response : http::Response{};
  };
  auto big = search("name=" + value);
  EXPECT_EQ(big.status, 400);
  ExpectOutcome(big, "64 KiB");
  EXPECT_EQ(search("name=" + value.substr(0, 1000)).status, 200);
  ExpectStillServing();
}

// A 100 MB transaction is refused from its Content-Length, before its body is read (no copy of
// it is ever held), and nothing of it is written.
TEST_F(AbuseTest, HundredMegabyteBundleIs413AndWritesNothing) {
  std::string entry = R"({"resource":{"resourceType":"Patient","name":[{"family":"Bulk"}]},)"
                      R"("request":{"method":"POST","url":"Patient"}},)";
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
  bundle.reserve(100 * 1024 * 1024 + entry.size() * 2);
  while (bundle.size() < 100 * 1024 * 1024) bundle += entry;
  bundle.back() = ']';
  bundle += '}';
  auto response = Post("/fhir", std::move(bundle));
  EXPECT_EQ(response.status, 413);
  ExpectOutcome(response, "");
  ExpectStillServing();
  auto search = test::Fetch("127.0.0.1", app_->port(),
                            test::MakeRequest("GET", "/fhir/Patient?_summary=count"));
  ASSERT_TRUE(search);
  EXPECT_NE(search->body.find("\"total\":0"), std::string::npos) << search->body;
}

TEST_F(AbuseTest, SlowClientTimesOutWith408) {
  auto start = std::chrono::steady_clock::now();
  std::string raw = test::SendRaw(
      "127.0.0.1", app_->port(),
      "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", milliseconds(3000));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_NE(raw.find(" 408 "), std::string::npos) << raw;
  EXPECT_LT(elapsed, milliseconds(2500));
  ExpectStillServing();
}

TEST_F(AbuseTest, HalfClosedAndGarbageConnectionsDoNotHurt) {
  std::string raw = test::SendRaw("127.0.0.1", app_->port(), "GET /fhir/metadata HTTP/1.1\r\nHo",
                                  milliseconds(2000), /*half_close_after_send=*/true);
  std::string garbage =
      test::SendRaw("127.0.0.1", app_->port(),
                    std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n",
                    milliseconds(2000));
  EXPECT_NE(garbage.find(" 400 "), std::string::npos) << garbage;
  ExpectStillServing();
}

TEST_F(AbuseTest, ManyBadRequestsLeaveDataIntact) {
  auto created = Post("/fhir/Patient", R"({"resourceType":"Patient","active":true})");
  ASSERT_EQ(created.status, 201);
  std::string id(json::Parse(created.body)->GetString("id"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        http::Request request =
            test::MakeRequest("PUT", "/fhir/Patient/" + std::string(id),
                              i % 2 ? "{\"resourceType\":\"Patient\",\"id\":\"" + std::string(id) +
                                          "\",\"active\":\"no\"}"
                                    : "{\"resourceType\":\"Patient\",\"id\":");
        request.headers.emplace_back("Content-Type", "application/fhir+json");
        auto response = test::Fetch("127.0.0.1", app_->port(), request);
        EXPECT_TRUE(response && response->status == 400) << t;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto read = test::Fetch("127.0.0.1", app_->port(),
                          test::MakeRequest("GET", "/fhir/Patient/" + std::string(id)));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->status, 200);
  EXPECT_EQ(read->Header("ETag"), "W/\"1\"");
}

// Concurrent conditional creates: tests/concurrency_test.cc (both databases, two nodes).

}  // namespace
}  // namespace fhirstone
