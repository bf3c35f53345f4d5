#include "fhir/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace fhirstone::fhir {
namespace {

using ::testing::HasSubstr;

json::Value Parse(std::string_view text) {
  auto parsed = json::Parse(text);
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().message()) << " in " << text;
  return parsed ? *parsed : json::Value();
}

std::vector<Issue> Issues(std::string_view text) {
  Status status = ValidateResource(Parse(text));
  if (status) return {};
  EXPECT_EQ(status.error().code(), ErrorCode::kInvalid);
  return status.error().issues();
}

std::string Describe(const std::vector<Issue>& issues) {
  std::string out;
  for (const Issue& i : issues) out += "  " + i.expression + ": " + i.message + "\n";
  return out;
}

// Expects exactly one issue, at `expression`, whose message contains `message_part`.
void ExpectIssue(std::string_view text, std::string_view expression,
                 std::string_view message_part) {
  std::vector<Issue> issues = Issues(text);
  ASSERT_EQ(issues.size(), 1u) << text << "\n" << Describe(issues);
  EXPECT_EQ(issues[0].expression, expression) << text;
  EXPECT_THAT(issues[0].message, HasSubstr(std::string(message_part))) << text;
}

void ExpectValid(std::string_view text) {
  std::vector<Issue> issues = Issues(text);
  EXPECT_TRUE(issues.empty()) << text << "\n" << Describe(issues);
}

TEST(ValidateTest, ValidResources) {
  ExpectValid(R"({"resourceType":"Patient"})");
  ExpectValid(R"({"resourceType":"Patient","id":"p-1.a","active":true,"gender":"female",
    "birthDate":"1970-02-28","name":[{"use":"official","family":"Chalmers","given":["Peter","J"]}],
    "multipleBirthInteger":2,"deceasedBoolean":false,
    "contact":[{"relationship":[{"text":"sister"}],"name":{"family":"X"}}],
    "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
    "meta":{"lastUpdated":"2020-01-01T00:00:00Z","tag":[{"code":"a"}]}})");
  ExpectValid(R"({"resourceType":"Observation","status":"final","code":{"text":"w"},
    "valueQuantity":{"value":1.000000000000000000E-245,"unit":"kg"},
    "effectiveDateTime":"2020-01-02T03:04:05.678+01:00",
    "component":[{"code":{"text":"c"},"valueInteger":-5}]})");
}

TEST(ValidateTest, RootMustBeAnObjectWithAKnownResourceType) {
  ExpectIssue("[]", "", "must be a JSON object");
  ExpectIssue(R"("Patient")", "", "must be a JSON object");
  ExpectIssue(R"({"id":"x"})", "", "Missing resourceType");
  ExpectIssue(R"({"resourceType":1})", "", "resourceType must be a string");
  ExpectIssue(R"({"resourceType":"Foo"})", "", "Unknown resource type 'Foo'");
  ExpectIssue(R"({"resourceType":"DomainResource"})", "", "Unknown resource type");
  ExpectIssue(R"({"resourceType":"HumanName"})", "", "Unknown resource type");
}

TEST(ValidateTest, IdSyntax) {
  ExpectIssue(R"({"resourceType":"Patient","id":"a_b"})", "Patient.id", "Invalid id 'a_b'");
  ExpectIssue(R"({"resourceType":"Patient","id":")" + std::string(65, 'a') + R"("})", "Patient.id",
              "Invalid id");
  // Element ids are strings, not ids.
  ExpectValid(R"({"resourceType":"Patient","name":[{"id":"any thing_goes","family":"x"}]})");
}

TEST(ValidateTest, UnknownElements) {
  ExpectIssue(R"({"resourceType":"Patient","foo":1})", "Patient.foo", "Unknown element 'foo'");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"family":"x","foo":"y"}]})",
              "Patient.name[0].foo", "Unknown element 'foo'");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"resourceType":"Patient"}]})",
              "Patient.name[0].resourceType", "Unknown element");
  ExpectIssue(R"({"resourceType":"Patient","contact":[{"foo":true}]})", "Patient.contact[0].foo",
              "Unknown element");
  // `_x` is only for primitive elements.
  ExpectIssue(R"({"resourceType":"Patient","_name":{"id":"a"}})", "Patient._name",
              "Unknown element '_name'");
}

TEST(ValidateTest, JsonTypes) {
  ExpectIssue(R"({"resourceType":"Patient","active":"true"})", "Patient.active",
              "must be a boolean");
  ExpectIssue(R"({"resourceType":"Patient","gender":1})", "Patient.gender", "must be a string");
  ExpectIssue(R"({"resourceType":"Patient","multipleBirthInteger":"2"})",
              "Patient.multipleBirthInteger", "must be a number");
  ExpectIssue(R"({"resourceType":"Patient","maritalStatus":"M"})", "Patient.maritalStatus",
              "must be an object");
  ExpectIssue(R"({"resourceType":"Patient","contact":["x"]})", "Patient.contact[0]",
              "must be an object");
}

TEST(ValidateTest, ArraysOnlyWhereMaxIsMany) {
  ExpectIssue(R"({"resourceType":"Patient","birthDate":["2000"]})", "Patient.birthDate",
              "must not be an array");
  ExpectIssue(R"({"resourceType":"Patient","maritalStatus":[{"text":"M"}]})",
              "Patient.maritalStatus", "must not be an array");
  ExpectIssue(R"({"resourceType":"Patient","name":{"family":"x"}})", "Patient.name",
              "must be an array");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":"Peter"}]})", "Patient.name[0].given",
              "must be an array");
}

TEST(ValidateTest, Cardinality) {
  ExpectIssue(R"({"resourceType":"Observation","code":{"text":"x"}})", "Observation.status",
              "Missing required element 'status'");
  ExpectIssue(R"({"resourceType":"Questionnaire","status":"draft",
      "item":[{"linkId":"1","type":"group","item":[{"type":"display"}]}]})",
              "Questionnaire.item[0].item[0].linkId", "Missing required element 'linkId'");
  // A primitive present only through its extension counts as present.
  ExpectValid(R"({"resourceType":"Observation","code":{"text":"x"},
      "_status":{"extension":[{"url":"http://example.org/absent","valueCode":"unknown"}]}})");
  ExpectIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "component":[{"valueString":"x"}]})",
              "Observation.component[0].code", "Missing required element 'code'");
}

TEST(ValidateTest, ChoiceTypes) {
  ExpectIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "valueHumanName":{"family":"x"}})",
              "Observation.valueHumanName", "Unknown element 'valueHumanName'");
  ExpectIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "value":"x"})",
              "Observation.value", "Unknown element 'value'");
  ExpectIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "valueString":"a","valueQuantity":{"value":1}})",
              "Observation.valueQuantity", "Only one type may be given for the choice element");
  ExpectIssue(R"({"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020"})",
              "Patient.deceasedDateTime", "deceased[x]");
  ExpectValid(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "valueString":"a","_valueString":{"id":"v"}})");
}

TEST(ValidateTest, PrimitiveFormats) {
  ExpectIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "valueQuantity":{"value":"1.5"}})",
              "Observation.valueQuantity.value", "must be a number");
  ExpectIssue(R"({"resourceType":"Patient","birthDate":"2000-13-01"})", "Patient.birthDate",
              "Invalid date '2000-13-01'");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":["Peter",""]}]})",
              "Patient.name[0].given[1]", "must not be an empty string");
  ExpectIssue(R"({"resourceType":"Patient","multipleBirthInteger":1.5})",
              "Patient.multipleBirthInteger", "Invalid integer '1.5'");
  ExpectIssue(R"({"resourceType":"Patient","multipleBirthInteger":2147483648})",
              "Patient.multipleBirthInteger", "Invalid integer");
  ExpectIssue(R"({"resourceType":"Patient","gender":"fe  male"})", "Patient.gender",
              "Invalid code 'fe  male'");
  ExpectIssue(R"({"resourceType":"Patient","telecom":[{"system":"url","value":"x","period":{
      "start":"2020-01-01T10:00:00"}}]})",
              "Patient.telecom[0].period.start", "Invalid dateTime");
}

TEST(ValidateTest, PrimitiveExtensions) {
  ExpectValid(R"({"resourceType":"Patient","birthDate":"1970",
      "_birthDate":{"id":"b","extension":[{"url":"http://e.org/x",
      "valueDateTime":"1970-03-30T00:00:00Z"}]}})");
  ExpectIssue(R"({"resourceType":"Patient","_birthDate":"x"})", "Patient.birthDate",
              "'_birthDate' must be an object");
  ExpectIssue(R"({"resourceType":"Patient","_birthDate":{"value":"1970"}})",
              "Patient.birthDate.value", "Unknown element 'value'");
  ExpectIssue(R"({"resourceType":"Patient","_birthDate":{}})", "Patient.birthDate",
              "must not be empty");
  ExpectIssue(R"({"resourceType":"Patient","_active":[{"id":"a"}]})", "Patient.active",
              "'_active' must not be an array");
  ExpectIssue(R"({"resourceType":"Patient","_birthDate":{"extension":[{"valueString":"x"}]}})",
              "Patient.birthDate.extension[0].url", "Missing required element 'url'");
}

TEST(ValidateTest, RepeatingPrimitiveExtensions) {
  ExpectValid(R"({"resourceType":"Patient","name":[{"given":["a",null,"c"],
      "_given":[null,{"extension":[{"url":"http://e.org/x","valueString":"b"}]},null]}]})");
  ExpectValid(R"({"resourceType":"Patient","name":[{"_given":[{"id":"g"}]}]})");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":["a",null]}]})",
              "Patient.name[0].given[1]", "null in 'given' is only allowed where '_given'");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]})",
              "Patient.name[0].given[1]", "null in 'given' is only allowed where '_given'");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":["a","b"],"_given":[null]}]})",
              "Patient.name[0].given", "must have as many items");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"_given":[null]}]})",
              "Patient.name[0].given[0]", "null in '_given' without a value");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":["a"],"_given":{"id":"x"}}]})",
              "Patient.name[0].given", "'_given' must be an array");
  ExpectIssue(R"({"resourceType":"Patient","name":[{"given":["a"],"_given":["x"]}]})",
              "Patient.name[0].given[0]", "'_given' must be an object");
}

TEST(ValidateTest, ContainedResources) {
  ExpectValid(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1",
      "name":"Org"}],"managingOrganization":{"reference":"#o1"}})");
  ExpectIssue(R"({"resourceType":"Patient","contained":[{"id":"o1"}]})", "Patient.contained[0]",
              "Missing resourceType");
  ExpectIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization",
      "id":"o1","foo":1}]})",
              "Patient.contained[0].foo", "Unknown element");
  ExpectIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization",
      "id":"o_1"}]})",
              "Patient.contained[0].id", "Invalid id");
  ExpectIssue(R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{
      "resourceType":"Observation","code":{"text":"x"}}}]})",
              "Bundle.entry[0].resource.status", "Missing required element 'status'");
  ExpectIssue(R"({"resourceType":"Parameters","parameter":[{"name":"p","resource":{
      "resourceType":"Nope"}}]})",
              "Parameters.parameter[0].resource", "Unknown resource type 'Nope'");
  ExpectIssue(R"({"resourceType":"Parameters","parameter":[{"name":"p","part":[{"name":"q",
      "valueFoo":1}]}]})",
              "Parameters.parameter[0].part[0].valueFoo", "Unknown element");
}

TEST(ValidateTest, Extensions) {
  ExpectIssue(R"({"resourceType":"Patient","extension":[{"valueString":"x"}]})",
              "Patient.extension[0].url", "Missing required element 'url'");
  ExpectIssue(R"({"resourceType":"Patient","extension":[{"url":"http://e.org/a","valueString":"x",
      "extension":[{"url":"b","valueBoolean":true}]}]})",
              "Patient.extension[0]", "ext-1");
  ExpectIssue(R"({"resourceType":"Patient","modifierExtension":[{"url":"u","valueFoo":"x"}]})",
              "Patient.modifierExtension[0].valueFoo", "Unknown element");
  ExpectIssue(R"({"resourceType":"Patient","extension":[{"url":"http://e.org/a b"}]})",
              "Patient.extension[0].url", "Invalid uri");
}

TEST(ValidateTest, Narrative) {
  ExpectIssue(R"({"resourceType":"Patient","text":{"status":"generated","div":"<p>x</p>"}})",
              "Patient.text.div", "Invalid xhtml");
  ExpectIssue(R"({"resourceType":"Patient","text":{"div":"<div>x</div>"}})", "Patient.text.status",
              "Missing required element 'status'");
}

TEST(ValidateTest, EmptyValuesAndNulls) {
  ExpectIssue(R"({"resourceType":"Patient","maritalStatus":{}})", "Patient.maritalStatus",
              "must not be empty");
  ExpectIssue(R"({"resourceType":"Patient","name":[]})", "Patient.name",
              "must not be an empty array");
  ExpectIssue(R"({"resourceType":"Patient","gender":""})", "Patient.gender",
              "must not be an empty string");
  ExpectIssue(R"({"resourceType":"Patient","gender":null})", "Patient.gender", "not null");
  ExpectIssue(R"({"resourceType":"Patient","name":[null]})", "Patient.name[0]", "not null");
  ExpectIssue(R"({"resourceType":"Patient","maritalStatus":null})", "Patient.maritalStatus",
              "not null");
  ExpectIssue(R"({"resourceType":"Patient","name":[{}]})", "Patient.name[0]", "must not be empty");
}

TEST(ValidateTest, ReportsAllIssuesAtOnce) {
  std::vector<Issue> issues = Issues(R"({"resourceType":"Observation","id":"bad id",
      "code":{"coding":[{"system":"http://loinc.org","code":""}]},"foo":true,
      "valueQuantity":{"value":"x"},"subject":[{"reference":"Patient/1"}]})");
  ASSERT_EQ(issues.size(), 6u) << Describe(issues);
  EXPECT_EQ(issues[0].expression, "Observation.id");
  EXPECT_EQ(issues[1].expression, "Observation.code.coding[0].code");
  EXPECT_EQ(issues[2].expression, "Observation.foo");
  EXPECT_EQ(issues[3].expression, "Observation.valueQuantity.value");
  EXPECT_EQ(issues[4].expression, "Observation.subject");
  EXPECT_EQ(issues[5].expression, "Observation.status");

  Status status = ValidateResource(Parse(R"({"resourceType":"Patient","id":"x y"})"));
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message(), "Invalid id 'x y'");
}

TEST(ValidateTest, CapsTheNumberOfIssues) {
  std::string text = R"({"resourceType":"Patient","name":[)";
  for (int i = 0; i < 300; ++i) text += std::string(i ? "," : "") + R"({"foo":1})";
  text += "]}";
  Status status = ValidateResource(Parse(text), ValidateOptions{.max_issues = 50});
  ASSERT_FALSE(status);
  ASSERT_EQ(status.error().issues().size(), 51u);
  EXPECT_EQ(status.error().issues()[49].expression, "Patient.name[49].foo");
  EXPECT_THAT(status.error().issues()[50].message, HasSubstr("Too many issues"));
}

}  // namespace
}  // namespace fhirstone::fhir
