#include "fhir/summary.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace fhirstone::fhir {
namespace {

json::Value Parse(std::string_view text) {
  auto parsed = json::Parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed ? *parsed : json::Value();
}

std::vector<std::string> Keys(const json::Value& v) {
  std::vector<std::string> keys;
  for (const auto& m : v.as_object()) keys.push_back(m.first);
  return keys;
}

bool HasSubsettedTag(const json::Value& v) {
  const json::Value* meta = v.Find("meta");
  if (meta == nullptr || meta->Find("tag") == nullptr) return false;
  for (const json::Value& tag : meta->Find("tag")->as_array()) {
    if (tag.GetString("system") == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" &&
        tag.GetString("code") == "SUBSETTED")
      return true;
  }
  return false;
}

constexpr std::string_view kPatient = R"({"resourceType":"Patient","id":"p1",
  "meta":{"versionId":"2","tag":[{"code":"t"}]},
  "text":{"status":"generated","div":"<div>x</div>"},
  "extension":[{"url":"http://e.org/x","valueString":"x"}],
  "identifier":[{"value":"123"}],"active":true,
  "name":[{"family":"Chalmers","given":["Peter"]}],"gender":"male",
  "birthDate":"1974-12-25","_birthDate":{"id":"b"},
  "photo":[{"contentType":"image/png"}],
  "contact":[{"name":{"family":"X"}}],
  "link":[{"extension":[{"url":"http://e.org/y","valueString":"y"}],
           "other":{"reference":"Patient/2"},"type":"seealso"}]})";

constexpr std::string_view kObservation = R"({"resourceType":"Observation","id":"o1",
  "text":{"status":"generated","div":"<div>x</div>"},
  "status":"final","code":{"text":"BP"},"subject":{"reference":"Patient/p1"},
  "valueQuantity":{"value":1.50,"unit":"kg"},"note":[{"text":"n"}],
  "component":[{"code":{"text":"sys"},"valueQuantity":{"value":120},
                "interpretation":[{"text":"high"}]}]})";

TEST(SummaryTest, FalseReturnsEverything) {
  json::Value patient = Parse(kPatient);
  json::Value out = Summarize(patient, SummaryMode::kFalse);
  EXPECT_EQ(out, patient);
  EXPECT_FALSE(HasSubsettedTag(out));
}

TEST(SummaryTest, TrueKeepsSummaryElements) {
  json::Value out = Summarize(Parse(kPatient), SummaryMode::kTrue);
  EXPECT_EQ(Keys(out),
            (std::vector<std::string>{"resourceType", "id", "meta", "identifier", "active", "name",
                                      "gender", "birthDate", "_birthDate", "link"}));
  // Backbone elements are filtered too: link.extension is not a summary element.
  const json::Value& link = out.Find("link")->as_array()[0];
  EXPECT_EQ(Keys(link), (std::vector<std::string>{"other", "type"}));
  EXPECT_TRUE(HasSubsettedTag(out));
  // The existing tag stays, SUBSETTED is appended.
  EXPECT_EQ(out.Find("meta")->Find("tag")->as_array().size(), 2u);
  EXPECT_EQ(out.Find("meta")->GetString("versionId"), "2");

  json::Value obs = Summarize(Parse(kObservation), SummaryMode::kTrue);
  EXPECT_EQ(obs.Find("text"), nullptr);
  EXPECT_EQ(obs.Find("note"), nullptr);
  ASSERT_NE(obs.Find("valueQuantity"), nullptr);
  EXPECT_EQ(obs.Find("valueQuantity")->Find("value")->as_string(), "1.50");
  const json::Value& component = obs.Find("component")->as_array()[0];
  EXPECT_EQ(Keys(component), (std::vector<std::string>{"code", "valueQuantity"}));
  // meta was created, right after id.
  EXPECT_EQ(Keys(obs)[2], "meta");
}

TEST(SummaryTest, TextKeepsTextIdMetaAndMandatoryElements) {
  json::Value out = Summarize(Parse(kObservation), SummaryMode::kText);
  EXPECT_EQ(Keys(out),
            (std::vector<std::string>{"resourceType", "id", "meta", "text", "status", "code"}));
  EXPECT_TRUE(HasSubsettedTag(out));
}

TEST(SummaryTest, DataDropsText) {
  json::Value out = Summarize(Parse(kObservation), SummaryMode::kData);
  EXPECT_EQ(out.Find("text"), nullptr);
  EXPECT_NE(out.Find("component"), nullptr);
  EXPECT_NE(out.Find("note"), nullptr);
  EXPECT_TRUE(HasSubsettedTag(out));
  // Nothing to remove: unchanged, no tag.
  json::Value bare = Parse(R"({"resourceType":"Patient","id":"x","active":true})");
  EXPECT_EQ(Summarize(bare, SummaryMode::kData), bare);
  EXPECT_EQ(Summarize(bare, SummaryMode::kTrue), bare);
}

TEST(SummaryTest, SelectElements) {
  json::Value out = SelectElements(Parse(kPatient), {"name", "Patient.birthDate", "nosuch"});
  EXPECT_EQ(Keys(out), (std::vector<std::string>{"resourceType", "id", "meta", "name", "birthDate",
                                                 "_birthDate"}));
  EXPECT_TRUE(HasSubsettedTag(out));

  json::Value obs = SelectElements(Parse(kObservation), {"value"});
  EXPECT_EQ(Keys(obs), (std::vector<std::string>{"resourceType", "id", "meta", "valueQuantity"}));

  // Everything requested: nothing removed, no tag.
  json::Value small = Parse(R"({"resourceType":"Patient","id":"x","gender":"male"})");
  EXPECT_EQ(SelectElements(small, {"gender"}), small);
}

TEST(SummaryTest, AddSubsettedTagOnce) {
  json::Value v = Parse(R"({"resourceType":"Patient","id":"x","active":true})");
  AddSubsettedTag(v);
  AddSubsettedTag(v);
  EXPECT_EQ(Keys(v), (std::vector<std::string>{"resourceType", "id", "meta", "active"}));
  EXPECT_EQ(v.Find("meta")->Find("tag")->as_array().size(), 1u);
  EXPECT_TRUE(HasSubsettedTag(v));
}

}  // namespace
}  // namespace fhirstone::fhir
