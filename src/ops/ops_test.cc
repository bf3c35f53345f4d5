#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "api/error_response.h"
#include "common/json.h"
#include "ops/access_log.h"
#include "ops/health.h"
#include "ops/metrics.h"
#include "ops/rate_limit.h"
#include "ops/request_info.h"
#include "support/fakes.h"

namespace fhirstone::ops {
namespace {

constexpr int64_t kSecond = 1000000;

// ---- metrics ----

TEST(MetricsTest, RendersTheTextFormatExactly) {
  Registry registry;
  auto& requests =
      registry.Counters("test_requests_total", "Requests.\nSecond line \\ end", {"method", "code"});
  requests.Get({"POST", "a\"b\\c\nd"}).Inc();
  requests.Get({"GET", "200"}).Inc(3);
  registry.GetGauge("test_backlog", "Backlog.").Set(2.5);
  auto& latency =
      registry.Histograms("test_latency_seconds", "Latency.", {"op"}, {1, 0.1, 0.5, 0.5});
  Histogram& read = latency.Get({"read"});
  read.Observe(0.25);
  read.Observe(0.5);  // bounds are inclusive
  read.Observe(4);
  registry.GetCounter("test_plain_total", "No labels.").Inc();
  registry.AddCallbackGauge("test_queue", "From a callback.", [] { return 7.0; });

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP test_backlog Backlog.\n"
            "# TYPE test_backlog gauge\n"
            "test_backlog 2.5\n"
            "# HELP test_latency_seconds Latency.\n"
            "# TYPE test_latency_seconds histogram\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 0\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"0.5\"} 2\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"1\"} 2\n"
            "test_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 3\n"
            "test_latency_seconds_sum{op=\"read\"} 4.75\n"
            "test_latency_seconds_count{op=\"read\"} 3\n"
            "# HELP test_plain_total No labels.\n"
            "# TYPE test_plain_total counter\n"
            "test_plain_total 1\n"
            "# HELP test_queue From a callback.\n"
            "# TYPE test_queue gauge\n"
            "test_queue 7\n"
            "# HELP test_requests_total Requests.\\nSecond line \\\\ end\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "test_requests_total{method=\"POST\",code=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, SameNameGivesTheSameSeries) {
  Registry registry;
  Counter& a = registry.GetCounter("x_total", "X.", {{"k", "v"}});
  Counter& b = registry.GetCounter("x_total", "X.", {{"k", "v"}});
  Counter& c = registry.GetCounter("x_total", "X.", {{"k", "w"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_EQ(&registry.Counters("x_total", "X.", {"k"}), &registry.Counters("x_total", "X.", {"k"}));
}

#ifdef NDEBUG
TEST(MetricsTest, ContradictingRegistrationIsDetachedInRelease) {
  Registry registry;
  registry.GetCounter("x_total", "X.").Inc();
  registry.GetGauge("x_total", "Now a gauge.").Set(5);          // other type
  registry.GetCounter("bad name", "Invalid.").Inc();            // invalid name
  registry.Histograms("h_seconds", "Reserved label.", {"le"});  // reserved label
  EXPECT_EQ(registry.RenderPrometheus(), "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n");
}
#endif

TEST(MetricsTest, LabelSetsBeyondTheCapShareTheOverflowSeries) {
  Registry registry;
  auto& family = registry.Counters("c_total", "C.", {"type"}, {.max_series = 2});
  family.Get({"a"}).Inc();
  family.Get({"b"}).Inc();
  family.Get({"c"}).Inc();
  family.Get({"d"}).Inc(2);
  family.Get({"a"}).Inc();
  EXPECT_EQ(family.size(), 2u);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP c_total C.\n# TYPE c_total counter\n"
            "c_total{type=\"a\"} 2\nc_total{type=\"b\"} 1\nc_total{type=\"_other\"} 3\n");
}

TEST(MetricsTest, ConcurrentRecordingSumsExactly) {
  Registry registry;
  auto& counters = registry.Counters("hits_total", "Hits.", {"shard"});
  auto& histograms = registry.Histograms("lat_seconds", "Latency.", {"shard"});
  Gauge& gauge = registry.GetGauge("g", "G.");
  constexpr int kThreads = 4, kPerThread = 50000;
  const std::string_view shards[] = {"a", "b", "c", "d", "e", "f", "g"};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string_view shard = shards[(i + t) % 7];
        counters.Get({shard}).Inc();
        histograms.Get({shard}).ObserveMicros(1000);
        gauge.Inc();
      }
    });
  }
  for (auto& th : threads) th.join();
  uint64_t total = 0, observed = 0;
  for (std::string_view s : shards) {
    total += counters.Get({s}).Value();
    observed += histograms.Get({s}).Read().count;
  }
  EXPECT_EQ(total, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(observed, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(counters.size(), 7u);
  EXPECT_EQ(gauge.Value(), double{kThreads} * kPerThread);
}

TEST(MetricsTest, ServerMetricsUseTheAgreedNames) {
  Registry registry;
  ServerMetrics metrics(registry);
  metrics.RecordRequest("read", "Patient", 200, 1500);
  metrics.RecordRequest("read", "Patient", 200, 700);
  metrics.tokens_issued.Get({"authorization_code"}).Inc();
  metrics.tokens_refused.Get({"invalid_grant"}).Inc();
  metrics.rate_limited.Get({"ip"}).Inc();
  metrics.audit_backlog.Set(4);
  metrics.db_time.Get({"read"}).Observe(0.002);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(
      text.find("fhirstone_http_requests_total{interaction=\"read\",resource_type=\"Patient\","
                "status=\"200\"} 2\n"),
      std::string::npos);
  EXPECT_NE(text.find("fhirstone_http_request_duration_seconds_bucket{interaction=\"read\","
                      "le=\"0.001\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("fhirstone_http_request_duration_seconds_count{interaction=\"read\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("fhirstone_db_time_seconds_count{operation=\"read\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("fhirstone_tokens_issued_total{grant_type=\"authorization_code\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("fhirstone_tokens_refused_total{reason=\"invalid_grant\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("fhirstone_rate_limited_total{kind=\"ip\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE fhirstone_audit_backlog gauge\nfhirstone_audit_backlog 4\n"),
            std::string::npos);

  http::Response response = MetricsResponse(registry);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
}

// ---- rate limits ----

class RateLimitTest : public ::testing::Test {
 protected:
  RateLimitTest() { clock_.SetStep(0); }
  test::FakeClock clock_;
};

TEST_F(RateLimitTest, BurstThenRefusalThenRefill) {
  RateLimiterOptions options;
  options.ip = {1, 3};  // 3 at once, one more a second
  RateLimiter limiter(clock_, options);
  for (int64_t remaining : {2, 1, 0}) {
    Decision d = limiter.Check("ip:10.0.0.1");
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.kind, KeyKind::kIp);
    EXPECT_EQ(d.limit, 3);
    EXPECT_EQ(d.remaining, remaining);
    EXPECT_EQ(d.retry_after_seconds, 0);
  }
  Decision refused = limiter.Check("ip:10.0.0.1");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after_seconds, 1);
  EXPECT_EQ(refused.reset_seconds, 3);
  EXPECT_TRUE(limiter.Check("ip:10.0.0.2").allowed);  // another address has its own bucket

  clock_.Advance(kSecond / 2);
  EXPECT_FALSE(limiter.Check("ip:10.0.0.1").allowed);
  clock_.Advance(kSecond / 2);
  Decision refilled = limiter.Check("ip:10.0.0.1");
  EXPECT_TRUE(refilled.allowed);
  EXPECT_EQ(refilled.remaining, 0);
  EXPECT_FALSE(limiter.Check("ip:10.0.0.1").allowed);

  clock_.Advance(60 * kSecond);
  Decision full = limiter.Check("ip:10.0.0.1");
  EXPECT_TRUE(full.allowed);
  EXPECT_EQ(full.remaining, 2);
  EXPECT_EQ(full.reset_seconds, 1);
}

TEST_F(RateLimitTest, CostTakesSeveralTokensAndARefusalTakesNone) {
  RateLimiterOptions options;
  options.user = {2, 10};
  RateLimiter limiter(clock_, options);
  EXPECT_EQ(limiter.Check("user:Practitioner/1", 8).remaining, 2);
  Decision refused = limiter.Check("user:Practitioner/1", 5);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 2);
  EXPECT_EQ(refused.retry_after_seconds, 2);  // 3 tokens short at 2 a second
  EXPECT_TRUE(limiter.Check("user:Practitioner/1", 2).allowed);
}

TEST_F(RateLimitTest, UsageIsCountedAndOtherNodesUsageCharged) {
  RateLimiterOptions options;
  options.client = {1, 5};
  RateLimiter limiter(clock_, options);
  EXPECT_TRUE(limiter.TakeUsage().empty());  // not recording
  limiter.Check("client:a");
  limiter.RecordUsage();
  limiter.Check("client:a", 2);
  limiter.Check("client:b");
  EXPECT_FALSE(limiter.Check("client:a", 5).allowed);  // refused: not counted
  auto usage = limiter.TakeUsage();
  std::sort(usage.begin(), usage.end());
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[0], (std::pair<std::string, int64_t>{"client:a", 2}));
  EXPECT_EQ(usage[1], (std::pair<std::string, int64_t>{"client:b", 1}));
  EXPECT_TRUE(limiter.TakeUsage().empty());  // taken
  // Another node served b three times: b has one token left, and charging more empties it
  // without pushing it below empty.
  limiter.Charge(Key::Parse("client:b"), 3);
  EXPECT_EQ(limiter.Check("client:b").remaining, 0);
  limiter.Charge(Key::Parse("client:b"), 100);
  EXPECT_FALSE(limiter.Check("client:b").allowed);
  clock_.Advance(kSecond);
  EXPECT_TRUE(limiter.Check("client:b").allowed);  // refilled at the usual rate
  limiter.Charge(Key::Parse("client:c"), 4);       // a key this node never saw
  EXPECT_EQ(limiter.Check("client:c").remaining, 0);
  EXPECT_TRUE(limiter.TakeUsage().size() == 2);  // b and c, served here
}

TEST_F(RateLimitTest, PerClientOverride) {
  RateLimiterOptions options;
  options.client = {1, 5};
  options.client_overrides["bulk-app"] = {100, 50};
  RateLimiter limiter(clock_, options);
  EXPECT_EQ(limiter.LimitFor(Key::Parse("client:bulk-app")).burst, 50);
  EXPECT_EQ(limiter.LimitFor(Key::Parse("client:other")).burst, 5);
  int allowed_bulk = 0, allowed_other = 0;
  for (int i = 0; i < 100; ++i) {
    allowed_bulk += limiter.Check("client:bulk-app").allowed;
    allowed_other += limiter.Check("client:other").allowed;
  }
  EXPECT_EQ(allowed_bulk, 50);
  EXPECT_EQ(allowed_other, 5);
  // An explicit limit (e.g. from the client's registration) applies from the next check.
  EXPECT_TRUE(limiter.Check(Key::Parse("client:other"), Limit{1, 10}).allowed);
}

TEST_F(RateLimitTest, UnlimitedHasNoHeaders) {
  RateLimiterOptions options;
  options.ip = Limit::Unlimited();
  RateLimiter limiter(clock_, options);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Check("ip:1.1.1.1").allowed);
  http::Response response;
  AddHeaders(limiter.Check("ip:1.1.1.1"), response);
  EXPECT_TRUE(response.headers.empty());
}

TEST_F(RateLimitTest, CallerChecksClientAndUserOrAddress) {
  RateLimiterOptions options;
  options.client = {1, 10};
  options.user = {1, 2};
  options.ip = {1, 1};
  RateLimiter limiter(clock_, options);
  RateLimiter::Caller caller{"app", "Practitioner/7", "10.0.0.9"};
  Decision first = limiter.CheckCaller(caller);
  EXPECT_TRUE(first.allowed);
  EXPECT_EQ(first.kind, KeyKind::kUser);  // the tighter bucket
  EXPECT_EQ(first.remaining, 1);
  EXPECT_TRUE(limiter.CheckCaller(caller).allowed);
  Decision refused = limiter.CheckCaller(caller);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.kind, KeyKind::kUser);
  // The same client for another user still passes.
  EXPECT_TRUE(limiter.CheckCaller({"app", "Practitioner/8", "10.0.0.9"}).allowed);
  // Without a token: the address's bucket.
  EXPECT_TRUE(limiter.CheckCaller({"", "", "10.0.0.9"}).allowed);
  Decision anonymous = limiter.CheckCaller({"", "", "10.0.0.9"});
  EXPECT_FALSE(anonymous.allowed);
  EXPECT_EQ(anonymous.kind, KeyKind::kIp);
}

TEST_F(RateLimitTest, HeadersAndThrottledResponse) {
  RateLimiterOptions options;
  options.client = {0.5, 2};  // a token every 2 s
  RateLimiter limiter(clock_, options);
  http::Response ok;
  AddHeaders(limiter.Check("client:app"), ok);
  EXPECT_EQ(ok.Header("RateLimit-Limit"), "2");
  EXPECT_EQ(ok.Header("RateLimit-Remaining"), "1");
  EXPECT_EQ(ok.Header("RateLimit-Reset"), "2");
  EXPECT_FALSE(http::HasHeader(ok.headers, "Retry-After"));
  ASSERT_TRUE(limiter.Check("client:app").allowed);
  Decision refused = limiter.Check("client:app");
  ASSERT_FALSE(refused.allowed);

  http::Response r = ThrottledResponse(refused);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("Content-Type"), "application/fhir+json;charset=utf-8");
  EXPECT_EQ(r.Header("Retry-After"), "2");
  EXPECT_EQ(r.Header("RateLimit-Limit"), "2");
  EXPECT_EQ(r.Header("RateLimit-Remaining"), "0");
  EXPECT_EQ(r.Header("RateLimit-Reset"), "4");
  auto body = json::Parse(r.body);
  ASSERT_TRUE(body) << r.body;
  EXPECT_EQ(body->GetString("resourceType"), "OperationOutcome");
  const json::Value& issue = body->Find("issue")->as_array().at(0);
  EXPECT_EQ(issue.GetString("severity"), "error");
  EXPECT_EQ(issue.GetString("code"), "throttled");
  EXPECT_EQ(issue.GetString("diagnostics"),
            "Too many requests for this client (at most 2 at once): retry after 2 s");
  // The same body as the one Error -> OperationOutcome mapping gives.
  http::Response expected = api::ErrorResponse(Error::TooManyRequests("Slow \"down\""));
  http::Response mine = ThrottledResponse(refused, "Slow \"down\"");
  EXPECT_EQ(mine.body, expected.body);
  EXPECT_EQ(mine.status, expected.status);
  EXPECT_EQ(mine.Header("Content-Type"), expected.Header("Content-Type"));

  http::Response busy = BusyResponse("Too many searches at once", 3);
  EXPECT_EQ(busy.status, 429);
  EXPECT_EQ(busy.Header("Retry-After"), "3");
  EXPECT_EQ(busy.body,
            api::ErrorResponse(Error::TooManyRequests("Too many searches at once")).body);
}

TEST_F(RateLimitTest, ConcurrentChecksNeverOverAdmit) {
  RateLimiterOptions options;
  options.client = {1, 100};
  RateLimiter limiter(clock_, options);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.Check("client:shared").allowed) ++allowed;
        limiter.Check("client:own-" + std::to_string(i % 50));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(allowed.load(), 100);
}

TEST_F(RateLimitTest, MemoryStaysBoundedAndIdleBucketsAreReused) {
  RateLimiterOptions options;
  options.ip = {1000, 1};  // idle 1 ms after use
  options.capacity = 50;   // rounded up to 64
  RateLimiter limiter(clock_, options);
  EXPECT_EQ(limiter.capacity(), 64u);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(limiter.Check("ip:10.1." + std::to_string(i)).allowed);
    clock_.Advance(2000);
  }
  EXPECT_LE(limiter.ActiveBuckets(), 1u);
  EXPECT_EQ(limiter.evictions(), 0u);  // every reused bucket was idle

  // A flood of new keys at one instant: the table stays at its size and evicts.
  for (int i = 0; i < 1000; ++i) limiter.Check("ip:10.2." + std::to_string(i));
  EXPECT_LE(limiter.ActiveBuckets(), 64u);
  EXPECT_GT(limiter.evictions(), 0u);
}

TEST_F(RateLimitTest, AThrottledKeySurvivesChurnOfIdleKeys) {
  RateLimiterOptions options;
  options.capacity = 8;  // a single group: every key competes for the same eight words
  RateLimiter limiter(clock_, options);
  Limit slow{1.0 / 3600, 1};  // one an hour
  Limit fast{1000, 1};
  ASSERT_TRUE(limiter.Check(Key::Parse("ip:slow"), slow).allowed);
  ASSERT_FALSE(limiter.Check(Key::Parse("ip:slow"), slow).allowed);
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) {
    allowed += limiter.Check(Key::Parse("ip:churn-" + std::to_string(i)), fast).allowed;
    clock_.Advance(2000);
  }
  // A churn key may (1 in 65536) share the slow key's tag and be refused; never more than a few.
  EXPECT_GE(allowed, 990);
  Decision still = limiter.Check(Key::Parse("ip:slow"), slow);
  EXPECT_FALSE(still.allowed);
  EXPECT_GT(still.retry_after_seconds, 3000);
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(ParseLimitTest, Forms) {
  auto a = ParseLimit("600/min");
  ASSERT_TRUE(a);
  EXPECT_DOUBLE_EQ(a->per_second, 10);
  EXPECT_EQ(a->burst, 600);
  auto b = ParseLimit(" 20/s:40 ");
  ASSERT_TRUE(b);
  EXPECT_DOUBLE_EQ(b->per_second, 20);
  EXPECT_EQ(b->burst, 40);
  auto c = ParseLimit("10000/day");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->burst, 10000);
  auto off = ParseLimit("off");
  ASSERT_TRUE(off);
  EXPECT_TRUE(off->unlimited());
  for (std::string_view bad : {"", "10", "10/week", "-1/s", "x/s", "10/s:0", "10/s:x"}) {
    EXPECT_FALSE(ParseLimit(bad)) << bad;
  }
}

// ---- concurrency limits ----

TEST(ConcurrencyLimiterTest, PerKeyAndGlobal) {
  ConcurrencyLimiter limiter({.max_global = 3, .max_per_key = 2});
  auto a1 = limiter.TryAcquire("client:a");
  auto a2 = limiter.TryAcquire("client:a");
  auto a3 = limiter.TryAcquire("client:a");
  EXPECT_TRUE(a1);
  EXPECT_TRUE(a2);
  EXPECT_FALSE(a3);
  EXPECT_EQ(a3.refusal(), ConcurrencyLimiter::Refusal::kPerKey);
  EXPECT_EQ(limiter.InFlight("client:a"), 2);
  auto b1 = limiter.TryAcquire("client:b");
  EXPECT_TRUE(b1);
  auto b2 = limiter.TryAcquire("client:b");
  EXPECT_FALSE(b2);
  EXPECT_EQ(b2.refusal(), ConcurrencyLimiter::Refusal::kGlobal);
  EXPECT_EQ(limiter.in_flight(), 3);
  a1.Release();
  EXPECT_EQ(limiter.InFlight("client:a"), 1);
  auto b3 = limiter.TryAcquire("client:b");
  EXPECT_TRUE(b3);
  {
    ConcurrencyLimiter::Permit moved = std::move(b3);
    EXPECT_TRUE(moved);
    EXPECT_FALSE(b3);  // NOLINT: moved-from is empty by contract
    EXPECT_EQ(limiter.in_flight(), 3);
  }
  EXPECT_EQ(limiter.in_flight(), 2);
  EXPECT_EQ(limiter.InFlight("client:b"), 1);
}

TEST(ConcurrencyLimiterTest, ThreadsNeverExceedTheLimits) {
  // A large table, so that the five keys almost surely have words of their own.
  ConcurrencyLimiter limiter({.max_global = 6, .max_per_key = 2, .capacity = 1 << 20});
  std::atomic<int> inside_a{0}, inside_all{0}, max_a{0}, max_all{0}, granted{0};
  auto raise = [](std::atomic<int>& max, int n) {
    int seen = max.load();
    while (n > seen && !max.compare_exchange_weak(seen, n)) {
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        bool a = (i + t) % 2 == 0;
        auto permit = limiter.TryAcquire(a ? "client:a" : "client:b" + std::to_string(t));
        if (!permit) continue;
        ++granted;
        raise(max_all, ++inside_all);
        if (a) {
          raise(max_a, ++inside_a);
          --inside_a;
        }
        --inside_all;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(granted.load(), 0);
  EXPECT_LE(max_a.load(), 2);
  EXPECT_LE(max_all.load(), 6);
  EXPECT_EQ(limiter.in_flight(), 0);
  EXPECT_EQ(limiter.InFlight("client:a"), 0);
}

// ---- access logs ----

TEST(AccessLogTest, SafePathKeepsNamesOnly) {
  EXPECT_EQ(SafePath("/fhir/Patient?name=smith&birthdate=1970-01-01"),
            "/fhir/Patient?name=*&birthdate=*");
  EXPECT_EQ(SafePath("/fhir/Patient/123"), "/fhir/Patient/123");
  EXPECT_EQ(SafePath("/fhir/Observation?subject:Patient.name=x&_has:Encounter:patient:type=y"),
            "/fhir/Observation?subject:Patient.name=*&_has:Encounter:patient:type=*");
  EXPECT_EQ(SafePath("/x?&&a=1&&b=&c"), "/x?a=*&b=*&*");
  EXPECT_EQ(SafePath("/x?"), "/x");
  EXPECT_EQ(SafePath("/caf\xc3\xa9 x?a=1"), "/caf%c3%a9%20x?a=*");
  EXPECT_EQ(SafePath("/" + std::string(2000, 'a')).size(), 1024u + 3u);
}

TEST(AccessLogTest, SecretsInTheQueryNeverShow) {
  const std::string targets[] = {
      "/auth/authorize?response_type=code&client_id=app&redirect_uri=https%3A%2F%2FSECRET0&"
      "code_challenge=SECRET1&state=SECRET2",
      "/callback?code=SECRET3&state=x",
      "/fhir/Patient?access_token=SECRET4",
      "/auth/login?username=alice&password=SECRET5",
      "/x?SECRET6",
      "/x?=SECRET7",
      "/x?a=b=SECRET8",
      "/x?SECRET9%40example.org=1",
      "/x?access_token=SECRETa#SECRETb",
      "/x?eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJTRUNSRVQifQ.SECRETcSECRETcSECRETcSECRETcSECRETcSECRETc"
      "SECRETcSECRETc=",
      "/x?refresh_token=SECRETd&client_secret=SECRETe;SECRETf",
  };
  for (const std::string& target : targets) {
    std::string safe = SafePath(target);
    EXPECT_EQ(safe.find("SECRET"), std::string::npos) << safe;
    AccessLogEntry entry;
    entry.request_id = "r";
    entry.method = "GET";
    entry.target = target;
    entry.status = 200;
    std::string line = AccessLogLine(entry);
    EXPECT_EQ(line.find("SECRET"), std::string::npos) << line;
  }
  EXPECT_EQ(SafePath("/fhir/Patient?access_token=SECRET4"), "/fhir/Patient?access_token=*");
}

TEST(AccessLogTest, LineIsOneValidJsonDocument) {
  AccessLogEntry entry;
  entry.start_micros = 1700000000123456;
  entry.request_id = "0123456789abcdef";
  entry.method = "GET";
  entry.target = "/fhir/Patient?name=\"quoted\"\n&family=x";
  entry.status = 200;
  entry.duration_micros = 12345;
  entry.client_id = "growth-chart";
  entry.remote = "10.0.0.1";
  entry.response_bytes = 512;
  std::string line = AccessLogLine(entry);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto parsed = json::Parse(line);
  ASSERT_TRUE(parsed) << line;
  EXPECT_EQ(parsed->GetString("ts"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(parsed->GetString("request_id"), "0123456789abcdef");
  EXPECT_EQ(parsed->GetString("method"), "GET");
  EXPECT_EQ(parsed->GetString("path"), "/fhir/Patient?name=*&family=*");
  EXPECT_EQ(parsed->Find("status")->as_string(), "200");
  EXPECT_EQ(parsed->Find("duration_ms")->as_string(), "12.345");
  EXPECT_EQ(parsed->GetString("client_id"), "growth-chart");
  EXPECT_EQ(parsed->GetString("remote"), "10.0.0.1");
  EXPECT_EQ(parsed->Find("bytes")->as_string(), "512");

  entry.client_id.clear();
  entry.duration_micros = 7;
  entry.response_bytes = -1;
  entry.method = "G\"E\x01T";
  entry.remote = "\xff";
  auto anonymous = json::Parse(AccessLogLine(entry));
  ASSERT_TRUE(anonymous);
  EXPECT_TRUE(anonymous->Find("client_id")->is_null());
  EXPECT_EQ(anonymous->Find("duration_ms")->as_string(), "0.007");
  EXPECT_EQ(anonymous->Find("bytes"), nullptr);
  EXPECT_EQ(anonymous->GetString("method"), "G\"E%01T");
  EXPECT_EQ(anonymous->GetString("remote"), "%ff");
}

TEST(AccessLogTest, RequestIds) {
  std::string a = NewRequestId(), b = NewRequestId();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
  http::Request request;
  request.headers = {{"X-Request-Id", "lb-42.abc"}};
  EXPECT_EQ(RequestIdFor(request, true), "lb-42.abc");
  EXPECT_NE(RequestIdFor(request, false), "lb-42.abc");
  request.headers = {{"X-Request-Id", "bad id\"}"}};
  EXPECT_EQ(RequestIdFor(request, true).size(), 16u);
}

// ---- health ----

TEST(HealthTest, LiveAndReady) {
  http::Response live = Healthz();
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, R"({"status":"ok"})");
  EXPECT_EQ(live.Header("Content-Type"), "application/json");

  http::Response ready = Readyz([] { return Ok(); });
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, R"({"status":"ready"})");

  http::Response down =
      Readyz([] { return Status(Error::Unavailable("database \"unreachable\"")); });
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.body, R"({"status":"unavailable","reason":"database \"unreachable\""})");
  EXPECT_EQ(down.Header("Retry-After"), "5");

  EXPECT_EQ(Readyz(nullptr).status, 503);
  EXPECT_EQ(Readyz([]() -> Status { throw std::runtime_error("boom"); }).status, 503);
}

// ---- request info ----

TEST(RequestInfoTest, Labels) {
  struct Case {
    const char* method;
    const char* target;
    const char* interaction;
    const char* type;
  };
  const Case cases[] = {
      {"GET", "/fhir/metadata", "capabilities", ""},
      {"GET", "/fhir/Patient/123", "read", "Patient"},
      {"HEAD", "/fhir/Patient/123", "read", "Patient"},
      {"GET", "/fhir/Patient/123/_history/2", "vread", "Patient"},
      {"GET", "/fhir/Patient/123/_history", "history-instance", "Patient"},
      {"GET", "/fhir/Patient/_history", "history-type", "Patient"},
      {"GET", "/fhir/_history", "history-system", ""},
      {"PUT", "/fhir/Patient/123", "update", "Patient"},
      {"PUT", "/fhir/Patient?identifier=x", "update", "Patient"},
      {"PATCH", "/fhir/Patient/123", "patch", "Patient"},
      {"DELETE", "/fhir/Patient/123", "delete", "Patient"},
      {"POST", "/fhir/Patient", "create", "Patient"},
      {"GET", "/fhir/Observation?code=x", "search-type", "Observation"},
      {"POST", "/fhir/Observation/_search", "search-type", "Observation"},
      {"GET", "/fhir/Patient/1/Observation", "search-type", "Observation"},
      {"GET", "/fhir?_type=Patient", "search-system", ""},
      {"POST", "/fhir", "batch-transaction", ""},
      {"POST", "/fhir/$reindex", "operation", ""},
      {"GET", "/fhir/Patient/$export", "operation", "Patient"},
      {"GET", "/fhir/NotAType/1", "other", ""},
      {"GET", "/fhir/.well-known/smart-configuration", "smart-configuration", ""},
      {"POST", "/auth/token", "token", ""},
      {"GET", "/auth/authorize?client_id=x", "authorize", ""},
      {"GET", "/auth/admin/clients", "auth", ""},
      {"GET", "/metrics", "metrics", ""},
      {"GET", "/readyz", "health", ""},
      {"GET", "/apps/vitals/", "apps", ""},
      {"GET", "/", "sandbox", ""},
      {"GET", "/wp-admin.php", "other", ""},
  };
  for (const Case& c : cases) {
    RequestLabels labels = ClassifyRequest(c.method, c.target);
    EXPECT_EQ(labels.interaction, c.interaction) << c.method << " " << c.target;
    EXPECT_EQ(labels.resource_type, c.type) << c.method << " " << c.target;
  }
}

TEST(RequestInfoTest, ExpensiveSearches) {
  EXPECT_FALSE(IsExpensiveSearch("GET", "/fhir/Patient?name=smith&_count=50"));
  EXPECT_FALSE(IsExpensiveSearch("GET", "/fhir/Patient/123"));
  EXPECT_FALSE(IsExpensiveSearch("POST", "/fhir/Patient?_include=x"));  // a create
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir?_type=Patient"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Patient?_revinclude=Observation:subject"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Patient?_incl%75de=Patient:organization"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Observation?subject.name=smith"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Patient?_has:Observation:patient:code=x"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Patient?name:contains=mi"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Patient?_total=accurate"));
  EXPECT_FALSE(IsExpensiveSearch("GET", "/fhir/Patient?_total=none"));
  EXPECT_TRUE(IsExpensiveSearch("GET", "/fhir/Patient?_count=1000"));
  EXPECT_TRUE(IsExpensiveSearch("POST", "/fhir/Patient/_search", "name=a&_revinclude=x"));
  EXPECT_FALSE(IsExpensiveSearch("POST", "/fhir/Patient/_search", "name=a"));
}

TEST(RequestInfoTest, ClientAddressBehindTrustedProxies) {
  std::vector<std::string> proxies = {"10.0.0.1", "10.0.0.2"};
  http::Request request;
  request.remote_address = "203.0.113.5";
  request.headers = {{"X-Forwarded-For", "1.2.3.4"}};
  EXPECT_EQ(ClientAddress(request, proxies), "203.0.113.5");  // not a proxy: header ignored
  request.remote_address = "10.0.0.1";
  request.headers = {{"X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.2"}};
  EXPECT_EQ(ClientAddress(request, proxies), "198.51.100.7");  // the spoofable left part ignored
  request.headers = {{"X-Forwarded-For", "6.6.6.6"}, {"x-forwarded-for", "10.0.0.2"}};
  EXPECT_EQ(ClientAddress(request, proxies), "6.6.6.6");
  request.headers = {{"X-Forwarded-For", "<script>, 10.0.0.2"}};
  EXPECT_EQ(ClientAddress(request, proxies), "10.0.0.2");
  request.headers = {};
  EXPECT_EQ(ClientAddress(request, proxies), "10.0.0.1");
}

}  // namespace
}  // namespace fhirstone::ops
