// A slow search can be diagnosed from the log: at or past ApiOptions::slow_search_ms it is
// logged at info level with the SQL the database ran, whose values are placeholders (the values
// searched, patient data, stay out of the log).
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "api/fhir_api.h"
#include "common/json.h"
#include "store/store_fixture_test.h"
#include "support/http_client.h"

namespace fhirstone::api {
namespace {

class SearchLogTest : public store::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    level_ = spdlog::default_logger()->level();
    spdlog::default_logger()->set_level(spdlog::level::info);
  }
  void TearDown() override {
    spdlog::default_logger()->set_level(level_);
    StoreFixture::TearDown();
  }

  // The lines logged at info level or above while `api` answers GET `target`.
  std::vector<std::string> LoggedBy(FhirApi& api, const std::string& target, int* status) {
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
    sink->set_pattern("%l %v");
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.push_back(sink);
    http::Request request = test::MakeRequest("GET", target, "");
    http::Response response = api.Handle(request);
    std::erase(sinks, sink);
    *status = response.status;
    return sink->last_formatted();
  }

  void PutObservation() {
    auto v = json::Parse(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
      "subject":{"reference":"Patient/Zebediah-Quist"}})");
    ASSERT_TRUE(v);
    ASSERT_TRUE(store_->Update(std::move(v).value(), std::nullopt));
  }

  spdlog::level::level_enum level_ = spdlog::level::info;
};

TEST_P(SearchLogTest, SlowSearchIsLoggedWithItsPlanAndWithoutItsValues) {
  PutObservation();
  ApiOptions options;
  options.slow_search_ms = 0;  // every search is slow
  FhirApi api(*store_, clock_, ids_, *holder_, options);
  int status = 0;
  std::vector<std::string> lines =
      LoggedBy(api, "/fhir/Observation?subject=Patient/Zebediah-Quist&code=8867-4", &status);
  ASSERT_EQ(status, 200);
  ASSERT_EQ(lines.size(), 1u);
  const std::string& line = lines[0];
  EXPECT_TRUE(line.starts_with("info slow search (")) << line;
  EXPECT_NE(line.find(" on Observation: plan SELECT "), std::string::npos) << line;
  // The patient's shard and the code's index rows, as placeholders.
  EXPECT_NE(line.find("shard_key = ?"), std::string::npos) << line;
  EXPECT_NE(line.find("idx_token"), std::string::npos) << line;
  EXPECT_EQ(line.find("Zebediah"), std::string::npos) << line;  // values stay out
  EXPECT_EQ(line.find("8867-4"), std::string::npos) << line;
}

TEST_P(SearchLogTest, SearchUnderTheThresholdIsNotLoggedAtInfoLevel) {
  PutObservation();
  ApiOptions options;
  options.slow_search_ms = 60000;
  FhirApi api(*store_, clock_, ids_, *holder_, options);
  int status = 0;
  std::vector<std::string> lines = LoggedBy(api, "/fhir/Observation?code=8867-4", &status);
  ASSERT_EQ(status, 200);
  EXPECT_TRUE(lines.empty()) << lines[0];
}

INSTANTIATE_TEST_SUITE_P(Dialects, SearchLogTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::api
