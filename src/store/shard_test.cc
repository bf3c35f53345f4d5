// Shard keys (docs/scale-out.md): every row of the patient-linked tables carries the key of the
// patient whose data it is, patient-scoped searches read that shard only, and rows written before
// shard keys existed get theirs when the store opens.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "common/clock.h"
#include "search/query.h"
#include "store/internal/search_sql.h"
#include "store/sql_resource_store.h"
#include "store/store_fixture_test.h"
#include "support/databases.h"
#include "support/fakes.h"

namespace fhirstone::store {
namespace {

class ShardTest : public StoreFixture {
 protected:
  void Put(std::string_view text) {
    auto v = json::Parse(text);
    ASSERT_TRUE(v) << text;
    auto written = store_->Update(std::move(v).value(), std::nullopt);
    ASSERT_TRUE(written) << written.error().message();
  }

  // One integer from the database.
  int64_t Number(const std::string& sql, const std::vector<std::string>& texts = {}) {
    auto lease = db_->Acquire();
    EXPECT_TRUE(lease);
    auto stmt = (*lease)->Prepare(sql);
    EXPECT_TRUE(stmt) << sql;
    for (size_t i = 0; i < texts.size(); ++i) (*stmt)->BindText(static_cast<int>(i + 1), texts[i]);
    auto row = (*stmt)->Step();
    EXPECT_TRUE(row && *row) << sql;
    int64_t n = (*stmt)->ColumnInt(0);
    (*stmt)->Reset();
    return n;
  }

  int64_t ShardOf(const std::string& type, const std::string& id) {
    return Number("SELECT shard_key FROM resource WHERE type = ? AND id = ?", {type, id});
  }

  // How many index rows of type/id are not in the resource's shard.
  int64_t IndexRowsElsewhere(const std::string& type, const std::string& id) {
    int64_t n = 0;
    std::vector<const char*> tables = internal::IndexTables();
    // SQLite's full-text table has no shard key.
    if (db_->dialect() == db::Dialect::kPostgres) tables.push_back("idx_fulltext");
    for (const char* table : tables)
      n += Number(std::string("SELECT count(*) FROM ") + table +
                      " i JOIN resource r ON i.rid = r.rowid WHERE r.type = ? AND r.id = ? AND "
                      "i.shard_key <> r.shard_key",
                  {type, id});
    return n;
  }

  search::SearchQuery Query(const std::string& type, search::QueryParams params) {
    auto q = search::ParseQuery(*holder_->Get(), {type}, params, {});
    EXPECT_TRUE(q) << q.error().message();
    return q ? std::move(q).value() : search::SearchQuery{};
  }

  std::vector<std::string> Ids(const std::string& type, search::QueryParams params) {
    auto found = store_->Search(Query(type, std::move(params)));
    EXPECT_TRUE(found) << found.error().message();
    std::vector<std::string> ids;
    if (found)
      for (const auto& m : found->matches) ids.push_back(m.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }
};

constexpr const char* kObservation =
    R"({"resourceType":"Observation","id":"%ID%","status":"final","code":{"coding":[{"system":)"
    R"("http://loinc.org","code":"8867-4"}]},"subject":{"reference":"%SUBJECT%"},)"
    R"("effectiveDateTime":"2020-01-0%DAY%"})";

std::string Observation(const std::string& id, const std::string& subject, int day = 1) {
  std::string s = kObservation;
  s.replace(s.find("%ID%"), 4, id);
  s.replace(s.find("%SUBJECT%"), 9, subject);
  s.replace(s.find("%DAY%"), 5, std::to_string(day));
  return s;
}

// A patient whose id is a version 7 UUID (as the server assigns them) has a key in the order of
// its time; any other id is hashed.
TEST(ShardParamTest, PatientKeysOfTimeOrderedIdsFollowTheirTime) {
  // 0x0190f0e1a2b3 ms, then the random digits "c4d" and "e".
  EXPECT_EQ(search::PatientShardKey("0190f0e1-a2b3-7c4d-8e5f-0123456789ab"),
            static_cast<int64_t>(0x0190f0e1a2b3c4deULL));
  TimeOrderedIdGenerator ids;
  std::string earlier = ids.NewId();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::string later = ids.NewId();
  EXPECT_GT(search::PatientShardKey(earlier), 0);
  EXPECT_LT(search::PatientShardKey(earlier), search::PatientShardKey(later));
  EXPECT_EQ(search::OwnShardKey("Patient", later), search::PatientShardKey(later));
  // Hashed: not version 7, upper case, a wrong variant, not a UUID.
  for (std::string id : {std::string("0190f0e1-a2b3-4c4d-8e5f-0123456789ab"),
                         std::string("0190F0E1-A2B3-7C4D-8E5F-0123456789AB"),
                         std::string("0190f0e1-a2b3-7c4d-ce5f-0123456789ab"),
                         std::string("0190f0e1a2b37c4d8e5f0123456789abcdef"), std::string("p1")}) {
    int64_t key = search::PatientShardKey(id);
    EXPECT_NE(key, 0) << id;
    EXPECT_NE(static_cast<uint64_t>(key) >> 16, 0x0190f0e1a2b3ULL) << id;
  }
}

TEST(ShardParamTest, OneSingleValuedPatientReferencePerType) {
  auto registry = search::Registry::Builtin();
  ASSERT_TRUE(registry);
  const search::Registry& r = **registry;
  for (const char* type : {"Observation", "Encounter", "Condition", "AllergyIntolerance",
                           "MedicationRequest", "Claim", "Immunization", "DiagnosticReport"}) {
    const search::SearchParam* p = r.ShardParam(type);
    ASSERT_NE(p, nullptr) << type;
    EXPECT_TRUE(p->code == "patient" || p->code == "subject") << type << ": " << p->code;
    EXPECT_TRUE(r.IsShardParam(type, r.Find(type, "patient"))) << type;
  }
  EXPECT_EQ(r.ShardParam("Observation")->code, "subject");  // the compartment's parameter
  EXPECT_TRUE(r.IsShardParam("Observation", r.Find("Observation", "subject")));
  EXPECT_FALSE(r.IsShardParam("Observation", r.Find("Observation", "performer")));
  EXPECT_FALSE(r.IsShardParam("Observation", r.Find("Observation", "encounter")));
  EXPECT_EQ(r.ShardParam("Patient"), nullptr);       // its own key
  EXPECT_EQ(r.ShardParam("Practitioner"), nullptr);  // not in the Patient compartment
  EXPECT_EQ(r.ShardParam("Appointment"), nullptr);   // participant repeats: several patients
  EXPECT_EQ(search::PatientShardKey("p1"), search::OwnShardKey("Patient", "p1"));
  EXPECT_NE(search::PatientShardKey("p1"), search::PatientShardKey("p2"));
  EXPECT_NE(search::OwnShardKey("Practitioner", "p1"), search::PatientShardKey("p1"));
}

TEST_P(ShardTest, RowsLiveInTheirPatientsShard) {
  Put(R"({"resourceType":"Patient","id":"p1","name":[{"family":"One"}]})");
  Put(R"({"resourceType":"Patient","id":"p2","name":[{"family":"Two"}]})");
  Put(R"({"resourceType":"Practitioner","id":"d1","name":[{"family":"Doc"}]})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o2", "Patient/p2"));
  Put(Observation("o3", "Group/g1"));
  const int64_t p1 = search::PatientShardKey("p1"), p2 = search::PatientShardKey("p2");
  EXPECT_EQ(ShardOf("Patient", "p1"), p1);
  EXPECT_EQ(ShardOf("Observation", "o1"), p1);
  EXPECT_EQ(ShardOf("Observation", "o2"), p2);
  EXPECT_EQ(ShardOf("Observation", "o3"), search::OwnShardKey("Observation", "o3"));
  EXPECT_EQ(ShardOf("Practitioner", "d1"), search::OwnShardKey("Practitioner", "d1"));
  for (const char* id : {"o1", "o2", "o3"}) EXPECT_EQ(IndexRowsElsewhere("Observation", id), 0);
  EXPECT_EQ(IndexRowsElsewhere("Patient", "p1"), 0);
  EXPECT_EQ(Number("SELECT shard_key FROM resource_history WHERE id = 'o1'"), p1);

  // The patient changes: the row moves to the other shard with its index and history.
  int64_t old_rowid = Number("SELECT rowid FROM resource WHERE id = 'o1'");
  Put(Observation("o1", "Patient/p2", 2));
  EXPECT_EQ(ShardOf("Observation", "o1"), p2);
  EXPECT_EQ(Number("SELECT rowid FROM resource WHERE id = 'o1'"), old_rowid);  // paging is stable
  EXPECT_EQ(IndexRowsElsewhere("Observation", "o1"), 0);
  EXPECT_EQ(Number("SELECT shard_key FROM resource_history WHERE id = 'o1' AND version = 2"), p2);
  for (const char* table : {"idx_token", "idx_reference", "idx_date"})  // none left behind
    EXPECT_EQ(Number(std::string("SELECT count(*) FROM ") + table + " WHERE rid = " +
                     std::to_string(old_rowid) + " AND shard_key <> " + std::to_string(p2)),
              0)
        << table;
  EXPECT_EQ(Ids("Observation", {{"patient", "p2"}}), (std::vector<std::string>{"o1", "o2"}));
  EXPECT_TRUE(Ids("Observation", {{"patient", "p1"}}).empty());
  EXPECT_EQ(Ids("Observation", {{"subject", "Patient/p2"}, {"date", "2020-01-02"}}),
            (std::vector<std::string>{"o1"}));
  EXPECT_EQ(Ids("Observation", {{"subject:Patient", "p2"}, {"_sort", "-date"}}),
            (std::vector<std::string>{"o1", "o2"}));
  EXPECT_EQ(Ids("Patient", {{"_id", "p1"}}), (std::vector<std::string>{"p1"}));

  // A deletion keeps the shard: its history row is in it.
  ASSERT_TRUE(store_->Delete("Observation", "o2", std::nullopt));
  EXPECT_EQ(ShardOf("Observation", "o2"), p2);
  EXPECT_EQ(Number("SELECT count(*) FROM resource_history WHERE id = 'o2' AND method = 'D'"), 1);
  EXPECT_EQ(Number("SELECT min(shard_key) FROM resource_history WHERE id = 'o2'"), p2);
  EXPECT_EQ(Number("SELECT max(shard_key) FROM resource_history WHERE id = 'o2'"), p2);
}

TEST_P(ShardTest, PatientScopedQueriesNameTheirShard) {
  const search::Registry& r = *holder_->Get();
  const int64_t p1 = search::PatientShardKey("p1");
  auto shard = [&](const std::string& type, search::QueryParams params) {
    return search::QueryShard(r, Query(type, std::move(params)));
  };
  EXPECT_EQ(shard("Observation", {{"patient", "p1"}, {"code", "8867-4"}}), p1);
  EXPECT_EQ(shard("Observation", {{"patient", "Patient/p1"}}), p1);
  EXPECT_EQ(shard("Observation", {{"subject", "Patient/p1"}}), p1);
  EXPECT_EQ(shard("Observation", {{"subject:Patient", "p1"}}), p1);
  EXPECT_EQ(shard("Condition", {{"patient", "p1"}, {"clinical-status", "active"}}), p1);
  EXPECT_EQ(shard("Patient", {{"_id", "p1"}}), p1);
  // The matches may span shards: no shard.
  EXPECT_EQ(shard("Observation", {{"subject", "p1"}}), std::nullopt);  // any type with id p1
  EXPECT_EQ(shard("Observation", {{"patient", "p1,p2"}}), std::nullopt);
  EXPECT_EQ(shard("Observation", {{"performer", "Patient/p1"}}), std::nullopt);
  EXPECT_EQ(shard("Observation", {{"patient:missing", "false"}}), std::nullopt);
  EXPECT_EQ(shard("Observation", {{"patient.name", "One"}}), std::nullopt);
  EXPECT_EQ(shard("Observation", {{"patient", "http://other.org/fhir/Patient/p1"}}), std::nullopt);
  EXPECT_EQ(shard("Appointment", {{"patient", "p1"}}), std::nullopt);
  EXPECT_EQ(shard("Practitioner", {{"name", "Doc"}}), std::nullopt);
  // Compartment searches: one shard where the compartment has the shard parameter alone.
  search::SearchQuery encounters = Query("Encounter", {});
  encounters.compartment =
      search::Compartment{"Patient", "p1", r.CompartmentParams("Patient", "Encounter")};
  EXPECT_EQ(search::QueryShard(r, encounters), p1);
  search::SearchQuery observations = Query("Observation", {});
  observations.compartment = search::Compartment{
      "Patient", "p1", r.CompartmentParams("Patient", "Observation")};  // subject, performer
  EXPECT_EQ(search::QueryShard(r, observations), std::nullopt);

  // On PostgreSQL every table the page query reads is read in the shard: resource by
  // r.shard_key, each index table by its shard_key (what a distributed database needs to send
  // the query to one shard).
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(Observation("o1", "Patient/p1"));
  auto plan = store_->ExplainSearch(Query("Observation", {{"patient", "p1"},
                                                          {"code", "http://loinc.org|8867-4"},
                                                          {"date", "ge2015"},
                                                          {"_sort", "-date"},
                                                          {"_count", "50"}}));
  ASSERT_TRUE(plan) << plan.error().message();
  std::string sql = plan->substr(0, plan->find('\n'));
  auto occurrences = [&](std::string_view part) {
    size_t n = 0;
    for (size_t at = sql.find(part); at != std::string::npos; at = sql.find(part, at + 1)) ++n;
    return n;
  };
  size_t tables = occurrences("FROM idx_"), scoped = occurrences("shard_key = ?");
  bool postgres = db_->dialect() == db::Dialect::kPostgres;
  // PostgreSQL: patient, code, date, and the sort key (once: NULLS LAST). SQLite: the code, then
  // the date rows joined once for both the date criterion and the sort key; the patient's
  // reference is implied, p1's shard holding p1's data alone (shard_owner, read before).
  EXPECT_EQ(tables, postgres ? 4u : 1u) << sql;
  if (!postgres) EXPECT_EQ(occurrences("CROSS JOIN idx_date d"), 1u) << sql;
  // PostgreSQL reads the resource table twice (the matches sorted, then the page's bodies), each
  // time in the shard. SQLite reads the matches' sort keys in one query, from the token rows
  // that drive in the shard (no resource row: index rows are a live resource's, in its shard),
  // sorts them in memory and reads the page's rows by row id after.
  EXPECT_EQ(occurrences("resource r "), postgres ? 2u : 0u) << sql;
  EXPECT_EQ(occurrences("r.shard_key = ?"), postgres ? 2u : 0u) << sql;
  // SQLite is never distributed: its index tables are read by value or by row id alone, but for
  // the token criterion, which drives within the shard (idx_token_value ends with shard_key).
  EXPECT_EQ(scoped, postgres ? tables + 2 : 1u) << sql;
  if (!postgres) {
    EXPECT_EQ(sql.find("idx_reference"), std::string::npos) << sql;
    EXPECT_NE(plan->find("the patient's reference is implied"), std::string::npos) << *plan;
    // One code: its token rows without DISTINCT (a resource's rows come together).
    EXPECT_NE(sql.find("FROM (SELECT rid AS rowid FROM idx_token WHERE shard_key = ?"),
              std::string::npos)
        << sql;
    EXPECT_NE(plan->find("sorted in memory"), std::string::npos) << *plan;
  }
  EXPECT_GT(plan->size(), sql.size() + 1);  // the database's plan follows the SQL
}

TEST_P(ShardTest, RowsWrittenBeforeShardKeysGetThemWhenTheStoreOpens) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o9", "Patient/p1"));
  ASSERT_TRUE(store_->Delete("Observation", "o9", std::nullopt));
  Put(R"({"resourceType":"Practitioner","id":"d1"})");
  // An index row the built-in parameters would not make (a custom parameter's): the backfill
  // must keep it, so it must not re-extract the index.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(
        "INSERT INTO idx_token (rid, param, system, code, text, shard_key) SELECT rowid, "
        "'Observation.custom', '', 'sentinel', '', 0 FROM resource WHERE id = 'o1'"));
  }
  int64_t index_rows = Number("SELECT count(*) FROM idx_token");
  {  // as an older version left them
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    for (const char* table : {"resource", "resource_history", "idx_string", "idx_token",
                              "idx_reference", "idx_date", "idx_uri"})
      ASSERT_TRUE((*lease)->Execute(std::string("UPDATE ") + table + " SET shard_key = 0"));
    ASSERT_TRUE((*lease)->Execute("DELETE FROM shard_owner"));
    ASSERT_TRUE((*lease)->Execute(
        "INSERT INTO store_state (name, value) VALUES ('shard_keys', 'pending')"));
  }
  Open();
  EXPECT_EQ(ShardOf("Observation", "o1"), search::PatientShardKey("p1"));
  EXPECT_EQ(ShardOf("Patient", "p1"), search::PatientShardKey("p1"));
  EXPECT_EQ(ShardOf("Practitioner", "d1"), search::OwnShardKey("Practitioner", "d1"));
  EXPECT_EQ(IndexRowsElsewhere("Observation", "o1"), 0);
  EXPECT_EQ(Number("SELECT count(*) FROM resource_history WHERE shard_key = 0"), 0);
  EXPECT_EQ(Number("SELECT count(*) FROM resource WHERE shard_key = 0"), 0);  // deleted o9 too
  EXPECT_EQ(Number("SELECT count(*) FROM store_state WHERE name = 'shard_keys'"), 0);
  EXPECT_EQ(Number("SELECT count(*) FROM idx_token"), index_rows);  // nothing re-extracted
  EXPECT_EQ(Number("SELECT count(*) FROM idx_token WHERE code = 'sentinel' AND shard_key = " +
                   std::to_string(search::PatientShardKey("p1"))),
            1);
  EXPECT_EQ(Ids("Observation", {{"patient", "p1"}}), (std::vector<std::string>{"o1"}));
  // The keys given have their owners noted (the owners' backfill follows the keys').
  EXPECT_EQ(Number("SELECT count(*) FROM shard_owner WHERE owner = 'Patient/p1' AND shard_key = " +
                   std::to_string(search::PatientShardKey("p1"))),
            1);
  EXPECT_EQ(Number("SELECT count(*) FROM store_state WHERE name = 'shard_owners'"), 0);
}

// Each page of a search states the same total, however it is found: counted with a sorted page's
// matches, inferred on a last page, or counted apart. A resource written meanwhile is outside
// the pages' snapshot.
TEST_P(ShardTest, EveryPageStatesTheSameTotal) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  for (int day = 1; day <= 7; ++day) Put(Observation("o" + std::to_string(day), "Patient/p1", day));
  auto pages = [&](search::QueryParams params) {
    std::vector<std::pair<std::vector<std::string>, std::optional<int64_t>>> out;
    search::SearchQuery q = Query("Observation", std::move(params));
    while (out.size() < 10) {
      auto found = store_->Search(q);
      EXPECT_TRUE(found) << found.error().message();
      if (!found) break;
      std::vector<std::string> ids;
      for (const auto& m : found->matches) ids.push_back(m.id);
      out.emplace_back(ids, found->total);
      if (out.size() == 1) Put(Observation("o8", "Patient/p1", 8));  // after the snapshot
      if (!found->next_page) break;
      q.page = found->next_page;
    }
    return out;
  };
  using Pages = std::vector<std::pair<std::vector<std::string>, std::optional<int64_t>>>;
  EXPECT_EQ(pages({{"patient", "p1"}, {"_sort", "-date"}, {"_count", "3"}}),
            (Pages{{{"o7", "o6", "o5"}, 7}, {{"o4", "o3", "o2"}, 7}, {{"o1"}, 7}}));
  EXPECT_EQ(pages({{"patient", "p1"}, {"_sort", "date"}, {"_count", "4"}}),
            (Pages{{{"o1", "o2", "o3", "o4"}, 8}, {{"o5", "o6", "o7", "o8"}, 8}}));
  EXPECT_EQ(pages({{"patient", "p1"}, {"_count", "3"}}),
            (Pages{{{"o1", "o2", "o3"}, 8}, {{"o4", "o5", "o6"}, 8}, {{"o7", "o8"}, 8}}));
  EXPECT_EQ(pages({{"patient", "p1"}, {"_count", "20"}}),
            (Pages{{{"o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"}, 8}}));
  EXPECT_EQ(
      pages({{"patient", "p1"}, {"_sort", "date"}, {"_total", "none"}, {"_count", "5"}}),
      (Pages{{{"o1", "o2", "o3", "o4", "o5"}, std::nullopt}, {{"o6", "o7", "o8"}, std::nullopt}}));
  // A page past the last match (an offset no link gives): counted apart.
  search::SearchQuery past = Query("Observation", {{"patient", "p1"}, {"_sort", "date"}});
  past.page = "o20.s" + std::to_string(Number("SELECT max(rowid) FROM resource"));
  auto beyond = store_->Search(past);
  ASSERT_TRUE(beyond) << beyond.error().message();
  EXPECT_TRUE(beyond->matches.empty());
  EXPECT_EQ(beyond->total, 8);
}

// A chain or reverse chain whose last test is on the row itself (_id, _lastUpdated) or a
// negation (:missing, :not) reads the rows of its type by the primary key, not every resource.
TEST_P(ShardTest, ChainsEndingOnTheRowReadTheirTypeByItsKey) {
  Put(R"({"resourceType":"Patient","id":"p1","gender":"female"})");
  Put(R"({"resourceType":"Patient","id":"p2"})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o2", "Patient/p2"));
  EXPECT_EQ(Ids("Observation", {{"subject:Patient.gender:missing", "true"}}),
            std::vector<std::string>{"o2"});
  EXPECT_EQ(Ids("Observation", {{"subject:Patient.gender:not", "female"}}),
            std::vector<std::string>{"o2"});
  EXPECT_EQ(Ids("Observation", {{"subject:Patient._lastUpdated", "gt2000"}}),
            (std::vector<std::string>{"o1", "o2"}));
  EXPECT_EQ(Ids("Patient", {{"_has:Observation:subject:_lastUpdated", "gt2000"}}),
            (std::vector<std::string>{"p1", "p2"}));
  if (db_->dialect() != db::Dialect::kSqlite) return;
  for (const auto& [type, key] : std::vector<std::pair<std::string, std::string>>{
           {"Observation", "subject:Patient.gender:missing"},
           {"Observation", "subject:Patient._lastUpdated"},
           {"Patient", "_has:Observation:subject:_lastUpdated"}}) {
    auto plan =
        store_->ExplainSearch(Query(type, {{key, key.ends_with("missing") ? "true" : "gt2000"}}));
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->find("SCAN c"), std::string::npos) << *plan;  // no chain link's every row
    EXPECT_EQ(plan->find("SCAN h"), std::string::npos) << *plan;
    EXPECT_NE(plan->find("USING INDEX sqlite_autoindex_resource_1 (type=?)"), std::string::npos)
        << *plan;
  }
}

// Patient?_has:Observation:patient:code=x finds its patients through the shard keys of the
// matching token rows, each patient checked by the reference of one of its matching rows; the
// answer is the one the general form (through every matching resource's reference) gives.
TEST_P(ShardTest, ReverseChainsOnPatientsGoThroughTheirShards) {
  for (const char* id : {"p1", "p2", "p3", "p4"})
    Put(std::string(R"({"resourceType":"Patient","id":")") + id + "\"}");
  Put(R"({"resourceType":"Group","id":"g1","type":"person","actual":true})");
  Put(Observation("o1", "Patient/p1"));
  Put(R"({"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":)"
      R"("http://example.org/codes","code":"8867-4"}]},"subject":{"reference":"Patient/p2"}})");
  // About a group, performed by p3: in no patient's shard through the shard parameter.
  Put(R"({"resourceType":"Observation","id":"o3","status":"final","code":{"coding":[{"system":)"
      R"("http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Group/g1"},)"
      R"("performer":[{"reference":"Patient/p3"}]})");
  Put(Observation("o4", "Patient/p4"));
  ASSERT_TRUE(store_->Delete("Observation", "o4", std::nullopt));

  using Ids_ = std::vector<std::string>;
  auto patients = [&](const std::string& key, const std::string& value) {
    return Ids("Patient", {{key, value}});
  };
  EXPECT_EQ(patients("_has:Observation:patient:code", "8867-4"), (Ids_{"p1", "p2"}));
  EXPECT_EQ(patients("_has:Observation:subject:code", "http://loinc.org|8867-4"), (Ids_{"p1"}));
  EXPECT_EQ(patients("_has:Observation:patient:code", "http://example.org/codes|8867-4,x|y"),
            (Ids_{"p2"}));
  EXPECT_EQ(patients("_has:Observation:patient:code", "1234-5"), Ids_{});
  // Not the shard parameter: the general form.
  EXPECT_EQ(patients("_has:Observation:performer:code", "8867-4"), (Ids_{"p3"}));
  // A system search: one branch per type the reference may point to (a subquery each, not one
  // per resource row).
  auto everywhere = [&](const std::string& key, const std::string& value) {
    auto q = search::ParseQuery(*holder_->Get(), {}, {{key, value}}, {});
    EXPECT_TRUE(q) << q.error().message();
    Ids_ ids;
    if (!q) return ids;
    auto found = store_->Search(*q);
    EXPECT_TRUE(found) << found.error().message();
    if (found)
      for (const auto& m : found->matches) ids.push_back(m.type + "/" + m.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  EXPECT_EQ(everywhere("_has:Observation:patient:code", "8867-4"),
            (Ids_{"Patient/p1", "Patient/p2"}));
  EXPECT_EQ(everywhere("_has:Observation:subject:code", "8867-4"),
            (Ids_{"Group/g1", "Patient/p1", "Patient/p2"}));
  EXPECT_EQ(everywhere("_has:Observation:performer:code", "8867-4"), (Ids_{"Patient/p3"}));
  {
    auto q = search::ParseQuery(*holder_->Get(), {}, {{"_has:Observation:subject:code", "x"}}, {});
    ASSERT_TRUE(q);
    auto plan = store_->ExplainSearch(*q);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->find("= r.type"), std::string::npos) << *plan;  // nothing per row
  }

  auto plan = store_->ExplainSearch(Query("Patient", {{"_has:Observation:patient:code", "x"}}));
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_NE(plan->find("shard_key IN (SELECT shard_key FROM idx_token WHERE param = ?"),
            std::string::npos)
      << *plan;
  if (db_->dialect() == db::Dialect::kSqlite) {
    EXPECT_NE(plan->find("USING INDEX resource_patient_shard"), std::string::npos) << *plan;
  }

  // A token row in p4's shard whose resource refers to p1 (as if the two patients' keys were
  // equal) does not make p4 a match: each patient is checked through the reference.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(
        "INSERT INTO idx_token (rid, param, system, code, text, shard_key) SELECT rowid, "
        "'Observation.code', 'http://loinc.org', '8867-4', 'other', " +
        std::to_string(search::PatientShardKey("p4")) + " FROM resource WHERE id = 'o1'"));
  }
  EXPECT_EQ(patients("_has:Observation:patient:code", "8867-4"), (Ids_{"p1", "p2"}));

  // Its pages state the total: the first counts its matches with the page (a count query would
  // find them all again), the next one counts apart.
  search::SearchQuery q =
      Query("Patient", {{"_has:Observation:patient:code", "8867-4"}, {"_count", "1"}});
  auto first_sql = store_->ExplainSearch(q);
  ASSERT_TRUE(first_sql) << first_sql.error().message();
  EXPECT_NE(first_sql->substr(0, first_sql->find('\n')).find("count(*) OVER ()"), std::string::npos)
      << *first_sql;
  auto first = store_->Search(q);
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_EQ(first->matches.size(), 1u);
  EXPECT_EQ(first->matches[0].id, "p1");
  EXPECT_EQ(first->total, 2);
  ASSERT_TRUE(first->next_page);
  q.page = first->next_page;
  auto second = store_->Search(q);
  ASSERT_TRUE(second) << second.error().message();
  ASSERT_EQ(second->matches.size(), 1u);
  EXPECT_EQ(second->matches[0].id, "p2");
  EXPECT_EQ(second->total, 2);
  EXPECT_FALSE(second->next_page);
  q.page = std::nullopt;
  q.total = search::TotalMode::kNone;
  auto uncounted = store_->Search(q);
  ASSERT_TRUE(uncounted) << uncounted.error().message();
  EXPECT_EQ(uncounted->total, std::nullopt);
  EXPECT_EQ(uncounted->matches.size(), 1u);
}

// A reindex that changes which patient a resource's shard parameter names (here: the server's
// base URL changed, so that an absolute reference became local) moves the resource to that
// patient's shard, keeping its row id, as a write would.
TEST_P(ShardTest, ReindexMovesAResourceWhosePatientChanged) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(Observation("o1", "https://new.example.com/fhir/Patient/p1"));
  Put(Observation("o2", "Patient/p1"));
  const int64_t own = search::OwnShardKey("Observation", "o1");
  EXPECT_EQ(ShardOf("Observation", "o1"), own);  // not this server's: no patient of its own
  const int64_t rid = Number("SELECT rowid FROM resource WHERE id = 'o1'");
  const int64_t history = Number("SELECT count(*) FROM resource_history");

  Open("https://new.example.com/fhir");
  auto reindexed = store_->Reindex();
  ASSERT_TRUE(reindexed) << reindexed.error().message();
  EXPECT_EQ(*reindexed, 3);
  EXPECT_EQ(ShardOf("Observation", "o1"), search::PatientShardKey("p1"));
  EXPECT_EQ(ShardOf("Observation", "o2"), search::PatientShardKey("p1"));
  EXPECT_EQ(IndexRowsElsewhere("Observation", "o1"), 0);
  EXPECT_EQ(Number("SELECT rowid FROM resource WHERE id = 'o1'"), rid);
  EXPECT_EQ(Number("SELECT count(*) FROM resource"), 3);
  EXPECT_EQ(Number("SELECT count(*) FROM resource_history"), history);
  auto read = store_->Read("Observation", "o1");
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->version, 1);
  EXPECT_NE(read->body.find("https://new.example.com/fhir/Patient/p1"), std::string::npos);
  // The searches that read the patient's shard find it.
  EXPECT_EQ(Ids("Observation", {{"patient", "p1"}}), (std::vector<std::string>{"o1", "o2"}));
  EXPECT_EQ(Ids("Patient", {{"_has:Observation:patient:code", "8867-4"}}),
            (std::vector<std::string>{"p1"}));
}

// A store written when the keys of patients with time-ordered ids were hashes gets their keys
// again when it opens (migration 13), its resources' and index rows with them.
TEST_P(ShardTest, PatientsWithTimeOrderedIdsGetTheirKeysWhenTheStoreOpens) {
  const std::string patient = "0190f0e1-a2b3-7c4d-8e5f-0123456789ab";
  Put(R"({"resourceType":"Patient","id":")" + patient + "\"}");
  Put(Observation("o1", "Patient/" + patient));
  const int64_t key = search::PatientShardKey(patient);
  EXPECT_EQ(ShardOf("Patient", patient), key);
  EXPECT_EQ(ShardOf("Observation", "o1"), key);
  {  // as a store of the former keys, before migration 13
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    std::vector<const char*> tables = internal::IndexTables();
    tables.insert(tables.end(), {"resource", "resource_history"});
    for (const char* table : tables)
      ASSERT_TRUE((*lease)->Execute(std::string("UPDATE ") + table + " SET shard_key = 12345"));
    ASSERT_TRUE((*lease)->Execute("DELETE FROM schema_migrations WHERE version = 13"));
  }
  EXPECT_EQ(Ids("Observation", {{"patient", patient}}), std::vector<std::string>{});
  Open();
  EXPECT_EQ(ShardOf("Patient", patient), key);
  EXPECT_EQ(ShardOf("Observation", "o1"), key);
  EXPECT_EQ(IndexRowsElsewhere("Observation", "o1"), 0);
  EXPECT_EQ(Number("SELECT count(*) FROM store_state WHERE name = 'shard_keys'"), 0);
  EXPECT_EQ(Ids("Observation", {{"patient", patient}}), (std::vector<std::string>{"o1"}));
}

// Each shard key's owner is noted as its resources are written: the patient whose data it is, or
// the resource itself outside any patient's data; a second owner makes the shard mixed for good.
TEST_P(ShardTest, EachShardNotesItsOwner) {
  auto owner = [&](int64_t key) -> std::string {
    auto lease = db_->Acquire();
    EXPECT_TRUE(lease);
    auto stmt = (*lease)->Prepare("SELECT owner FROM shard_owner WHERE shard_key = ?");
    EXPECT_TRUE(stmt);
    (*stmt)->BindInt(1, key);
    auto row = (*stmt)->Step();
    std::string out = row && *row ? std::string((*stmt)->ColumnText(0)) : "(none)";
    (*stmt)->Reset();
    return out;
  };
  const int64_t p1 = search::PatientShardKey("p1"), p2 = search::PatientShardKey("p2");
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o2", "Patient/p2"));  // a patient not stored (yet)
  Put(R"({"resourceType":"Practitioner","id":"d1"})");
  EXPECT_EQ(owner(p1), "Patient/p1");
  EXPECT_EQ(owner(p2), "Patient/p2");
  EXPECT_EQ(owner(search::OwnShardKey("Practitioner", "d1")), "Practitioner/d1");
  EXPECT_EQ(owner(search::OwnShardKey("Observation", "o1")), "(none)");
  // An update that moves o2 to p1's shard notes p1 there; p2's shard keeps its owner.
  Put(Observation("o2", "Patient/p1"));
  EXPECT_EQ(owner(p1), "Patient/p1");
  EXPECT_EQ(owner(p2), "Patient/p2");
  // A second owner (keys that collide) makes the shard mixed, and it stays so.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE(internal::NoteShardOwner(**lease, p1, "Patient/p1"));
    EXPECT_EQ(owner(p1), "Patient/p1");
    ASSERT_TRUE(internal::NoteShardOwner(**lease, p1, "Observation/o7"));
    EXPECT_EQ(owner(p1), "");
    ASSERT_TRUE(internal::NoteShardOwner(**lease, p1, "Patient/p1"));
    EXPECT_EQ(owner(p1), "");
  }
  Put(Observation("o3", "Patient/p1"));
  EXPECT_EQ(owner(p1), "");
  EXPECT_EQ(Ids("Observation", {{"patient", "p1"}, {"code", "8867-4"}}),
            (std::vector<std::string>{"o1", "o2", "o3"}));

  // A store from before shard owners has them noted when it opens; a resource whose key is not
  // the one its index gives makes its shard mixed.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute("DELETE FROM shard_owner"));
    ASSERT_TRUE((*lease)->Execute(
        "INSERT INTO store_state (name, value) VALUES ('shard_owners', 'pending')"));
    ASSERT_TRUE((*lease)->Execute("UPDATE resource SET shard_key = " + std::to_string(p2) +
                                  " WHERE id = 'd1'"));
  }
  Open();
  EXPECT_EQ(owner(p1), "Patient/p1");
  EXPECT_EQ(owner(p2), "");  // d1 is there, though its own key is elsewhere
  EXPECT_EQ(owner(search::OwnShardKey("Practitioner", "d1")), "(none)");
  EXPECT_EQ(Number("SELECT count(*) FROM store_state WHERE name = 'shard_owners'"), 0);

  // A reindex notes the owners of the shards it writes in.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute("DELETE FROM shard_owner"));
  }
  auto reindexed = store_->Reindex();
  ASSERT_TRUE(reindexed) << reindexed.error().message();
  EXPECT_EQ(owner(p1), "Patient/p1");
  EXPECT_EQ(owner(search::OwnShardKey("Practitioner", "d1")), "Practitioner/d1");  // moved back
}

// A search by the shard parameter within a shard whose one owner is that patient does not check
// each match's reference; in a mixed shard it does.
TEST_P(ShardTest, ASoleOwnersShardNeedsNoReferenceCheck) {
  const int64_t p1 = search::PatientShardKey("p1");
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o2", "Patient/p2"));
  search::QueryParams params = {{"patient", "p1"}, {"code", "8867-4"}, {"_sort", "-date"}};
  auto query = Query("Observation", params);
  EXPECT_EQ(search::ShardCriterion(*holder_->Get(), query, nullptr), 0u);
  // SQLite drives by the code in the shard and filters by the patient; PostgreSQL drives by the
  // patient's reference in the shard, which checks it.
  const bool sqlite = db_->dialect() == db::Dialect::kSqlite;
  auto plan = store_->ExplainSearch(query);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->find("the patient's reference is implied") != std::string::npos, sqlite) << *plan;
  EXPECT_EQ(plan->find("FROM idx_reference") == std::string::npos, sqlite) << *plan;
  EXPECT_EQ(Ids("Observation", params), (std::vector<std::string>{"o1"}));
  // o2 in p1's shard as if p2's key were p1's: the shard's owners are p1 and p2, so each match's
  // reference is checked.
  auto move_o2 = [&] {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    std::vector<const char*> tables = internal::IndexTables();
    tables.insert(tables.end(), {"resource", "resource_history"});
    for (const char* table : tables) {
      std::string rid = std::string_view(table).starts_with("idx_")
                            ? "rid IN (SELECT rowid FROM resource WHERE id = 'o2')"
                            : "id = 'o2'";
      ASSERT_TRUE((*lease)->Execute(std::string("UPDATE ") + table +
                                    " SET shard_key = " + std::to_string(p1) + " WHERE " + rid));
    }
    ASSERT_TRUE(internal::NoteShardOwner(**lease, p1, "Patient/p2"));
  };
  move_o2();
  plan = store_->ExplainSearch(query);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->find("the patient's reference is implied"), std::string::npos) << *plan;
  EXPECT_NE(plan->find("FROM idx_reference"), std::string::npos) << *plan;
  EXPECT_EQ(Ids("Observation", params), (std::vector<std::string>{"o1"}));
  EXPECT_EQ(Ids("Observation", {{"patient", "p1"}, {"code", "8867-4"}}),
            (std::vector<std::string>{"o1"}));
  EXPECT_EQ(Ids("Observation", {{"subject", "Patient/p1"}, {"code", "8867-4"}}),
            (std::vector<std::string>{"o1"}));
  // A shard noted as another patient's alone is checked too.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute("UPDATE shard_owner SET owner = 'Patient/p2' WHERE shard_key = " +
                                  std::to_string(p1)));
  }
  EXPECT_EQ(Ids("Observation", params), (std::vector<std::string>{"o1"}));
  // Were the shard noted as p1's alone, o2 would be taken for p1's on SQLite: the check is
  // skipped then, for each form of the criterion that names the shard.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute("UPDATE shard_owner SET owner = 'Patient/p1' WHERE shard_key = " +
                                  std::to_string(p1)));
  }
  const std::vector<std::string> skipped =
      sqlite ? std::vector<std::string>{"o1", "o2"} : std::vector<std::string>{"o1"};
  EXPECT_EQ(Ids("Observation", params), skipped);
  EXPECT_EQ(Ids("Observation", {{"subject", "Patient/p1"}, {"code", "8867-4"}}), skipped);
  EXPECT_EQ(Ids("Observation", {{"subject:Patient", "p1"}, {"code", "8867-4"}}), skipped);
}

INSTANTIATE_TEST_SUITE_P(Dialects, ShardTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
