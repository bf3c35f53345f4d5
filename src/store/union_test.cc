// Parameters that are the union of others (search::SearchParam::stored_as: Observation's
// combo-code = code | component-code...): no index rows of their own are written, and every
// kind of search on them (values, :missing, :not, composite values, _sort, the patient's shard,
// totals) reads their operands' rows and answers as their own expression says.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fhir/model.h"
#include "search/query.h"
#include "store/internal/search_sql.h"
#include "store/store_fixture_test.h"

namespace fhirstone::store {
namespace {

class UnionParamTest : public StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    Put(R"({"resourceType":"Patient","id":"p1"})");
    Put(R"({"resourceType":"Patient","id":"p2"})");
    // o1: code A with 5 mg. o2: code B, a component A with 7 mg. o3: code C, a component D with
    // 3 mg. o4: code E and nothing else. o5: code A with 6 mg, another patient's.
    Put(Observation("o1", "p1", "A", R"(,"valueQuantity":)" + Mg(5), "", "2020-01-01"));
    Put(Observation("o2", "p1", "B", "", Component("A", 7), "2021-01-01"));
    Put(Observation("o3", "p1", "C", "", Component("D", 3), "2022-01-01"));
    Put(Observation("o4", "p1", "E", "", "", "2023-01-01"));
    Put(Observation("o5", "p2", "A", R"(,"valueQuantity":)" + Mg(6), "", "2024-01-01"));
  }

  static std::string Mg(int v) {
    return R"({"value":)" + std::to_string(v) +
           R"(,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"})";
  }
  static std::string Coding(const std::string& code) {
    return R"({"coding":[{"system":"http://loinc.org","code":")" + code + R"("}]})";
  }
  static std::string Component(const std::string& code, int mg) {
    return R"(,"component":[{"code":)" + Coding(code) + R"(,"valueQuantity":)" + Mg(mg) + "}]";
  }
  static std::string Observation(const std::string& id, const std::string& patient,
                                 const std::string& code, const std::string& value,
                                 const std::string& components, const std::string& date) {
    return R"({"resourceType":"Observation","id":")" + id + R"(","status":"final","code":)" +
           Coding(code) + R"(,"subject":{"reference":"Patient/)" + patient +
           R"("},"effectiveDateTime":")" + date + "\"" + value + components + "}";
  }

  // The ids found, in the search's order (sorted by id when `sorted`), and the total.
  std::vector<std::string> Find(search::QueryParams params, bool sorted = true,
                                int64_t* total = nullptr, const std::string& type = "Observation") {
    auto q = search::ParseQuery(*holder_->Get(), {type}, params, {});
    EXPECT_TRUE(q) << q.error().message();
    std::vector<std::string> ids;
    if (!q) return ids;
    auto found = store_->Search(*q);
    EXPECT_TRUE(found) << found.error().message();
    if (!found) return ids;
    for (const auto& m : found->matches) ids.push_back(m.id);
    if (sorted) std::sort(ids.begin(), ids.end());
    if (total) *total = found->total.value_or(-1);
    return ids;
  }

  int64_t Rows(const std::string& table, const std::string& param) {
    auto lease = db_->Acquire();
    EXPECT_TRUE(lease);
    auto stmt = (*lease)->Prepare("SELECT count(*) FROM " + table + " WHERE param = ?");
    EXPECT_TRUE(stmt);
    (*stmt)->BindText(1, param);
    auto row = (*stmt)->Step();
    EXPECT_TRUE(row && *row);
    int64_t n = (*stmt)->ColumnInt(0);
    (*stmt)->Reset();
    return n;
  }

  using Ids = std::vector<std::string>;
};

// Migration 14 removed the rows of exactly the parameters the registry stores as others', each
// from its type's table.
TEST(UnionRowsDroppedTest, AreTheRegistrysUnions) {
  auto registry = search::Registry::Builtin();
  ASSERT_TRUE(registry);
  auto table_of = [](search::ParamType t) {
    return "idx_" + std::string(search::ParamTypeName(t));
  };
  std::vector<std::pair<std::string, std::string>> derived, dropped;
  for (std::string_view type : fhir::ResourceTypes())
    for (const search::SearchParam* p : (*registry)->ForType(type))
      if (!p->stored_as.empty() && p->base == type)
        derived.emplace_back(table_of(p->type), internal::ParamKey(*p));
  for (const auto& [table, key] : internal::UnionRowsDropped()) dropped.emplace_back(table, key);
  std::sort(derived.begin(), derived.end());
  std::sort(dropped.begin(), dropped.end());
  EXPECT_EQ(derived, dropped);
}

TEST_P(UnionParamTest, NoRowsOfTheirOwn) {
  EXPECT_EQ(Rows("idx_token", "Observation.code"), 5);
  EXPECT_EQ(Rows("idx_token", "Observation.component-code"), 2);
  EXPECT_EQ(Rows("idx_composite", "Observation.code-value-quantity"), 2);
  EXPECT_EQ(Rows("idx_composite", "Observation.component-code-value-quantity"), 2);
  EXPECT_EQ(Rows("idx_token", "Observation.combo-code"), 0);
  EXPECT_EQ(Rows("idx_quantity", "Observation.combo-value-quantity"), 0);
  EXPECT_EQ(Rows("idx_composite", "Observation.combo-code-value-quantity"), 0);
}

TEST_P(UnionParamTest, ValuesModifiersAndComposites) {
  int64_t total = -1;
  EXPECT_EQ(Find({{"combo-code", "A"}, {"_total", "accurate"}}, true, &total),
            (Ids{"o1", "o2", "o5"}));
  EXPECT_EQ(total, 3);
  EXPECT_EQ(Find({{"combo-code", "http://loinc.org|D,E"}}), (Ids{"o3", "o4"}));
  EXPECT_EQ(Find({{"combo-code:not", "A"}}), (Ids{"o3", "o4"}));
  EXPECT_EQ(Find({{"combo-value-quantity:missing", "true"}}), (Ids{"o4"}));
  EXPECT_EQ(Find({{"combo-value-quantity:missing", "false"}}), (Ids{"o1", "o2", "o3", "o5"}));
  EXPECT_EQ(Find({{"combo-value-quantity", "gt5.5"}}), (Ids{"o2", "o5"}));
  EXPECT_EQ(Find({{"combo-code-value-quantity", "A$7"}}), (Ids{"o2"}));
  EXPECT_EQ(Find({{"combo-code-value-quantity", "A$gt4"}}), (Ids{"o1", "o2", "o5"}));
  EXPECT_EQ(Find({{"combo-code-value-quantity", "D$3"}}), (Ids{"o3"}));
  // Both operands in one resource's answer, and the operands alone for comparison.
  EXPECT_EQ(Find({{"code", "A"}}), (Ids{"o1", "o5"}));
  EXPECT_EQ(Find({{"component-code", "A"}}), (Ids{"o2"}));
  // The same expression as another's: Patient phonetic reads name's rows.
  Put(R"({"resourceType":"Patient","id":"p3","name":[{"family":"Quigley","given":["Ana"]}]})");
  EXPECT_EQ(Rows("idx_string", "Patient.phonetic"), 0);
  EXPECT_EQ(Find({{"phonetic", "quig"}}, true, nullptr, "Patient"), (Ids{"p3"}));
  EXPECT_EQ(Find({{"phonetic:exact", "Ana"}}, true, nullptr, "Patient"), (Ids{"p3"}));
  EXPECT_EQ(Find({{"phonetic:missing", "true"}}, true, nullptr, "Patient"), (Ids{"p1", "p2"}));
  // At the end of a chain, and on the far side of a reverse chain through another reference
  // than the patient's.
  Put(R"({"resourceType":"Encounter","id":"e1","status":"finished",
          "class":{"code":"AMB"},"subject":{"reference":"Patient/p3"}})");
  Put(R"({"resourceType":"Observation","id":"o6","status":"final","code":)" + Coding("Z") +
      R"(,"subject":{"reference":"Patient/p3"},"encounter":{"reference":"Encounter/e1"})" +
      Component("A", 1) + "}");
  EXPECT_EQ(Find({{"subject:Patient.phonetic", "quig"}}), (Ids{"o6"}));
  EXPECT_EQ(Find({{"_has:Observation:encounter:combo-code", "A"}}, true, nullptr, "Encounter"),
            (Ids{"e1"}));
  EXPECT_EQ(Find({{"_has:Observation:encounter:combo-code", "D"}}, true, nullptr, "Encounter"),
            (Ids{}));
  // Reverse-chained: the union parameter on the far side.
  EXPECT_EQ(Find({{"_has:Observation:patient:combo-code", "D"}}, true, nullptr, "Patient"),
            (Ids{"p1"}));
  EXPECT_EQ(Find({{"_has:Observation:patient:combo-code", "A"}}, true, nullptr, "Patient"),
            (Ids{"p1", "p2", "p3"}));
}

TEST_P(UnionParamTest, InThePatientsShardAndSorted) {
  int64_t total = -1;
  EXPECT_EQ(Find({{"patient", "p1"}, {"combo-code", "A"}}, true, &total), (Ids{"o1", "o2"}));
  EXPECT_EQ(Find({{"patient", "p1"}, {"combo-code", "A"}, {"_sort", "-date"}}, false),
            (Ids{"o2", "o1"}));
  EXPECT_EQ(Find({{"patient", "p1"}, {"_sort", "combo-value-quantity"}}, false),
            (Ids{"o3", "o1", "o2", "o4"}));
  EXPECT_EQ(Find({{"_sort", "-combo-value-quantity"}}, false), (Ids{"o2", "o5", "o1", "o3", "o4"}));
  // The greatest of each one's codes and its components': D, B, A, A.
  EXPECT_EQ(Find({{"combo-code", "A,D"}, {"_sort", "-combo-code,date"}}, false),
            (Ids{"o3", "o2", "o1", "o5"}));
}

TEST_P(UnionParamTest, Migration14DropsTheRowsKeptBefore) {
  auto as_before = [&](bool with_custom) {  // a store that kept rows for combo-code, phonetic
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    ASSERT_TRUE((*lease)->Execute(
        "INSERT INTO idx_token (rid, param, system, code, text, shard_key) SELECT rid, "
        "'Observation.combo-code', system, code, text, shard_key FROM idx_token WHERE param = "
        "'Observation.code'"));
    ASSERT_TRUE(
        (*lease)->Execute("INSERT INTO idx_string (rid, param, norm, exact, shard_key) VALUES (1, "
                          "'Patient.phonetic', 'x', 'x', 0)"));
    if (with_custom)
      ASSERT_TRUE((*lease)->Execute(
          "INSERT INTO resource (type, id, version, last_updated, deleted, body) VALUES "
          "('SearchParameter', 'sp1', 1, 0, 0, '{}')"));
    ASSERT_TRUE((*lease)->Execute("DELETE FROM schema_migrations WHERE version = 14"));
  };
  as_before(false);
  ASSERT_EQ(Rows("idx_token", "Observation.combo-code"), 5);
  Open();
  EXPECT_EQ(Rows("idx_token", "Observation.combo-code"), 0);
  EXPECT_EQ(Rows("idx_string", "Patient.phonetic"), 0);
  EXPECT_EQ(Rows("idx_token", "Observation.code"), 5);
  EXPECT_EQ(Find({{"combo-code", "A"}}), (Ids{"o1", "o2", "o5"}));
  // With custom SearchParameters stored, the rows stay (for `fhirstone reindex` to judge).
  as_before(true);
  Open();
  EXPECT_EQ(Rows("idx_token", "Observation.combo-code"), 5);
  EXPECT_EQ(Rows("idx_string", "Patient.phonetic"), 1);
}

INSTANTIATE_TEST_SUITE_P(Dialects, UnionParamTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
