// Custom SearchParameters: written as resources, searchable after a reindex (the CLI's
// ReindexAll, which a running server on the database takes up, and POST /fhir/$reindex on a
// running server), with writes going on meanwhile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "common/json.h"
#include "db/database.h"
#include "search/registry.h"
#include "server/app.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBirthPlace = R"({"resourceType":"SearchParameter","id":"birthplace",
  "url":"http://example.org/fhir/SearchParameter/patient-birthplace","name":"birthplace",
  "status":"active","description":"City of birth","code":"birthplace","base":["Patient"],
  "type":"string",
  "expression":"Patient.extension('http://hl7.org/fhir/StructureDefinition/patient-birthPlace').value.city"})";

std::string Patient(int i, const char* city) {
  return "{\"resourceType\":\"Patient\",\"id\":\"r" + std::to_string(i) +
         "\",\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
         "patient-birthPlace\","
         "\"valueAddress\":{\"city\":\"" +
         city + "\"}}]}";
}

class ReindexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-reindex-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.listen = "127.0.0.1:0";
    config_.db = "sqlite:" + (dir_ / "db.sqlite").string();
    config_.open = true;
    config_.threads = 2;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static http::Response Put(test::Client& client, const std::string& target,
                            const std::string& body) {
    http::Request r = test::MakeRequest("PUT", target, body);
    r.headers.emplace_back("Content-Type", "application/fhir+json");
    auto response = client.Send(r);
    EXPECT_TRUE(response);
    return response ? *response : http::Response{};
  }

  static int64_t Total(test::Client& client, const std::string& query) {
    auto response = client.Send(test::MakeRequest("GET", "/fhir/Patient?" + query));
    if (!response || response->status != 200) return -1;
    auto body = json::Parse(response->body);
    const json::Value* total = body ? body->Find("total") : nullptr;
    return total ? std::stoll(total->as_string()) : -1;
  }

  // The value of store_state's 'reindex' note (a reindex owed), if any.
  std::optional<std::string> Note() {
    auto db = db::Database::Open(config_.db);
    EXPECT_TRUE(db);
    if (!db) return std::nullopt;
    auto lease = (*db)->Acquire();
    EXPECT_TRUE(lease);
    if (!lease) return std::nullopt;
    auto stmt = (*lease)->Prepare("SELECT value FROM store_state WHERE name = 'reindex'");
    EXPECT_TRUE(stmt);
    if (!stmt) return std::nullopt;
    auto row = (*stmt)->Step();
    EXPECT_TRUE(row);
    std::optional<std::string> value;
    if (row && *row) value = std::string((*stmt)->ColumnText(0));
    (*stmt)->Reset();
    return value;
  }

  // The total of `query` once it is `expected` (a reindex running meanwhile), or the last one
  // seen after `tries` attempts 50 ms apart.
  int64_t TotalBecoming(test::Client& client, const std::string& query, int64_t expected,
                        int tries = 200) {
    int64_t total = -1;
    for (int attempt = 0; attempt < tries && total != expected; ++attempt) {
      total = Total(client, query);
      if (total != expected) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return total;
  }

  // Runs `sql` on the test's database, as another process would.
  void ExecuteOnDatabase(const std::string& sql) {
    auto db = db::Database::Open(config_.db);
    ASSERT_TRUE(db);
    auto lease = (*db)->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(sql)) << sql;
  }

  fs::path dir_;
  server::ServeConfig config_;
};

TEST_F(ReindexTest, CustomParameterIsSearchableAfterTheCliReindex) {
  {
    auto app = server::App::Start(config_);
    ASSERT_TRUE(app) << app.error().message();
    test::Client client("127.0.0.1", (*app)->port());
    for (int i = 0; i < 450; ++i)
      ASSERT_EQ(Put(client, "/fhir/Patient/r" + std::to_string(i),
                    Patient(i, i % 3 ? "Boston" : "Denver"))
                    .status,
                201);
    ASSERT_EQ(Put(client, "/fhir/SearchParameter/birthplace", kBirthPlace).status, 201);
    // Unknown before the reindex: ignored (and refused under strict handling).
    EXPECT_EQ(Total(client, "birthplace=denver"), 450);
  }
  auto reindexed = server::Reindex(config_.db, "http://127.0.0.1:1");
  ASSERT_TRUE(reindexed) << reindexed.error().message();
  EXPECT_GE(*reindexed, 451);
  // Finished: no reindex is owed (the note written before the rebuild, for a server to run it
  // again had this one stopped half-way, is gone).
  EXPECT_EQ(Note(), std::nullopt);
  auto app = server::App::Start(config_);
  ASSERT_TRUE(app);
  test::Client client("127.0.0.1", (*app)->port());
  EXPECT_EQ(Total(client, "birthplace=denver"), 150);
  EXPECT_EQ(Total(client, "birthplace:exact=Boston"), 300);
  // New writes are indexed with the custom parameter too.
  ASSERT_EQ(
      Put(client, "/fhir/Patient/new",
          "{\"resourceType\":\"Patient\",\"id\":\"new\",\"extension\":[{\"url\":\"http://hl7.org/"
          "fhir/StructureDefinition/patient-birthPlace\",\"valueAddress\":{\"city\":\"Denver\"}}]}")
          .status,
      201);
  EXPECT_EQ(Total(client, "birthplace=denver"), 151);
  auto metadata = client.Send(test::MakeRequest("GET", "/fhir/metadata"));
  ASSERT_TRUE(metadata);
  EXPECT_NE(metadata->body.find("patient-birthplace"), std::string::npos);
}

// The command line's reindex on the database of a running server: the server loads the new
// parameters within its sync interval, searches on them and indexes its own writes with them.
TEST_F(ReindexTest, ARunningServerTakesUpTheCliReindexsParameters) {
  config_.sync_interval_ms = 50;
  auto app = server::App::Start(config_);
  ASSERT_TRUE(app) << app.error().message();
  test::Client client("127.0.0.1", (*app)->port());
  for (int i = 0; i < 30; ++i)
    ASSERT_EQ(
        Put(client, "/fhir/Patient/r" + std::to_string(i), Patient(i, i % 3 ? "Boston" : "Denver"))
            .status,
        201);
  ASSERT_EQ(Put(client, "/fhir/SearchParameter/birthplace", kBirthPlace).status, 201);
  EXPECT_EQ(Total(client, "birthplace=denver"), 30);  // unknown yet: ignored
  auto reindexed = server::Reindex(config_.db, (*app)->base_url());
  ASSERT_TRUE(reindexed) << reindexed.error().message();
  EXPECT_EQ(TotalBecoming(client, "birthplace=denver", 10, 100), 10);
  ASSERT_EQ(Put(client, "/fhir/Patient/r1000", Patient(1000, "Denver")).status, 201);
  EXPECT_EQ(Total(client, "birthplace=denver"), 11);
  // The parameter deleted and the index rebuilt: the server forgets it (ignored again).
  auto deleted = client.Send(test::MakeRequest("DELETE", "/fhir/SearchParameter/birthplace"));
  ASSERT_TRUE(deleted);
  ASSERT_LT(deleted->status, 300);
  ASSERT_TRUE(server::Reindex(config_.db, (*app)->base_url()));
  EXPECT_EQ(TotalBecoming(client, "birthplace=denver", 31, 100), 31);
}

TEST_F(ReindexTest, RunningServerReindexesWhileWritesGoOn) {
  auto app = server::App::Start(config_);
  ASSERT_TRUE(app) << app.error().message();
  test::Client client("127.0.0.1", (*app)->port());
  for (int i = 0; i < 600; ++i)
    ASSERT_EQ(Put(client, "/fhir/Patient/r" + std::to_string(i), Patient(i, "Denver")).status, 201);
  ASSERT_EQ(Put(client, "/fhir/SearchParameter/birthplace", kBirthPlace).status, 201);
  auto started = client.Send(test::MakeRequest("POST", "/fhir/$reindex"));
  ASSERT_TRUE(started);
  EXPECT_EQ(started->status, 202) << started->body;
  // Writes during the reindex all succeed.
  test::Client writer("127.0.0.1", (*app)->port());
  for (int i = 600; i < 700; ++i)
    EXPECT_EQ(Put(writer, "/fhir/Patient/r" + std::to_string(i), Patient(i, "Denver")).status, 201);
  // The job finishes (bounded wait); then every patient is found by the custom parameter.
  EXPECT_EQ(TotalBecoming(client, "birthplace=denver&_summary=count", 700), 700);
}

// A schema migration that changes how values are stored leaves a note in store_state; the
// server then extracts the index again in the background (with its custom parameters).
TEST_F(ReindexTest, AnUpgradeThatAsksForAReindexGetsOneAtStart) {
  {
    auto app = server::App::Start(config_);
    ASSERT_TRUE(app) << app.error().message();
    test::Client client("127.0.0.1", (*app)->port());
    for (int i = 0; i < 30; ++i)
      ASSERT_EQ(Put(client, "/fhir/Patient/r" + std::to_string(i),
                    Patient(i, i % 2 ? "Denver" : "Boston"))
                    .status,
                201);
    ASSERT_EQ(Put(client, "/fhir/SearchParameter/birthplace", kBirthPlace).status, 201);
    // Not indexed yet: the parameter is unknown, hence ignored (all 30 match).
    EXPECT_EQ(Total(client, "birthplace=denver&_summary=count"), 30);
  }
  ExecuteOnDatabase("INSERT INTO store_state (name, value) VALUES ('reindex', 'pending')");
  auto app = server::App::Start(config_);
  ASSERT_TRUE(app) << app.error().message();
  test::Client client("127.0.0.1", (*app)->port());
  EXPECT_EQ(TotalBecoming(client, "birthplace=denver&_summary=count", 15), 15);
  // Done once: the note is gone.
  auto db = db::Database::Open(config_.db);
  ASSERT_TRUE(db);
  int64_t left = -1;
  for (int attempt = 0; attempt < 100 && left != 0; ++attempt) {
    auto lease = (*db)->Acquire();
    ASSERT_TRUE(lease);
    auto count = (*lease)->Prepare("SELECT count(*) FROM store_state WHERE name = 'reindex'");
    ASSERT_TRUE(count);
    ASSERT_TRUE(*(*count)->Step());
    left = (*count)->ColumnInt(0);
    (*count)->Reset();
    if (left != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(left, 0);
}

// A reindex notes that one is owed before it rebuilds the index and clears its note when done:
// one that stopped half-way (here, its note left as if it had) is run again by the next server
// to start. The command line's reindex leaves an upgrade's note to a server (its base URL may not
// be the server's).
TEST_F(ReindexTest, AReindexThatDidNotFinishIsRunAgainAtStart) {
  {
    auto app = server::App::Start(config_);
    ASSERT_TRUE(app) << app.error().message();
    test::Client client("127.0.0.1", (*app)->port());
    for (int i = 0; i < 20; ++i)
      ASSERT_EQ(
          Put(client, "/fhir/Patient/r" + std::to_string(i), Patient(i, i % 2 ? "Denver" : "Oslo"))
              .status,
          201);
    ASSERT_EQ(Put(client, "/fhir/SearchParameter/birthplace", kBirthPlace).status, 201);
  }
  ExecuteOnDatabase("INSERT INTO store_state (name, value) VALUES ('reindex', 'pending')");
  ASSERT_TRUE(server::Reindex(config_.db, "http://127.0.0.1:1"));
  EXPECT_EQ(Note(), "pending");  // the upgrade's, left to a server
  // As a reindex stopped after noting its parameters leaves it, the index without them.
  ExecuteOnDatabase("UPDATE store_state SET value = 'incomplete 1' WHERE name = 'reindex'");
  ExecuteOnDatabase("DELETE FROM idx_string WHERE param = 'Patient.birthplace'");
  auto app = server::App::Start(config_);
  ASSERT_TRUE(app) << app.error().message();
  test::Client client("127.0.0.1", (*app)->port());
  EXPECT_EQ(TotalBecoming(client, "birthplace=denver&_summary=count", 10), 10);
  std::optional<std::string> note = "?";
  for (int attempt = 0; attempt < 100 && note; ++attempt) {
    note = Note();
    if (note) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(note, std::nullopt);
}

TEST(CustomSearchParameterTest, UnusableDefinitionsAreLeftOut) {
  auto bad = json::Parse(
      R"({"resourceType":"SearchParameter","code":"x","base":["Nope"],"type":"string","expression":"Patient.name"})");
  EXPECT_FALSE(search::Registry::CheckCustom(*bad));
  auto no_expression = json::Parse(
      R"({"resourceType":"SearchParameter","code":"x","base":["Patient"],"type":"string"})");
  EXPECT_FALSE(search::Registry::CheckCustom(*no_expression));
  auto broken = json::Parse(
      R"({"resourceType":"SearchParameter","code":"x","base":["Patient"],"type":"string","expression":"Patient.name.where("})");
  EXPECT_FALSE(search::Registry::CheckCustom(*broken));
  std::vector<json::Value> custom{*bad, *json::Parse(kBirthPlace)};
  std::vector<std::string> skipped;
  auto registry = search::Registry::WithCustom(custom, &skipped);
  ASSERT_TRUE(registry);
  EXPECT_EQ(skipped.size(), 1u);
  EXPECT_NE((*registry)->Find("Patient", "birthplace"), nullptr);
}

}  // namespace
}  // namespace fhirstone
