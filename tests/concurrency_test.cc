// Many clients at once, on two nodes sharing one database (SQLite file or PostgreSQL): no update
// is lost under If-Match, and concurrent conditional creates make exactly one resource.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/json.h"
#include "server/app.h"
#include "support/databases.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;

class ConcurrencyTest : public ::testing::TestWithParam<db::Dialect> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-concurrency-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string url;
    {
      std::unique_ptr<db::Database> fresh;  // emptied; the nodes open their own
      FHIRSTONE_ASSIGN_FRESH_DATABASE(fresh, GetParam(), dir_ / "db", &url);
    }
    for (int i = 0; i < 2; ++i) {
      server::ServeConfig config;
      config.listen = "127.0.0.1:0";
      config.db = url;
      config.open = true;
      config.threads = 2;
      config.access_log = "off";
      auto app = server::App::Start(config);
      ASSERT_TRUE(app) << app.error().message();
      nodes_.push_back(std::move(app).value());
    }
  }
  void TearDown() override {
    for (auto& node : nodes_) node->Stop();
    nodes_.clear();
    fs::remove_all(dir_);
  }

  Result<http::Response> Send(int node, std::string method, std::string target,
                              std::string body = "", http::Headers headers = {}) {
    http::Request request =
        test::MakeRequest(std::move(method), std::move(target), std::move(body));
    if (!request.body.empty())
      request.headers.emplace_back("Content-Type", "application/fhir+json");
    for (auto& h : headers) request.headers.push_back(std::move(h));
    return test::Fetch("127.0.0.1", nodes_[node % nodes_.size()]->port(), std::move(request));
  }

  fs::path dir_;
  std::vector<std::unique_ptr<server::App>> nodes_;
};

// Read, increment, write back with If-Match, retry on 412: every increment counts.
TEST_P(ConcurrencyTest, IfMatchUpdatesLoseNothing) {
  auto created = Send(0, "PUT", "/fhir/Patient/counter",
                      R"({"resourceType":"Patient","id":"counter","multipleBirthInteger":0})");
  ASSERT_TRUE(created && created->status == 201);
  constexpr int kThreads = 8, kIncrements = 10;
  std::atomic<int> conflicts{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIncrements;) {
        auto read = Send(t, "GET", "/fhir/Patient/counter");
        if (!read || read->status != 200) {
          ++failures;
          return;
        }
        auto body = json::Parse(read->body);
        int64_t count = std::stoll(body->Find("multipleBirthInteger")->as_string());
        std::string etag(read->Header("ETag"));
        auto write = Send(t, "PUT", "/fhir/Patient/counter",
                          R"({"resourceType":"Patient","id":"counter","multipleBirthInteger":)" +
                              std::to_string(count + 1) + "}",
                          {{"If-Match", etag}});
        if (write && write->status == 200) {
          ++i;
        } else if (write && write->status == 412) {
          ++conflicts;  // someone else wrote first: read again
        } else {
          ++failures;
          return;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  auto final_read = Send(1, "GET", "/fhir/Patient/counter");
  ASSERT_TRUE(final_read && final_read->status == 200);
  auto body = json::Parse(final_read->body);
  EXPECT_EQ(std::stoll(body->Find("multipleBirthInteger")->as_string()), kThreads * kIncrements);
  EXPECT_EQ(final_read->Header("ETag"), "W/\"" + std::to_string(1 + kThreads * kIncrements) + "\"");
  EXPECT_GT(conflicts, 0);  // the clients did race
}

TEST_P(ConcurrencyTest, ConditionalCreatesMakeOneResource) {
  std::atomic<int> created{0}, found{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        auto response =
            Send(t, "POST", "/fhir/Patient",
                 R"({"resourceType":"Patient","identifier":[{"system":"urn:race","value":"one"}]})",
                 {{"If-None-Exist", "identifier=urn:race|one"}});
        if (response && response->status == 201) {
          ++created;
        } else if (response && response->status == 200) {
          ++found;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created, 1);
  EXPECT_EQ(found, 79);
  EXPECT_EQ(other, 0);
  for (int node = 0; node < 2; ++node) {
    auto search = Send(node, "GET", "/fhir/Patient?identifier=urn:race%7Cone");
    ASSERT_TRUE(search);
    EXPECT_NE(search->body.find("\"total\":1"), std::string::npos) << search->body;
  }
}

INSTANTIATE_TEST_SUITE_P(Dialects, ConcurrencyTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone
