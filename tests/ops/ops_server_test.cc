// Operations end to end: /healthz, /readyz, /metrics, X-Request-Id, per-address and per-client
// rate limits (429 with Retry-After, RateLimit-* and an OperationOutcome), and an access log
// that carries no query values and no tokens.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/json.h"
#include "server/admin.h"
#include "server/app.h"
#include "support/fakes.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;

class OpsTest : public ::testing::Test {
 protected:
  // With `log_file`, the access log goes to access.log in the test's folder (AccessLog()).
  void Start(server::ServeConfig config, bool log_file = true) {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-ops-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config.listen = "127.0.0.1:0";
    config.db = "sqlite:" + (dir_ / "db.sqlite").string();
    config.bulk_dir = (dir_ / "bulk").string();
    if (log_file) config.access_log = (dir_ / "access.log").string();
    db_ = config.db;
    auto app = server::App::Start(config, &clock_, nullptr);
    ASSERT_TRUE(app) << app.error().message();
    app_ = std::move(app).value();
  }
  void TearDown() override {
    if (app_) app_->Stop();
    app_.reset();
    fs::remove_all(dir_);
  }
  http::Response Get(const std::string& target, http::Headers headers = {}) {
    http::Request r = test::MakeRequest("GET", target);
    r.headers = std::move(headers);
    auto response = test::Fetch("127.0.0.1", app_->port(), std::move(r));
    EXPECT_TRUE(response);
    return response ? std::move(response).value() : http::Response{};
  }
  // A new backend client `id` (system/*.rs) and its client_credentials token, as an
  // Authorization header value.
  std::string BearerFor(const std::string& id) {
    server::ClientSpec spec;
    spec.client_id = id;
    spec.name = id;
    spec.type = "confidential-symmetric";
    spec.redirect_uris = {"https://x.example/cb"};
    spec.scopes = "system/*.rs";
    auto reg = server::AddClient(db_, spec);
    EXPECT_TRUE(reg);
    http::Request r =
        test::MakeRequest("POST", "/auth/token",
                          "grant_type=client_credentials&scope=system/*.rs&client_id=" + id +
                              "&client_secret=" + reg->client_secret);
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    auto response = test::Fetch("127.0.0.1", app_->port(), std::move(r));
    return "Bearer " + std::string(json::Parse(response->body)->GetString("access_token"));
  }
  std::string AccessLog() {
    std::ifstream in(dir_ / "access.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  test::FakeClock clock_{SystemClock().NowMicros()};
  fs::path dir_;
  std::string db_;
  std::unique_ptr<server::App> app_;
};

TEST_F(OpsTest, HealthReadinessMetricsAndRequestIds) {
  server::ServeConfig config;
  config.open = true;
  config.audit_delay_ms = 10000;  // the backlog stays visible until FlushAudit
  Start(config);
  auto health = Get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  auto read = Get("/fhir/Patient?name=Ada");
  EXPECT_EQ(read.status, 200);
  std::string id(read.Header("X-Request-Id"));
  EXPECT_EQ(id.size(), 16u);
  EXPECT_NE(Get("/fhir/metadata").Header("X-Request-Id"), id);
  auto metrics = Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("fhirstone_http_requests_total{interaction=\"search-type\","
                              "resource_type=\"Patient\",status=\"200\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("fhirstone_http_request_duration_seconds_bucket"), std::string::npos);
  // Database time by operation; the audit backlog (the search's record, queued for up to 1 s).
  EXPECT_NE(metrics.body.find("fhirstone_db_time_seconds_count{operation=\"search\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("fhirstone_audit_backlog 1\n"), std::string::npos) << metrics.body;
  app_->FlushAudit();
  EXPECT_NE(Get("/metrics").body.find("fhirstone_audit_backlog 0\n"), std::string::npos);
  app_->Stop();
  std::string log = AccessLog();
  EXPECT_NE(log.find("\"request_id\":\"" + id + "\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"path\":\"/fhir/Patient?name=*\""), std::string::npos) << log;
  EXPECT_EQ(log.find("Ada"), std::string::npos);  // no query values (PHI) in logs
}

// The access log is written in chunks, but a line reaches it within about a second of its
// request, while the server runs.
TEST_F(OpsTest, AccessLogLinesArriveWhileTheServerRuns) {
  server::ServeConfig config;
  config.open = true;
  Start(config);
  std::string id(Get("/fhir/metadata").Header("X-Request-Id"));
  ASSERT_EQ(id.size(), 16u);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (AccessLog().find(id) == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(AccessLog().find("\"request_id\":\"" + id + "\""), std::string::npos);
}

// On standard output (the default), the lines arrive the same way, and those still gathered are
// written when the server stops.
TEST_F(OpsTest, AccessLogOnStandardOutput) {
  fs::path out = fs::temp_directory_path() / ("fhirstone-ops-stdout-" + std::to_string(getpid()));
  int file = ::open(out.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ASSERT_GE(file, 0);
  std::fflush(stdout);
  int saved = ::dup(STDOUT_FILENO);
  ::dup2(file, STDOUT_FILENO);
  ::close(file);
  auto written = [&] {
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  server::ServeConfig config;
  config.open = true;
  config.access_log = "-";
  Start(config, /*log_file=*/false);
  std::string first(Get("/fhir/metadata").Header("X-Request-Id"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (written().find(first) == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string second(Get("/fhir/metadata").Header("X-Request-Id"));
  app_->Stop();
  std::string log = written();
  std::fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  fs::remove(out);
  EXPECT_NE(log.find("\"request_id\":\"" + first + "\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"request_id\":\"" + second + "\""), std::string::npos) << log;
}

TEST_F(OpsTest, PerAddressLimitWithoutToken) {
  server::ServeConfig config;
  config.open = true;
  config.rate_limit_ip = "1/s:3";
  Start(config);
  for (int i = 0; i < 3; ++i) {
    auto ok = Get("/fhir/Patient");
    EXPECT_EQ(ok.status, 200);
    EXPECT_EQ(ok.Header("RateLimit-Limit"), "3");
  }
  auto refused = Get("/fhir/Patient");
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.Header("Retry-After"), "1");
  EXPECT_EQ(refused.Header("RateLimit-Remaining"), "0");
  EXPECT_NE(refused.body.find("OperationOutcome"), std::string::npos);
  clock_.Advance(1100000);
  EXPECT_EQ(Get("/fhir/Patient").status, 200);
  EXPECT_NE(Get("/metrics").body.find("fhirstone_rate_limited_total{kind=\"ip\"} 1"),
            std::string::npos);
  EXPECT_EQ(Get("/healthz").status, 200);  // never limited
}

TEST_F(OpsTest, PerClientLimitsAndOverrides) {
  server::ServeConfig config;
  config.rate_limit_client = "1/s:2";
  config.rate_limit_overrides = {"vip=1/s:5"};
  Start(config);
  std::string plain = BearerFor("plain");
  std::string vip = BearerFor("vip");
  int plain_ok = 0, vip_ok = 0;
  for (int i = 0; i < 6; ++i) {
    plain_ok += Get("/fhir/Patient", {{"Authorization", plain}}).status == 200;
    vip_ok += Get("/fhir/Patient", {{"Authorization", vip}}).status == 200;
  }
  EXPECT_EQ(plain_ok, 2);
  EXPECT_EQ(vip_ok, 5);
  app_->Stop();
  std::string log = AccessLog();
  EXPECT_NE(log.find("\"client_id\":\"vip\""), std::string::npos);
  EXPECT_EQ(log.find("Bearer"), std::string::npos);  // no tokens in logs
  EXPECT_EQ(log.find("client_secret="), std::string::npos);
}

// A bounded load test on loopback: one client floods far past its limit from several threads
// while another keeps reading. The flooder is refused (429) beyond its burst; the other client
// is never refused and its median latency stays close to what it was without the flood.
TEST_F(OpsTest, OneClientPastItsLimitDoesNotSlowOthers) {
  server::ServeConfig config;
  config.rate_limit_client = "1/min:100";
  config.rate_limit_overrides = {"calm=1/min:10000"};
  Start(config);
  std::string greedy = BearerFor("greedy");
  std::string calm = BearerFor("calm");
  auto median_latency = [&](int requests, int* refused) {
    std::vector<int64_t> micros;
    for (int i = 0; i < requests; ++i) {
      auto start = std::chrono::steady_clock::now();
      int status = Get("/fhir/Patient?_count=1", {{"Authorization", calm}}).status;
      micros.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count());
      if (status != 200) ++*refused;
    }
    std::sort(micros.begin(), micros.end());
    return micros[micros.size() / 2];
  };
  int calm_refused = 0;
  int64_t before = median_latency(60, &calm_refused);

  constexpr int kThreads = 3, kPerThread = 400;
  std::atomic<int> greedy_ok{0}, greedy_refused{0}, greedy_other{0};
  std::vector<std::thread> flood;
  for (int t = 0; t < kThreads; ++t) {
    flood.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        http::Request r = test::MakeRequest("GET", "/fhir/Patient?_count=1");
        r.headers.emplace_back("Authorization", greedy);
        auto response = test::Fetch("127.0.0.1", app_->port(), std::move(r));
        int status = response ? response->status : 0;
        (status == 200 ? greedy_ok : status == 429 ? greedy_refused : greedy_other)++;
      }
    });
  }
  int64_t during = median_latency(60, &calm_refused);
  for (auto& t : flood) t.join();

  EXPECT_EQ(greedy_ok.load(), 100);  // its burst, then nothing: the minute has not passed
  EXPECT_EQ(greedy_refused.load(), kThreads * kPerThread - 100);
  EXPECT_EQ(greedy_other.load(), 0);
  EXPECT_EQ(calm_refused, 0);
  // Generous bounds (the machine is shared): within 4x, or 20 ms, of the quiet median.
  EXPECT_LE(during, std::max<int64_t>(4 * before, before + 20000))
      << "median latency of the other client: " << before << " us quiet, " << during
      << " us during the flood";
  std::printf("other client's median latency: %lld us quiet, %lld us during the flood\n",
              static_cast<long long>(before), static_cast<long long>(during));
  EXPECT_NE(Get("/metrics")
                .body.find("fhirstone_rate_limited_total{kind=\"client\"} " +
                           std::to_string(kThreads * kPerThread - 100)),
            std::string::npos);
}

// Requests in flight per caller: four connections of one address against a limit of one. Every
// answer is a 200 or a 429 with Retry-After and an OperationOutcome, some are refused, and the
// metric counts exactly those.
TEST_F(OpsTest, ConcurrentRequestsPerCallerAreLimited) {
  server::ServeConfig config;
  config.open = true;
  config.max_concurrent_requests_per_caller = 1;
  config.threads = 2;
  Start(config);
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      // 50 requests each, and more (up to 1000) until two overlap: on a loaded machine the
      // four threads can run one after the other for a while.
      for (int i = 0; i < 50 || (refused.load() == 0 && i < 1000); ++i) {
        auto response =
            test::Fetch("127.0.0.1", app_->port(), test::MakeRequest("GET", "/fhir/Patient"));
        if (response && response->status == 200) {
          ++ok;
        } else if (response && response->status == 429 &&
                   !response->Header("Retry-After").empty() &&
                   response->body.find("OperationOutcome") != std::string::npos) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  go = true;
  for (auto& t : callers) t.join();
  std::printf("one caller, limit 1, 4 connections: %d answered, %d refused\n", ok.load(),
              refused.load());
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(refused.load(), 0) << "four callers at once never overlapped";
  EXPECT_NE(Get("/metrics")
                .body.find("fhirstone_rate_limited_total{kind=\"concurrent\"} " +
                           std::to_string(refused.load()) + "\n"),
            std::string::npos);
}

}  // namespace
}  // namespace fhirstone
