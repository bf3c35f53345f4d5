#include "generate/generator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/time.h"
#include "fhir/validate.h"

namespace fhirstone::generate {
namespace {

constexpr int64_t kNow = 1735689600000000;  // 2025-01-01T00:00:00Z
constexpr double kYearMicros = 365.2425 * 86400 * 1e6;

struct Emitted {
  std::string name;
  std::string text;
};

std::vector<Emitted> GenerateAll(const GenerateOptions& options) {
  std::vector<Emitted> out;
  Status status = Generate(options, [&](std::string_view name, std::string text) -> Status {
    out.push_back({std::string(name), std::move(text)});
    return Ok();
  });
  EXPECT_TRUE(status) << (status ? "" : status.error().message());
  return out;
}

GenerateOptions Options(int patients, uint64_t seed = 1) {
  GenerateOptions o;
  o.patients = patients;
  o.seed = seed;
  o.now_micros = kNow;
  return o;
}

json::Value ParseOrDie(const std::string& text) {
  auto parsed = json::Parse(text);
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().message());
  return parsed ? std::move(parsed).value() : json::Value();
}

int64_t Instant(std::string_view s) {
  auto range = ParseFhirDateTime(s);
  EXPECT_TRUE(range.has_value()) << s;
  return range ? range->low : 0;
}

const json::Array& Entries(const json::Value& bundle) {
  static const json::Array kEmpty;
  const json::Value* e = bundle.Find("entry");
  return e && e->is_array() ? e->as_array() : kEmpty;
}

void CollectReferences(const json::Value& v, std::vector<std::string>& out) {
  if (v.is_array()) {
    for (const auto& item : v.as_array()) CollectReferences(item, out);
  } else if (v.is_object()) {
    for (const auto& [key, value] : v.as_object()) {
      if (key == "reference" && value.is_string()) {
        out.push_back(value.as_string());
      } else {
        CollectReferences(value, out);
      }
    }
  }
}

// The number of digits after the decimal point of a JSON number's text.
int Decimals(const std::string& text) {
  size_t dot = text.find('.');
  return dot == std::string::npos ? 0 : static_cast<int>(text.size() - dot - 1);
}

std::string_view LoincCode(const json::Value& resource) {
  const json::Value* code = resource.Find("code");
  if (!code) return {};
  const json::Value* coding = code->Find("coding");
  if (!coding || !coding->is_array() || coding->as_array().empty()) return {};
  return coding->as_array()[0].GetString("code");
}

double QuantityValue(const json::Value& q) {
  const json::Value* v = q.Find("value");
  EXPECT_TRUE(v && v->is_number());
  return v && v->is_number() ? std::stod(v->as_string()) : 0;
}

// Generated once for the tests that only read it.
const std::vector<Emitted>& Thirty() {
  static const std::vector<Emitted>* data = new std::vector<Emitted>(GenerateAll(Options(30, 7)));
  return *data;
}

TEST(GenerateTest, RejectsBadOptions) {
  auto noop = [](std::string_view, std::string) -> Status { return Ok(); };
  GenerateOptions o = Options(-1);
  EXPECT_FALSE(Generate(o, noop));
  o = Options(1);
  o.years_of_history = 0;
  EXPECT_FALSE(Generate(o, noop));
  o.years_of_history = 101;
  EXPECT_FALSE(Generate(o, noop));
}

TEST(GenerateTest, StopsOnEmitError) {
  int calls = 0;
  Status status = Generate(Options(5), [&](std::string_view, std::string) -> Status {
    ++calls;
    return calls == 2 ? Status(Error::Unavailable("disk full")) : Ok();
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message(), "disk full");
  EXPECT_EQ(calls, 2);
}

TEST(GenerateTest, IsDeterministic) {
  std::vector<Emitted> a = GenerateAll(Options(6, 42));
  std::vector<Emitted> b = GenerateAll(Options(6, 42));
  ASSERT_EQ(a.size(), 7u);
  ASSERT_EQ(b.size(), 7u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_TRUE(a[i].text == b[i].text) << "bundle " << a[i].name << " differs between runs";
  }
  EXPECT_EQ(a[0].name, "0-organizations-practitioners");
  EXPECT_EQ(a[1].name, "patient-000001");
  EXPECT_EQ(a[6].name, "patient-000006");

  // A different seed gives other patients but the same directory.
  std::vector<Emitted> c = GenerateAll(Options(6, 43));
  ASSERT_EQ(c.size(), 7u);
  EXPECT_EQ(a[0].text, c[0].text);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_NE(a[i].text, c[i].text) << a[i].name;

  // Patient i does not depend on how many are generated; GeneratePatient gives the same text.
  std::vector<Emitted> d = GenerateAll(Options(3, 42));
  ASSERT_EQ(d.size(), 4u);
  for (size_t i = 0; i < d.size(); ++i) EXPECT_TRUE(d[i].text == a[i].text) << d[i].name;
  EXPECT_TRUE(GeneratePatient(Options(0, 42), 5) == a[5].text);
  EXPECT_EQ(DirectoryBundle(), a[0].text);

  // Another "today" moves the data set.
  GenerateOptions later = Options(1, 42);
  later.now_micros += static_cast<int64_t>(kYearMicros);
  EXPECT_NE(GenerateAll(later)[1].text, a[1].text);
}

TEST(GenerateTest, EveryResourceIsValid) {
  int checked = 0;
  std::string failures;
  for (const Emitted& bundle : Thirty()) {
    json::Value parsed = ParseOrDie(bundle.text);
    Status whole = fhir::ValidateResource(parsed, {.max_issues = 20});
    if (!whole) failures += bundle.name + " (the Bundle): " + whole.error().message() + "\n";
    const json::Array& entries = Entries(parsed);
    for (size_t i = 0; i < entries.size(); ++i) {
      const json::Value* resource = entries[i].Find("resource");
      ASSERT_NE(resource, nullptr) << bundle.name << " entry " << i;
      Status status = fhir::ValidateResource(*resource, {.max_issues = 20});
      ++checked;
      if (status) continue;
      failures += bundle.name + " entry " + std::to_string(i) + " (" +
                  std::string(resource->GetString("resourceType")) + "):\n";
      for (const Issue& issue : status.error().issues()) {
        failures += "  " + issue.expression + ": " + issue.message + "\n";
      }
      if (failures.size() > 20000) break;
    }
  }
  EXPECT_TRUE(failures.empty()) << failures;
  EXPECT_GT(checked, 30 * 50);
}

TEST(GenerateTest, BundlesHaveTheExpectedShape) {
  const std::vector<Emitted>& all = Thirty();
  ASSERT_EQ(all.size(), 31u);

  // The directory: a batch of PUTs with fixed ids.
  json::Value directory = ParseOrDie(all[0].text);
  EXPECT_EQ(directory.GetString("type"), "batch");
  std::set<std::string> directory_refs;
  std::map<std::string, int> directory_types;
  for (const json::Value& entry : Entries(directory)) {
    const json::Value* resource = entry.Find("resource");
    const json::Value* request = entry.Find("request");
    ASSERT_TRUE(resource && request);
    std::string type(resource->GetString("resourceType"));
    std::string url = type + "/" + std::string(resource->GetString("id"));
    EXPECT_EQ(request->GetString("method"), "PUT");
    EXPECT_EQ(request->GetString("url"), url);
    EXPECT_TRUE(directory_refs.insert(url).second) << "duplicate " << url;
    directory_types[type]++;
    if (type == "Practitioner") {
      const json::Value& id = resource->Find("identifier")->as_array()[0];
      EXPECT_EQ(id.GetString("system"), "http://hl7.org/fhir/sid/us-npi");
      EXPECT_EQ(id.GetString("value").size(), 10u);
    }
  }
  EXPECT_GE(directory_types["Organization"], 5);
  EXPECT_GE(directory_types["Practitioner"], 10);
  std::vector<std::string> directory_references;
  CollectReferences(directory, directory_references);
  for (const std::string& ref : directory_references) {
    EXPECT_TRUE(directory_refs.count(ref)) << "directory reference " << ref;
  }

  std::set<std::string> all_urls;
  for (size_t b = 1; b < all.size(); ++b) {
    json::Value bundle = ParseOrDie(all[b].text);
    EXPECT_EQ(bundle.GetString("resourceType"), "Bundle");
    EXPECT_EQ(bundle.GetString("type"), "transaction");
    std::set<std::string> full_urls;
    int patients = 0;
    for (const json::Value& entry : Entries(bundle)) {
      std::string full_url(entry.GetString("fullUrl"));
      EXPECT_TRUE(full_url.starts_with("urn:uuid:") && full_url.size() == 45) << full_url;
      EXPECT_TRUE(full_urls.insert(full_url).second) << "duplicate fullUrl " << full_url;
      EXPECT_TRUE(all_urls.insert(full_url).second) << "fullUrl reused across bundles";
      const json::Value* resource = entry.Find("resource");
      const json::Value* request = entry.Find("request");
      ASSERT_TRUE(resource && request) << all[b].name;
      EXPECT_EQ(request->GetString("method"), "POST");
      EXPECT_EQ(request->GetString("url"), resource->GetString("resourceType"));
      EXPECT_EQ(resource->Find("id"), nullptr);
      if (resource->GetString("resourceType") == "Patient") {
        ++patients;
        EXPECT_TRUE(request->GetString("ifNoneExist").starts_with("identifier="));
        bool ssn = false, mrn = false;
        for (const json::Value& id : resource->Find("identifier")->as_array()) {
          ssn |= id.GetString("system") == "http://hl7.org/fhir/sid/us-ssn";
          std::string criteria = "identifier=" + std::string(id.GetString("system")) + "|" +
                                 std::string(id.GetString("value"));
          mrn |= criteria == request->GetString("ifNoneExist");
        }
        EXPECT_TRUE(ssn && mrn) << all[b].name;
      }
    }
    EXPECT_EQ(patients, 1) << all[b].name;
    EXPECT_EQ(Entries(bundle)[0].Find("resource")->GetString("resourceType"), "Patient");
    std::vector<std::string> references;
    CollectReferences(bundle, references);
    for (const std::string& ref : references) {
      bool local = full_urls.count(ref) > 0;
      bool shared = (ref.starts_with("Practitioner/") || ref.starts_with("Organization/")) &&
                    directory_refs.count(ref) > 0;
      EXPECT_TRUE(local || shared) << all[b].name << ": dangling reference " << ref;
    }
  }
}

TEST(GenerateTest, DecimalsHaveFixedPlaces) {
  const std::map<std::string_view, int> kPlaces = {
      {"8302-2", 1}, {"29463-7", 1}, {"39156-5", 1}, {"8480-6", 0}, {"8462-4", 0},
      {"8867-4", 0}, {"9279-1", 0},  {"8310-5", 1},  {"2339-0", 0}, {"4548-4", 1},
      {"2093-3", 0}, {"718-7", 1},   {"38483-4", 2}};
  int checked = 0;
  for (size_t b = 1; b < 6; ++b) {
    json::Value bundle = ParseOrDie(Thirty()[b].text);
    for (const json::Value& entry : Entries(bundle)) {
      const json::Value& r = *entry.Find("resource");
      std::vector<const json::Value*> quantities;
      if (const json::Value* q = r.Find("valueQuantity")) quantities.push_back(q);
      if (const json::Value* components = r.Find("component")) {
        for (const json::Value& c : components->as_array()) {
          quantities.push_back(c.Find("valueQuantity"));
        }
      }
      for (const json::Value* q : quantities) {
        ASSERT_NE(q, nullptr);
        const json::Value* value = q->Find("value");
        ASSERT_TRUE(value && value->is_number());
        EXPECT_EQ(q->GetString("system"), "http://unitsofmeasure.org");
        std::string_view code = r.Find("component") ? std::string_view() : LoincCode(r);
        auto it = kPlaces.find(code);
        if (it != kPlaces.end()) {
          EXPECT_EQ(Decimals(value->as_string()), it->second) << code << " " << value->as_string();
          ++checked;
        }
      }
      if (r.GetString("resourceType") == "Claim") {
        const json::Value* total = r.Find("total")->Find("value");
        ASSERT_TRUE(total && total->is_number());
        EXPECT_EQ(Decimals(total->as_string()), 2) << total->as_string();
      }
    }
  }
  EXPECT_GT(checked, 100);
}

// Values of one patient's encounter, by LOINC code.
struct Vitals {
  std::map<std::string, double> values;
  double systolic = 0, diastolic = 0;
};

TEST(GenerateTest, ValuesArePlausible) {
  std::vector<double> htn_systolic, other_systolic, diabetic_a1c, other_a1c;
  int bmi_checked = 0, bp_checked = 0;
  for (size_t b = 1; b < Thirty().size(); ++b) {
    json::Value bundle = ParseOrDie(Thirty()[b].text);
    const json::Array& entries = Entries(bundle);
    const json::Value& patient = *entries[0].Find("resource");
    int64_t birth = Instant(patient.GetString("birthDate"));
    double age = (kNow - birth) / kYearMicros;
    EXPECT_GE(age, 0);
    EXPECT_LT(age, 95.01);
    bool hypertensive = false, diabetic = false;
    std::map<std::string, Vitals> by_encounter;
    for (const json::Value& entry : entries) {
      const json::Value& r = *entry.Find("resource");
      std::string_view type = r.GetString("resourceType");
      if (type == "Condition") {
        std::string_view code = LoincCode(r);  // the first coding's code
        hypertensive |= code == "38341003";
        diabetic |= code == "44054006";
        int64_t onset = Instant(r.GetString("onsetDateTime"));
        EXPECT_GE(onset, birth);
        EXPECT_LE(onset, kNow);
        if (!r.GetString("abatementDateTime").empty()) {
          EXPECT_GE(Instant(r.GetString("abatementDateTime")), onset);
          EXPECT_LE(Instant(r.GetString("abatementDateTime")), kNow);
        }
      } else if (type == "Encounter") {
        const json::Value* period = r.Find("period");
        int64_t start = Instant(period->GetString("start"));
        int64_t end = Instant(period->GetString("end"));
        EXPECT_GE(start, birth);
        EXPECT_LT(start, end);
        EXPECT_LE(end, kNow);
      } else if (type == "Observation" && r.Find("encounter")) {
        std::string encounter(r.Find("encounter")->GetString("reference"));
        Vitals& v = by_encounter[encounter];
        if (const json::Value* q = r.Find("valueQuantity")) {
          v.values[std::string(LoincCode(r))] = QuantityValue(*q);
        }
        if (const json::Value* components = r.Find("component")) {
          for (const json::Value& c : components->as_array()) {
            double value = QuantityValue(*c.Find("valueQuantity"));
            if (LoincCode(c) == "8480-6") v.systolic = value;
            if (LoincCode(c) == "8462-4") v.diastolic = value;
          }
        }
      }
    }
    for (const auto& [encounter, v] : by_encounter) {
      auto get = [&](const char* code) {
        auto it = v.values.find(code);
        return it == v.values.end() ? -1.0 : it->second;
      };
      double h = get("8302-2"), w = get("29463-7"), bmi = get("39156-5");
      EXPECT_GT(h, 40);
      EXPECT_LT(h, 215);
      EXPECT_GT(w, 1.5);
      EXPECT_LT(w, 250);
      if (bmi > 0) {
        EXPECT_NEAR(bmi, w / (h / 100) / (h / 100), 0.051) << encounter;
        EXPECT_GT(bmi, 11);
        EXPECT_LT(bmi, 65);
        ++bmi_checked;
      }
      if (v.systolic > 0) {
        EXPECT_GT(v.systolic, v.diastolic) << encounter;
        EXPECT_GE(v.diastolic, 40);
        EXPECT_LE(v.systolic, 220);
        ++bp_checked;
        if (age >= 30) (hypertensive ? htn_systolic : other_systolic).push_back(v.systolic);
      }
      double hr = get("8867-4"), rr = get("9279-1"), temp = get("8310-5");
      EXPECT_TRUE(hr >= 40 && hr <= 200) << hr;
      EXPECT_TRUE(rr >= 8 && rr <= 60) << rr;
      EXPECT_TRUE(temp >= 35.5 && temp <= 41) << temp;
      double a1c = get("4548-4");
      if (a1c > 0) {
        EXPECT_TRUE(a1c >= 4 && a1c <= 14) << a1c;
        (diabetic ? diabetic_a1c : other_a1c).push_back(a1c);
      }
      double glucose = get("2339-0");
      if (glucose > 0) {
        EXPECT_TRUE(glucose >= 50 && glucose <= 400) << glucose;
      }
    }
  }
  EXPECT_GT(bmi_checked, 100);
  EXPECT_GT(bp_checked, 100);
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / v.size();
  };
  ASSERT_FALSE(htn_systolic.empty());
  ASSERT_FALSE(other_systolic.empty());
  EXPECT_GT(mean(htn_systolic), mean(other_systolic) + 5);
  ASSERT_FALSE(diabetic_a1c.empty());
  ASSERT_FALSE(other_a1c.empty());
  EXPECT_GT(mean(diabetic_a1c), mean(other_a1c) + 0.5);
}

std::map<std::string, int> CountTypes(const std::vector<Emitted>& bundles) {
  std::map<std::string, int> counts;
  for (size_t b = 1; b < bundles.size(); ++b) {
    json::Value bundle = ParseOrDie(bundles[b].text);
    for (const json::Value& entry : Entries(bundle)) {
      counts[std::string(entry.Find("resource")->GetString("resourceType"))]++;
    }
  }
  return counts;
}

TEST(GenerateTest, CountsScale) {
  const std::vector<Emitted>& all = Thirty();
  std::map<std::string, int> counts = CountTypes(all);
  EXPECT_EQ(counts["Patient"], 30);
  EXPECT_GE(counts["Coverage"], 30);
  EXPECT_EQ(counts["Claim"], counts["Encounter"]);
  for (const char* type : {"Encounter", "Observation", "Condition", "MedicationRequest",
                           "Immunization", "AllergyIntolerance", "DiagnosticReport"}) {
    EXPECT_GT(counts[type], 0) << type;
  }
  // Encounters per patient-year of history.
  double patient_years = 0;
  std::map<std::string, int> classes;
  for (size_t b = 1; b < all.size(); ++b) {
    json::Value bundle = ParseOrDie(all[b].text);
    const json::Array& entries = Entries(bundle);
    int64_t birth = Instant(entries[0].Find("resource")->GetString("birthDate"));
    double years =
        (kNow - std::max(birth, kNow - static_cast<int64_t>(10 * kYearMicros))) / kYearMicros;
    patient_years += years;
    for (const json::Value& entry : entries) {
      const json::Value& r = *entry.Find("resource");
      if (r.GetString("resourceType") == "Encounter")
        classes[std::string(r.Find("class")->GetString("code"))]++;
    }
  }
  double per_year = counts["Encounter"] / patient_years;
  EXPECT_GT(per_year, 1.0);
  EXPECT_LT(per_year, 8.0);
  EXPECT_GT(classes["AMB"], classes["EMER"]);
  EXPECT_GT(classes["EMER"], 0);
  EXPECT_GT(classes["IMP"], 0);
  EXPECT_GT(counts["Observation"], counts["Encounter"] * 4);

  // A shorter history gives proportionally fewer encounters.
  GenerateOptions one_year = Options(30, 7);
  one_year.years_of_history = 1;
  std::map<std::string, int> short_counts = CountTypes(GenerateAll(one_year));
  EXPECT_EQ(short_counts["Patient"], 30);
  EXPECT_LT(short_counts["Encounter"] * 4, counts["Encounter"]);
}

TEST(GenerateTest, PrintsCountsForTenPatients) {
  std::vector<Emitted> ten = GenerateAll(Options(10, 1));
  std::map<std::string, int> counts = CountTypes(ten);
  size_t bytes = 0;
  for (const Emitted& e : ten) bytes += e.text.size();
  int total = 0;
  std::string line;
  for (const auto& [type, n] : counts) {
    line += " " + type + "=" + std::to_string(n);
    total += n;
  }
  std::printf("10 patients (seed 1): %d resources, %zu bytes:%s\n", total, bytes, line.c_str());
  EXPECT_EQ(counts["Patient"], 10);
}

}  // namespace
}  // namespace fhirstone::generate
