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
  // The sink joins the default logger before the store's threads start and leaves it after they
  // stop: its list of sinks is not changed while another thread may log.
  void SetUp() override {
    sink_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kLines);
    sink_->set_pattern("%l %v");
    spdlog::default_logger()->sinks().push_back(sink_);
    level_ = spdlog::default_logger()->level();
    spdlog::default_logger()->set_level(spdlog::level::info);
    StoreFixture::SetUp();
  }
  void TearDown() override {
    StoreFixture::TearDown();
    spdlog::default_logger()->set_level(level_);
    std::erase(spdlog::default_logger()->sinks(), sink_);
  }

  // The lines logged at info level or above while `api` answers GET `target`.
  std::vector<std::string> LoggedBy(FhirApi& api, const std::string& target, int* status) {
    size_t before = sink_->last_formatted().size();
    EXPECT_LT(before + 8, kLines);  // the ring keeps them all
    http::Request request = test::MakeRequest("GET", target, "");
    http::Response response = api.Handle(request);
    *status = response.status;
    std::vector<std::string> lines = sink_->last_formatted();
    lines.erase(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(before));
    return lines;
  }

  void PutObservation() {
    auto v = json::Parse(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
      "subject":{"reference":"Patient/Zebediah-Quist"}})");
    ASSERT_TRUE(v);
    ASSERT_TRUE(store_->Update(std::move(v).value(), std::nullopt));
  }

  static constexpr size_t kLines = 1024;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
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
