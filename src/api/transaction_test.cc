// Transactions prepared before their write: a conditional reference resolved ahead is checked
// again inside the write transaction, and a write committed in between (which moved the match)
// makes the transaction run again with everything resolved inside.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "api/fhir_api.h"
#include "common/json.h"
#include "store/store_fixture_test.h"
#include "support/http_client.h"

namespace fhirstone::api {
namespace {

// A store that runs `before_write` once, just before the next write transaction: what another
// writer committing between a transaction's preparation and its write would do. The rest is the
// wrapped store's.
class InterposingStore : public store::ResourceStore {
 public:
  explicit InterposingStore(store::ResourceStore& s) : s_(s) {}

  std::function<void()> before_write;
  int write_transactions = 0;
  int searches = 0;  // outside write transactions (those inside search through theirs)

  Result<store::ResourceVersion> Read(std::string_view type, std::string_view id) override {
    return s_.Read(type, id);
  }
  Result<store::ResourceVersion> VRead(std::string_view type, std::string_view id,
                                       int64_t version) override {
    return s_.VRead(type, id, version);
  }
  Result<store::ResourceVersion> Create(json::Value resource,
                                        const store::AuditRecord* audit) override {
    return s_.Create(std::move(resource), audit);
  }
  Result<store::UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match,
                                     const store::AuditRecord* audit) override {
    return s_.Update(std::move(resource), if_match, audit);
  }
  Result<store::DeleteResult> Delete(std::string_view type, std::string_view id,
                                     std::optional<int64_t> if_match,
                                     const store::AuditRecord* audit) override {
    return s_.Delete(type, id, if_match, audit);
  }
  Result<store::HistoryPage> History(const store::HistoryQuery& query) override {
    return s_.History(query);
  }
  Result<store::SearchResult> Search(const search::SearchQuery& query) override {
    ++searches;
    return s_.Search(query);
  }
  Result<std::string> ExplainSearch(const search::SearchQuery& query) override {
    return s_.ExplainSearch(query);
  }
  Status InTransaction(const std::function<Status(store::StoreTransaction&)>& work,
                       const store::AuditRecord* audit) override {
    ++write_transactions;
    if (before_write) {
      auto run = std::move(before_write);
      before_write = nullptr;
      run();
    }
    return s_.InTransaction(work, audit);
  }
  std::unique_ptr<store::PreparedIndex> PrepareIndex(const json::Value& resource) override {
    return s_.PrepareIndex(resource);
  }
  Result<std::vector<json::Value>> ListCurrent(std::string_view type) override {
    return s_.ListCurrent(type);
  }
  Status Export(const store::ExportQuery& query,
                const std::function<Status(const store::ExportRow&)>& emit,
                int64_t* snapshot_time) override {
    return s_.Export(query, emit, snapshot_time);
  }
  Result<int64_t> Reindex() override { return s_.Reindex(); }
  Status AppendAudit(std::vector<store::AuditRecord>& records) override {
    return s_.AppendAudit(records);
  }
  Result<store::AuditVerification> VerifyAudit() override { return s_.VerifyAudit(); }
  void ObserveTime(TimeObserver observer) override { s_.ObserveTime(std::move(observer)); }

 private:
  store::ResourceStore& s_;
};

constexpr const char* kTransaction = R"({"resourceType":"Bundle","type":"transaction","entry":[
  {"fullUrl":"urn:uuid:6a1c5b7e-0000-4000-8000-000000000001",
   "resource":{"resourceType":"Observation","status":"final",
               "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
               "performer":[{"reference":"Practitioner?identifier=urn:test|doc"}]},
   "request":{"method":"POST","url":"Observation"}}]})";

class PreparedTransactionTest : public store::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    interposing_ = std::make_unique<InterposingStore>(*store_);
    api_ = std::make_unique<FhirApi>(*interposing_, clock_, ids_, *holder_, ApiOptions{});
  }
  void TearDown() override {
    api_.reset();
    interposing_.reset();
    StoreFixture::TearDown();
  }

  // Practitioner `id`, with the identifier urn:test|doc when `holds`.
  void PutPractitioner(const std::string& id, bool holds) {
    auto v =
        json::Parse(R"({"resourceType":"Practitioner","id":")" + id + "\"" +
                    (holds ? R"(,"identifier":[{"system":"urn:test","value":"doc"}])" : "") + "}");
    ASSERT_TRUE(v);
    ASSERT_TRUE(store_->Update(std::move(v).value(), std::nullopt));
  }

  http::Response Post(const std::string& body) {
    http::Request request = test::MakeRequest("POST", "/fhir", body);
    request.headers.emplace_back("Content-Type", "application/fhir+json");
    return api_->Handle(request);
  }

  // The performer of the Observation the answer's first entry created.
  std::string PerformerOfCreated(const http::Response& response) {
    auto bundle = json::Parse(response.body);
    EXPECT_TRUE(bundle);
    if (!bundle) return "";
    std::string location(
        bundle->Find("entry")->as_array()[0].Find("response")->GetString("location"));
    std::string id = location.substr(std::string("Observation/").size());
    id = id.substr(0, id.find('/'));
    auto created = store_->Read("Observation", id);
    EXPECT_TRUE(created) << location;
    if (!created) return "";
    auto resource = json::Parse(created->body);
    return std::string(resource->Find("performer")->as_array()[0].GetString("reference"));
  }

  size_t Observations() {
    auto all = store_->ListCurrent("Observation");
    return all ? all->size() : 0;
  }

  std::unique_ptr<InterposingStore> interposing_;
  std::unique_ptr<FhirApi> api_;
};

TEST_P(PreparedTransactionTest, ConditionalReferenceResolvedAheadIsWrittenInOneGo) {
  PutPractitioner("p1", true);
  PutPractitioner("p2", false);
  http::Response response = Post(kTransaction);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(PerformerOfCreated(response), "Practitioner/p1");
  EXPECT_EQ(interposing_->searches, 1);  // resolved before the write transaction
  EXPECT_EQ(interposing_->write_transactions, 1);
}

TEST_P(PreparedTransactionTest, MatchMovedBeforeTheWriteIsResolvedAgainInside) {
  PutPractitioner("p1", true);
  PutPractitioner("p2", false);
  interposing_->before_write = [&] {  // the identifier moves from p1 to p2
    PutPractitioner("p1", false);
    PutPractitioner("p2", true);
  };
  http::Response response = Post(kTransaction);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(PerformerOfCreated(response), "Practitioner/p2");
  EXPECT_EQ(interposing_->write_transactions, 2);  // rolled back once, then written
  EXPECT_EQ(Observations(), 1u);
}

TEST_P(PreparedTransactionTest, MatchGoneBeforeTheWriteFailsTheTransaction) {
  PutPractitioner("p1", true);
  interposing_->before_write = [&] { PutPractitioner("p1", false); };
  http::Response response = Post(kTransaction);
  EXPECT_EQ(response.status, 412) << response.body;
  EXPECT_NE(response.body.find("matches no resources"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("Bundle.entry[0]"), std::string::npos) << response.body;
  EXPECT_EQ(interposing_->write_transactions, 2);  // rolled back once, then failed inside
  EXPECT_EQ(Observations(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Dialects, PreparedTransactionTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::api
