// Chains through a reference to several types (search.html#chaining): `Patient?general-
// practitioner.name=x` reads the names of every type `general-practitioner` may refer to that has
// `name` (search::Criterion::any_of), alone, after _has, and with a type modifier that keeps one.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "search/query.h"
#include "store/store_fixture_test.h"

namespace fhirstone::store {
namespace {

class ChainTest : public StoreFixture {
 protected:
  std::vector<std::string> Ids(const std::string& type, const search::QueryParams& params) {
    std::vector<std::string> out;
    auto q = search::ParseQuery(*holder_->Get(), {type}, params, {});
    EXPECT_TRUE(q) << q.error().message();
    if (!q) return out;
    auto found = store_->Search(*q);
    EXPECT_TRUE(found) << found.error().message();
    if (found)
      for (const auto& v : found->matches) out.push_back(v.id);
    std::sort(out.begin(), out.end());
    return out;
  }

  using Strings = std::vector<std::string>;
};

TEST_P(ChainTest, ChainThroughSeveralTypesReadsEach) {
  Put(R"({"resourceType":"Practitioner","id":"dr1","name":[{"family":"Smith"}]})");
  Put(R"({"resourceType":"Practitioner","id":"dr2","name":[{"family":"Jones"}]})");
  Put(R"({"resourceType":"Organization","id":"org1","name":"Smith Clinic"})");
  Put(R"({"resourceType":"Organization","id":"org2","name":"North"})");
  Put(R"({"resourceType":"Organization","id":"org3","name":"South"})");
  Put(R"({"resourceType":"PractitionerRole","id":"role1"})");
  auto patient = [&](const std::string& id, const std::string& gp, const std::string& org) {
    Put(R"({"resourceType":"Patient","id":")" + id + R"(","generalPractitioner":[{"reference":")" +
        gp + R"("}],"managingOrganization":{"reference":"Organization/)" + org + R"("}})");
  };
  patient("p1", "Practitioner/dr1", "org2");
  patient("p2", "Organization/org1", "org3");
  patient("p3", "Practitioner/dr2", "org2");
  patient("p4", "PractitionerRole/role1", "org3");

  EXPECT_EQ(Ids("Patient", {{"general-practitioner.name", "smith"}}), (Strings{"p1", "p2"}));
  EXPECT_EQ(Ids("Patient", {{"general-practitioner:Practitioner.name", "smith"}}), (Strings{"p1"}));
  EXPECT_EQ(Ids("Patient", {{"general-practitioner.name", "jones,north"}}), (Strings{"p3"}));
  // With another criterion (the chain then filters or drives), and after _has.
  EXPECT_EQ(Ids("Patient", {{"organization", "org3"}, {"general-practitioner.name", "smith"}}),
            (Strings{"p2"}));
  EXPECT_EQ(Ids("Organization", {{"_has:Patient:organization:general-practitioner.name", "smith"}}),
            (Strings{"org2", "org3"}));
  EXPECT_EQ(Ids("Organization", {{"_has:Patient:organization:general-practitioner.name", "jones"}}),
            (Strings{"org2"}));
}

INSTANTIATE_TEST_SUITE_P(Dialects, ChainTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::store
