#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "common/json.h"
#include "search/extract.h"
#include "search/fulltext.h"
#include "search/normalize.h"
#include "search/query.h"
#include "search/registry.h"
#include "search/valueset.h"

namespace fhirstone::search {
namespace {

const Registry& TheRegistry() {
  static const Registry* registry = [] {
    auto r = Registry::Builtin();
    EXPECT_TRUE(r) << r.error().message();
    return r.value().release();
  }();
  return *registry;
}

json::Value Example(const std::string& name) {
  std::ifstream in(std::string(FHIR_EXAMPLES_DIR) + "/" + name);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return json::Parse(buffer.str()).value();
}

TEST(RegistryTest, HasEveryR4Parameter) {
  const Registry& r = TheRegistry();
  EXPECT_GT(r.size(), 1500u);
  ASSERT_NE(r.Find("Patient", "name"), nullptr);
  EXPECT_EQ(r.Find("Patient", "name")->type, ParamType::kString);
  ASSERT_NE(r.Find("Observation", "_lastUpdated"), nullptr);
  EXPECT_EQ(r.Find("Observation", "patient")->expression,
            "Observation.subject.where(resolve() is Patient)");
  EXPECT_EQ(r.Find("Patient", "nonsense"), nullptr);
  auto& compartment = r.CompartmentParams("Patient", "Observation");
  EXPECT_FALSE(compartment.empty());
}

std::vector<std::string> Codes(const std::vector<const SearchParam*>& params) {
  std::vector<std::string> out;
  for (const SearchParam* p : params) out.push_back(p->code);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RegistryTest, UnionParametersAreStoredAsTheirOperands) {
  const Registry& r = TheRegistry();
  using Codes_ = std::vector<std::string>;
  EXPECT_EQ(Codes(r.Find("Observation", "combo-code")->stored_as),
            (Codes_{"code", "component-code"}));
  EXPECT_EQ(Codes(r.Find("Observation", "combo-value-quantity")->stored_as),
            (Codes_{"component-value-quantity", "value-quantity"}));
  EXPECT_EQ(Codes(r.Find("Observation", "combo-code-value-quantity")->stored_as),
            (Codes_{"code-value-quantity", "component-code-value-quantity"}));
  EXPECT_EQ(Codes(r.Find("Observation", "combo-value-concept")->stored_as),
            (Codes_{"component-value-concept", "value-concept"}));
  // The same expression: the smaller code is stored.
  EXPECT_EQ(Codes(r.Find("Patient", "phonetic")->stored_as), (Codes_{"name"}));
  EXPECT_EQ(Codes(r.Find("CapabilityStatement", "version")->stored_as), (Codes_{"fhirversion"}));
  // Kept: canonical resources are found by their url rows.
  EXPECT_TRUE(r.Find("CodeSystem", "url")->stored_as.empty());
  EXPECT_TRUE(r.Find("CodeSystem", "system")->stored_as.empty());
  // Stored: single operands, restrictions (patient = subject.where(resolve() is Patient)),
  // references even when the same as another (Coverage patient = beneficiary) and unions with an
  // operand no other parameter has.
  for (auto [type, code] : {std::pair{"Observation", "code"},
                            {"Observation", "value-quantity"},
                            {"Observation", "patient"},
                            {"Patient", "name"},
                            {"Coverage", "patient"},
                            {"Coverage", "beneficiary"},
                            {"Observation", "_lastUpdated"}})
    EXPECT_TRUE(r.Find(type, code)->stored_as.empty()) << type << "." << code;
  const auto& stored = r.StoredForType("Observation");
  EXPECT_EQ(stored.size() + 6, r.ForType("Observation").size());
  EXPECT_EQ(std::find(stored.begin(), stored.end(), r.Find("Observation", "combo-code")),
            stored.end());
  // Every derivation in the registry: same base and type, never from a derived parameter.
  size_t derived = 0;
  for (std::string_view type : {"Observation", "Condition", "Patient", "Encounter", "Procedure",
                                "MedicationRequest", "DiagnosticReport", "Claim"}) {
    for (const SearchParam* p : r.ForType(type)) {
      if (p->stored_as.empty()) continue;
      ++derived;
      for (const SearchParam* q : p->stored_as) {
        EXPECT_EQ(q->base, p->base);
        EXPECT_EQ(q->type, p->type);
        EXPECT_TRUE(q->stored_as.empty());
      }
    }
  }
  EXPECT_EQ(derived, 7u);
}

// Custom parameters cannot redefine what a compartment is made of (patient-scoped access, the
// audit's patients and the shards rest on the Patient compartment) nor the parameters of every
// resource; of two with one base and code, the greatest id wins whatever the order they come in.
TEST(RegistryTest, CustomParametersKeepCompartmentsAndChooseOneOfTwinsById) {
  auto sp = [](const std::string& id, const std::string& code, const std::string& base,
               const std::string& expression) {
    return json::Parse(R"({"resourceType":"SearchParameter","id":")" + id + R"(","url":"urn:sp:)" +
                       id + R"(","code":")" + code + R"(","base":[")" + base +
                       R"("],"type":"token","expression":")" + expression + "\"}")
        .value();
  };
  for (bool reversed : {false, true}) {
    std::vector<json::Value> custom;
    custom.push_back(sp("z", "dup", "Observation", "Observation.status"));
    custom.push_back(sp("a", "dup", "Observation", "Observation.code"));
    custom.push_back(sp("p", "patient", "Observation", "Observation.performer"));
    custom.push_back(sp("t", "_tag", "Observation", "Observation.status"));
    custom.push_back(sp("k", "kind", "Observation", "Observation.category"));
    custom.push_back(sp("q", "performer", "Observation", "Observation.subject"));
    if (reversed) std::reverse(custom.begin(), custom.end());
    std::vector<std::string> skipped;
    auto r = Registry::WithCustom(custom, &skipped);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ((*r)->Find("Observation", "dup")->expression, "Observation.status");
    EXPECT_EQ((*r)->Find("Observation", "kind")->expression, "Observation.category");
    EXPECT_TRUE((*r)->Find("Observation", "patient")->builtin);
    EXPECT_TRUE((*r)->Find("Observation", "_tag")->builtin);
    const auto& compartment = (*r)->CompartmentParams("Patient", "Observation");
    EXPECT_TRUE(std::all_of(compartment.begin(), compartment.end(),
                            [](const SearchParam* p) { return p->builtin; }));
    std::sort(skipped.begin(), skipped.end());
    ASSERT_EQ(skipped.size(), 4u);
    EXPECT_TRUE(skipped[0].starts_with("urn:sp:a: for Observation.dup, SearchParameter/z"))
        << skipped[0];
    EXPECT_EQ(skipped[1],
              "urn:sp:p: it would replace Observation.patient, which decides the shard of a search "
              "by it");
    EXPECT_EQ(skipped[2],
              "urn:sp:q: it would replace Observation.performer, which a compartment is made of");
    EXPECT_TRUE(skipped[3].starts_with("urn:sp:t: the code _tag")) << skipped[3];
    EXPECT_TRUE((*r)->Find("Observation", "performer")->builtin);
  }
}

// A custom parameter that replaces an operand makes the union stored again (and says so); one
// with the same expression as a built-in never becomes the stored one, whatever its URL.
TEST(RegistryTest, CustomParametersAndUnions) {
  auto sp = [](const std::string& url, const std::string& code, const std::string& base,
               const std::string& type, const std::string& expression) {
    return json::Parse(R"({"resourceType":"SearchParameter","url":")" + url + R"(","code":")" +
                       code + R"(","base":[")" + base + R"("],"type":")" + type +
                       R"(","expression":")" + expression + "\"}")
        .value();
  };
  std::vector<std::string> skipped, now_stored;
  auto r = Registry::WithCustom(
      {sp("http://example.org/sp/code", "code", "Observation", "token", "Observation.code.coding"),
       sp("http://hl7.org/fhir/SearchParameter/aaa", "aaa", "Patient", "string", "Patient.name"),
       sp("http://hl7.org/fhir/SearchParameter/grp", "grp", "Observation", "reference",
          "Observation.subject.where(resolve() is Group)")},
      &skipped, &now_stored);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(skipped.empty());
  EXPECT_TRUE((*r)->HasCustom());
  EXPECT_FALSE(TheRegistry().HasCustom());
  EXPECT_EQ(now_stored, (std::vector<std::string>{"Observation.combo-code"}));
  EXPECT_TRUE((*r)->Find("Observation", "combo-code")->stored_as.empty());
  EXPECT_EQ(Codes((*r)->Find("Observation", "combo-value-quantity")->stored_as),
            (std::vector<std::string>{"component-value-quantity", "value-quantity"}));
  EXPECT_EQ(Codes((*r)->Find("Patient", "phonetic")->stored_as),
            (std::vector<std::string>{"name"}));
  EXPECT_TRUE((*r)->Find("Patient", "name")->stored_as.empty());
  EXPECT_TRUE((*r)->Find("Patient", "aaa")->stored_as.empty());
  const auto& stored = (*r)->StoredForType("Observation");
  EXPECT_NE(std::find(stored.begin(), stored.end(), (*r)->Find("Observation", "combo-code")),
            stored.end());
  // Only built-in parameters decide shards, whatever a custom one's URL: a search by `grp` never
  // takes the patient's shard for its matches.
  EXPECT_TRUE((*r)->IsShardParam("Observation", (*r)->Find("Observation", "subject")));
  EXPECT_FALSE((*r)->IsShardParam("Observation", (*r)->Find("Observation", "grp")));
}

TEST(NormalizeTest, FoldsCaseAndAccents) {
  EXPECT_EQ(NormalizeString("  Ærøskøbing  Éric "), "aeroskobing eric");
  EXPECT_EQ(NormalizeString("日本"), "日本");
  EXPECT_EQ(NormalizeString("MÜLLER"), "muller");
  EXPECT_EQ(NormalizeString("Straße"), "strasse");
  EXPECT_EQ(NormalizeString("Sa\xcc\x81nchez"), "sanchez");  // a + combining acute accent
}

TEST(ExtractTest, PatientExample) {
  IndexEntries e = ExtractIndex(TheRegistry(), Example("Patient-example.json"), "");
  auto has_string = [&](std::string_view code, std::string_view value) {
    for (const auto& s : e.strings)
      if (s.param->code == code && s.normalized == value) return true;
    return false;
  };
  EXPECT_TRUE(has_string("family", "chalmers"));
  EXPECT_TRUE(has_string("given", "peter"));
  EXPECT_TRUE(has_string("name", "jim"));
  EXPECT_TRUE(has_string("address-city", "pleasantville"));
  bool gender = false, identifier = false;
  for (const auto& t : e.tokens) {
    if (t.param->code == "gender" && t.code == "male") gender = true;
    if (t.param->code == "identifier" && t.system == "urn:oid:1.2.36.146.595.217.0.1" &&
        t.code == "12345")
      identifier = true;
  }
  EXPECT_TRUE(gender);
  EXPECT_TRUE(identifier);
  bool birthdate = false;
  for (const auto& d : e.dates)
    if (d.param->code == "birthdate" && d.high - d.low == 86400LL * 1000000) birthdate = true;
  EXPECT_TRUE(birthdate);
  bool organization = false;
  for (const auto& r : e.references)
    if (r.param->code == "organization" && r.target_type == "Organization" && r.target_id == "1")
      organization = true;
  EXPECT_TRUE(organization);
}

TEST(ExtractTest, ObservationQuantityAndPatientReference) {
  json::Value obs = json::Parse(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body Weight"}]},
    "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2016-03-28",
    "valueQuantity":{"value":67.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}})")
                        .value();
  IndexEntries e = ExtractIndex(TheRegistry(), obs, "http://localhost/fhir");
  bool patient = false, subject = false;
  for (const auto& r : e.references) {
    if (r.param->code == "patient" && r.target_id == "p1") patient = true;
    if (r.param->code == "subject" && r.target_type == "Patient") subject = true;
  }
  EXPECT_TRUE(patient);
  EXPECT_TRUE(subject);
  bool quantity = false;
  bool canonical = false;  // also in grams, the UCUM base unit of mass
  for (const auto& q : e.quantities) {
    if (q.param->code == "value-quantity" && q.low == 67.5 && q.code == "kg" && !q.canonical)
      quantity = true;
    if (q.param->code == "value-quantity" && q.low == 67500 && q.high == 67500 && q.code == "g" &&
        q.canonical)
      canonical = true;
  }
  EXPECT_TRUE(quantity);
  EXPECT_TRUE(canonical);
  bool code = false;
  for (const auto& t : e.tokens)
    if (t.param->code == "code" && t.code == "29463-7" && t.text == "body weight") code = true;
  EXPECT_TRUE(code);
}

TEST(ExtractTest, OnlyTheLocalBaseIsLocal) {
  std::string type, id, version;
  EXPECT_TRUE(ParseReference("Patient/1", "http://a/fhir", &type, &id, &version));
  EXPECT_TRUE(
      ParseReference("http://a/fhir/Patient/1/_history/2", "http://a/fhir", &type, &id, &version));
  EXPECT_EQ(version, "2");
  EXPECT_FALSE(ParseReference("http://b/fhir/Patient/1", "http://a/fhir", &type, &id, &version));
  EXPECT_FALSE(ParseReference("http://a/fhirx/Patient/1", "http://a/fhir", &type, &id, &version));
  EXPECT_TRUE(ParseReference("http://b/fhir/Patient/1", std::nullopt, &type, &id, &version));
  EXPECT_FALSE(ParseReference("x/Patient/1", std::nullopt, &type, &id, &version));
  EXPECT_FALSE(ParseReference("Patient?identifier=1", std::nullopt, &type, &id, &version));
  EXPECT_FALSE(ParseReference("#contained", std::nullopt, &type, &id, &version));
}

TEST(QueryTest, ParsesCriteriaModifiersChainsAndResultParameters) {
  QueryParams params{{"name:exact", "Peter"},
                     {"birthdate", "ge1970,lt1980"},
                     {"general-practitioner:Practitioner.name", "smith"},
                     {"_has:Observation:patient:code", "1234"},
                     {"_sort", "-birthdate,name"},
                     {"_count", "5"},
                     {"_include", "Patient:organization"},
                     {"unknown", "x"}};
  auto q = ParseQuery(TheRegistry(), {"Patient"}, params, {});
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->criteria.size(), 4u);
  EXPECT_EQ(q->criteria[0].modifier, "exact");
  EXPECT_EQ(q->criteria[1].values.size(), 2u);
  ASSERT_EQ(q->criteria[2].chain.size(), 1u);
  EXPECT_EQ(q->criteria[2].chain[0].target_type, "Practitioner");
  EXPECT_EQ(q->criteria[2].type, "Practitioner");
  ASSERT_EQ(q->criteria[3].has.size(), 1u);
  EXPECT_EQ(q->criteria[3].type, "Observation");
  EXPECT_EQ(q->sort.size(), 2u);
  EXPECT_TRUE(q->sort[0].descending);
  EXPECT_EQ(q->count, 5);
  EXPECT_EQ(q->includes.size(), 1u);
  EXPECT_EQ(q->understood.size(), 7u);  // "unknown" left out
}

TEST(QueryTest, RefusesMalformedParameters) {
  auto refuse = [](QueryParams params, bool strict = false) {
    ParseOptions options;
    options.strict = strict;
    auto q = ParseQuery(TheRegistry(), {"Patient"}, params, options);
    EXPECT_FALSE(q) << params[0].first << "=" << params[0].second;
  };
  refuse({{"unknown", "x"}}, true);
  refuse({{"gender:exact", "male"}});
  refuse({{"name.family", "x"}});  // chain on a string parameter
  refuse({{"_count", "-1"}});
  refuse({{"_sort", "nonsense"}});
  refuse({{"_include", "Patient:name"}});
  refuse({{"name:missing", "maybe"}});
  refuse({{"name", ","}});
  refuse({{"_total", "some"}});
  refuse({{"general-practitioner.birthdate", "x"}});  // a parameter of none of its targets
}

// A chain through a reference to several types with the next parameter reads all of them
// (search.html#chaining): one typed path each (Criterion::any_of), the types that have the
// parameter only; a type modifier keeps one.
TEST(QueryTest, ChainsThroughSeveralTypesReadEachOfThem) {
  auto q = ParseQuery(TheRegistry(), {"Patient"}, {{"general-practitioner.name", "x"}}, {});
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->criteria.size(), 1u);
  const Criterion& c = q->criteria[0];
  std::vector<std::string> types;
  for (const Criterion& path : c.any_of) {
    ASSERT_EQ(path.chain.size(), 1u);
    EXPECT_EQ(path.chain[0].target_type, path.type);
    EXPECT_EQ(path.param->code, "name");
    EXPECT_EQ(path.param->base, path.type);
    EXPECT_EQ(path.values, std::vector<std::string>{"x"});
    types.push_back(path.type);
  }
  // Patient.generalPractitioner: Organization, Practitioner, PractitionerRole; the last has no
  // `name`.
  std::sort(types.begin(), types.end());
  EXPECT_EQ(types, (std::vector<std::string>{"Organization", "Practitioner"}));
  EXPECT_EQ(c.chain[0].target_type, c.any_of[0].type);  // the first path's fields

  auto typed =
      ParseQuery(TheRegistry(), {"Patient"}, {{"general-practitioner:Practitioner.name", "x"}}, {});
  ASSERT_TRUE(typed) << typed.error().message();
  EXPECT_TRUE(typed->criteria[0].any_of.empty());

  // Two ambiguous links: every combination that reaches a type with the last parameter.
  auto deep = ParseQuery(TheRegistry(), {"Observation"}, {{"subject.organization.name", "x"}}, {});
  ASSERT_TRUE(deep) << deep.error().message();
  for (const Criterion& path : deep->criteria[0].any_of) {
    ASSERT_EQ(path.chain.size(), 2u);
    EXPECT_EQ(path.type, "Organization");
  }
  // A path that cannot take the rest is dropped, the others kept: Group.member reaches Device
  // and Medication; Device's `manufacturer` is a string, Medication's a reference.
  auto member = ParseQuery(TheRegistry(), {"Group"}, {{"member.manufacturer.name", "Acme"}}, {});
  ASSERT_TRUE(member) << member.error().message();
  EXPECT_TRUE(member->criteria[0].any_of.empty());
  ASSERT_EQ(member->criteria[0].chain.size(), 2u);
  EXPECT_EQ(member->criteria[0].chain[0].target_type, "Medication");
  auto exact = ParseQuery(TheRegistry(), {"Group"}, {{"member.manufacturer:exact", "Acme"}}, {});
  ASSERT_TRUE(exact) << exact.error().message();
  EXPECT_EQ(exact->criteria[0].type, "Device");
  // A later link's type modifier: the paths whose reference may be to that type.
  auto based =
      ParseQuery(TheRegistry(), {"Observation"}, {{"based-on.subject:Location.name", "x"}}, {});
  ASSERT_TRUE(based) << based.error().message();
  std::vector<std::string> via;
  for (const Criterion& path : based->criteria[0].any_of) {
    EXPECT_EQ(path.type, "Location");
    via.push_back(path.chain[0].target_type);
  }
  std::sort(via.begin(), via.end());
  EXPECT_EQ(via, (std::vector<std::string>{"DeviceRequest", "ServiceRequest"}));
  // A parameter none of the targets has: refused; so are more paths than the bound.
  EXPECT_FALSE(ParseQuery(TheRegistry(), {"Patient"}, {{"general-practitioner.nonsense", "x"}},
                          {.strict = true}));
  ParseOptions narrow;
  narrow.max_chain_paths = 1;
  EXPECT_FALSE(
      ParseQuery(TheRegistry(), {"Patient"}, {{"general-practitioner.name", "x"}}, narrow));
}

TEST(QueryTest, QueryPatientIsTheOnePatientAQueryNamesAlone) {
  auto about = [](std::vector<std::string> types, QueryParams params,
                  std::optional<Compartment> compartment = std::nullopt) {
    auto q = ParseQuery(TheRegistry(), std::move(types), params, {});
    EXPECT_TRUE(q) << q.error().message();
    if (!q) return std::optional<std::string>("(refused)");
    q->compartment = std::move(compartment);
    return QueryPatient(TheRegistry(), *q);
  };
  using P = std::optional<std::string>;
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}}), P("a"));
  EXPECT_EQ(about({"Observation"}, {{"subject", "Patient/a"}, {"code", "8867-4"}}), P("a"));
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"},
                                    {"category", "vital-signs"},
                                    {"date", "ge2015"},
                                    {"value-quantity", "gt5"},
                                    {"status:not", "final"},
                                    {"_sort", "-date"},
                                    {"_count", "50"}}),
            P("a"));
  EXPECT_EQ(about({"Encounter"}, {{"patient", "a"}, {"_revinclude", "Observation:encounter"}}),
            P("a"));
  EXPECT_EQ(about({"Patient"}, {{"_id", "a"}}), P("a"));
  EXPECT_EQ(about({"Patient"}, {{"_id", "a"}, {"_id", "a"}}), P("a"));  // as an access repeats it
  Compartment c{"Patient", "a", {}};
  EXPECT_EQ(about({"Observation"}, {{"code", "8867-4"}}, c), P("a"));
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}, {"_security", "R"}}, c), P("a"));
  // Another patient, or a value that could name someone: no patient of the query's own.
  EXPECT_EQ(about({"Observation"}, {{"patient", "a,b"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"code", "8867-4"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}, {"performer", "Patient/b"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}, {"subject:Patient.name", "Smith"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}, {"identifier", "123-45-6789"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}, {"code:text", "Jones"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"patient", "a"}, {"_has:Provenance:target:agent", "x"}}), P());
  EXPECT_EQ(about({"Patient"}, {{"_id", "a"}, {"name", "Jones"}}), P());
  EXPECT_EQ(about({"Patient"}, {{"_id", "a"}, {"_id:not", "b"}}), P());
  EXPECT_EQ(about({"Patient"}, {{"_id", "a,b"}}), P());
  EXPECT_EQ(about({"Patient"}, {{"_id", "a"}, {"email", "b@example.org"}}), P());
  EXPECT_EQ(about({"Patient"}, {{"_id", "a"}, {"gender", "female"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"patient", "b"}}, c), P());  // another patient besides
  EXPECT_EQ(about({"ServiceRequest"}, {{"patient", "a"}, {"requisition", "b-1"}}), P());
  EXPECT_EQ(about({"Observation"}, {{"code", "8867-4"}}, Compartment{"Encounter", "e", {}}), P());
}

TEST(QueryTest, SplitsValuesWithEscapes) {
  EXPECT_EQ(SplitValues("a,b\\,c"), (std::vector<std::string>{"a", "b,c"}));
  EXPECT_EQ(SplitValues("sys\\|x|code"), (std::vector<std::string>{"sys\\|x|code"}));
}

}  // namespace
}  // namespace fhirstone::search

namespace fhirstone::search {
namespace {

json::Value Json(std::string_view text) { return json::Parse(text).value(); }

TEST(ValueSetTest, ExpansionComposeImportsAndExcludes) {
  std::map<std::string, json::Value> stored = {
      {"urn:a", Json(R"({"resourceType":"ValueSet","compose":{"include":[{"system":"s",
        "concept":[{"code":"1"},{"code":"2"}]}]}})")},
      {"urn:loop", Json(R"({"resourceType":"ValueSet","compose":{"include":[{"valueSet":
        ["urn:loop"]}]}})")}};
  ValueSetResolver resolve = [&](std::string_view url) -> Result<json::Value> {
    auto it = stored.find(std::string(url));
    if (it == stored.end()) return Error::NotFound("no " + std::string(url));
    return it->second;
  };
  auto nested = ExpandValueSet(Json(R"({"expansion":{"contains":[{"system":"s","code":"1",
    "contains":[{"system":"s","code":"1a"}]},{"abstract":true,"display":"group"}]}})"),
                               resolve);
  ASSERT_TRUE(nested);
  EXPECT_EQ(*nested, (std::vector<ValueSetCode>{{"s", "1"}, {"s", "1a"}}));
  auto composed = ExpandValueSet(Json(R"({"compose":{"include":[{"valueSet":["urn:a"]},
    {"system":"t"}],"exclude":[{"system":"s","concept":[{"code":"2"}]}]}})"),
                                 resolve);
  ASSERT_TRUE(composed);
  EXPECT_EQ(*composed, (std::vector<ValueSetCode>{{"s", "1"}, {"t", ""}}));
  EXPECT_EQ(ExpandValueSet(stored["urn:loop"], resolve).error().code(), ErrorCode::kInvalid);
  EXPECT_EQ(ExpandValueSet(Json(R"({"compose":{"include":[{"valueSet":["urn:none"]}]}})"), resolve)
                .error()
                .code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(
      ExpandValueSet(Json(R"({"compose":{"include":[{"system":"s","filter":[{}]}]}})"), resolve)
          .error()
          .code(),
      ErrorCode::kNotSupported);
  EXPECT_EQ(ExpandValueSet(Json(R"({"compose":{"include":[{"system":"s"}],"exclude":[
    {"system":"s","concept":[{"code":"1"}]}]}})"),
                           resolve)
                .error()
                .code(),
            ErrorCode::kNotSupported);
  auto big = ExpandValueSet(stored["urn:a"], resolve, /*max_codes=*/1);
  EXPECT_EQ(big.error().code(), ErrorCode::kInvalid);
}

}  // namespace
}  // namespace fhirstone::search

namespace fhirstone::search {
namespace {

TEST(CodeSystemTest, SubsumptionFollowsNestingAndProperties) {
  json::Value cs = json::Parse(R"({"url":"urn:cs","concept":[{"code":"a","concept":[
    {"code":"b","concept":[{"code":"c"}]}]},{"code":"d","property":[{"code":"parent",
    "valueCode":"b"}]},{"code":"e","property":[{"code":"child","valueCode":"a"}]},
    {"code":"x","property":[{"code":"parent","valueCode":"y"}]},
    {"code":"y","property":[{"code":"parent","valueCode":"x"}]}]})")
                       .value();
  EXPECT_EQ(SubsumedCodes(cs, "b", true).value(), (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(SubsumedCodes(cs, "e", true).value(),
            (std::vector<std::string>{"e", "a", "b", "c", "d"}));
  EXPECT_EQ(SubsumedCodes(cs, "c", false).value(), (std::vector<std::string>{"c", "b", "a", "e"}));
  EXPECT_EQ(SubsumedCodes(cs, "x", true).value(), (std::vector<std::string>{"x", "y"}));  // cycle
  EXPECT_EQ(SubsumedCodes(cs, "zz", true).error().code(), ErrorCode::kInvalid);
  EXPECT_EQ(SubsumedCodes(cs, "e", true, /*max_codes=*/2).error().code(), ErrorCode::kInvalid);
}

}  // namespace
}  // namespace fhirstone::search

namespace fhirstone::search {
namespace {

TEST(ValueSetTest, AnIncludedValueSetsExcludesStayItsOwnAndRepeatsAreReadOnce) {
  int lookups = 0;
  std::map<std::string, json::Value> stored = {
      {"urn:b", json::Parse(R"({"compose":{"include":[{"system":"s","concept":[{"code":"2"}]}],
        "exclude":[{"system":"s","concept":[{"code":"1"}]}]}})")
                    .value()}};
  ValueSetResolver resolve = [&](std::string_view url) -> Result<json::Value> {
    ++lookups;
    auto it = stored.find(std::string(url));
    if (it == stored.end()) return Error::NotFound("no " + std::string(url));
    return it->second;
  };
  auto a = ExpandValueSet(json::Parse(R"({"compose":{"include":[{"system":"s","concept":[
    {"code":"1"}]},{"valueSet":["urn:b","urn:b"]},{"valueSet":["urn:b"]}]}})")
                              .value(),
                          resolve);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(*a, (std::vector<ValueSetCode>{{"s", "1"}, {"s", "2"}}));  // B's exclude is B's
  EXPECT_EQ(lookups, 1);
}

TEST(FullTextTest, ExtractsNarrativeAndContentWords) {
  auto r = json::Parse(R"({"resourceType":"Condition","id":"c1","meta":{"versionId":"7"},
    "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Bone&amp;Liver <b>métastases</b>&#233;t&#xE9; &lt;x&gt;</p></div>"},
    "code":{"coding":[{"system":"http://snomed.info/sct","code":"94381002","display":"Secondary malignant neoplasm of liver"}],"text":"Liver METS"},
    "subject":{"reference":"Patient/p1","display":"Ann Smith"},
    "note":[{"text":"Follow-up in 3 months"}],"onsetAge":{"value":54.5,"unit":"a"},
    "extension":[{"url":"http://example.org/x","valueString":"Zürich"}]})")
               .value();
  FullText t = ExtractFullText(r);
  EXPECT_EQ(t.narrative, "bone liver metastases ete x");
  // Every string and number but ids, meta, references, URLs and systems; the narrative too.
  EXPECT_EQ(t.content,
            "generated bone liver metastases ete x 94381002 secondary malignant neoplasm of liver "
            "liver mets ann smith follow up in 3 months 54 5 a zurich");
  // Binary data and oversized words are left out.
  auto b = json::Parse(R"({"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="})")
               .value();
  EXPECT_EQ(ExtractFullText(b).content, "text plain");
  EXPECT_EQ(Words(std::string(150, 'a') + " short"), "short");
  // Words are letters and digits of the common scripts; punctuation, symbols, emoji and
  // unusual spaces separate them.
  EXPECT_EQ(Words("a\u1680b c\u180Ed \U0001F600 e\U0001F600f مرحبا؟ 中文 Доктор—x ½"),
            "a b c d e f مرحبا 中文 Доктор x");
  // Narratives: a long run of '&' is read in linear time.
  auto big = json::Value::EmptyObject();
  auto text = json::Value::EmptyObject();
  text.Set("div", "<div>" + std::string(1 << 20, '&') + " x</div>");
  big.Set("text", std::move(text));
  EXPECT_EQ(ExtractFullText(big).narrative, "x");
}

TEST(FullTextTest, TranslatesQueriesForBothDatabases) {
  auto fts = [](std::string_view q) {
    auto r = TranslateTextQuery(q, TextSyntax::kFts5);
    return r ? *r : "error: " + r.error().message();
  };
  auto ts = [](std::string_view q) {
    auto r = TranslateTextQuery(q, TextSyntax::kTsQuery);
    return r ? *r : "error: " + r.error().message();
  };
  EXPECT_EQ(fts("Heart"), "\"heart\"");
  EXPECT_EQ(ts("Heart"), "('heart')");
  EXPECT_EQ(fts("heart failure"), "(\"heart\" AND \"failure\")");
  EXPECT_EQ(ts("heart and failure"), "(('heart') & ('failure'))");
  EXPECT_EQ(fts("\"Heart Failure\""), "\"heart failure\"");
  EXPECT_EQ(ts("\"heart failure\""), "('heart' <-> 'failure')");
  EXPECT_EQ(fts("diab*"), "\"diab\"*");
  EXPECT_EQ(ts("diab*"), "('diab':*)");
  EXPECT_EQ(ts("\"blood pres\"*"), "('blood' <-> 'pres':*)");
  EXPECT_EQ(fts("(bone OR liver) and metastases"), "((\"bone\" OR \"liver\") AND \"metastases\")");
  EXPECT_EQ(ts("(bone or liver) and metastases"), "((('bone') | ('liver')) & ('metastases'))");
  EXPECT_EQ(fts("cancer NOT lung"), "((\"cancer\") NOT \"lung\")");
  EXPECT_EQ(ts("cancer NOT lung"), "(('cancer') & !('lung'))");
  // Punctuation inside a word makes a phrase; accents and case fold; quoted operators are words.
  EXPECT_EQ(fts("8302-2"), "\"8302 2\"");
  EXPECT_EQ(fts("Zürich"), "\"zurich\"");
  EXPECT_EQ(fts("\"not\""), "\"not\"");
  EXPECT_EQ(fts("heart - attack"), "(\"heart\" AND \"attack\")");
  // What cannot be searched says why.
  for (std::string bad : std::vector<std::string>{
           "", "   ", "---", "NOT lung", "a OR NOT b", "(a", "a)", "()", "\"a", "\"--\"", "AND a",
           "a AND", "a OR", "OR a", "NOT NOT a", "((((((((((a))))))))))", "\U0001F600",
           "cancer " + std::string(101, 'x')})
    EXPECT_TRUE(fts(bad).starts_with("error: ")) << bad << " -> " << fts(bad);
  std::string many;
  for (int i = 0; i <= kMaxTextTerms; ++i) many += "w" + std::to_string(i) + " ";
  EXPECT_TRUE(fts(many).starts_with("error: At most"));
}

TEST(FullTextTest, QueriesParseAndRefuseModifiersAndSorting) {
  auto parse = [](QueryParams params) {
    return ParseQuery(TheRegistry(), {"Condition"}, params, {});
  };
  auto q = parse({{"_content", "liver,bone"}, {"_text", "metastases"}});
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->criteria.size(), 2u);
  EXPECT_TRUE(IsFullText(*q->criteria[0].param));
  EXPECT_EQ(q->criteria[0].values.size(), 2u);
  EXPECT_FALSE(parse({{"_content:exact", "liver"}}));
  EXPECT_FALSE(parse({{"_text:missing", "true"}}));
  EXPECT_FALSE(parse({{"_content", "(liver"}}));
  EXPECT_FALSE(parse({{"_sort", "_content"}}));
  EXPECT_FALSE(IsFullText(*TheRegistry().Find("Patient", "name")));
}

}  // namespace
}  // namespace fhirstone::search
