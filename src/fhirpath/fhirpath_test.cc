#include "fhirpath/fhirpath.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/json.h"

namespace fhirstone::fhirpath {
namespace {

constexpr std::string_view kPatient = R"({
  "resourceType": "Patient",
  "id": "p1",
  "active": true,
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://example.org/time",
                                "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "name": [
    {"use": "official", "family": "Chalmers", "given": ["Peter", "James"],
     "_given": [null, {"extension": [{"url": "http://example.org/x", "valueString": "j"}]}]},
    {"use": "usual", "given": ["Jim"]},
    {"use": "maiden", "family": "Windsor", "_family": {"id": "f1"}}
  ],
  "telecom": [
    {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
    {"system": "email", "value": "p@example.org"}
  ],
  "deceasedBoolean": false,
  "multipleBirthInteger": 2,
  "managingOrganization": {"reference": "Organization/1"},
  "generalPractitioner": [{"reference": "#pr1"}, {"reference": "Practitioner/x"}],
  "contained": [
    {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Careful"}]}
  ],
  "contact": [{"relationship": [{"coding": [{"code": "N"}]}], "name": {"family": "du Marché"}}],
  "extension": [
    {"url": "http://example.org/race",
     "extension": [{"url": "ombCategory", "valueCoding": {"code": "2106-3"}},
                   {"url": "text", "valueString": "White"}]}
  ]
})";

constexpr std::string_view kObservation = R"({
  "resourceType": "Observation",
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}], "text": "Weight"},
  "effectivePeriod": {"start": "2016-03-28T09:30:10+01:00", "end": "2016-03-28T10:00:00+01:00"},
  "valueQuantity": {"value": 67.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                    "code": "kg"},
  "component": [
    {"code": {"text": "a"}, "valueQuantity": {"value": 1.0, "code": "mm[Hg]",
                                               "system": "http://unitsofmeasure.org"}},
    {"code": {"text": "b"}, "valueString": "x"},
    {"code": {"text": "c"}, "valueInteger": 3}
  ]
})";

json::Value ParseJson(std::string_view text) {
  Result<json::Value> v = json::Parse(text);
  EXPECT_TRUE(v) << v.error().message();
  return v ? std::move(*v) : json::Value();
}

const json::Value& Patient() {
  static const json::Value* patient = new json::Value(ParseJson(kPatient));
  return *patient;
}

const json::Value& Observation() {
  static const json::Value* obs = new json::Value(ParseJson(kObservation));
  return *obs;
}

// Renders a collection compactly: primitives by their JSON text (strings unquoted), computed
// quantities as "5 'mg'", complex elements as <Type>.
std::string Render(const Collection& c) {
  std::string out = "[";
  for (size_t i = 0; i < c.size(); ++i) {
    if (i > 0) out += ", ";
    const Item& item = c[i];
    const json::Value* v = item.node != nullptr ? item.node : (item.value ? &*item.value : nullptr);
    if (v == nullptr || v->is_object() || v->is_array()) {
      out += "<" + item.type + ">";
    } else if (v->is_string()) {
      out += v->as_string();
    } else {
      out += json::Write(*v);
    }
    if (!item.unit.empty()) out += " '" + item.unit + "'";
  }
  return out + "]";
}

class FixedClock : public Clock {
 public:
  int64_t NowMicros() override { return 1700000000123456; }  // 2023-11-14T22:13:20.123Z
};

std::string Ev(std::string_view expression, const json::Value& resource = Patient(),
               EvalOptions options = {}) {
  FixedClock clock;
  if (options.clock == nullptr) options.clock = &clock;
  auto e = Compile(expression);
  if (!e) return "compile error: " + e.error().message();
  Result<Collection> r = (*e)->Evaluate(resource, options);
  if (!r) return "error: " + r.error().message();
  return Render(*r);
}

std::string EvObs(std::string_view expression) { return Ev(expression, Observation()); }

bool IsError(std::string_view expression, const json::Value& resource = Patient()) {
  std::string r = Ev(expression, resource);
  return r.rfind("error: ", 0) == 0 || r.rfind("compile error: ", 0) == 0;
}

TEST(FhirpathTest, Navigation) {
  EXPECT_EQ(Ev("Patient.name.given"), "[Peter, James, Jim]");
  EXPECT_EQ(Ev("name.given"), "[Peter, James, Jim]");
  EXPECT_EQ(Ev("Patient.name.family"), "[Chalmers, Windsor]");
  EXPECT_EQ(Ev("Patient.name"), "[<HumanName>, <HumanName>, <HumanName>]");
  EXPECT_EQ(Ev("Patient.active"), "[true]");
  EXPECT_EQ(Ev("Patient.nothing"), "[]");
  EXPECT_EQ(Ev("Observation.status"), "[]");  // another type: empty, not an error
  EXPECT_EQ(Ev("Resource.id"), "[p1]");
  EXPECT_EQ(Ev("DomainResource.id"), "[p1]");
  EXPECT_EQ(Ev("Patient.contact.name.family"), "[du Marché]");
  EXPECT_EQ(Ev("Patient.contact"), "[<Patient.contact>]");
  EXPECT_EQ(Ev("Patient.contained.name.family"), "[Careful]");
  EXPECT_EQ(Ev("Patient.contained"), "[<Practitioner>]");
  EXPECT_EQ(Ev("Patient.deceased"), "[false]");
  EXPECT_EQ(Ev("Patient.multipleBirth"), "[2]");
  EXPECT_EQ(Ev("Patient.`gender`"), "[male]");
  EXPECT_EQ(EvObs("Observation.value"), "[<Quantity>]");
  EXPECT_EQ(EvObs("Observation.value.value"), "[67.5]");
  EXPECT_EQ(EvObs("Observation.component.value"), "[<Quantity>, x, 3]");
  EXPECT_EQ(EvObs("Observation.effective.start"), "[2016-03-28T09:30:10+01:00]");
  EXPECT_EQ(EvObs("Observation.valueQuantity"), "[]");  // only by the choice's name
}

TEST(FhirpathTest, ItemTypes) {
  auto e = Compile("Patient.birthDate | Patient.name.given | Patient.gender | Patient.id");
  ASSERT_TRUE(e);
  Result<Collection> r = (*e)->Evaluate(Patient());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 6u);
  EXPECT_EQ((*r)[0].type, "date");
  ASSERT_NE((*r)[0].extension_node, nullptr);
  EXPECT_TRUE((*r)[0].extension_node->Find("extension"));
  EXPECT_EQ((*r)[1].type, "string");
  EXPECT_EQ((*r)[1].extension_node, nullptr);
  EXPECT_NE((*r)[2].extension_node, nullptr);  // James has an extension
  EXPECT_EQ((*r)[4].type, "code");
  EXPECT_EQ((*r)[5].type, "id");

  auto computed = Compile("1 | 1.5 | 'a' | true | @2015 | @2015-01-01T10:00 | @T10:00 | 4 'mg'");
  ASSERT_TRUE(computed);
  Result<Collection> c = (*computed)->Evaluate(Patient());
  ASSERT_TRUE(c);
  std::vector<std::string> types;
  for (const Item& item : *c) {
    EXPECT_EQ(item.node, nullptr);
    EXPECT_TRUE(item.value.has_value());
    types.push_back(item.type);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"System.Integer", "System.Decimal", "System.String",
                                             "System.Boolean", "System.Date", "System.DateTime",
                                             "System.Time", "System.Quantity"}));
  EXPECT_EQ((*c)[7].unit, "mg");
  EXPECT_EQ(json::Write(*(*c)[7].value), "4");
}

TEST(FhirpathTest, PrimitiveExtensions) {
  EXPECT_EQ(Ev("Patient.birthDate.extension.url"), "[http://example.org/time]");
  EXPECT_EQ(Ev("Patient.birthDate.extension('http://example.org/time').value"),
            "[1974-12-25T14:35:45-05:00]");
  EXPECT_EQ(Ev("Patient.name.given.extension.value"), "[j]");
  EXPECT_EQ(Ev("Patient.name.family.id"), "[f1]");
  EXPECT_EQ(Ev("Patient.name.family.where(id = 'f1')"), "[Windsor]");
  EXPECT_EQ(Ev("Patient.extension('http://example.org/race').extension('text').value"), "[White]");
  EXPECT_EQ(Ev("Patient.extension.where(url = 'http://example.org/race').extension.value.code"),
            "[2106-3]");
  // A primitive with only an extension: the element exists, without a value.
  json::Value only_ext = ParseJson(
      R"({"resourceType": "Patient", "_gender": {"extension": [{"url": "u", "valueCode": "x"}]},
          "name": [{"given": [null, "B"], "_given": [{"id": "g0"}, null]}]})");
  EXPECT_EQ(Ev("Patient.gender.exists()", only_ext), "[true]");
  EXPECT_EQ(Ev("Patient.gender.hasValue()", only_ext), "[false]");
  EXPECT_EQ(Ev("Patient.gender.extension.value", only_ext), "[x]");
  EXPECT_EQ(Ev("Patient.name.given.count()", only_ext), "[2]");
  EXPECT_EQ(Ev("Patient.name.given.id", only_ext), "[g0]");
  EXPECT_EQ(Ev("Patient.gender = 'x'", only_ext), "[]");
  EXPECT_EQ(Ev("Patient.gender.hasValue()"), "[true]");
  EXPECT_EQ(Ev("Patient.name.hasValue()"), "[false]");
}

TEST(FhirpathTest, Existence) {
  EXPECT_EQ(Ev("Patient.name.exists()"), "[true]");
  EXPECT_EQ(Ev("Patient.photo.exists()"), "[false]");
  EXPECT_EQ(Ev("Patient.photo.empty()"), "[true]");
  EXPECT_EQ(Ev("Patient.name.exists(use = 'usual')"), "[true]");
  EXPECT_EQ(Ev("Patient.name.exists(use = 'temp')"), "[false]");
  EXPECT_EQ(Ev("Patient.name.all(given.exists())"), "[false]");
  EXPECT_EQ(Ev("Patient.name.all(use.exists())"), "[true]");
  EXPECT_EQ(Ev("{}.all(false)"), "[true]");
  EXPECT_EQ(Ev("(true | false).allTrue()"), "[false]");
  EXPECT_EQ(Ev("(true | false).anyTrue()"), "[true]");
  EXPECT_EQ(Ev("(false).allFalse()"), "[true]");
  EXPECT_EQ(Ev("(true).anyFalse()"), "[false]");
  EXPECT_EQ(Ev("{}.allTrue()"), "[true]");
  EXPECT_EQ(Ev("Patient.name.given.count()"), "[3]");
  EXPECT_EQ(Ev("(1 | 2 | 2).count()"), "[2]");
  EXPECT_EQ(Ev("(1).combine(2).combine(1).distinct()"), "[1, 2]");
  EXPECT_EQ(Ev("(1).combine(1).isDistinct()"), "[false]");
  EXPECT_EQ(Ev("(1 | 2).subsetOf(1 | 2 | 3)"), "[true]");
  EXPECT_EQ(Ev("(1 | 2).supersetOf(3)"), "[false]");
  EXPECT_EQ(Ev("Patient.name.given.distinct()"), "[Peter, James, Jim]");
}

TEST(FhirpathTest, FilteringAndSubsetting) {
  EXPECT_EQ(Ev("Patient.telecom.where(system = 'email').value"), "[p@example.org]");
  EXPECT_EQ(Ev("Patient.name.where(given.count() > 1).family"), "[Chalmers]");
  EXPECT_EQ(Ev("Patient.name.select(given.first())"), "[Peter, Jim]");
  EXPECT_EQ(Ev("Patient.name.given.where($this.startsWith('J'))"), "[James, Jim]");
  EXPECT_EQ(Ev("Patient.name.given.where($index > 0)"), "[James, Jim]");
  EXPECT_EQ(Ev("Patient.name.given.first()"), "[Peter]");
  EXPECT_EQ(Ev("Patient.name.given.last()"), "[Jim]");
  EXPECT_EQ(Ev("Patient.name.given.tail()"), "[James, Jim]");
  EXPECT_EQ(Ev("Patient.name.given.skip(2)"), "[Jim]");
  EXPECT_EQ(Ev("Patient.name.given.skip(-1)"), "[Peter, James, Jim]");
  EXPECT_EQ(Ev("Patient.name.given.take(2)"), "[Peter, James]");
  EXPECT_EQ(Ev("Patient.name.given.take(0)"), "[]");
  EXPECT_EQ(Ev("Patient.name.given[1]"), "[James]");
  EXPECT_EQ(Ev("Patient.name.given[10]"), "[]");
  EXPECT_EQ(Ev("Patient.name[0].given[0]"), "[Peter]");
  EXPECT_EQ(Ev("Patient.gender.single()"), "[male]");
  EXPECT_TRUE(IsError("Patient.name.given.single()"));
  EXPECT_EQ(Ev("(1 | 2 | 3).intersect(2 | 3 | 4)"), "[2, 3]");
  EXPECT_EQ(Ev("(1 | 2 | 3).exclude(2)"), "[1, 3]");
  EXPECT_EQ(Ev("(1 | 2).union(2 | 3)"), "[1, 2, 3]");
  EXPECT_EQ(Ev("(1 | 2).combine(2 | 3)"), "[1, 2, 2, 3]");
  EXPECT_EQ(Ev("Patient.contained.ofType(Practitioner).name.family"), "[Careful]");
  EXPECT_EQ(Ev("Patient.contained.ofType(Patient)"), "[]");
  EXPECT_EQ(Ev("(1 | 'a' | 2.5).ofType(Integer)"), "[1]");
  EXPECT_EQ(Ev("(1 | 'a' | 2.5).ofType(System.String)"), "[a]");
  // repeat() follows a recursive structure and stops on repeated values.
  json::Value q = ParseJson(R"({"resourceType": "Questionnaire", "status": "draft",
      "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"},
                {"linkId": "1.2", "type": "group",
                 "item": [{"linkId": "1.2.1", "type": "string"}]}]}]})");
  EXPECT_EQ(Ev("Questionnaire.repeat(item).linkId", q), "[1, 1.1, 1.2, 1.2.1]");
  EXPECT_EQ(Ev("Questionnaire.item.item.item.linkId", q), "[1.2.1]");
  EXPECT_EQ(Ev("(1).repeat(1)", q), "[1]");
  EXPECT_EQ(Ev("(1 | 2 | 3).aggregate($this + $total, 0)"), "[6]");
  EXPECT_EQ(Ev("(1 | 2 | 3).aggregate(iif($total.empty(), $this, iif($this > $total, $this, "
               "$total)))"),
            "[3]");
}

TEST(FhirpathTest, BooleanLogicIsThreeValued) {
  // Rows: true, false, empty; the spec's truth tables.
  const char* values[] = {"true", "false", "{}"};
  const char* and_table[3][3] = {
      {"[true]", "[false]", "[]"}, {"[false]", "[false]", "[false]"}, {"[]", "[false]", "[]"}};
  const char* or_table[3][3] = {
      {"[true]", "[true]", "[true]"}, {"[true]", "[false]", "[]"}, {"[true]", "[]", "[]"}};
  const char* xor_table[3][3] = {
      {"[false]", "[true]", "[]"}, {"[true]", "[false]", "[]"}, {"[]", "[]", "[]"}};
  const char* implies_table[3][3] = {
      {"[true]", "[false]", "[]"}, {"[true]", "[true]", "[true]"}, {"[true]", "[]", "[]"}};
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 3; ++b) {
      std::string l = values[a], r = values[b];
      EXPECT_EQ(Ev(l + " and " + r), and_table[a][b]) << l << " and " << r;
      EXPECT_EQ(Ev(l + " or " + r), or_table[a][b]) << l << " or " << r;
      EXPECT_EQ(Ev(l + " xor " + r), xor_table[a][b]) << l << " xor " << r;
      EXPECT_EQ(Ev(l + " implies " + r), implies_table[a][b]) << l << " implies " << r;
    }
  }
  EXPECT_EQ(Ev("true.not()"), "[false]");
  EXPECT_EQ(Ev("{}.not()"), "[]");
  EXPECT_EQ(Ev("Patient.active.not()"), "[false]");
  EXPECT_EQ(Ev("Patient.name.exists() and Patient.gender = 'male'"), "[true]");
  // A single non-Boolean item counts as true; several are an error.
  EXPECT_EQ(Ev("Patient.gender and true"), "[true]");
  EXPECT_TRUE(IsError("Patient.name.given and true"));
  EXPECT_EQ(Ev("false and Patient.name.given"), "[false]");  // short cut
}

TEST(FhirpathTest, EqualityAndEquivalence) {
  EXPECT_EQ(Ev("1 = 1"), "[true]");
  EXPECT_EQ(Ev("1 = 1.0"), "[true]");
  EXPECT_EQ(Ev("1.10 = 1.1"), "[true]");
  EXPECT_EQ(Ev("'a' = 'a'"), "[true]");
  EXPECT_EQ(Ev("'a' = 'A'"), "[false]");
  EXPECT_EQ(Ev("'a' ~ 'A'"), "[true]");
  EXPECT_EQ(Ev("'a  b ' ~ 'A b'"), "[true]");
  EXPECT_EQ(Ev("'a' != 'b'"), "[true]");
  EXPECT_EQ(Ev("'a' !~ 'A'"), "[false]");
  EXPECT_EQ(Ev("1 = 'a'"), "[false]");
  EXPECT_EQ(Ev("{} = 1"), "[]");
  EXPECT_EQ(Ev("{} ~ {}"), "[true]");
  EXPECT_EQ(Ev("{} ~ 1"), "[false]");
  EXPECT_EQ(Ev("1.2 ~ 1.24"), "[true]");
  EXPECT_EQ(Ev("(1 | 2) = (1 | 2)"), "[true]");
  EXPECT_EQ(Ev("(1 | 2) = (2 | 1)"), "[false]");
  EXPECT_EQ(Ev("(1 | 2) ~ (2 | 1)"), "[true]");
  EXPECT_EQ(Ev("Patient.gender = 'male'"), "[true]");
  EXPECT_EQ(Ev("Patient.deceased = false"), "[true]");
  EXPECT_EQ(Ev("Patient.deceased != false"), "[false]");
  EXPECT_EQ(Ev("Patient.name[0] = Patient.name[0]"), "[true]");
  EXPECT_EQ(Ev("Patient.name[0] = Patient.name[1]"), "[false]");
  EXPECT_EQ(Ev("Patient.name[0] = 'Chalmers'"), "[false]");
  // Dates at different precisions: equal is empty when they agree as far as both go.
  EXPECT_EQ(Ev("@2012 = @2012"), "[true]");
  EXPECT_EQ(Ev("@2012 = @2013"), "[false]");
  EXPECT_EQ(Ev("@2012-01 = @2012"), "[]");
  EXPECT_EQ(Ev("@2012-01 = @2013"), "[false]");
  EXPECT_EQ(Ev("@2012-01 ~ @2012"), "[false]");
  EXPECT_EQ(Ev("@2012-04-15T15:30:31 = @2012-04-15T15:30:31.0"), "[true]");
  EXPECT_EQ(Ev("@2017-11-05T01:30:00.0-04:00 = @2017-11-05T00:30:00.0-05:00"), "[true]");
  EXPECT_EQ(Ev("@2012-04-15 = @2012-04-15T10:00"), "[]");
  EXPECT_EQ(Ev("Patient.birthDate = @1974-12-25"), "[true]");
  EXPECT_EQ(Ev("@T10:30 = @T10:30:00"), "[]");
  EXPECT_EQ(Ev("4 'mg' = 4 'mg'"), "[true]");
  EXPECT_EQ(Ev("4 'mg' = 4.0 'mg'"), "[true]");
  EXPECT_EQ(Ev("4 'mg' = 4 'kg'"), "[]");
  EXPECT_EQ(Ev("1 year = 1 'a'"), "[]");
  EXPECT_EQ(Ev("1 year ~ 1 'a'"), "[true]");
  EXPECT_EQ(Ev("7 days = 1 week"), "[true]");
  EXPECT_EQ(Ev("1 'h' < 61 'min'"), "[true]");
  EXPECT_EQ(Ev("1 month = 30 days"), "[]");
  EXPECT_EQ(Ev("1 day = 1 'd'"), "[true]");
  EXPECT_EQ(EvObs("Observation.value = 67.5 'kg'"), "[true]");
}

TEST(FhirpathTest, Comparison) {
  EXPECT_EQ(Ev("1 < 2"), "[true]");
  EXPECT_EQ(Ev("2.5 >= 2"), "[true]");
  EXPECT_EQ(Ev("'abc' < 'abd'"), "[true]");
  EXPECT_EQ(Ev("'b' > 'abc'"), "[true]");
  EXPECT_EQ(Ev("{} < 1"), "[]");
  EXPECT_EQ(Ev("@2012 < @2013-01"), "[true]");
  EXPECT_EQ(Ev("@2012-01 < @2012"), "[]");
  EXPECT_EQ(Ev("@2012-01-01T10:00:00Z > @2012-01-01T11:00:00+02:00"), "[true]");
  EXPECT_EQ(Ev("Patient.birthDate < @2000-01-01"), "[true]");
  EXPECT_EQ(Ev("Patient.birthDate <= @1974-12-25T10:00"), "[]");
  EXPECT_EQ(Ev("@T10:00 < @T11:00"), "[true]");
  EXPECT_EQ(Ev("5 'mg' < 6 'mg'"), "[true]");
  EXPECT_EQ(Ev("5 'mg' < 6 'g'"), "[]");
  EXPECT_EQ(EvObs("Observation.value > 60 'kg'"), "[true]");
  EXPECT_EQ(EvObs("Observation.value.value > 60"), "[true]");
  EXPECT_EQ(Ev("Patient.multipleBirth >= 2"), "[true]");
  EXPECT_TRUE(IsError("1 < 'a'"));
  EXPECT_TRUE(IsError("true < false"));
  EXPECT_TRUE(IsError("Patient.name.given < 'z'"));
}

TEST(FhirpathTest, Membership) {
  EXPECT_EQ(Ev("'Jim' in Patient.name.given"), "[true]");
  EXPECT_EQ(Ev("Patient.name.given contains 'Bob'"), "[false]");
  EXPECT_EQ(Ev("{} in (1 | 2)"), "[]");
  EXPECT_EQ(Ev("1 in {}"), "[false]");
  EXPECT_EQ(Ev("Patient.gender in ('male' | 'female')"), "[true]");
  EXPECT_TRUE(IsError("(1 | 2) in (1 | 2)"));
}

TEST(FhirpathTest, Math) {
  EXPECT_EQ(Ev("1 + 2 * 3"), "[7]");
  EXPECT_EQ(Ev("(1 + 2) * 3"), "[9]");
  EXPECT_EQ(Ev("7 / 2"), "[3.5]");
  EXPECT_EQ(Ev("6 / 2"), "[3.0]");
  EXPECT_EQ(Ev("7 div 2"), "[3]");
  EXPECT_EQ(Ev("-7 div 2"), "[-3]");
  EXPECT_EQ(Ev("7 mod 2"), "[1]");
  EXPECT_EQ(Ev("5.5 mod 2"), "[1.5]");
  EXPECT_EQ(Ev("1 / 0"), "[]");
  EXPECT_EQ(Ev("1 div 0"), "[]");
  EXPECT_EQ(Ev("0.1 + 0.2"), "[0.3]");
  EXPECT_EQ(Ev("1.5 * 2"), "[3.0]");
  EXPECT_EQ(Ev("-(3)"), "[-3]");
  EXPECT_EQ(Ev("-Patient.multipleBirth"), "[-2]");
  EXPECT_EQ(Ev("9223372036854775807 + 1"), "[]");  // overflow: empty
  EXPECT_EQ(Ev("{} + 1"), "[]");
  EXPECT_EQ(Ev("'a' + 'b'"), "[ab]");
  EXPECT_EQ(Ev("'a' + {}"), "[]");
  EXPECT_EQ(Ev("'a' & {} & 'c'"), "[ac]");
  EXPECT_EQ(Ev("Patient.name[0].family & ', ' & Patient.name[0].given.first()"),
            "[Chalmers, Peter]");
  EXPECT_EQ(Ev("2 'mg' + 3 'mg'"), "[5.0 'mg']");
  EXPECT_EQ(Ev("2 'mg' * 3"), "[6.0 'mg']");
  EXPECT_EQ(Ev("(-5).abs()"), "[5]");
  EXPECT_EQ(Ev("(-5.5).abs()"), "[5.5]");
  EXPECT_EQ(Ev("1.5.ceiling()"), "[2]");
  EXPECT_EQ(Ev("1.5.floor()"), "[1]");
  EXPECT_EQ(Ev("-1.5.truncate()"), "[-1]");
  EXPECT_EQ(Ev("3.14159.round(2)"), "[3.14]");
  EXPECT_EQ(Ev("16.sqrt()"), "[4.0]");
  EXPECT_EQ(Ev("(-1).sqrt()"), "[]");
  EXPECT_EQ(Ev("2.power(10)"), "[1024]");
  EXPECT_EQ(Ev("100.log(10)"), "[2.0]");
  EXPECT_EQ(Ev("0.exp()"), "[1.0]");
  EXPECT_EQ(Ev("1.ln()"), "[0.0]");
  EXPECT_TRUE(IsError("1 + 'a'"));
  EXPECT_TRUE(IsError("Patient.name.given + 'a'"));
}

TEST(FhirpathTest, Strings) {
  EXPECT_EQ(Ev("'abcdef'.indexOf('cd')"), "[2]");
  EXPECT_EQ(Ev("'abcdef'.indexOf('x')"), "[-1]");
  EXPECT_EQ(Ev("'abcdef'.substring(3)"), "[def]");
  EXPECT_EQ(Ev("'abcdef'.substring(1, 2)"), "[bc]");
  EXPECT_EQ(Ev("'abcdef'.substring(10)"), "[]");
  EXPECT_EQ(Ev("'abcdef'.substring(4, 10)"), "[ef]");
  EXPECT_EQ(Ev("'héllo'.substring(1, 2)"), "[él]");
  EXPECT_EQ(Ev("'héllo'.length()"), "[5]");
  EXPECT_EQ(Ev("'abc'.startsWith('ab')"), "[true]");
  EXPECT_EQ(Ev("'abc'.startsWith('')"), "[true]");
  EXPECT_EQ(Ev("'abc'.endsWith('bc')"), "[true]");
  EXPECT_EQ(Ev("'abc'.contains('d')"), "[false]");
  EXPECT_EQ(Ev("'AbC'.upper()"), "[ABC]");
  EXPECT_EQ(Ev("'AbC'.lower()"), "[abc]");
  EXPECT_EQ(Ev("'a-b-c'.replace('-', '+')"), "[a+b+c]");
  EXPECT_EQ(Ev("'abc'.replace('', 'x')"), "[xaxbxcx]");
  EXPECT_EQ(Ev("'2023-01'.matches('^[0-9]{4}-[0-9]{2}$')"), "[true]");
  EXPECT_EQ(Ev("'abc'.matches('b')"), "[true]");      // anywhere in the string
  EXPECT_EQ(Ev("'a\\nb'.matches('a.b')"), "[true]");  // single-line mode
  EXPECT_EQ(Ev("'abc'.matches('^b')"), "[false]");
  EXPECT_EQ(Ev("'abc'.matches('x' + 'y')"), "[false]");  // a computed pattern
  EXPECT_EQ(Ev("'abc123'.replaceMatches('[0-9]+', '#')"), "[abc#]");
  EXPECT_EQ(Ev("'John Smith'.replaceMatches('(\\\\w+) (\\\\w+)', '$2, $1')"), "[Smith, John]");
  EXPECT_EQ(Ev("'abc'.toChars()"), "[a, b, c]");
  EXPECT_EQ(Ev("'  a b  '.trim()"), "[a b]");
  EXPECT_EQ(Ev("'a,b,,c'.split(',')"), "[a, b, , c]");
  EXPECT_EQ(Ev("('a' | 'b' | 'c').join('-')"), "[a-b-c]");
  EXPECT_EQ(Ev("Patient.name.given.join()"), "[PeterJamesJim]");
  EXPECT_EQ(Ev("Patient.gender.length()"), "[4]");
  EXPECT_EQ(Ev("{}.upper()"), "[]");
  EXPECT_TRUE(IsError("1.upper()"));
  EXPECT_TRUE(IsError("Patient.name.given.upper()"));
  // Regular expressions are guarded: complex patterns and long inputs are errors.
  EXPECT_TRUE(IsError("'a'.matches('(a{100}){100}')"));
  EXPECT_TRUE(IsError("'a'.matches('x' + '(')"));
  std::string long_input = "'" + std::string(20000, 'a') + "'.matches('(a|aa)*b')";
  EXPECT_TRUE(IsError(long_input));
  std::string ok_input = "'" + std::string(10000, 'a') + "'.matches('(a|aa)*(a*)*b')";
  EXPECT_EQ(Ev(ok_input), "[false]");
}

TEST(FhirpathTest, Conversions) {
  EXPECT_EQ(Ev("'true'.toBoolean()"), "[true]");
  EXPECT_EQ(Ev("'No'.toBoolean()"), "[false]");
  EXPECT_EQ(Ev("'x'.toBoolean()"), "[]");
  EXPECT_EQ(Ev("1.toBoolean()"), "[true]");
  EXPECT_EQ(Ev("'x'.convertsToBoolean()"), "[false]");
  EXPECT_EQ(Ev("'12'.toInteger()"), "[12]");
  EXPECT_EQ(Ev("'-12'.toInteger() + 2"), "[-10]");
  EXPECT_EQ(Ev("'1.5'.toInteger()"), "[]");
  EXPECT_EQ(Ev("true.toInteger()"), "[1]");
  EXPECT_EQ(Ev("'1.5'.toDecimal()"), "[1.5]");
  EXPECT_EQ(Ev("'1.50'.toDecimal()"), "[1.50]");
  EXPECT_EQ(Ev("2.toDecimal()"), "[2.0]");
  EXPECT_EQ(Ev("'abc'.convertsToDecimal()"), "[false]");
  EXPECT_EQ(Ev("12.toString()"), "[12]");
  EXPECT_EQ(Ev("1.50.toString()"), "[1.50]");
  EXPECT_EQ(Ev("true.toString()"), "[true]");
  EXPECT_EQ(Ev("@2015-02.toString()"), "[2015-02]");
  EXPECT_EQ(Ev("(4 'mg').toString()"), "[4 'mg']");
  EXPECT_EQ(Ev("Patient.birthDate.toString()"), "[1974-12-25]");
  EXPECT_EQ(Ev("Patient.name.first().toString()"), "[]");
  EXPECT_EQ(Ev("'2015-02-04'.toDate()"), "[2015-02-04]");
  EXPECT_EQ(Ev("'2015-02-04T10:00:00Z'.toDate()"), "[2015-02-04]");
  EXPECT_EQ(Ev("'2015-02-04T10:00:00Z'.toDateTime()"), "[2015-02-04T10:00:00Z]");
  EXPECT_EQ(Ev("'10:00'.toTime()"), "[10:00]");
  EXPECT_EQ(Ev("'2015-13'.convertsToDate()"), "[false]");
  EXPECT_EQ(Ev("Patient.birthDate.toDateTime() < @2000-01-01T00:00:00Z"), "[true]");
  EXPECT_EQ(Ev("'5 \\'mg\\''.toQuantity()"), "[5 'mg']");
  EXPECT_EQ(Ev("'5 days'.toQuantity() = 5 days"), "[true]");
  EXPECT_EQ(Ev("3.toQuantity()"), "[3 '1']");
  EXPECT_EQ(Ev("'x'.convertsToQuantity()"), "[false]");
  EXPECT_EQ(Ev("(4 'mg').toQuantity('mg')"), "[4 'mg']");
  EXPECT_EQ(Ev("(4 'mg').convertsToQuantity('g')"), "[false]");
  EXPECT_EQ(Ev("iif(Patient.active, 'yes', 'no')"), "[yes]");
  EXPECT_EQ(Ev("iif(Patient.photo.exists(), 'yes', 'no')"), "[no]");
  EXPECT_EQ(Ev("iif(false, 'yes')"), "[]");
  EXPECT_EQ(Ev("iif({}, 1, 2)"), "[2]");
  EXPECT_EQ(Ev("Patient.gender.iif($this = 'male', 'M', 'F')"), "[M]");
  EXPECT_EQ(Ev("iif(true, 1, 1 / 0 + 'a')"), "[1]");  // only the chosen branch runs
  EXPECT_TRUE(IsError("Patient.name.given.toInteger()"));
}

TEST(FhirpathTest, DatesAndTimes) {
  EXPECT_EQ(Ev("now()"), "[2023-11-14T22:13:20.123Z]");
  EXPECT_EQ(Ev("today()"), "[2023-11-14]");
  EXPECT_EQ(Ev("timeOfDay()"), "[22:13:20.123]");
  EXPECT_EQ(Ev("today() - 18 'years'"), "[2005-11-14]");
  EXPECT_EQ(Ev("today() - 18 years"), "[2005-11-14]");
  EXPECT_EQ(Ev("Patient.birthDate < today() - 18 years"), "[true]");
  EXPECT_EQ(Ev("@2014-01-31 + 1 month"), "[2014-02-28]");
  EXPECT_EQ(Ev("@2016-02-29 + 1 year"), "[2017-02-28]");
  EXPECT_EQ(Ev("@2014 + 24 months"), "[2016]");
  EXPECT_EQ(Ev("@2014-06 - 1 'mo'"), "[2014-05]");
  EXPECT_EQ(Ev("@2014-12-31 + 1 day"), "[2015-01-01]");
  EXPECT_EQ(Ev("@2014-01-01 + 2 weeks"), "[2014-01-15]");
  EXPECT_EQ(Ev("@2014-01-01T23:30:00Z + 1 hour"), "[2014-01-02T00:30:00Z]");
  EXPECT_EQ(Ev("@2014-01-01T10:00:00.000+02:00 + 90 seconds"), "[2014-01-01T10:01:30.000+02:00]");
  EXPECT_EQ(Ev("@T23:00 + 2 hours"), "[01:00]");
  EXPECT_EQ(Ev("@2014-01-01 + 36 hours"), "[2014-01-02]");
  EXPECT_EQ(Ev("now() > @2020-01-01T00:00:00Z"), "[true]");
  EXPECT_EQ(Ev("now() = now()"), "[true]");
  EXPECT_TRUE(IsError("@2014-01-01 + 1 'kg'"));
  EXPECT_EQ(Ev("@9999-12-31 + 1 year"), "[]");
  EXPECT_EQ(Ev("Patient.birthDate + 1 day"), "[1974-12-26]");
}

TEST(FhirpathTest, Types) {
  EXPECT_EQ(Ev("Patient is Patient"), "[true]");
  EXPECT_EQ(Ev("Patient is DomainResource"), "[true]");
  EXPECT_EQ(Ev("Patient is FHIR.Resource"), "[true]");
  EXPECT_EQ(Ev("Patient.gender is code"), "[true]");
  EXPECT_EQ(Ev("Patient.gender is string"), "[true]");  // code derives from string
  EXPECT_EQ(Ev("Patient.gender is System.String"), "[false]");
  EXPECT_EQ(Ev("'a' is String"), "[true]");
  EXPECT_EQ(Ev("'a' is System.String"), "[true]");
  EXPECT_EQ(Ev("'a' is string"), "[false]");
  EXPECT_EQ(Ev("1 is Integer"), "[true]");
  EXPECT_EQ(Ev("1.0 is Decimal"), "[true]");
  EXPECT_EQ(Ev("@2015 is Date"), "[true]");
  EXPECT_EQ(Ev("(4 'mg') is Quantity"), "[true]");
  EXPECT_EQ(Ev("Patient.name.first() is HumanName"), "[true]");
  EXPECT_EQ(Ev("Patient.name.first().is(HumanName)"), "[true]");
  EXPECT_EQ(Ev("Patient.contact.first() is BackboneElement"), "[true]");
  EXPECT_EQ(Ev("Patient.contact.first() is Element"), "[true]");
  EXPECT_EQ(Ev("Patient.deceased is boolean"), "[true]");
  EXPECT_EQ(Ev("Patient.deceased as dateTime"), "[]");
  EXPECT_EQ(Ev("Patient.deceased as boolean"), "[false]");
  EXPECT_EQ(Ev("Patient.deceased.as(boolean)"), "[false]");
  EXPECT_EQ(EvObs("Observation.value is Quantity"), "[true]");
  EXPECT_EQ(EvObs("(Observation.value as Quantity).value"), "[67.5]");
  EXPECT_EQ(EvObs("Observation.value.ofType(Quantity).code"), "[kg]");
  EXPECT_EQ(EvObs("Observation.component.value.ofType(string)"), "[x]");
  EXPECT_EQ(EvObs("Observation.component.value.ofType(integer)"), "[3]");
  EXPECT_EQ(EvObs("(Observation.effective as Period).start"), "[2016-03-28T09:30:10+01:00]");
  EXPECT_EQ(EvObs("(Observation.component.value as Quantity).value"), "[1.0]");
  json::Value condition = ParseJson(
      R"({"resourceType": "Condition", "subject": {"reference": "Patient/1"},
          "onsetAge": {"value": 52, "unit": "yr", "system": "http://unitsofmeasure.org",
                       "code": "a"}})");
  EXPECT_EQ(Ev("Condition.onset.as(Age).value", condition), "[52]");
  EXPECT_EQ(Ev("Condition.onset is Quantity", condition), "[true]");  // Age derives from Quantity
  EXPECT_EQ(Ev("Condition.onset.as(Range)", condition), "[]");
  EXPECT_EQ(Ev("Condition.onset > 50 'a'", condition), "[true]");
  EXPECT_TRUE(IsError("Patient.name.given is string"));  // several items
}

TEST(FhirpathTest, ResolveAndReferences) {
  EXPECT_EQ(Ev("Patient.generalPractitioner.resolve().name.family"), "[Careful]");
  EXPECT_EQ(Ev("Patient.generalPractitioner.where(resolve() is Practitioner).count()"), "[1]");
  std::vector<std::string> asked;
  json::Value org = ParseJson(R"({"resourceType": "Organization", "name": "Acme"})");
  EvalOptions options;
  options.resolver = [&](std::string_view ref) -> const json::Value* {
    asked.push_back(std::string(ref));
    return ref == "Organization/1" ? &org : nullptr;
  };
  EXPECT_EQ(Ev("Patient.managingOrganization.resolve().name", Patient(), options), "[Acme]");
  EXPECT_EQ(Ev("(Patient.managingOrganization | Patient.generalPractitioner).resolve()", Patient(),
               options),
            "[<Organization>, <Practitioner>]");
  EXPECT_EQ(asked,
            (std::vector<std::string>{"Organization/1", "Organization/1", "Practitioner/x"}));
  EXPECT_EQ(Ev("'Organization/1'.resolve().name", Patient(), options), "[Acme]");
  EXPECT_EQ(Ev("Patient.managingOrganization.resolve()"), "[]");  // no resolver
}

TEST(FhirpathTest, TreeNavigation) {
  json::Value small = ParseJson(
      R"({"resourceType": "Patient", "id": "x", "name": [{"family": "F", "given": ["G"]}],
          "_gender": {"id": "g"}})");
  EXPECT_EQ(Ev("Patient.children()", small), "[x, <HumanName>, <code>]");
  EXPECT_EQ(Ev("Patient.descendants()", small), "[x, <HumanName>, <code>, F, G, g]");
  // id and code derive from string in the R4 model.
  EXPECT_EQ(Ev("Patient.descendants().ofType(string)", small), "[x, <code>, F, G, g]");
  EXPECT_EQ(Ev("Patient.descendants().where($this is string and $this.hasValue())", small),
            "[x, F, G, g]");
  EXPECT_EQ(Ev("Patient.name.children().count()", small), "[2]");
  EXPECT_EQ(Ev("Patient.descendants().where($this is HumanName).family", small), "[F]");
  EXPECT_EQ(Ev("Patient.trace('x').id", small), "[x]");
}

TEST(FhirpathTest, Variables) {
  EXPECT_EQ(Ev("%resource.id"), "[p1]");
  EXPECT_EQ(Ev("%rootResource.id"), "[p1]");
  EXPECT_EQ(Ev("%context.id"), "[p1]");
  EXPECT_EQ(Ev("%ucum"), "[http://unitsofmeasure.org]");
  EXPECT_EQ(Ev("%sct"), "[http://snomed.info/sct]");
  EXPECT_EQ(Ev("%loinc"), "[http://loinc.org]");
  EXPECT_EQ(Ev("%'vs-administrative-gender'"),
            "[http://hl7.org/fhir/ValueSet/administrative-gender]");
  EXPECT_EQ(Ev("%`ext-patient-birthTime`"),
            "[http://hl7.org/fhir/StructureDefinition/patient-birthTime]");
  EXPECT_EQ(Ev("%\"vs-x\""), "[http://hl7.org/fhir/ValueSet/x]");
  EXPECT_EQ(Ev("Patient.name.where(family = %resource.name.family.first()).use"), "[official]");
  EXPECT_TRUE(IsError("%nope"));
  EvalOptions options;
  Item limit;
  limit.type = "System.Integer";
  limit.value = json::Value::Number(2);
  options.variables.push_back({"limit", {limit}});
  EXPECT_EQ(Ev("Patient.name.given.take(%limit)", Patient(), options), "[Peter, James]");
  Item name{&Patient().Find("name")->as_array()[0], nullptr, "HumanName", {}, {}};
  options.variables.push_back({"official", {name}});
  EXPECT_EQ(Ev("%official.given.first() & %official.family", Patient(), options),
            "[PeterChalmers]");
  Item wrong;
  wrong.type = "System.Integer";
  wrong.value = json::Value("two");
  options.variables.push_back({"wrong", {wrong}});
  EXPECT_NE(Ev("%wrong + 1", Patient(), options).find("does not match its type"),
            std::string::npos);
  EXPECT_EQ(Ev("$this.id"), "[p1]");
  EXPECT_EQ(Ev("$index"), "[]");
}

TEST(FhirpathTest, EvaluateItems) {
  // An invariant whose context is an element: Patient.contact.
  auto e = Compile("name.exists() or telecom.exists() and %resource.id = 'p1'");
  ASSERT_TRUE(e);
  const json::Value& contact = Patient().Find("contact")->as_array()[0];
  EvalOptions options;
  options.root_resource = &Patient();
  Result<Collection> r =
      (*e)->EvaluateItems({Item{&contact, nullptr, "Patient.contact", {}, {}}}, options);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(AsBoolean(*r), true);

  auto given = Compile("$this.given.where($this = %resource.name.given.last())");
  ASSERT_TRUE(given);
  const json::Value& name = Patient().Find("name")->as_array()[1];
  r = (*given)->EvaluateItems({Item{&name, nullptr, "HumanName", {}, {}}}, options);
  ASSERT_TRUE(r);
  EXPECT_EQ(Render(*r), "[Jim]");

  // Computed inputs.
  auto plus = Compile("$this + 1");
  Item two;
  two.type = "System.Integer";
  two.value = json::Value::Number(2);
  r = (*plus)->EvaluateItems({two});
  ASSERT_TRUE(r);
  EXPECT_EQ(Render(*r), "[3]");
  Item bad;
  bad.type = "NoSuchType";
  bad.node = &contact;
  EXPECT_FALSE((*plus)->EvaluateItems({bad}));
}

TEST(FhirpathTest, AsBooleanFollowsSingletonRules) {
  Item t;
  t.type = "System.Boolean";
  t.value = json::Value(true);
  Item f = t;
  f.value = json::Value(false);
  Item s;
  s.type = "System.String";
  s.value = json::Value("x");
  EXPECT_EQ(AsBoolean({}), std::nullopt);
  EXPECT_EQ(AsBoolean({t}), true);
  EXPECT_EQ(AsBoolean({f}), false);
  EXPECT_EQ(AsBoolean({s}), true);
  EXPECT_EQ(AsBoolean({t, t}), std::nullopt);
  json::Value node(false);
  EXPECT_EQ(AsBoolean({Item{&node, nullptr, "boolean", {}, {}}}), false);
}

TEST(FhirpathTest, WorkIsBounded) {
  std::string nested = "Patient.name";
  for (int i = 0; i < 30; ++i) nested = "(" + nested + ").combine(" + "Patient.name)";
  EXPECT_EQ(Ev(nested + ".count()"), "[93]");
  std::string blowup = "'ab'";
  for (int i = 0; i < 30; ++i) blowup = "(" + blowup + ").select($this + $this)";
  EXPECT_TRUE(IsError(blowup));  // a string of 2^31 characters
  EXPECT_TRUE(IsError("(1).repeat($this + 1)"));
  EvalOptions tight;
  tight.max_steps = 50;
  EXPECT_EQ(Ev("Patient.descendants().count() > 10", Patient(), tight).rfind("error: ", 0), 0u);
  EXPECT_EQ(Ev("Patient.descendants().count() > 10"), "[true]");
}

TEST(FhirpathTest, EvaluatesConcurrently) {
  auto e = Compile("Patient.name.where(use = 'official').given.first() & %resource.id");
  ASSERT_TRUE(e);
  std::vector<std::thread> threads;
  std::vector<int> ok(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        Result<Collection> r = (*e)->Evaluate(Patient());
        if (r && Render(*r) == "[Peterp1]") ++ok[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n : ok) EXPECT_EQ(n, 500);
}

}  // namespace
}  // namespace fhirstone::fhirpath
