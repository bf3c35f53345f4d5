// _revinclude through SQLite's reference keys (internal::ReferenceKey, idx_reference_key): the
// resources included follow every create, update and delete of the referring resources, the key
// table holds exactly one row per reference row with a target, the resources stored before the
// table existed get theirs when the store opens. The semantics are checked on both databases.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "search/query.h"
#include "store/internal/search_sql.h"
#include "store/store_fixture_test.h"

namespace fhirstone::store {
namespace {

class ReferenceKeyTest : public StoreFixture {
 protected:
  static std::string Observation(const std::string& id, const std::string& subject,
                                 const std::string& encounter = "") {
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","code":{"text":"x"},"subject":{"reference":")" + subject +
           R"("})" +
           (encounter.empty() ? "" : R"(,"encounter":{"reference":")" + encounter + R"("})") + "}";
  }

  // The ids of the resources that `_revinclude` brings with the Patients `ids`.
  std::vector<std::string> Included(const std::string& ids, const std::string& revinclude) {
    std::vector<std::string> out;
    auto q = search::ParseQuery(*holder_->Get(), {"Patient"},
                                {{"_id", ids}, {"_revinclude", revinclude}}, {});
    EXPECT_TRUE(q) << q.error().message();
    if (!q) return out;
    auto found = store_->Search(*q);
    EXPECT_TRUE(found) << found.error().message();
    if (found)
      for (const auto& v : found->included) out.push_back(v.type + "/" + v.id);
    return out;
  }

  using Key = std::tuple<int64_t, int64_t, int64_t>;  // k0, k1, rid

  // The key rows idx_reference implies (one per row with a target type and id), and those stored.
  std::pair<std::set<Key>, std::set<Key>> ExpectedAndStoredKeys() {
    std::set<Key> expected, stored;
    auto lease = db_->Acquire();
    EXPECT_TRUE(lease);
    if (!lease) return {};
    auto rows = (*lease)->Prepare(
        "SELECT rid, param, target_type, target_id FROM idx_reference WHERE target_type <> '' "
        "AND target_id <> ''");
    EXPECT_TRUE(rows);
    while (rows && *(*rows)->Step()) {
      internal::ReferenceKey k = internal::ReferenceKeyOf(
          (*rows)->ColumnText(1), (*rows)->ColumnText(2), (*rows)->ColumnText(3));
      expected.insert({k.place, k.hash, (*rows)->ColumnInt(0)});
    }
    if (rows) (*rows)->Reset();
    auto keys = (*lease)->Prepare("SELECT k0, k1, rid FROM idx_reference_key");
    EXPECT_TRUE(keys);
    while (keys && *(*keys)->Step())
      stored.insert({(*keys)->ColumnInt(0), (*keys)->ColumnInt(1), (*keys)->ColumnInt(2)});
    if (keys) (*keys)->Reset();
    return {expected, stored};
  }

  void ExpectKeysMatchTheIndex() {
    if (GetParam() != db::Dialect::kSqlite) return;  // the key table is SQLite's
    auto [expected, stored] = ExpectedAndStoredKeys();
    EXPECT_FALSE(expected.empty());
    EXPECT_EQ(stored, expected);
  }

  using Ids = std::vector<std::string>;
};

TEST_P(ReferenceKeyTest, RevincludeFollowsCreatesUpdatesAndDeletes) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(R"({"resourceType":"Patient","id":"p2"})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o2", "Patient/p2"));
  EXPECT_EQ(Included("p1", "Observation:subject"), (Ids{"Observation/o1"}));
  ExpectKeysMatchTheIndex();

  // o1 now refers to p2: it leaves p1's resources and joins p2's.
  Put(Observation("o1", "Patient/p2"));
  EXPECT_EQ(Included("p1", "Observation:subject"), Ids{});
  EXPECT_EQ(Included("p2", "Observation:subject"), (Ids{"Observation/o1", "Observation/o2"}));
  ExpectKeysMatchTheIndex();

  // Deleted, it is included nowhere; written again, it comes back.
  auto deleted = store_->Delete("Observation", "o1", std::nullopt);
  ASSERT_TRUE(deleted) << deleted.error().message();
  EXPECT_EQ(Included("p1,p2", "Observation:subject"), (Ids{"Observation/o2"}));
  ExpectKeysMatchTheIndex();
  Put(Observation("o1", "Patient/p1"));
  EXPECT_EQ(Included("p1,p2", "Observation:subject"), (Ids{"Observation/o1", "Observation/o2"}));
  ExpectKeysMatchTheIndex();

  // A reference by absolute URL on this server's base, and one with a version, refer to the
  // resource as well; one to another server's patient of the same id does too by type and id
  // (as the index reads it).
  Put(Observation("o3", "http://example.org/fhir/Patient/p2"));
  Put(Observation("o4", "Patient/p2/_history/1"));
  EXPECT_EQ(Included("p2", "Observation:subject"),
            (Ids{"Observation/o2", "Observation/o3", "Observation/o4"}));
  ExpectKeysMatchTheIndex();
}

// Targets whose ids share their place (their first sixteen hex digits): told apart by the hash.
TEST_P(ReferenceKeyTest, TargetsOfOnePlaceToldApart) {
  const std::string a = "01a22e49-489b-7ea2-a9b0-3e07f8e35dcc";
  const std::string b = "01a22e49-489b-7ea2-a9b0-3e07f8e35dcd";
  ASSERT_EQ(internal::ReferenceKeyOf("Observation.subject", "Patient", a).place,
            internal::ReferenceKeyOf("Observation.subject", "Patient", b).place);
  Put(R"({"resourceType":"Patient","id":")" + a + R"("})");
  Put(R"({"resourceType":"Patient","id":")" + b + R"("})");
  Put(Observation("oa", "Patient/" + a));
  Put(Observation("ob", "Patient/" + b));
  EXPECT_EQ(Included(a, "Observation:subject"), (Ids{"Observation/oa"}));
  EXPECT_EQ(Included(b, "Observation:subject"), (Ids{"Observation/ob"}));
  EXPECT_EQ(Included(a + "," + b, "Observation:subject"),
            (Ids{"Observation/oa", "Observation/ob"}));
  ExpectKeysMatchTheIndex();
}

// Several writes of one resource in one transaction: the key rows are those of the last.
TEST_P(ReferenceKeyTest, KeysOfTheLastWriteInATransaction) {
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(R"({"resourceType":"Patient","id":"p2"})");
  Put(R"({"resourceType":"Patient","id":"p3"})");
  auto done = store_->InTransaction([&](StoreTransaction& tx) -> Status {
    for (const char* subject : {"Patient/p1", "Patient/p2", "Patient/p3"}) {
      auto v = json::Parse(Observation("o1", subject));
      if (!v) return Error::Internal("unparsed");
      auto written = tx.Update(std::move(v).value(), std::nullopt);
      if (!written) return std::move(written).error();
    }
    return Ok();
  });
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ(Included("p1,p2", "Observation:subject"), Ids{});
  EXPECT_EQ(Included("p3", "Observation:subject"), (Ids{"Observation/o1"}));
  ExpectKeysMatchTheIndex();
}

// A store written before the key table existed: its references are keyed when it opens.
TEST_P(ReferenceKeyTest, StoredReferencesAreKeyedWhenTheStoreOpensAfterTheUpgrade) {
  if (GetParam() != db::Dialect::kSqlite) GTEST_SKIP() << "the key table is SQLite's";
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(R"({"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},
          "subject":{"reference":"Patient/p1"}})");
  Put(Observation("o1", "Patient/p1", "Encounter/e1"));
  Put(Observation("o2", "Patient/p1"));
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    // As migration 18 leaves a store it upgrades: the table empty, the backfill owed.
    ASSERT_TRUE((*lease)->Execute(
        "DELETE FROM idx_reference_key; INSERT INTO store_state (name, value) VALUES "
        "('reference_keys', 'pending')"));
  }
  EXPECT_TRUE(ExpectedAndStoredKeys().second.empty());
  Open();
  ExpectKeysMatchTheIndex();
  EXPECT_EQ(Included("p1", "Observation:subject"), (Ids{"Observation/o1", "Observation/o2"}));
  auto q = search::ParseQuery(*holder_->Get(), {"Encounter"},
                              {{"_id", "e1"}, {"_revinclude", "Observation:encounter"}}, {});
  ASSERT_TRUE(q);
  auto found = store_->Search(*q);
  ASSERT_TRUE(found) << found.error().message();
  ASSERT_EQ(found->included.size(), 1u);
  EXPECT_EQ(found->included[0].id, "o1");
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  auto state = (*lease)->Prepare("SELECT count(*) FROM store_state WHERE name = 'reference_keys'");
  ASSERT_TRUE(state);
  ASSERT_TRUE(*(*state)->Step());
  EXPECT_EQ((*state)->ColumnInt(0), 0);
  (*state)->Reset();
}

// A key starts with its target id's leading bits, in the ids' order (time-ordered UUIDs: their
// millisecond and sequence; other ids: their first ten characters), so that references to
// resources made together land together; the parameter and type only tell keys of one target
// apart, with the hash.
TEST(ReferenceKeyOfTest, PlacedByTheTargetIdFirst) {
  auto place = [](std::string_view param, std::string_view id) {
    return internal::ReferenceKeyOf(param, "Patient", id).place;
  };
  const char* earlier = "01a22e49-489b-7ea2-a9b0-3e07f8e35dcc";
  const char* same_ms_next = "01a22e49-489b-7eb0-8000-000000000000";
  const char* later = "01a22e49-489c-7000-8000-000000000000";
  EXPECT_LT(place("Observation.subject", earlier), place("Observation.subject", same_ms_next));
  EXPECT_LT(place("Observation.subject", same_ms_next), place("Observation.subject", later));
  // The parameter and type set the last 3 bits only.
  EXPECT_EQ(place("Encounter.patient", earlier) >> 3, place("Observation.subject", earlier) >> 3);
  // A UUID's version digit (the 13th) is left out, its hex digits read in either case; the
  // 16th counts.
  EXPECT_EQ(place("Observation.subject", "01a22e49-489b-7ea2-a9b0-3e07f8e35dcc"),
            place("Observation.subject", "01A22E49-489B-4EA2-0000-000000000000"));
  EXPECT_LT(place("Observation.subject", "01a22e49-489b-7ea2-a9b0-3e07f8e35dcc"),
            place("Observation.subject", "01a22e49-489b-7ea3-0000-000000000000"));
  // Other ids: their first ten characters in order.
  EXPECT_LT(place("Observation.subject", "a-1"), place("Observation.subject", "a-2"));
  EXPECT_LT(place("Observation.subject", "Z9"), place("Observation.subject", "a"));
  EXPECT_LT(place("Observation.subject", "observatio"), place("Observation.subject", "observatip"));
  EXPECT_EQ(place("Observation.subject", "observation-1"),
            place("Observation.subject", "observation-2"));
  // The same triple, the same key; another id or parameter, another hash.
  internal::ReferenceKey k = internal::ReferenceKeyOf("Observation.subject", "Patient", "p1");
  EXPECT_EQ(k.hash, internal::ReferenceKeyOf("Observation.subject", "Patient", "p1").hash);
  EXPECT_NE(k.hash, internal::ReferenceKeyOf("Observation.subject", "Patient", "p2").hash);
  EXPECT_NE(k.hash, internal::ReferenceKeyOf("Observation.patient", "Patient", "p1").hash);
  EXPECT_NE(k.hash, internal::ReferenceKeyOf("Observation.subject", "Group", "p1").hash);
}

// Keys out of step with the index (a former version wrote the store after the upgrade): a
// reindex has them made again when the store next opens.
TEST_P(ReferenceKeyTest, ReindexHasTheKeysMadeAgain) {
  if (GetParam() != db::Dialect::kSqlite) GTEST_SKIP() << "the key table is SQLite's";
  Put(R"({"resourceType":"Patient","id":"p1"})");
  Put(R"({"resourceType":"Patient","id":"p2"})");
  Put(Observation("o1", "Patient/p1"));
  Put(Observation("o2", "Patient/p2"));
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    // o1's keys gone, and o2 keyed as referring to p1 as well.
    internal::ReferenceKey stale = internal::ReferenceKeyOf("Observation.subject", "Patient", "p1");
    ASSERT_TRUE((*lease)->Execute(
        "DELETE FROM idx_reference_key WHERE rid = (SELECT rowid FROM resource WHERE id = 'o1'); "
        "INSERT INTO idx_reference_key (k0, k1, rid) SELECT " +
        std::to_string(stale.place) + ", " + std::to_string(stale.hash) +
        ", rowid FROM resource WHERE id = 'o2'"));
  }
  EXPECT_EQ(Included("p1", "Observation:subject"), (Ids{"Observation/o2"}));  // as the keys say
  auto reindexed = store_->Reindex();
  ASSERT_TRUE(reindexed) << reindexed.error().message();
  Open();
  ExpectKeysMatchTheIndex();
  EXPECT_EQ(Included("p1", "Observation:subject"), (Ids{"Observation/o1"}));
  EXPECT_EQ(Included("p2", "Observation:subject"), (Ids{"Observation/o2"}));
}

INSTANTIATE_TEST_SUITE_P(Dialects, ReferenceKeyTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
