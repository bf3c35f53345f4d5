#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "patch/patch.h"

namespace fhirstone::patch {
namespace {

json::Value Parse(std::string_view text) {
  auto parsed = json::Parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed ? *parsed : json::Value();
}

// One `operation` parameter: type, path and further parts (JSON text of part objects).
std::string Op(std::string_view type, std::string_view path, std::string_view more = "") {
  std::string out = R"({"name":"operation","part":[{"name":"type","valueCode":")";
  out += type;
  out += R"("},{"name":"path","valueString":")";
  out += path;
  out += "\"}";
  if (!more.empty()) {
    out += ",";
    out += more;
  }
  return out + "]}";
}

std::string Params(const std::vector<std::string>& ops) {
  std::string out = R"({"resourceType":"Parameters","parameter":[)";
  for (size_t i = 0; i < ops.size(); ++i) out += (i > 0 ? "," : "") + ops[i];
  return out + "]}";
}

constexpr std::string_view kPatient = R"({"resourceType":"Patient","id":"example",
  "identifier":[{"use":"usual","system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345"},
                {"use":"secondary","system":"http://example.org/mrn","value":"A-1"}],
  "active":true,
  "name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},
          {"use":"usual","given":["Jim"]}],
  "telecom":[{"system":"phone","value":"(03) 5555 6473","use":"work","rank":1},
             {"system":"phone","value":"(03) 3410 5613","use":"mobile","rank":2},
             {"system":"email","value":"p@example.org","use":"home"}],
  "gender":"male","birthDate":"1974-12-25",
  "_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                              "valueDateTime":"1974-12-25T14:35:45-05:00"}]}})";

Result<json::Value> Apply(std::string_view resource, const std::vector<std::string>& ops) {
  return ApplyFhirPathPatch(Parse(resource), Parse(Params(ops)));
}

json::Value Patched(std::string_view resource, const std::vector<std::string>& ops) {
  Result<json::Value> out = Apply(resource, ops);
  EXPECT_TRUE(out) << out.error().message();
  return out ? *out : json::Value();
}

Error Failed(std::string_view resource, const std::vector<std::string>& ops) {
  Result<json::Value> out = Apply(resource, ops);
  EXPECT_FALSE(out) << json::Write(*out);
  return out ? Error::Internal("no error") : out.error();
}

std::string At(const json::Value& v, std::string_view key) {
  const json::Value* m = v.Find(key);
  return m == nullptr ? "<absent>" : json::Write(*m);
}

// Examples after https://hl7.org/fhir/R4/fhirpatch.html.

TEST(FhirPathPatchTest, AddSingleElement) {
  json::Value out = Patched(R"({"resourceType":"Patient","id":"p"})",
                            {Op("add", "Patient", R"({"name":"name","valueString":"birthDate"},
                                {"name":"value","valueDate":"1930-01-01"})")});
  EXPECT_EQ(out, Parse(R"({"resourceType":"Patient","id":"p","birthDate":"1930-01-01"})"));
}

TEST(FhirPathPatchTest, AddExistingSingleElementFails) {
  Error e = Failed(kPatient, {Op("add", "Patient", R"({"name":"name","valueString":"birthDate"},
                                 {"name":"value","valueDate":"1930-01-01"})")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
  EXPECT_NE(e.message().find("already has"), std::string::npos) << e.message();
}

TEST(FhirPathPatchTest, AddAnonymousElementFromParts) {
  json::Value out = Patched(R"({"resourceType":"Patient","id":"p"})",
                            {Op("add", "Patient", R"({"name":"name","valueString":"contact"},
                                {"name":"value","part":[
                                  {"name":"name","valueHumanName":{"text":"a name"}},
                                  {"name":"gender","valueCode":"female"}]})")});
  EXPECT_EQ(At(out, "contact"), R"([{"name":{"text":"a name"},"gender":"female"}])");
}

TEST(FhirPathPatchTest, AddHumanNameAsValue) {
  json::Value out = Patched(kPatient, {Op("add", "Patient", R"({"name":"name","valueString":"name"},
      {"name":"value","valueHumanName":{"use":"nickname","given":["Pete"]}})")});
  EXPECT_EQ(out.Find("name")->as_array().size(), 3u);
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[2]), R"({"use":"nickname","given":["Pete"]})");
}

TEST(FhirPathPatchTest, AddHumanNameFromNestedParts) {
  json::Value out = Patched(kPatient, {Op("add", "Patient", R"({"name":"name","valueString":"name"},
      {"name":"value","part":[{"name":"use","valueCode":"maiden"},
                              {"name":"family","valueString":"Windsor"},
                              {"name":"given","valueString":"Petra"},
                              {"name":"given","valueString":"Jane"},
                              {"name":"period","part":[{"name":"end","valueDateTime":"2001"}]}]})")});
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[2]),
            R"({"use":"maiden","family":"Windsor","given":["Petra","Jane"],)"
            R"("period":{"end":"2001"}})");
}

TEST(FhirPathPatchTest, AddToListCreatesIt) {
  json::Value out = Patched(R"({"resourceType":"Patient","id":"p"})",
                            {Op("add", "Patient", R"({"name":"name","valueString":"identifier"},
                                {"name":"value","valueIdentifier":{"value":"1"}})"),
                             Op("add", "Patient", R"({"name":"name","valueString":"identifier"},
                                {"name":"value","valueIdentifier":{"value":"2"}})")});
  EXPECT_EQ(At(out, "identifier"), R"([{"value":"1"},{"value":"2"}])");
}

TEST(FhirPathPatchTest, AddToNestedElement) {
  json::Value out = Patched(kPatient, {Op("add", "Patient.name.where(use = 'usual')",
                                          R"({"name":"name","valueString":"family"},
                               {"name":"value","valueString":"Chalmers"})")});
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[1]),
            R"({"use":"usual","given":["Jim"],"family":"Chalmers"})");
}

TEST(FhirPathPatchTest, InsertGivenNameAtIndexZero) {
  json::Value out = Patched(kPatient, {Op("insert", "Patient.name[0].given",
                                          R"({"name":"value","valueString":"Pete"},
                                             {"name":"index","valueInteger":0})")});
  EXPECT_EQ(At(out.Find("name")->as_array()[0], "given"), R"(["Pete","Peter","James"])");
}

TEST(FhirPathPatchTest, InsertIdentifier) {
  json::Value out = Patched(kPatient, {Op("insert", "Patient.identifier",
                                          R"({"name":"value","valueIdentifier":{"value":"new"}},
                                             {"name":"index","valueInteger":1})")});
  const json::Array& ids = out.Find("identifier")->as_array();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0].GetString("value"), "12345");
  EXPECT_EQ(ids[1].GetString("value"), "new");
  EXPECT_EQ(ids[2].GetString("value"), "A-1");
}

TEST(FhirPathPatchTest, InsertAtEndAndIntoAbsentList) {
  json::Value out = Patched(kPatient, {Op("insert", "Patient.identifier",
                                          R"({"name":"value","valueIdentifier":{"value":"end"}},
                                             {"name":"index","valueInteger":2})"),
                                       Op("insert", "Patient.name[1].prefix",
                                          R"({"name":"value","valueString":"Mr"},
                                             {"name":"index","valueInteger":0})")});
  EXPECT_EQ(out.Find("identifier")->as_array()[2].GetString("value"), "end");
  EXPECT_EQ(At(out.Find("name")->as_array()[1], "prefix"), R"(["Mr"])");
}

TEST(FhirPathPatchTest, InsertBeyondEndFails) {
  Error e = Failed(kPatient, {Op("insert", "Patient.identifier",
                                 R"({"name":"value","valueIdentifier":{"value":"x"}},
                                    {"name":"index","valueInteger":3})")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, InsertIntoSingleElementFails) {
  Error e = Failed(kPatient, {Op("insert", "Patient.gender", R"({"name":"value","valueCode":"x"},
                                    {"name":"index","valueInteger":0})")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
  EXPECT_NE(e.message().find("not a list"), std::string::npos) << e.message();
}

TEST(FhirPathPatchTest, DeleteIdentifierByWhere) {
  json::Value out = Patched(
      kPatient, {Op("delete", "Patient.identifier.where(system = 'http://example.org/mrn')")});
  EXPECT_EQ(At(out, "identifier"),
            R"([{"use":"usual","system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345"}])");
}

TEST(FhirPathPatchTest, DeleteSingleElementAndItsExtensions) {
  json::Value out = Patched(kPatient, {Op("delete", "Patient.birthDate")});
  EXPECT_EQ(out.Find("birthDate"), nullptr);
  EXPECT_EQ(out.Find("_birthDate"), nullptr);
}

TEST(FhirPathPatchTest, DeleteNoMatchIsNoOp) {
  json::Value out = Patched(kPatient, {Op("delete", "Patient.deceased")});
  EXPECT_EQ(out, Parse(kPatient));
}

TEST(FhirPathPatchTest, DeleteSeveralMatchesFails) {
  Error e = Failed(kPatient, {Op("delete", "Patient.identifier")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, DeleteLastItemRemovesListAndEmptyParents) {
  json::Value out = Patched(
      kPatient, {Op("delete", "Patient.name[1].given"), Op("delete", "Patient.name[1].use")});
  EXPECT_EQ(out.Find("name")->as_array().size(), 1u);
  out = Patched(R"({"resourceType":"Patient","id":"p","name":[{"given":["A"]}]})",
                {Op("delete", "Patient.name.given")});
  EXPECT_EQ(out, Parse(R"({"resourceType":"Patient","id":"p"})"));
}

TEST(FhirPathPatchTest, DeletePrimitiveExtensionOnly) {
  json::Value out = Patched(kPatient, {Op("delete", "Patient.birthDate.extension")});
  EXPECT_EQ(At(out, "birthDate"), R"("1974-12-25")");
  EXPECT_EQ(out.Find("_birthDate"), nullptr);
}

TEST(FhirPathPatchTest, ReplaceBirthDate) {
  json::Value out =
      Patched(kPatient,
              {Op("replace", "Patient.birthDate", R"({"name":"value","valueDate":"1930-01-01"})")});
  EXPECT_EQ(At(out, "birthDate"), R"("1930-01-01")");
  // The element is replaced whole: its old extensions go with it.
  EXPECT_EQ(out.Find("_birthDate"), nullptr);
}

TEST(FhirPathPatchTest, ReplaceKeepsJsonTypes) {
  json::Value out =
      Patched(kPatient,
              {Op("replace", "Patient.active", R"({"name":"value","valueBoolean":false})"),
               Op("replace", "Patient.telecom[0].rank", R"({"name":"value","valuePositiveInt":3})"),
               Op("add", "Patient", R"({"name":"name","valueString":"multipleBirth"},
                                         {"name":"value","valueInteger":2})")});
  EXPECT_EQ(At(out, "active"), "false");
  EXPECT_EQ(At(out.Find("telecom")->as_array()[0], "rank"), "3");
  EXPECT_EQ(At(out, "multipleBirthInteger"), "2");
}

TEST(FhirPathPatchTest, ReplaceListItemAndComplexElement) {
  json::Value out = Patched(kPatient, {Op("replace", "Patient.name[0].given[1]",
                                          R"({"name":"value","valueString":"Jimmy"})"),
                                       Op("replace", "Patient.name.where(use = 'usual')",
                                          R"({"name":"value","valueHumanName":{"text":"J"}})")});
  EXPECT_EQ(At(out.Find("name")->as_array()[0], "given"), R"(["Peter","Jimmy"])");
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[1]), R"({"text":"J"})");
}

TEST(FhirPathPatchTest, ReplaceSeveralMatchesFails) {
  Error e = Failed(kPatient,
                   {Op("replace", "Patient.name.given", R"({"name":"value","valueString":"X"})")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
  EXPECT_NE(e.message().find("matches 3 elements"), std::string::npos) << e.message();
  EXPECT_EQ(e.issues().front().expression, "Parameters.parameter[0]");
}

TEST(FhirPathPatchTest, ReplaceNoMatchFails) {
  Error e = Failed(kPatient,
                   {Op("replace", "Patient.deceased", R"({"name":"value","valueBoolean":true})")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, ReplaceWithWrongTypeFails) {
  EXPECT_EQ(Failed(kPatient, {Op("replace", "Patient.birthDate",
                                 R"({"name":"value","valueString":"yesterday"})")})
                .code(),
            ErrorCode::kUnprocessable);
  EXPECT_EQ(Failed(kPatient,
                   {Op("replace", "Patient.active", R"({"name":"value","valueString":"true"})")})
                .code(),
            ErrorCode::kUnprocessable);
  EXPECT_EQ(Failed(kPatient, {Op("replace", "Patient.name[0]",
                                 R"({"name":"value","valueQuantity":{"value":1}})")})
                .code(),
            ErrorCode::kUnprocessable);
  EXPECT_EQ(Failed(kPatient, {Op("add", "Patient", R"({"name":"name","valueString":"name"},
                                 {"name":"value","valueString":"Peter"})")})
                .code(),
            ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, MoveTelecomItems) {
  json::Value out = Patched(kPatient, {Op("move", "Patient.telecom",
                                          R"({"name":"source","valueInteger":0},
                                             {"name":"destination","valueInteger":2})")});
  const json::Array& telecom = out.Find("telecom")->as_array();
  ASSERT_EQ(telecom.size(), 3u);
  EXPECT_EQ(telecom[0].GetString("use"), "mobile");
  EXPECT_EQ(telecom[1].GetString("use"), "home");
  EXPECT_EQ(telecom[2].GetString("use"), "work");
  out = Patched(kPatient, {Op("move", "Patient.telecom",
                              R"({"name":"source","valueInteger":2},
                                 {"name":"destination","valueInteger":0})")});
  EXPECT_EQ(out.Find("telecom")->as_array()[0].GetString("use"), "home");
  EXPECT_EQ(out.Find("telecom")->as_array()[1].GetString("use"), "work");
}

TEST(FhirPathPatchTest, MoveOutOfRangeFails) {
  Error e = Failed(kPatient, {Op("move", "Patient.telecom",
                                 R"({"name":"source","valueInteger":3},
                                    {"name":"destination","valueInteger":0})")});
  EXPECT_EQ(e.code(), ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, ListEditsKeepPrimitiveExtensionsAligned) {
  constexpr std::string_view kNamed = R"({"resourceType":"Patient","id":"p",
    "name":[{"given":["A","B","C"],"_given":[null,{"id":"b"},null]}]})";
  json::Value out = Patched(kNamed, {Op("insert", "Patient.name.given",
                                        R"({"name":"value","valueString":"Z"},
                                           {"name":"index","valueInteger":0})")});
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[0]),
            R"({"given":["Z","A","B","C"],"_given":[null,null,{"id":"b"},null]})");
  out = Patched(kNamed, {Op("move", "Patient.name.given", R"({"name":"source","valueInteger":1},
                                                           {"name":"destination","valueInteger":2})")});
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[0]),
            R"({"given":["A","C","B"],"_given":[null,null,{"id":"b"}]})");
  out = Patched(kNamed, {Op("delete", "Patient.name.given[1]")});
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[0]), R"({"given":["A","C"]})");
  out = Patched(kNamed, {Op("insert", "Patient.name.given",
                            R"({"name":"value","valueString":"Y","_valueString":{"id":"y"}},
                               {"name":"index","valueInteger":3})")});
  EXPECT_EQ(json::Write(out.Find("name")->as_array()[0]),
            R"({"given":["A","B","C","Y"],"_given":[null,{"id":"b"},null,{"id":"y"}]})");
}

TEST(FhirPathPatchTest, AddExtensionToPrimitive) {
  json::Value out = Patched(kPatient, {Op("add", "Patient.gender",
                                          R"({"name":"name","valueString":"extension"},
                                             {"name":"value","part":[
                                               {"name":"url","valueUri":"http://e.org/x"},
                                               {"name":"value","valueString":"x"}]})")});
  EXPECT_EQ(At(out, "gender"), R"("male")");
  EXPECT_EQ(At(out, "_gender"), R"({"extension":[{"url":"http://e.org/x","valueString":"x"}]})");
}

constexpr std::string_view kObservation = R"({"resourceType":"Observation","id":"o",
  "status":"final","code":{"text":"weight"}})";

TEST(FhirPathPatchTest, ChoiceElementTakesTheValueType) {
  json::Value out = Patched(kObservation, {Op("add", "Observation",
                                              R"({"name":"name","valueString":"value"},
                                                 {"name":"value","valueQuantity":
                                                   {"value":70.50,"unit":"kg"}})")});
  EXPECT_EQ(At(out, "valueQuantity"), R"({"value":70.50,"unit":"kg"})");
  EXPECT_EQ(Failed(json::Write(out), {Op("add", "Observation",
                                         R"({"name":"name","valueString":"value"},
                                            {"name":"value","valueString":"heavy"})")})
                .code(),
            ErrorCode::kUnprocessable);
  // Replacing with another type renames the member in place.
  json::Value replaced =
      Patched(json::Write(out),
              {Op("replace", "Observation.value", R"({"name":"value","valueString":"heavy"})")});
  EXPECT_EQ(json::Write(replaced),
            R"({"resourceType":"Observation","id":"o","status":"final","code":{"text":"weight"},)"
            R"("valueString":"heavy"})");
  // Observation.value[x] takes no HumanName.
  EXPECT_EQ(Failed(kObservation, {Op("add", "Observation", R"({"name":"name","valueString":"value"},
                                     {"name":"value","valueHumanName":{"text":"x"}})")})
                .code(),
            ErrorCode::kUnprocessable);
  // A choice needs a typed value: parts do not say which type.
  EXPECT_EQ(Failed(kObservation, {Op("add", "Observation", R"({"name":"name","valueString":"value"},
                                     {"name":"value","part":[{"name":"value","valueDecimal":1}]})")})
                .code(),
            ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, ChoiceInsideParts) {
  json::Value out = Patched(kObservation, {Op("add", "Observation",
                                              R"({"name":"name","valueString":"component"},
                                                 {"name":"value","part":[
                                                   {"name":"code","valueCodeableConcept":{"text":"s"}},
                                                   {"name":"value","valueInteger":1}]})")});
  EXPECT_EQ(At(out, "component"), R"([{"code":{"text":"s"},"valueInteger":1}])");
}

TEST(FhirPathPatchTest, AddContainedResource) {
  json::Value out =
      Patched(kObservation,
              {Op("add", "Observation",
                  R"({"name":"name","valueString":"contained"},
                                                 {"name":"value","resource":
                                                   {"resourceType":"Patient","id":"p1"}})"),
               Op("replace", "Observation.contained[0].id", R"({"name":"value","valueId":"p2"})")});
  EXPECT_EQ(At(out, "contained"), R"([{"resourceType":"Patient","id":"p2"}])");
}

TEST(FhirPathPatchTest, SeveralOperationsApplyInOrder) {
  json::Value out = Patched(kPatient, {Op("delete", "Patient.identifier[0]"),
                                       Op("replace", "Patient.identifier[0].value",
                                          R"({"name":"value","valueString":"B-2"})")});
  EXPECT_EQ(At(out, "identifier"),
            R"([{"use":"secondary","system":"http://example.org/mrn","value":"B-2"}])");
}

TEST(FhirPathPatchTest, FailingOperationLeavesInputUnchanged) {
  json::Value resource = Parse(kPatient);
  json::Value before = resource;
  Result<json::Value> out = ApplyFhirPathPatch(
      resource,
      Parse(
          Params({Op("replace", "Patient.active", R"({"name":"value","valueBoolean":false})"),
                  Op("replace", "Patient.name.given", R"({"name":"value","valueString":"X"})")})));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::kUnprocessable);
  EXPECT_NE(out.error().message().find("operation 1 (replace)"), std::string::npos)
      << out.error().message();
  EXPECT_EQ(out.error().issues().front().expression, "Parameters.parameter[1]");
  EXPECT_EQ(resource, before);
}

TEST(FhirPathPatchTest, SelectingAComputedValueFails) {
  EXPECT_EQ(Failed(kPatient,
                   {Op("replace", "Patient.name.count()", R"({"name":"value","valueInteger":1})")})
                .code(),
            ErrorCode::kUnprocessable);
  EXPECT_EQ(Failed(kPatient, {Op("delete", "Patient")}).code(), ErrorCode::kUnprocessable);
}

TEST(FhirPathPatchTest, MalformedParametersAreInvalid) {
  std::vector<std::string> bad = {
      Op("frobnicate", "Patient"),
      Op("replace", "Patient.birthDate"),                                              // no value
      Op("add", "Patient", R"({"name":"value","valueDate":"1930-01-01"})"),            // no name
      Op("insert", "Patient.identifier", R"({"name":"value","valueIdentifier":{}})"),  // no index
      Op("move", "Patient.telecom", R"({"name":"source","valueInteger":0})"),  // no destination
      Op("replace", "Patient.(", R"({"name":"value","valueString":"x"})"),     // bad FHIRPath
      Op("insert", "Patient.name.first()", R"({"name":"value","valueString":"x"},
                                              {"name":"index","valueInteger":0})"),  // no list name
      Op("move", "Patient.telecom", R"({"name":"source","valueInteger":-1},
                                       {"name":"destination","valueInteger":0})"),
      Op("replace", "Patient.birthDate", R"({"name":"value"})"),  // value without content
      Op("replace", "Patient.birthDate", R"({"name":"value","valueFoo":"x"})"),
      Op("delete", "Patient.birthDate", R"({"name":"colour","valueString":"x"})"),
      Op("delete", "Patient.birthDate", R"({"name":"path","valueString":"Patient.id"})"),
      R"({"name":"operation","part":[{"name":"path","valueString":"Patient"}]})",  // no type
      R"({"name":"operation","part":[{"name":"type","valueCode":"delete"}]})",     // no path
      R"({"name":"op","part":[]})",
  };
  for (const std::string& op : bad) {
    Result<json::Value> out = Apply(kPatient, {op});
    ASSERT_FALSE(out) << op;
    EXPECT_EQ(out.error().code(), ErrorCode::kInvalid) << op << ": " << out.error().message();
    EXPECT_NE(out.error().message().find("operation 0"), std::string::npos)
        << out.error().message();
  }
  EXPECT_EQ(
      ApplyFhirPathPatch(Parse(kPatient), Parse(R"({"resourceType":"Patient"})")).error().code(),
      ErrorCode::kInvalid);
  EXPECT_EQ(ApplyFhirPathPatch(Parse(kPatient), Parse("[]")).error().code(), ErrorCode::kInvalid);
}

TEST(FhirPathPatchTest, EmptyParametersIsIdentity) {
  Result<json::Value> out =
      ApplyFhirPathPatch(Parse(kPatient), Parse(R"({"resourceType":"Parameters"})"));
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, Parse(kPatient));
}

}  // namespace
}  // namespace fhirstone::patch
