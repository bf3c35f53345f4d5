// The audit log of the SQL store: appends from writes (same transaction) and from the queue,
// per-patient records, AuditEvent reads and searches, immutability and the hash chain.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>

#include "search/query.h"
#include "search/registry.h"
#include "store/audit_queue.h"
#include "store/sql_resource_store.h"
#include "store/store_fixture_test.h"
#include "support/databases.h"
#include "support/fakes.h"

namespace fhirstone::store {
namespace {

class AuditTest : public StoreFixture {
 protected:
  static json::Value Parse(std::string_view text) {
    auto v = json::Parse(text);
    EXPECT_TRUE(v) << text;
    return v ? std::move(v).value() : json::Value();
  }

  static AuditRecord Who(std::string subtype, char action) {
    AuditRecord r;
    r.subtype = std::move(subtype);
    r.action = action;
    r.user = "Practitioner/doc";
    r.client_id = "app-1";
    r.address = "10.0.0.7";
    r.request_id = "req-1";
    return r;
  }

  Result<SearchResult> Search(std::vector<std::pair<std::string, std::string>> params) {
    auto query = search::ParseQuery(*holder_->Get(), {"AuditEvent"}, params, {});
    if (!query) return std::move(query).error();
    return store_->Search(*query);
  }
};

TEST_P(AuditTest, AuditedWritesAppendOneRecordPerPatientInTheirTransaction) {
  AuditRecord who = Who("create", 'C');
  auto patient = store_->Create(Parse(R"({"resourceType":"Patient","id":"x"})"), &who);
  ASSERT_TRUE(patient);
  auto observation =
      store_->Create(Parse(R"({"resourceType":"Observation","status":"final","code":{"text":"bp"},)"
                           R"("subject":{"reference":"Patient/)" +
                           patient->id + R"("},"performer":[{"reference":"Practitioner/doc"}]})"),
                     &who);
  ASSERT_TRUE(observation);
  // A write that fails leaves no audit record behind (the record rolls back with it).
  AuditRecord update = Who("update", 'U');
  auto refused = store_->Update(
      Parse(R"({"resourceType":"Patient","id":")" + patient->id + R"("})"), 7, &update);
  ASSERT_FALSE(refused);

  auto all = Search({});
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->matches.size(), 2u);
  EXPECT_EQ(*all->total, 2);
  // Newest first.
  json::Value newest = Parse(all->matches[0].body);
  EXPECT_EQ(newest.GetString("id"), "2");
  EXPECT_EQ(newest.GetString("action"), "C");
  std::string body = all->matches[0].body;
  EXPECT_NE(body.find("\"reference\":\"Observation/" + observation->id + "/_history/1\""),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("\"reference\":\"Patient/" + patient->id + "\""), std::string::npos);
  EXPECT_NE(body.find("\"reference\":\"Practitioner/doc\""), std::string::npos);
  EXPECT_NE(body.find("\"value\":\"app-1\""), std::string::npos);
  EXPECT_NE(body.find("\"address\":\"10.0.0.7\""), std::string::npos);
  EXPECT_NE(body.find("\"value\":\"req-1\""), std::string::npos);

  auto by_patient = Search({{"patient", "Patient/" + patient->id}});
  ASSERT_TRUE(by_patient);
  EXPECT_EQ(by_patient->matches.size(), 2u);
  auto by_entity = Search({{"entity", "Observation/" + observation->id}});
  ASSERT_TRUE(by_entity);
  EXPECT_EQ(by_entity->matches.size(), 1u);
  auto other = Search({{"patient", "someone-else"}});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->matches.size(), 0u);
}

TEST_P(AuditTest, DeletesAreAuditedWithThePatientOfTheLastVersion) {
  auto observation =
      store_->Create(Parse(R"({"resourceType":"Observation","status":"final","code":{"text":"hr"},)"
                           R"("subject":{"reference":"Patient/p9"}})"));
  ASSERT_TRUE(observation);
  AuditRecord who = Who("delete", 'D');
  ASSERT_TRUE(store_->Delete("Observation", observation->id, std::nullopt, &who));
  auto found = Search({{"patient", "p9"}, {"action", "D"}});
  ASSERT_TRUE(found);
  ASSERT_EQ(found->matches.size(), 1u);
  EXPECT_NE(found->matches[0].body.find("/_history/2"), std::string::npos);
}

// Search results carry their patients, kept on their rows (or read from the index for rows
// written before rows kept them), so that their audit records are split per patient without
// parsing the bodies again.
TEST_P(AuditTest, SearchResultsCarryTheirPatientsFromTheIndex) {
  for (const char* body :
       {R"({"resourceType":"Patient","id":"a"})",
        R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"bp"},)"
        R"("subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/c"}]})",
        R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"bp"},)"
        R"("subject":{"reference":"Patient/b"},"focus":[{"reference":"Patient/z"}]})",
        R"({"resourceType":"Observation","id":"o3","status":"final","code":{"text":"bp"},)"
        R"("subject":{"reference":"Group/g"}})"})
    ASSERT_TRUE(store_->Update(Parse(body), std::nullopt));
  auto query = search::ParseQuery(*holder_->Get(), {"Observation"},
                                  {{"_sort", "_id"}, {"_include", "Observation:subject"}}, {});
  ASSERT_TRUE(query);
  auto unaudited = store_->Search(*query);  // not asked for: not looked up
  ASSERT_TRUE(unaudited) << unaudited.error().message();
  EXPECT_FALSE(unaudited->matches[0].patients);
  query->with_patients = true;
  auto found = store_->Search(*query);
  ASSERT_TRUE(found) << found.error().message();
  ASSERT_EQ(found->matches.size(), 3u);
  using Ids = std::vector<std::string>;
  ASSERT_TRUE(found->matches[0].patients);
  Ids first = *found->matches[0].patients;
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (Ids{"a", "c"}));                 // subject and performer
  EXPECT_EQ(*found->matches[1].patients, Ids{"b"});  // focus is no compartment link
  EXPECT_EQ(*found->matches[2].patients, Ids{});     // a group's
  ASSERT_EQ(found->included.size(), 1u);
  EXPECT_EQ(*found->included[0].patients, Ids{"a"});
  // The rows keep them (a Patient its own id); a read by id gives them too.
  auto column = [&](std::string_view id) -> std::optional<std::string> {
    auto lease = db_->Acquire();
    EXPECT_TRUE(lease);
    if (!lease) return std::nullopt;
    auto stmt = (*lease)->Prepare("SELECT patients FROM resource WHERE id = ?");
    EXPECT_TRUE(stmt);
    (*stmt)->BindText(1, id);
    auto row = (*stmt)->Step();
    EXPECT_TRUE(row && *row);
    std::optional<std::string> out;
    if (row && *row && !(*stmt)->ColumnIsNull(0)) out = std::string((*stmt)->ColumnText(0));
    (*stmt)->Reset();
    return out;
  };
  auto kept = column("o1");
  ASSERT_TRUE(kept);
  EXPECT_TRUE(*kept == "a c" || *kept == "c a") << *kept;
  EXPECT_EQ(column("a"), std::optional<std::string>("a"));
  EXPECT_EQ(column("o3"), std::optional<std::string>(""));
  auto by_id = store_->Read("Observation", "o2");
  ASSERT_TRUE(by_id && by_id->patients);
  EXPECT_EQ(*by_id->patients, Ids{"b"});
  // An update moves them with the reference.
  ASSERT_TRUE(store_->Update(
      Parse(R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"bp"},)"
            R"("subject":{"reference":"Patient/a"}})"),
      std::nullopt));
  EXPECT_EQ(column("o2"), std::optional<std::string>("a"));
  // Rows written before rows kept them (NULL) get them from the index, and from a reindex.
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute("UPDATE resource SET patients = NULL"));
  }
  auto from_index = store_->Search(*query);
  ASSERT_TRUE(from_index) << from_index.error().message();
  ASSERT_EQ(from_index->matches.size(), 3u);
  ASSERT_TRUE(from_index->matches[0].patients);
  Ids again = *from_index->matches[0].patients;
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, (Ids{"a", "c"}));
  EXPECT_EQ(*from_index->matches[1].patients, Ids{"a"});
  EXPECT_EQ(*from_index->matches[2].patients, Ids{});
  EXPECT_EQ(*from_index->included[0].patients, Ids{"a"});
  EXPECT_FALSE(store_->Read("Observation", "o2")->patients);  // found from the body
  ASSERT_TRUE(store_->Reindex());
  EXPECT_EQ(column("o2"), std::optional<std::string>("a"));
  EXPECT_EQ(column("o3"), std::optional<std::string>(""));
  EXPECT_EQ(column("a"), std::optional<std::string>("a"));

  // Records with known patients split like records with bodies.
  AuditQueue queue(*store_, /*max_delay_ms=*/5);
  AuditRecord read = Who("search-type", 'R');
  read.entity = "Observation";
  read.query = "_sort=_id";
  read.patients = {"a", "c", "b"};
  read.without_patient = true;
  queue.Submit(read);
  queue.Flush();
  for (const char* patient : {"a", "b", "c"}) {
    auto records = Search({{"patient", patient}});
    ASSERT_TRUE(records);
    EXPECT_EQ(records->matches.size(), 1u) << patient;
  }
  auto all = Search({{"subtype", "search-type"}});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->matches.size(), 4u);  // a, b, c and the query's
}

TEST_P(AuditTest, QueuedReadsSplitPerPatientAndAreSearchable) {
  AuditQueue queue(*store_, /*max_delay_ms=*/5);
  AuditRecord read = Who("search-type", 'R');
  read.entity = "Observation";
  read.query = "code=bp&patient=a,b";
  read.resources = {
      R"({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/a"}})",
      R"({"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/b"}})",
      R"({"resourceType":"Observation","id":"o3","subject":{"reference":"Patient/a"}})"};
  queue.Submit(read);
  AuditRecord login;
  login.type = AuditType::kUserAuthentication;
  login.subtype = "login";
  login.user_name = "alice";
  login.outcome = 4;
  queue.Submit(login);
  queue.Flush();
  EXPECT_EQ(queue.backlog(), 0u);

  auto a = Search({{"patient", "a"}});
  ASSERT_TRUE(a);
  ASSERT_EQ(a->matches.size(), 1u);  // one record per patient, not per resource
  // A patient's record names no other patient, not even in the query: the query is in one
  // record without a patient, with the same request id.
  EXPECT_EQ(a->matches[0].body.find("Patient/b"), std::string::npos);
  EXPECT_EQ(a->matches[0].body.find("\"query\""), std::string::npos);
  auto by_query = Search({{"subtype", "search-type"}});
  ASSERT_TRUE(by_query);
  ASSERT_EQ(by_query->matches.size(), 3u);  // a, b and the query
  int with_query = 0;
  for (const auto& m : by_query->matches)
    with_query += m.body.find("\"query\":\"Y29kZT1icCZwYXRpZW50PWEsYg==\"") != std::string::npos;
  EXPECT_EQ(with_query, 1);
  auto b = Search({{"patient", "b"}});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->matches.size(), 1u);
  auto logins = Search({{"type", "http://dicom.nema.org/resources/ontology/DCM|110114"},
                        {"subtype", "login"},
                        {"outcome", "4"}});
  ASSERT_TRUE(logins) << logins.error().message();
  ASSERT_EQ(logins->matches.size(), 1u);
  EXPECT_NE(logins->matches[0].body.find("\"display\":\"alice\""), std::string::npos);
  auto rest = Search({{"type", "rest"}, {"_sort", "date"}});
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->matches.size(), 3u);
}

TEST_P(AuditTest, AQueryAboutThePatientDisclosedStaysInThatPatientsRecord) {
  AuditQueue queue(*store_, /*max_delay_ms=*/5);
  // About patient a alone (search::QueryPatient), disclosing a's data only: one record, with
  // the patient and the query, as IHE's patient query.
  AuditRecord mine = Who("search-type", 'E');
  mine.entity = "Observation";
  mine.request_id = "req-mine";
  mine.query = "patient=a&code=bp";
  mine.query_patient = "a";
  mine.patients = {"a"};
  queue.Submit(mine);
  // About a, but disclosing b's data too (an include): the query stays apart, as before.
  AuditRecord wider = Who("search-type", 'E');
  wider.entity = "Observation";
  wider.request_id = "req-wider";
  wider.query = "patient=a&_include=Observation:performer";
  wider.query_patient = "a";
  wider.patients = {"a", "b"};
  queue.Submit(wider);
  queue.Flush();

  auto by_request = [&](const char* id) {
    auto found = Search({{"subtype", "search-type"}, {"_sort", "_id"}});
    EXPECT_TRUE(found);
    std::vector<std::string> bodies;
    if (!found) return bodies;
    for (const auto& m : found->matches)
      if (m.body.find(id) != std::string::npos) bodies.push_back(m.body);
    return bodies;
  };
  auto one = by_request("req-mine");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_NE(one[0].find("Patient/a"), std::string::npos) << one[0];
  EXPECT_NE(one[0].find("\"query\":\"cGF0aWVudD1hJmNvZGU9YnA=\""), std::string::npos) << one[0];
  auto a = Search({{"patient", "a"}});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->matches.size(), 2u);  // the query about a, and a's part of the wider one
  auto three = by_request("req-wider");
  ASSERT_EQ(three.size(), 3u);  // a, b and the query
  int with_query = 0;
  for (const auto& body : three) {
    bool query = body.find("\"query\"") != std::string::npos;
    with_query += query;
    if (query) EXPECT_EQ(body.find("\"Patient/"), std::string::npos) << body;
  }
  EXPECT_EQ(with_query, 1);
  ASSERT_TRUE(store_->VerifyAudit());
  EXPECT_TRUE(store_->VerifyAudit()->problems.empty());
}

TEST_P(AuditTest, SearchesByDateAndPagesWithoutRepeats) {
  std::vector<AuditRecord> records;
  for (int i = 0; i < 7; ++i) records.push_back(Who("read", 'R'));
  ASSERT_TRUE(store_->AppendAudit(records));
  clock_.Advance(int64_t{48} * 3600 * 1000000);
  std::vector<AuditRecord> later{Who("vread", 'R')};
  ASSERT_TRUE(store_->AppendAudit(later));
  std::string today = FormatInstant(clock_.NowMicros()).substr(0, 10);
  auto recent = Search({{"date", "ge" + today}});
  ASSERT_TRUE(recent) << recent.error().message();
  ASSERT_EQ(recent->matches.size(), 1u);
  auto older = Search({{"date", "lt" + today}});
  ASSERT_TRUE(older);
  EXPECT_EQ(older->matches.size(), 7u);
  auto bad = Search({{"date", "yesterday"}});
  EXPECT_FALSE(bad);

  std::vector<std::string> seen;
  std::optional<std::string> page;
  for (int guard = 0; guard < 10; ++guard) {
    auto query = search::ParseQuery(*holder_->Get(), {"AuditEvent"}, {{"_count", "3"}}, {});
    ASSERT_TRUE(query);
    query->page = page;
    auto result = store_->Search(*query);
    ASSERT_TRUE(result) << result.error().message();
    for (const auto& m : result->matches) seen.push_back(m.id);
    std::vector<AuditRecord> more{Who("read", 'R')};
    ASSERT_TRUE(store_->AppendAudit(more));  // new records do not shift pages
    if (!result->next_page) break;
    page = result->next_page;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"8", "7", "6", "5", "4", "3", "2", "1"}));
}

// Patients and entities are matched exactly, whatever their characters and case, alone, in
// lists, combined and across pages.
TEST_P(AuditTest, SearchesByPatientAndEntityMatchExactly) {
  struct Kept {
    const char* patient;
    const char* entity;
  };
  const Kept kept[] = {{"abc", "Observation/o1"}, {"ABC", "Observation/O1"},
                       {"abc", "Encounter/e.1"},  {"x y\"z", ""},
                       {"", "Observation/o1"},    {"abc", "Patient/abc"},
                       {"ab", "Observation/o"}};
  std::vector<AuditRecord> records;
  for (const Kept& k : kept) {
    AuditRecord r = Who("read", 'R');
    r.patient = k.patient;
    r.entity = k.entity;
    records.push_back(r);
  }
  ASSERT_TRUE(store_->AppendAudit(records));
  auto ids = [&](std::vector<std::pair<std::string, std::string>> params) {
    std::vector<std::string> out;
    std::optional<std::string> page;
    for (int guard = 0; guard < 10; ++guard) {
      params.emplace_back("_count", "2");
      auto query = search::ParseQuery(*holder_->Get(), {"AuditEvent"}, params, {});
      params.pop_back();
      EXPECT_TRUE(query);
      if (!query) return out;
      query->page = page;
      auto found = store_->Search(*query);
      EXPECT_TRUE(found) << found.error().message();
      if (!found) return out;
      for (const auto& m : found->matches) out.push_back(m.id);
      if (!found->next_page) break;
      page = found->next_page;
    }
    return out;
  };
  using Ids = std::vector<std::string>;
  EXPECT_EQ(ids({{"patient", "abc"}}), (Ids{"6", "3", "1"}));
  EXPECT_EQ(ids({{"patient", "ABC"}}), (Ids{"2"}));
  EXPECT_EQ(ids({{"patient", "ab"}}), (Ids{"7"}));
  EXPECT_EQ(ids({{"patient", "x y\"z"}}), (Ids{"4"}));
  EXPECT_EQ(ids({{"patient", "ABC,ab"}}), (Ids{"7", "2"}));
  EXPECT_EQ(ids({{"entity", "Observation/o1"}}), (Ids{"5", "1"}));
  EXPECT_EQ(ids({{"entity", "Observation/o1,Patient/ABC"}}), (Ids{"5", "2", "1"}));
  EXPECT_EQ(ids({{"entity", "Patient/abc"}}), (Ids{"6", "3", "1"}));
  EXPECT_EQ(ids({{"patient", "abc"}, {"entity", "Observation/o1"}}), (Ids{"1"}));
  EXPECT_EQ(ids({{"patient", "abc"}, {"entity", "Observation/O1"}}), Ids{});
  EXPECT_EQ(ids({{"patient", "nobody"}}), Ids{});
  auto count = Search({{"patient", "abc"}, {"_summary", "count"}});
  ASSERT_TRUE(count);
  EXPECT_EQ(count->total, 3);
}

TEST_P(AuditTest, ClientAuditEventsAreAppendedAndNeverChanged) {
  auto created = store_->Create(Parse(
      R"({"resourceType":"AuditEvent","id":"mine","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110114"},)"
      R"("action":"E","recorded":"2020-01-01T00:00:00Z","outcome":"0",)"
      R"("agent":[{"who":{"reference":"Patient/p1"},"requestor":true}],)"
      R"("source":{"observer":{"display":"device"}}})"));
  ASSERT_TRUE(created) << created.error().message();
  EXPECT_EQ(created->id, "1");
  auto read = store_->Read("AuditEvent", "1");
  ASSERT_TRUE(read);
  json::Value body = Parse(read->body);
  EXPECT_EQ(body.GetString("id"), "1");
  EXPECT_EQ(body.GetString("recorded"), "2020-01-01T00:00:00Z");
  auto by_patient = Search({{"patient", "p1"}});
  ASSERT_TRUE(by_patient);
  EXPECT_EQ(by_patient->matches.size(), 1u);

  auto update = store_->Update(body, std::nullopt);
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().code(), ErrorCode::kMethodNotAllowed);
  auto remove = store_->Delete("AuditEvent", "1", std::nullopt);
  ASSERT_FALSE(remove);
  EXPECT_EQ(remove.error().code(), ErrorCode::kMethodNotAllowed);
  EXPECT_FALSE(store_->Read("AuditEvent", "2"));
  EXPECT_FALSE(store_->Read("AuditEvent", "abc"));
  EXPECT_FALSE(store_->VRead("AuditEvent", "1", 2));
}

// Records without a body (on PostgreSQL sent by COPY) and with one (inserted) in one batch: their
// text as given (COPY's separators and escapes included; a NUL byte and invalid UTF-8 replaced
// before the hash, as the database stores them), the chain intact.
TEST_P(AuditTest, ABatchMixingRecordsWithAndWithoutBodyKeepsTextAndChain) {
  std::vector<AuditRecord> records;
  const std::string texts[] = {"a\tb\\c\nd\r\\N é", "\\", "plain"};
  for (const std::string& text : texts) {
    records.push_back(Who("search-type", 'E'));
    records.back().query = text;
    records.back().outcome_desc = text + "!";
  }
  records[1].body =
      R"({"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110114"},)"
      R"("action":"E","recorded":"2020-01-01T00:00:00Z","outcome":"0","agent":[{"requestor":true}],)"
      R"("source":{"observer":{"display":"a\\b"}}})";
  ASSERT_TRUE(store_->AppendAudit(records));
  std::vector<AuditRecord> more{Who("read", 'R')};
  more[0].query = std::string("x\0y\xff", 4);
  ASSERT_TRUE(store_->AppendAudit(more));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  auto rows = (*lease)->Prepare(
      "SELECT seq, query, outcome_desc, body IS NULL FROM audit_event ORDER BY seq");
  ASSERT_TRUE(rows);
  for (int i = 0; i < 3; ++i) {
    auto row = (*rows)->Step();
    ASSERT_TRUE(row && *row) << i;
    EXPECT_EQ((*rows)->ColumnInt(0), i + 1);
    EXPECT_EQ((*rows)->ColumnText(1), texts[i]);
    EXPECT_EQ((*rows)->ColumnText(2), texts[i] + "!");
    EXPECT_EQ((*rows)->ColumnInt(3), i == 1 ? 0 : 1) << i;
  }
  auto last = (*rows)->Step();
  ASSERT_TRUE(last && *last);
  EXPECT_EQ((*rows)->ColumnInt(0), 4);
  std::string replaced((*rows)->ColumnText(1));
  EXPECT_EQ(replaced.find('\0'), std::string::npos);
  EXPECT_NE(replaced.find("\xef\xbf\xbd"), std::string::npos) << replaced;  // U+FFFD
  auto after = (*rows)->Step();
  ASSERT_TRUE(after);
  EXPECT_FALSE(*after);
  (*rows)->Reset();
  auto event = store_->Read("AuditEvent", "2");
  ASSERT_TRUE(event) << event.error().message();
  EXPECT_NE(event->body.find(R"("display":"a\\b")"), std::string::npos) << event->body;
  auto verified = store_->VerifyAudit();
  ASSERT_TRUE(verified);
  EXPECT_EQ(verified->records, 4);
  EXPECT_TRUE(verified->problems.empty());
}

TEST_P(AuditTest, VerifyFindsChangedAndRemovedRecords) {
  std::vector<AuditRecord> records;
  for (int i = 0; i < 10; ++i) records.push_back(Who("read", 'R'));
  ASSERT_TRUE(store_->AppendAudit(records));
  auto intact = store_->VerifyAudit();
  ASSERT_TRUE(intact);
  EXPECT_EQ(intact->records, 10);
  EXPECT_TRUE(intact->problems.empty());
  EXPECT_EQ(intact->head.size(), 64u);

  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  ASSERT_TRUE((*lease)->Execute("UPDATE audit_event SET who_ref = 'Practitioner/x' WHERE seq = 4"));
  auto changed = store_->VerifyAudit();
  ASSERT_TRUE(changed);
  ASSERT_EQ(changed->problems.size(), 1u);
  EXPECT_NE(changed->problems[0].find("record 4 was changed"), std::string::npos);
  ASSERT_TRUE((*lease)->Execute("UPDATE audit_event SET who_ref = 'Practitioner/doc'"));

  ASSERT_TRUE((*lease)->Execute("DELETE FROM audit_event WHERE seq = 6"));
  auto removed = store_->VerifyAudit();
  ASSERT_TRUE(removed);
  ASSERT_FALSE(removed->problems.empty());
  EXPECT_NE(removed->problems[0].find("records 6 to 6 were removed"), std::string::npos)
      << removed->problems[0];

  // Removing the newest records is found through the head.
  ASSERT_TRUE((*lease)->Execute("DELETE FROM audit_event WHERE seq >= 5"));
  auto truncated = store_->VerifyAudit();
  ASSERT_TRUE(truncated);
  ASSERT_EQ(truncated->problems.size(), 1u);
  EXPECT_NE(truncated->problems[0].find("newest records 5 to 10 were removed"), std::string::npos)
      << truncated->problems[0];
}

// SQLite uses a partial index only when the query repeats its condition: the plans
// (EXPLAIN QUERY PLAN, SQLite's) show that each search does. PostgreSQL proves partial index
// predicates itself.
class AuditSqliteTest : public AuditTest {};

TEST_P(AuditSqliteTest, SearchesUseTheLogsIndexes) {
  std::vector<std::pair<std::string, std::string>> expected[] = {
      // The key index hands the records in order (no sort), each read by its seq.
      {{"patient", "a"}, {"SCAN audit_key VIRTUAL TABLE", "audit_event USING INTEGER PRIMARY KEY"}},
      {{"entity", "Observation/o1"},
       {"SCAN audit_key VIRTUAL TABLE", "audit_event USING INTEGER PRIMARY KEY"}},
      {{"entity", "Patient/a"},
       {"SCAN audit_key VIRTUAL TABLE", "audit_event USING INTEGER PRIMARY KEY"}},
      {{"agent", "Practitioner/doc"}, {"audit_event_who", ""}},
      {{"agent:identifier", "app-1"}, {"audit_event_client", ""}},
  };
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  for (const auto& e : expected) {
    auto found = Search({e[0]});
    ASSERT_TRUE(found) << e[0].first;
    auto plan = (*lease)->Prepare("EXPLAIN QUERY PLAN " + found->plan);
    ASSERT_TRUE(plan) << found->plan;
    std::string details;
    while (true) {
      auto row = (*plan)->Step();
      ASSERT_TRUE(row);
      if (!*row) break;
      details += std::string((*plan)->ColumnText(3)) + "; ";
    }
    (*plan)->Reset();
    EXPECT_NE(details.find(e[1].first), std::string::npos) << e[0].first << ": " << details;
    EXPECT_NE(details.find(e[1].second), std::string::npos) << e[0].first << ": " << details;
    EXPECT_EQ(details.find("TEMP B-TREE"), std::string::npos) << e[0].first << ": " << details;
  }
}

// The key index holds a record's patient and the resource it is about, not a search's bare type
// (no entity criterion can name it).
TEST_P(AuditSqliteTest, SearchesTypesAreNotKeys) {
  AuditRecord search = Who("search-type", 'E');
  search.entity = "Observation";
  search.query = "code=x";
  AuditRecord search_of_a = Who("search-type", 'E');
  search_of_a.entity = "Observation";
  search_of_a.patient = "a";
  AuditRecord read = Who("read", 'R');
  read.entity = "Observation/o1";
  std::vector<AuditRecord> records = {search, search_of_a, read};
  ASSERT_TRUE(store_->AppendAudit(records));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  auto count = [&](const std::string& term) {
    auto stmt = (*lease)->Prepare("SELECT count(*) FROM audit_key WHERE audit_key MATCH ?");
    EXPECT_TRUE(stmt);
    if (!stmt) return int64_t{-1};
    (*stmt)->BindText(1, "\"" + term + "\"");
    auto row = (*stmt)->Step();
    EXPECT_TRUE(row && *row);
    int64_t n = (*stmt)->ColumnInt(0);
    (*stmt)->Reset();
    return n;
  };
  auto hex = [](std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 15];
    }
    return out;
  };
  EXPECT_EQ(count("e" + hex("Observation")), 0);
  EXPECT_EQ(count("e" + hex("Observation/o1")), 1);
  EXPECT_EQ(count("p" + hex("a")), 1);
}

// Records written before the key index existed are found once the migration has filled it.
TEST_P(AuditSqliteTest, TheKeyIndexIsFilledFromTheLog) {
  std::vector<AuditRecord> records;
  for (const char* patient : {"a", "b", "a"}) {
    AuditRecord r = Who("read", 'R');
    r.patient = patient;
    r.entity = "Observation/o-" + std::string(patient);
    records.push_back(r);
  }
  ASSERT_TRUE(store_->AppendAudit(records));
  {
    // The database as migration 10 left it.
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(
        "DROP TABLE audit_key;"
        "CREATE INDEX audit_event_patient ON audit_event (patient, seq) WHERE patient <> '';"
        "CREATE INDEX audit_event_entity ON audit_event (entity, seq)"
        "  WHERE entity <> '' AND substr(entity, 1, 8) <> 'Patient/';"
        "DELETE FROM schema_migrations WHERE version = 11;"));
  }
  Open();
  auto a = Search({{"patient", "a"}});
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->matches.size(), 2u);
  auto b = Search({{"entity", "Observation/o-b"}});
  ASSERT_TRUE(b) << b.error().message();
  ASSERT_EQ(b->matches.size(), 1u);
  EXPECT_EQ(b->matches[0].id, "2");
}

// Writes that share a group commit: the words (_content) and audit records of those that commit
// are found afterwards, those of writes that fail are not, even when a failing write searched its
// own words (which sends what the group queued so far into its savepoint) before failing.
TEST_P(AuditTest, GroupedWritesKeepTheWordsAndAuditRecordsOfThoseThatCommit) {
  auto find = [&](std::string_view type, std::string_view name, std::string_view value) {
    auto query = search::ParseQuery(*holder_->Get(), {std::string(type)},
                                    {{std::string(name), std::string(value)}}, {});
    EXPECT_TRUE(query);
    return query ? store_->Search(*query) : Result<SearchResult>(query.error());
  };
  constexpr int kWrites = 16;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < kWrites; ++t) {
    threads.emplace_back([&, t] {
      AuditRecord who = Who("update", 'U');
      std::string id = "t" + std::to_string(t);
      std::string word = "zq" + std::to_string(t) + "word";
      Status status = store_->InTransaction(
          [&](StoreTransaction& tx) -> Status {
            auto written = tx.Update(Parse(R"({"resourceType":"Patient","id":")" + id +
                                           R"(","name":[{"family":")" + word + R"("}]})"),
                                     std::nullopt);
            if (!written) return std::move(written).error();
            if (t % 2 == 0) return Ok();
            auto query = search::ParseQuery(*holder_->Get(), {"Patient"}, {{"_content", word}}, {});
            if (!query) return std::move(query).error();
            auto own = tx.Search(*query);  // its own words, before they are committed
            if (!own) return std::move(own).error();
            if (own->matches.size() != 1) return Error::Internal("its own words were not found");
            return Error::Conflict("refused after writing");
          },
          &who);
      if (!status && status.error().code() == ErrorCode::kConflict) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed, kWrites / 2);
  for (int t = 0; t < kWrites; ++t) {
    size_t expected = t % 2 == 0 ? 1 : 0;
    auto words = find("Patient", "_content", "zq" + std::to_string(t) + "word");
    ASSERT_TRUE(words) << words.error().message();
    EXPECT_EQ(words->matches.size(), expected) << t;
    auto audited = Search({{"patient", "Patient/t" + std::to_string(t)}});
    ASSERT_TRUE(audited) << audited.error().message();
    EXPECT_EQ(audited->matches.size(), expected) << t;
  }
  auto verified = store_->VerifyAudit();
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->problems.empty());
  EXPECT_EQ(verified->records, kWrites / 2);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, AuditSqliteTest, ::testing::Values(db::Dialect::kSqlite),
                         [](const auto& info) { return test::DialectName(info.param); });
INSTANTIATE_TEST_SUITE_P(Dialects, AuditTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
