#include "differential/query_generator.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "differential/oracle.h"

namespace fhirstone::differential {
namespace generator_internal {

// How a parameter's values are found in the resource JSON (independently of FHIRPath).
enum class Shape {
  kString,           // string values
  kHumanName,        // family, given, prefix, suffix, text
  kAddress,          // line, city, district, state, postalCode, country, text
  kCodeableConcept,  // codings (+ text)
  kCoding,
  kIdentifier,
  kCode,         // a primitive code or boolean
  kTrueOrFalse,  // a boolean the parameter computes (any resource): "true" and "false"
  kPhone,        // ContactPoint with system phone
  kDate,         // a date/dateTime/instant string
  kPeriod,
  kQuantity,
  kReference,
};

}  // namespace generator_internal

namespace {

using generator_internal::Shape;

const std::vector<std::string>& MainTypes() {
  static const std::vector<std::string> kTypes = {
      "Patient",      "Observation",       "Encounter",        "Condition", "Procedure",
      "Immunization", "MedicationRequest", "DiagnosticReport", "Claim"};
  return kTypes;
}

// Appends the JSON nodes at `path` ("a.b.c"; arrays are flattened at every step).
void Collect(const json::Value& node, std::string_view path, std::vector<const json::Value*>& out) {
  if (node.is_array()) {
    for (const json::Value& e : node.as_array()) Collect(e, path, out);
    return;
  }
  if (path.empty()) {
    out.push_back(&node);
    return;
  }
  size_t dot = path.find('.');
  const json::Value* child = node.Find(path.substr(0, dot));
  if (child) Collect(*child, dot == std::string_view::npos ? "" : path.substr(dot + 1), out);
}

void AddStrings(const json::Value& v, std::string_view key, std::vector<std::string>& out) {
  const json::Value* m = v.Find(key);
  if (!m) return;
  if (m->is_string() && !m->as_string().empty()) out.push_back(m->as_string());
  if (m->is_array())
    for (const json::Value& e : m->as_array())
      if (e.is_string() && !e.as_string().empty()) out.push_back(e.as_string());
}

std::string Str(const json::Value* v) { return v && v->is_string() ? v->as_string() : ""; }

// The code points of a UTF-8 string, each as its bytes.
std::vector<std::string> CodePoints(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    n = std::min(n, s.size() - i);
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string Join(const std::vector<std::string>& cps, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to && i < cps.size(); ++i) out += cps[i];
  return out;
}

std::string TrimSpaces(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  size_t start = s.find_first_not_of(' ');
  return start == std::string::npos ? "" : s.substr(start);
}

// Escapes the OR separator inside one value.
std::string EscapeValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string CivilDate(int64_t days) {
  auto leap = [](int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; };
  int64_t y = 1970;
  while (days < 0) {
    --y;
    days += leap(y) ? 366 : 365;
  }
  while (days >= (leap(y) ? 366 : 365)) {
    days -= leap(y) ? 366 : 365;
    ++y;
  }
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int m = 0;
  while (days >= kDays[m] + (m == 1 && leap(y) ? 1 : 0)) {
    days -= kDays[m] + (m == 1 && leap(y) ? 1 : 0);
    ++m;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02d-%02lld", static_cast<long long>(y), m + 1,
                static_cast<long long>(days + 1));
  return buf;
}

// An instant in microseconds as "YYYY-MM-DDThh:mm:ss[.fff]Z".
std::string UtcInstant(int64_t micros, bool millis) {
  constexpr int64_t kDay = 86400LL * 1000000;
  int64_t days = micros >= 0 ? micros / kDay : -((-micros + kDay - 1) / kDay);
  int64_t rest = micros - days * kDay;
  int64_t seconds = rest / 1000000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%sT%02lld:%02lld:%02lld", CivilDate(days).c_str(),
                static_cast<long long>(seconds / 3600), static_cast<long long>(seconds / 60 % 60),
                static_cast<long long>(seconds % 60));
  std::string out = buf;
  if (millis) {
    std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(rest % 1000000 / 1000));
    out += buf;
  }
  return out + "Z";
}

// An instant in microseconds as local time at `offset_minutes` from UTC, "...T10:00:00-05:00".
std::string ZonedInstant(int64_t micros, int offset_minutes, bool seconds) {
  std::string utc = UtcInstant(micros + offset_minutes * 60LL * 1000000, false);
  std::string out = utc.substr(0, seconds ? 19 : 16);
  char buf[16];
  int m = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  std::snprintf(buf, sizeof buf, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+', m / 60, m % 60);
  return out + buf;
}

const char* const kPrefixes[] = {"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"};

}  // namespace

struct QueryGenerator::AtomSpec {
  const char* type;
  const char* param;
  char kind;  // s string, t token, r reference, d date, q quantity, u uri
  const char* path;
  generator_internal::Shape shape;
};

// The parameters the generator draws values for, and where their values are in the JSON.
static const QueryGenerator::AtomSpec kSpecs[] = {
    // Patient
    {"Patient", "name", 's', "name", Shape::kHumanName},
    {"Patient", "family", 's', "name.family", Shape::kString},
    {"Patient", "given", 's', "name.given", Shape::kString},
    {"Patient", "address", 's', "address", Shape::kAddress},
    {"Patient", "address-city", 's', "address.city", Shape::kString},
    {"Patient", "address-state", 's', "address.state", Shape::kString},
    {"Patient", "address-postalcode", 's', "address.postalCode", Shape::kString},
    {"Patient", "gender", 't', "gender", Shape::kCode},
    {"Patient", "identifier", 't', "identifier", Shape::kIdentifier},
    {"Patient", "language", 't', "communication.language", Shape::kCodeableConcept},
    {"Patient", "phone", 't', "telecom", Shape::kPhone},
    {"Patient", "deceased", 't', "", Shape::kTrueOrFalse},
    {"Patient", "birthdate", 'd', "birthDate", Shape::kDate},
    {"Patient", "death-date", 'd', "deceasedDateTime", Shape::kDate},
    {"Patient", "general-practitioner", 'r', "generalPractitioner", Shape::kReference},
    {"Patient", "organization", 'r', "managingOrganization", Shape::kReference},
    // Observation
    {"Observation", "code", 't', "code", Shape::kCodeableConcept},
    {"Observation", "category", 't', "category", Shape::kCodeableConcept},
    {"Observation", "status", 't', "status", Shape::kCode},
    {"Observation", "combo-code", 't', "component.code", Shape::kCodeableConcept},
    {"Observation", "component-code", 't', "component.code", Shape::kCodeableConcept},
    {"Observation", "value-concept", 't', "valueCodeableConcept", Shape::kCodeableConcept},
    {"Observation", "subject", 'r', "subject", Shape::kReference},
    {"Observation", "patient", 'r', "subject", Shape::kReference},
    {"Observation", "encounter", 'r', "encounter", Shape::kReference},
    {"Observation", "date", 'd', "effectiveDateTime", Shape::kDate},
    {"Observation", "value-quantity", 'q', "valueQuantity", Shape::kQuantity},
    {"Observation", "component-value-quantity", 'q', "component.valueQuantity", Shape::kQuantity},
    {"Observation", "combo-value-quantity", 'q', "valueQuantity", Shape::kQuantity},
    {"Observation", "value-string", 's', "valueCodeableConcept.text", Shape::kString},
    // Encounter
    {"Encounter", "class", 't', "class", Shape::kCoding},
    {"Encounter", "type", 't', "type", Shape::kCodeableConcept},
    {"Encounter", "status", 't', "status", Shape::kCode},
    {"Encounter", "reason-code", 't', "reasonCode", Shape::kCodeableConcept},
    {"Encounter", "identifier", 't', "identifier", Shape::kIdentifier},
    {"Encounter", "participant-type", 't', "participant.type", Shape::kCodeableConcept},
    {"Encounter", "subject", 'r', "subject", Shape::kReference},
    {"Encounter", "patient", 'r', "subject", Shape::kReference},
    {"Encounter", "service-provider", 'r', "serviceProvider", Shape::kReference},
    {"Encounter", "practitioner", 'r', "participant.individual", Shape::kReference},
    {"Encounter", "participant", 'r', "participant.individual", Shape::kReference},
    {"Encounter", "location", 'r', "location.location", Shape::kReference},
    {"Encounter", "date", 'd', "period", Shape::kPeriod},
    // Condition
    {"Condition", "code", 't', "code", Shape::kCodeableConcept},
    {"Condition", "clinical-status", 't', "clinicalStatus", Shape::kCodeableConcept},
    {"Condition", "verification-status", 't', "verificationStatus", Shape::kCodeableConcept},
    {"Condition", "category", 't', "category", Shape::kCodeableConcept},
    {"Condition", "subject", 'r', "subject", Shape::kReference},
    {"Condition", "patient", 'r', "subject", Shape::kReference},
    {"Condition", "encounter", 'r', "encounter", Shape::kReference},
    {"Condition", "onset-date", 'd', "onsetDateTime", Shape::kDate},
    {"Condition", "recorded-date", 'd', "recordedDate", Shape::kDate},
    {"Condition", "abatement-date", 'd', "abatementDateTime", Shape::kDate},
    // Procedure
    {"Procedure", "code", 't', "code", Shape::kCodeableConcept},
    {"Procedure", "status", 't', "status", Shape::kCode},
    {"Procedure", "subject", 'r', "subject", Shape::kReference},
    {"Procedure", "patient", 'r', "subject", Shape::kReference},
    {"Procedure", "encounter", 'r', "encounter", Shape::kReference},
    {"Procedure", "location", 'r', "location", Shape::kReference},
    {"Procedure", "reason-reference", 'r', "reasonReference", Shape::kReference},
    {"Procedure", "date", 'd', "performedPeriod", Shape::kPeriod},
    {"Procedure", "date", 'd', "performedDateTime", Shape::kDate},
    // Immunization
    {"Immunization", "vaccine-code", 't', "vaccineCode", Shape::kCodeableConcept},
    {"Immunization", "status", 't', "status", Shape::kCode},
    {"Immunization", "patient", 'r', "patient", Shape::kReference},
    {"Immunization", "location", 'r', "location", Shape::kReference},
    {"Immunization", "date", 'd', "occurrenceDateTime", Shape::kDate},
    // MedicationRequest
    {"MedicationRequest", "code", 't', "medicationCodeableConcept", Shape::kCodeableConcept},
    {"MedicationRequest", "status", 't', "status", Shape::kCode},
    {"MedicationRequest", "intent", 't', "intent", Shape::kCode},
    {"MedicationRequest", "subject", 'r', "subject", Shape::kReference},
    {"MedicationRequest", "patient", 'r', "subject", Shape::kReference},
    {"MedicationRequest", "encounter", 'r', "encounter", Shape::kReference},
    {"MedicationRequest", "requester", 'r', "requester", Shape::kReference},
    {"MedicationRequest", "medication", 'r', "medicationReference", Shape::kReference},
    {"MedicationRequest", "authoredon", 'd', "authoredOn", Shape::kDate},
    // DiagnosticReport
    {"DiagnosticReport", "code", 't', "code", Shape::kCodeableConcept},
    {"DiagnosticReport", "category", 't', "category", Shape::kCodeableConcept},
    {"DiagnosticReport", "status", 't', "status", Shape::kCode},
    {"DiagnosticReport", "subject", 'r', "subject", Shape::kReference},
    {"DiagnosticReport", "patient", 'r', "subject", Shape::kReference},
    {"DiagnosticReport", "encounter", 'r', "encounter", Shape::kReference},
    {"DiagnosticReport", "result", 'r', "result", Shape::kReference},
    {"DiagnosticReport", "performer", 'r', "performer", Shape::kReference},
    {"DiagnosticReport", "date", 'd', "effectiveDateTime", Shape::kDate},
    {"DiagnosticReport", "issued", 'd', "issued", Shape::kDate},
    // Claim
    {"Claim", "status", 't', "status", Shape::kCode},
    {"Claim", "use", 't', "use", Shape::kCode},
    {"Claim", "priority", 't', "priority", Shape::kCodeableConcept},
    {"Claim", "patient", 'r', "patient", Shape::kReference},
    {"Claim", "provider", 'r', "provider", Shape::kReference},
    {"Claim", "facility", 'r', "facility", Shape::kReference},
    {"Claim", "encounter", 'r', "item.encounter", Shape::kReference},
    {"Claim", "created", 'd', "created", Shape::kDate},
    // Practitioner, Organization, Location: targets of chains and _has (and accents)
    {"Practitioner", "name", 's', "name", Shape::kHumanName},
    {"Practitioner", "family", 's', "name.family", Shape::kString},
    {"Practitioner", "given", 's', "name.given", Shape::kString},
    {"Practitioner", "identifier", 't', "identifier", Shape::kIdentifier},
    {"Practitioner", "gender", 't', "gender", Shape::kCode},
    {"Organization", "name", 's', "name", Shape::kString},
    {"Organization", "address-city", 's', "address.city", Shape::kString},
    {"Organization", "identifier", 't', "identifier", Shape::kIdentifier},
    {"Location", "name", 's', "name", Shape::kString},
    {"Location", "address-city", 's', "address.city", Shape::kString},
    // uri: the profiles Synthea declares
    {"Patient", "_profile", 'u', "meta.profile", Shape::kString},
    {"Observation", "_profile", 'u', "meta.profile", Shape::kString},
    {"Encounter", "_profile", 'u', "meta.profile", Shape::kString},
    {"Condition", "_profile", 'u', "meta.profile", Shape::kString},
    {"DiagnosticReport", "_profile", 'u', "meta.profile", Shape::kString},
    {"MedicationRequest", "_profile", 'u', "meta.profile", Shape::kString},
};

// Parameters for :missing (each has resources with and without a value in the sample).
static const std::pair<const char*, const char*> kMissing[] = {
    {"Patient", "death-date"},
    {"Patient", "general-practitioner"},
    {"Patient", "organization"},
    {"Observation", "value-quantity"},
    {"Observation", "value-concept"},
    {"Observation", "component-code"},
    {"Observation", "value-string"},
    {"Encounter", "reason-code"},
    {"Condition", "abatement-date"},
    {"Procedure", "reason-reference"},
    {"Procedure", "date"},
    {"MedicationRequest", "medication"},
    {"MedicationRequest", "code"},
    {"DiagnosticReport", "result"},
    {"Claim", "facility"},
    {"Immunization", "reason-code"},
    {"Encounter", "service-provider"},
    {"Observation", "combo-value-quantity"},
    {"Patient", "active"},
    {"Patient", "deceased"},
};

// Chains: the links (query key part, JSON path of the reference, target type) from a source type.
struct ChainLink {
  const char* key;
  const char* path;
  const char* target;
};
struct ChainSpec {
  const char* source;
  std::vector<ChainLink> links;
};
static const ChainSpec* ChainSpecs(size_t* n) {
  static const std::vector<ChainSpec> kChains = {
      {"Observation", {{"subject", "subject", "Patient"}}},
      {"Observation", {{"patient", "subject", "Patient"}}},
      {"Observation", {{"encounter", "encounter", "Encounter"}}},
      {"Encounter", {{"patient", "subject", "Patient"}}},
      {"Encounter", {{"subject", "subject", "Patient"}}},
      {"Encounter", {{"service-provider", "serviceProvider", "Organization"}}},
      {"Encounter", {{"practitioner", "participant.individual", "Practitioner"}}},
      {"Condition", {{"patient", "subject", "Patient"}}},
      {"Condition", {{"encounter", "encounter", "Encounter"}}},
      {"Claim", {{"patient", "patient", "Patient"}}},
      {"Claim", {{"provider", "provider", "Organization"}}},
      {"Immunization", {{"patient", "patient", "Patient"}}},
      {"MedicationRequest", {{"subject", "subject", "Patient"}}},
      {"MedicationRequest", {{"requester", "requester", "Practitioner"}}},
      {"DiagnosticReport", {{"result", "result", "Observation"}}},
      {"Procedure", {{"location", "location", "Location"}}},
      {"Observation",
       {{"encounter", "encounter", "Encounter"},
        {"service-provider", "serviceProvider", "Organization"}}},
      {"DiagnosticReport",
       {{"result", "result", "Observation"}, {"subject", "subject", "Patient"}}},
      {"Procedure",
       {{"encounter", "encounter", "Encounter"},
        {"practitioner", "participant.individual", "Practitioner"}}},
  };
  *n = kChains.size();
  return kChains.data();
}

// Reverse chains: resources of `target` that a `source` refers to with parameter `reference`
// (whose values are at `path` in the source).
struct HasSpec {
  const char* target;
  const char* source;
  const char* reference;
  const char* path;
};
static const HasSpec kHas[] = {
    {"Patient", "Observation", "patient", "subject"},
    {"Patient", "Observation", "subject", "subject"},
    {"Patient", "Condition", "patient", "subject"},
    {"Patient", "Encounter", "subject", "subject"},
    {"Patient", "Immunization", "patient", "patient"},
    {"Patient", "MedicationRequest", "patient", "subject"},
    {"Patient", "Procedure", "subject", "subject"},
    {"Patient", "DiagnosticReport", "patient", "subject"},
    {"Patient", "Claim", "patient", "patient"},
    {"Encounter", "Observation", "encounter", "encounter"},
    {"Encounter", "Condition", "encounter", "encounter"},
    {"Encounter", "Procedure", "encounter", "encounter"},
    {"Encounter", "DiagnosticReport", "encounter", "encounter"},
    {"Observation", "DiagnosticReport", "result", "result"},
    {"Practitioner", "Encounter", "practitioner", "participant.individual"},
    {"Organization", "Encounter", "service-provider", "serviceProvider"},
};

static const QueryGenerator::AtomSpec* Specs(size_t* n) {
  *n = sizeof(kSpecs) / sizeof(kSpecs[0]);
  return kSpecs;
}

// ---- GeneratedQuery ----

bool GeneratedQuery::Has(std::string_view feature) const {
  return std::find(features.begin(), features.end(), feature) != features.end();
}

std::string GeneratedQuery::Describe() const {
  std::string out = type;
  char sep = '?';
  for (const auto& [k, v] : params) {
    out += sep + k + "=" + v;
    sep = '&';
  }
  return out;
}

std::string GeneratedQuery::Encoded() const {
  std::string out = type;
  char sep = '?';
  for (const auto& [k, v] : params) {
    out += sep + PercentEncode(k) + "=" + PercentEncode(v);
    sep = '&';
  }
  return out;
}

std::string PercentEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || c == ':' || c == ',' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string PercentDecode(std::string_view s) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::optional<GeneratedQuery> ParseDescribed(std::string_view text) {
  size_t q = text.find('?');
  if (q == std::string_view::npos || q == 0) return std::nullopt;
  GeneratedQuery out;
  out.type = std::string(text.substr(0, q));
  std::string_view rest = text.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    out.params.emplace_back(PercentDecode(pair.substr(0, eq)), PercentDecode(pair.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  out.features.push_back("replayed");
  return out;
}

// ---- QueryGenerator ----

QueryGenerator::QueryGenerator(const Dataset& data, const search::Registry& registry, uint64_t seed,
                               std::string base)
    : data_(data),
      registry_(registry),
      state_(seed ^ 0x9E3779B97F4A7C15ULL),
      base_(std::move(base)) {}

uint64_t QueryGenerator::Next() {  // SplitMix64
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

size_t QueryGenerator::Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }

bool QueryGenerator::Chance(int percent) { return static_cast<int>(Below(100)) < percent; }

std::string QueryGenerator::StringVariant(const std::string& value,
                                          std::vector<std::string>& features,
                                          std::string* modifier) {
  std::vector<std::string> cps = CodePoints(value);
  auto change_case = [&](std::string s) {
    size_t c = Below(3);
    for (char& ch : s) {
      if (c == 0 && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      if (c == 1 && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
    }
    return s;
  };
  auto prefix = [&] {
    size_t n = 1 + Below(cps.size());
    std::string p = TrimSpaces(Join(cps, 0, n));
    return p.empty() ? cps[0] : p;
  };
  if (*modifier == "exact") {
    if (Chance(80)) return value;
    features.push_back("string:exact-other-case");
    std::string lower = value;
    for (char& ch : lower)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return lower;
  }
  if (*modifier == "contains") {
    size_t from = Below(cps.size());
    size_t to = from + 1 + Below(cps.size() - from);
    std::string s = TrimSpaces(Join(cps, from, to));
    return change_case(s.empty() ? prefix() : s);
  }
  std::string p = prefix();
  bool has_accent = false;
  for (unsigned char c : value) has_accent = has_accent || c >= 0x80;
  if (has_accent && Chance(60)) {
    // Search without the accents the value has.
    static const std::pair<const char*, const char*> kStrip[] = {
        {"á", "a"}, {"é", "e"}, {"í", "i"}, {"ó", "o"}, {"ú", "u"}, {"ñ", "n"}};
    for (const auto& [from, to] : kStrip)
      for (size_t at; (at = p.find(from)) != std::string::npos;) p.replace(at, 2, to);
    features.push_back("string:accent");
    return change_case(p);
  }
  if (Chance(20)) {
    // Search with accents the value does not have, precomposed or (sometimes) decomposed.
    static const std::pair<char, const char*> kAccent[] = {
        {'a', "á"}, {'e', "é"}, {'i', "î"}, {'o', "ö"}, {'u', "ü"}, {'n', "ñ"},
        {'c', "ç"}, {'A', "Á"}, {'E', "È"}, {'O', "Ø"}, {'U', "Ú"}};
    bool decomposed = Chance(25);
    std::string out;
    bool changed = false;
    for (char ch : p) {
      const char* accented = nullptr;
      for (const auto& [plain, with] : kAccent)
        if (ch == plain) accented = with;
      if (accented && (!changed || Chance(50))) {
        if (decomposed && std::string_view("aeiouAEIOU").find(ch) != std::string_view::npos) {
          out.push_back(ch);
          out += "\xCC\x81";  // U+0301 COMBINING ACUTE ACCENT
        } else {
          out += accented;
        }
        changed = true;
      } else {
        out.push_back(ch);
      }
    }
    if (changed) {
      features.push_back(decomposed ? "string:accent-decomposed" : "string:accent");
      return out;
    }
  }
  return change_case(p);
}

std::optional<QueryGenerator::Criterion> QueryGenerator::StringCriterion(const AtomSpec& spec,
                                                                         const json::Value& r) {
  std::string modifier;
  size_t mode = Below(100);
  if (mode < 55) {
    modifier = "";
  } else if (mode < 77) {
    modifier = "exact";
  } else {
    modifier = "contains";
  }
  auto strings_of = [&](const json::Value& resource) {
    std::vector<const json::Value*> nodes;
    Collect(resource, spec.path, nodes);
    std::vector<std::string> out;
    for (const json::Value* n : nodes) {
      if (spec.shape == Shape::kString) {
        if (n->is_string() && !n->as_string().empty()) out.push_back(n->as_string());
      } else if (spec.shape == Shape::kHumanName) {
        for (const char* part : {"family", "given", "prefix", "suffix", "text"})
          AddStrings(*n, part, out);
      } else {
        for (const char* part : {"line", "city", "district", "state", "postalCode", "country"})
          AddStrings(*n, part, out);
      }
    }
    return out;
  };
  std::vector<std::string> strings = strings_of(r);
  if (strings.empty()) return std::nullopt;
  Criterion c;
  c.features = {"string", modifier.empty() ? "string:prefix" : "string:" + modifier};
  c.key = std::string(spec.param) + (modifier.empty() ? "" : ":" + modifier);
  c.value = EscapeValue(StringVariant(Pick(strings), c.features, &modifier));
  if (Chance(15)) {
    const auto& all = data_.OfType(spec.type);
    std::vector<std::string> other = strings_of(*Pick(all));
    if (!other.empty()) {
      c.value += "," + EscapeValue(StringVariant(Pick(other), c.features, &modifier));
      c.features.push_back("or");
    }
  }
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::TokenCriterion(const AtomSpec& spec,
                                                                        const json::Value& r,
                                                                        bool plain) {
  struct Token {
    bool has_system = false;
    std::string system, code;
    std::vector<std::string> texts;
  };
  auto tokens_of = [&](const json::Value& resource) {
    std::vector<const json::Value*> nodes;
    Collect(resource, spec.path, nodes);
    std::vector<Token> out;
    for (const json::Value* n : nodes) {
      switch (spec.shape) {
        case Shape::kCodeableConcept: {
          std::vector<std::string> texts;
          AddStrings(*n, "text", texts);
          std::vector<const json::Value*> codings;
          Collect(*n, "coding", codings);
          for (const json::Value* coding : codings) {
            Token t{coding->Find("system") != nullptr, Str(coding->Find("system")),
                    Str(coding->Find("code")), texts};
            AddStrings(*coding, "display", t.texts);
            out.push_back(std::move(t));
          }
          break;
        }
        case Shape::kCoding: {
          Token t{n->Find("system") != nullptr, Str(n->Find("system")), Str(n->Find("code")), {}};
          AddStrings(*n, "display", t.texts);
          out.push_back(std::move(t));
          break;
        }
        case Shape::kIdentifier: {
          Token t{n->Find("system") != nullptr, Str(n->Find("system")), Str(n->Find("value")), {}};
          if (const json::Value* type = n->Find("type")) AddStrings(*type, "text", t.texts);
          out.push_back(std::move(t));
          break;
        }
        case Shape::kTrueOrFalse:
          out.push_back({false, "", "true", {}});
          out.push_back({false, "", "false", {}});
          break;
        case Shape::kPhone:
          if (Str(n->Find("system")) == "phone")
            out.push_back({false, "", Str(n->Find("value")), {}});
          break;
        default:
          if (n->is_string()) out.push_back({false, "", n->as_string(), {}});
          if (n->is_bool()) out.push_back({false, "", n->as_bool() ? "true" : "false", {}});
          break;
      }
    }
    out.erase(std::remove_if(out.begin(), out.end(),
                             [](const Token& t) { return t.code.empty() && t.texts.empty(); }),
              out.end());
    return out;
  };
  std::vector<Token> tokens = tokens_of(r);
  if (tokens.empty()) return std::nullopt;
  const Token& t = Pick(tokens);
  std::string form;  // code, system|code, |code, system|, not, text, unknown
  size_t roll = Below(100);
  if (t.has_system) {
    form = roll < 30   ? "code"
           : roll < 58 ? "system|code"
           : roll < 63 ? "|code"
           : roll < 71 ? "system|"
           : roll < 83 ? "not"
           : roll < 95 ? "text"
                       : "unknown";
  } else {
    form = roll < 65 ? "code" : roll < 92 ? "not" : "unknown";
  }
  if (plain && form == "not") form = "code";
  if (form == "text" && t.texts.empty()) form = "code";
  bool has_letters = std::any_of(t.code.begin(), t.code.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
  });
  if (form == "code" && has_letters && Chance(8)) form = "other-case";
  Criterion c;
  c.features = {"token", "token:" + form};
  c.key = spec.param;
  auto render = [&](const Token& tok) -> std::string {
    if (form == "code") return EscapeValue(tok.code);
    if (form == "system|code") return EscapeValue(tok.system + "|" + tok.code);
    if (form == "|code") return EscapeValue("|" + tok.code);
    if (form == "system|") return EscapeValue(tok.system + "|");
    if (form == "unknown") return "no-such-code";
    if (form == "other-case") {
      // Codes are case-sensitive: the code with the case of its letters swapped.
      std::string swapped = tok.code;
      for (char& ch : swapped)
        ch = ch >= 'a' && ch <= 'z'   ? static_cast<char>(ch - 'a' + 'A')
             : ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a')
                                      : ch;
      return EscapeValue(swapped);
    }
    if (form == "not") {
      if (tok.has_system && Chance(50)) return EscapeValue(tok.system + "|" + tok.code);
      return EscapeValue(tok.code);
    }
    // text: a prefix of a display or text, in any case
    const std::string& text = tok.texts[Below(tok.texts.size())];
    std::vector<std::string> cps = CodePoints(text);
    std::string p = TrimSpaces(Join(cps, 0, 1 + Below(cps.size())));
    if (p.empty()) p = cps[0];
    if (Chance(50))
      for (char& ch : p)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return EscapeValue(p);
  };
  if (form == "not") c.key += ":not";
  if (form == "text") c.key += ":text";
  c.value = render(t);
  if (form != "unknown" && Chance(20)) {
    std::vector<Token> other = tokens_of(*Pick(data_.OfType(spec.type)));
    if (!other.empty()) {
      const Token& o = Pick(other);
      if ((form != "text" || !o.texts.empty()) && (!form.starts_with("system") || o.has_system)) {
        c.value += "," + render(o);
        c.features.push_back("or");
      }
    }
  }
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::ReferenceCriterion(const AtomSpec& spec,
                                                                            const json::Value& r) {
  auto refs_of = [&](const json::Value& resource) {
    std::vector<const json::Value*> nodes;
    Collect(resource, spec.path, nodes);
    std::vector<std::pair<std::string, std::string>> out;
    for (const json::Value* n : nodes) {
      std::string ref = Str(n->Find("reference"));
      size_t slash = ref.find('/');
      if (ref.empty() || ref[0] == '#' || slash == std::string::npos) continue;
      out.emplace_back(ref.substr(0, slash), ref.substr(slash + 1));
    }
    return out;
  };
  auto refs = refs_of(r);
  if (refs.empty()) return std::nullopt;
  auto [type, id] = Pick(refs);
  size_t roll = Below(100);
  std::string form = roll < 30   ? "id"
                     : roll < 62 ? "Type/id"
                     : roll < 80 ? "[type]"
                     : roll < 89 ? "absolute"
                     : roll < 95 ? "foreign-absolute"
                                 : "unknown";
  if (base_.empty() && form.ends_with("absolute")) form = "Type/id";
  Criterion c;
  c.features = {"reference", "reference:" + form};
  c.key = spec.param;
  if (form == "[type]") c.key += ":" + type;
  auto render = [&](const std::string& t, const std::string& i) {
    if (form == "Type/id") return t + "/" + i;
    if (form == "absolute") return base_ + "/" + t + "/" + i;
    // The same type and id under another server's base: not a local resource.
    if (form == "foreign-absolute") return "http://other.example.org/fhir/" + t + "/" + i;
    if (form == "unknown") return t + "/no-such-id";
    return i;
  };
  c.value = render(type, id);
  if (form != "unknown" && Chance(20)) {
    auto other = refs_of(*Pick(data_.OfType(spec.type)));
    if (!other.empty()) {
      auto [t2, i2] = Pick(other);
      if (form != "[type]" || t2 == type) {
        c.value += "," + render(t2, i2);
        c.features.push_back("or");
      }
    }
  }
  return c;
}

std::string QueryGenerator::DateValue(std::string_view source, std::vector<std::string>& features) {
  int64_t low = 0, high = 0;
  if (!oracle_internal::ParseDateRange(source, &low, &high) || source.size() < 10) {
    features.push_back("date@year");
    return std::string(source.substr(0, 4));
  }
  bool has_time = source.size() > 10;
  bool has_fraction = source.find('.') != std::string_view::npos;
  size_t roll = Below(100);
  std::string precision = roll < 15                    ? "year"
                          : roll < 32                  ? "month"
                          : roll < 58                  ? "day"
                          : roll < 66                  ? "minute"
                          : roll < 88 || !has_fraction ? "second"
                          : roll < 96                  ? "millisecond"
                                                       : "microsecond";
  features.push_back("date@" + precision);
  int shift = Chance(25) ? (Chance(50) ? 1 : -1) : 0;
  if (shift) features.push_back("date:shifted");
  int year = std::stoi(std::string(source.substr(0, 4)));
  int month = std::stoi(std::string(source.substr(5, 2)));
  char buf[32];
  if (precision == "year") {
    std::snprintf(buf, sizeof buf, "%04d", year + shift);
    return buf;
  }
  if (precision == "month") {
    int m = month - 1 + shift;
    int y = year + (m < 0 ? -1 : m > 11 ? 1 : 0);
    m = (m + 12) % 12;
    std::snprintf(buf, sizeof buf, "%04d-%02d", y, m + 1);
    return buf;
  }
  int64_t day_low = 0, day_high = 0;
  oracle_internal::ParseDateRange(source.substr(0, 10), &day_low, &day_high);
  constexpr int64_t kDay = 86400LL * 1000000;
  if (precision == "day") return CivilDate(day_low / kDay + shift);
  if (precision == "millisecond") return UtcInstant(low + shift * 1000, true);
  if (precision == "microsecond") {
    // Finer than the stored value: "...40.0480Z" (4 digits) or "...40.048000Z" (6 digits).
    std::string ms = UtcInstant(low + shift * 1000, true);
    return ms.substr(0, ms.size() - 1) + (Chance(50) ? "0" : "000") + "Z";
  }
  static const int kOffsets[] = {0, -300, 120, 330, -600, 840};
  if (precision == "minute") {
    // Minutes are allowed in search values (search.html#date), with a zone.
    int64_t minute = low - ((low % 60000000) + 60000000) % 60000000 + shift * 60000000LL;
    return ZonedInstant(minute, kOffsets[Below(6)], false);
  }
  // second
  if (!has_time) {
    int64_t t = day_low + static_cast<int64_t>(Below(86400)) * 1000000;
    return UtcInstant(t, false);
  }
  if (shift)
    return UtcInstant(low - low % 1000000 + shift * (Chance(50) ? 1 : 3600) * 1000000LL, false);
  if (Chance(50)) {
    features.push_back("date:zone-as-written");
    std::string s(source);
    size_t dot = s.find('.');
    if (dot != std::string::npos) {
      size_t end = dot + 1;
      while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
      s.erase(dot, end - dot);
    }
    return s;
  }
  int64_t second = low - ((low % 1000000) + 1000000) % 1000000;
  if (Chance(50)) {
    features.push_back("date:other-zone");
    return ZonedInstant(second, kOffsets[Below(6)], true);
  }
  return UtcInstant(second, false);
}

std::optional<QueryGenerator::Criterion> QueryGenerator::DateCriterion(const AtomSpec& spec,
                                                                       const json::Value& r) {
  auto dates_of = [&](const json::Value& resource) {
    std::vector<const json::Value*> nodes;
    Collect(resource, spec.path, nodes);
    std::vector<std::string> out;
    for (const json::Value* n : nodes) {
      if (n->is_string()) out.push_back(n->as_string());
      if (n->is_object()) {
        if (std::string s = Str(n->Find("start")); !s.empty()) out.push_back(s);
        if (std::string s = Str(n->Find("end")); !s.empty()) out.push_back(s);
      }
    }
    return out;
  };
  std::vector<std::string> dates = dates_of(r);
  if (dates.empty()) return std::nullopt;
  Criterion c;
  c.key = spec.param;
  c.features = {"date"};
  if (spec.shape == Shape::kPeriod) c.features.push_back("date:period");
  auto one = [&](const std::string& source) {
    std::string prefix = kPrefixes[Below(9)];
    c.features.push_back("date:" + (prefix.empty() ? std::string("(none)") : prefix));
    return prefix + DateValue(source, c.features);
  };
  c.value = one(Pick(dates));
  if (Chance(10)) {
    std::vector<std::string> other = dates_of(*Pick(data_.OfType(spec.type)));
    if (!other.empty()) {
      c.value += "," + one(Pick(other));
      c.features.push_back("or");
    }
  }
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::QuantityCriterion(const AtomSpec& spec,
                                                                           const json::Value& r) {
  std::vector<const json::Value*> nodes;
  Collect(r, spec.path, nodes);
  std::vector<const json::Value*> quantities;
  for (const json::Value* n : nodes) {
    const json::Value* v = n->Find("value");
    if (v && v->is_number()) quantities.push_back(n);
  }
  if (quantities.empty()) return std::nullopt;
  const json::Value& q = *Pick(quantities);
  std::string text = q.Find("value")->as_string();
  double value = std::strtod(text.c_str(), nullptr);
  size_t dot = text.find('.');
  int decimals = dot == std::string::npos ? 0 : static_cast<int>(text.size() - dot - 1);
  Criterion c;
  c.key = spec.param;
  c.features = {"quantity"};
  size_t roll = Below(100);
  char buf[64];
  std::string number;
  if (roll < 35 || (roll < 65 && decimals == 0)) {
    number = text;
    c.features.push_back("quantity:as-written");
  } else if (roll < 65) {
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(Below(decimals)), value);
    number = buf;
    c.features.push_back("quantity:rounded");
  } else {
    double shifted = value * (1.0 + (static_cast<double>(Below(21)) - 10.0) / 100.0);
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(Below(2)), shifted);
    number = buf;
    c.features.push_back("quantity:shifted");
  }
  std::string prefix = kPrefixes[Below(9)];
  c.features.push_back("quantity:" + (prefix.empty() ? std::string("(none)") : prefix));
  oracle_internal::Decimal d;
  if ((prefix.empty() || prefix == "eq" || prefix == "ne") &&
      oracle_internal::ParseDecimal(number, &d)) {
    // Whether a stored value sits exactly on a bound of the range the number's precision
    // implies ([9.25, 9.35) for 9.3): such queries tell exact arithmetic from binary floating
    // point.
    oracle_internal::Decimal low{d.units * 10 - 5, d.scale + 1},
        high{d.units * 10 + 5, d.scale + 1};
    bool on_bound = false;
    for (const json::Value* resource : data_.OfType(spec.type)) {
      std::vector<const json::Value*> values;
      Collect(*resource, spec.path, values);
      if (std::string_view(spec.param).starts_with("combo"))
        Collect(*resource, "component.valueQuantity", values);
      for (const json::Value* v : values) {
        const json::Value* number_node = v->Find("value");
        oracle_internal::Decimal stored;
        if (number_node && number_node->is_number() &&
            oracle_internal::ParseDecimal(number_node->as_string(), &stored))
          on_bound = on_bound || oracle_internal::Compare(stored, low) == 0 ||
                     oracle_internal::Compare(stored, high) == 0;
      }
    }
    if (on_bound) c.features.push_back("quantity:value-on-precision-bound");
  }
  std::string system = Str(q.Find("system")), code = Str(q.Find("code")),
              unit = Str(q.Find("unit"));
  roll = Below(100);
  std::string units;
  if (roll < 45 || system.empty() || code.empty()) {
    c.features.push_back("quantity:no-unit");
  } else if (roll < 80) {
    units = "|" + system + "|" + code;
    c.features.push_back("quantity:|system|code");
  } else if (roll < 95) {
    units = "||" + (Chance(50) || unit.empty() ? code : unit);
    c.features.push_back("quantity:||code");
  } else {
    units = "|" + system + "|no-such-unit";
    c.features.push_back("quantity:wrong-unit");
  }
  c.value = prefix + number + EscapeValue(units);
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::UriCriterion(const AtomSpec& spec,
                                                                      const json::Value& r) {
  std::vector<const json::Value*> nodes;
  Collect(r, spec.path, nodes);
  std::vector<std::string> uris;
  for (const json::Value* n : nodes)
    if (n->is_string() && !n->as_string().empty()) uris.push_back(n->as_string());
  if (uris.empty()) return std::nullopt;
  const std::string& uri = Pick(uris);
  Criterion c;
  c.key = spec.param;
  size_t roll = Below(100);
  size_t last_slash = uri.rfind('/');
  if (roll < 45 || last_slash == std::string::npos || last_slash < 8) {
    c.value = uri;
    c.features = {"uri", "uri:exact"};
  } else if (roll < 70) {
    // Below a parent path (cut at a segment boundary, with or without the slash).
    c.key += ":below";
    c.value = uri.substr(0, last_slash + (Chance(50) ? 1 : 0));
    c.features = {"uri", "uri:below"};
  } else if (roll < 85) {
    c.key += ":above";
    c.value = uri + "/" + (Chance(50) ? "_history/2" : "child");
    c.features = {"uri", "uri:above"};
  } else if (roll < 93) {
    c.value = uri.substr(0, last_slash);  // a parent path, not the profile itself
    c.features = {"uri", "uri:exact", "uri:parent"};
  } else {
    c.value = "http://example.org/StructureDefinition/none";
    c.features = {"uri", "uri:unknown"};
  }
  c.value = EscapeValue(c.value);
  if (Chance(15)) {
    c.value += "," + EscapeValue(uri);
    c.features.push_back("or");
  }
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::MissingCriterion(const std::string& type) {
  std::vector<const char*> params;
  for (const auto& [t, p] : kMissing)
    if (type == t) params.push_back(p);
  if (params.empty()) return std::nullopt;
  bool missing = Chance(50);
  Criterion c;
  c.key = std::string(Pick(params)) + ":missing";
  c.value = missing ? "true" : "false";
  c.features = {"missing", missing ? "missing:true" : "missing:false"};
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::IdCriterion(const std::string& type) {
  const auto& all = data_.OfType(type);
  if (all.empty()) return std::nullopt;
  Criterion c;
  c.key = "_id";
  c.features = {"_id"};
  size_t n = 1 + Below(3);
  for (size_t i = 0; i < n; ++i) {
    if (i) c.value += ",";
    c.value += Chance(10) ? "no-such-id" : std::string(Pick(all)->GetString("id"));
  }
  if (n > 1) c.features.push_back("or");
  return c;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::FromSpec(const AtomSpec& spec,
                                                                  const json::Value* from,
                                                                  bool plain) {
  const auto& all = data_.OfType(spec.type);
  if (all.empty()) return std::nullopt;
  for (int attempt = 0; attempt < (from ? 1 : 30); ++attempt) {
    const json::Value& r = from ? *from : *Pick(all);
    std::optional<Criterion> c;
    switch (spec.kind) {
      case 's':
        c = StringCriterion(spec, r);
        break;
      case 't':
        c = TokenCriterion(spec, r, plain);
        break;
      case 'r':
        c = ReferenceCriterion(spec, r);
        break;
      case 'd':
        c = DateCriterion(spec, r);
        break;
      case 'q':
        c = QuantityCriterion(spec, r);
        break;
      case 'u':
        c = UriCriterion(spec, r);
        break;
    }
    if (c) return c;
  }
  return std::nullopt;
}

std::optional<QueryGenerator::Criterion> QueryGenerator::RandomCriterion(const std::string& type,
                                                                         std::string_view kinds,
                                                                         const json::Value* from,
                                                                         bool plain) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    char kind = kinds[Below(kinds.size())];
    if (kind == 'm') {
      if (auto c = MissingCriterion(type)) return c;
      continue;
    }
    if (kind == 'i') {
      if (from) {
        Criterion c;
        c.key = "_id";
        c.value = std::string(from->GetString("id"));
        c.features = {"_id"};
        return c;
      }
      if (auto c = IdCriterion(type)) return c;
      continue;
    }
    size_t n;
    const AtomSpec* specs = Specs(&n);
    std::vector<const AtomSpec*> candidates;
    for (size_t i = 0; i < n; ++i)
      if (type == specs[i].type && specs[i].kind == kind) candidates.push_back(&specs[i]);
    if (candidates.empty()) continue;
    if (auto c = FromSpec(*Pick(candidates), from, plain)) return c;
  }
  return std::nullopt;
}

std::optional<GeneratedQuery> QueryGenerator::Single(std::string_view kind) {
  GeneratedQuery q;
  std::optional<Criterion> c;
  if (kind == "m" || kind == "i") {
    q.type = Pick(MainTypes());
    c = RandomCriterion(q.type, kind, nullptr, false);
  } else {
    size_t n;
    const AtomSpec* specs = Specs(&n);
    std::vector<const AtomSpec*> candidates;
    for (size_t i = 0; i < n; ++i)
      if (specs[i].kind == kind[0]) candidates.push_back(&specs[i]);
    const AtomSpec& spec = *Pick(candidates);
    q.type = spec.type;
    c = FromSpec(spec, nullptr, false);
  }
  if (!c) return std::nullopt;
  q.params.emplace_back(c->key, c->value);
  q.features = c->features;
  return q;
}

std::optional<GeneratedQuery> QueryGenerator::And() {
  GeneratedQuery q;
  q.type = Pick(MainTypes());
  const auto& all = data_.OfType(q.type);
  if (all.empty()) return std::nullopt;
  // Half of the time both criteria come from one resource, so that the AND has matches.
  const json::Value* from = Chance(50) ? Pick(all) : nullptr;
  auto a = RandomCriterion(q.type, "ttrrddsqmi", from, false);
  auto b = RandomCriterion(q.type, "ttrdsqu", from, false);
  if (!a || !b) return std::nullopt;
  q.params = {{a->key, a->value}, {b->key, b->value}};
  q.features = a->features;
  q.features.insert(q.features.end(), b->features.begin(), b->features.end());
  q.features.push_back("and");
  return q;
}

std::optional<GeneratedQuery> QueryGenerator::DateRange() {
  size_t n;
  const AtomSpec* specs = Specs(&n);
  std::vector<const AtomSpec*> dates;
  for (size_t i = 0; i < n; ++i)
    if (specs[i].kind == 'd') dates.push_back(&specs[i]);
  const AtomSpec& spec = *Pick(dates);
  const auto& all = data_.OfType(spec.type);
  std::vector<std::string> values;
  for (int attempt = 0; attempt < 40 && values.size() < 2; ++attempt) {
    std::vector<const json::Value*> nodes;
    Collect(*Pick(all), spec.path, nodes);
    for (const json::Value* node : nodes) {
      if (node->is_string()) values.push_back(node->as_string());
      if (node->is_object() && node->Find("start")) values.push_back(Str(node->Find("start")));
    }
  }
  if (values.size() < 2) return std::nullopt;
  std::sort(values.begin(), values.end());
  GeneratedQuery q;
  q.type = spec.type;
  q.features = {"date", "and", "date:range"};
  std::string low_prefix = Chance(50) ? "ge" : "gt";
  std::string high_prefix = Chance(50) ? "le" : "lt";
  q.features.push_back("date:" + low_prefix);
  q.features.push_back("date:" + high_prefix);
  q.params.emplace_back(spec.param, low_prefix + DateValue(values.front(), q.features));
  q.params.emplace_back(spec.param, high_prefix + DateValue(values.back(), q.features));
  return q;
}

std::optional<GeneratedQuery> QueryGenerator::Chain() {
  size_t n;
  const ChainSpec* chains = ChainSpecs(&n);
  const ChainSpec& chain = chains[Below(n)];
  const auto& sources = data_.OfType(chain.source);
  if (sources.empty()) return std::nullopt;
  for (int attempt = 0; attempt < 30; ++attempt) {
    const json::Value* current = Pick(sources);
    std::vector<const ChainLink*> links;
    for (const ChainLink& link : chain.links) {
      std::vector<const json::Value*> nodes;
      Collect(*current, link.path, nodes);
      std::vector<const json::Value*> targets;
      for (const json::Value* node : nodes) {
        std::string ref = Str(node->Find("reference"));
        size_t slash = ref.find('/');
        if (slash == std::string::npos || ref.substr(0, slash) != link.target) continue;
        if (const json::Value* t = data_.Find(link.target, ref.substr(slash + 1)))
          targets.push_back(t);
      }
      if (targets.empty()) {
        current = nullptr;
        break;
      }
      current = Pick(targets);
      links.push_back(&link);
    }
    if (!current) continue;
    auto c = RandomCriterion(chain.links.back().target, "sstttddri", current, true);
    if (!c) continue;
    GeneratedQuery q;
    q.type = chain.source;
    q.features = c->features;
    q.features.push_back("chain");
    // A link names its target type sometimes when the reference parameter has one target type
    // with the next parameter, and when it has several, unless it is the last link and the
    // final parameter is of one type on all of them: then half the time it leaves the type out,
    // and the chain reads them all (the oracle's union).
    std::string key, type = chain.source;
    for (size_t i = 0; i < links.size(); ++i) {
      std::string next = i + 1 < links.size() ? links[i + 1]->key : c->key;
      next = next.substr(0, next.find(':'));
      const search::SearchParam* p = registry_.Find(type, links[i]->key);
      int candidates = 0;
      bool one_kind = i + 1 == links.size() && !next.starts_with("_");
      const search::SearchParam* chosen = registry_.Find(links[i]->target, next);
      if (p)
        for (const std::string& t : p->targets) {
          const search::SearchParam* q_param = registry_.Find(t, next);
          if (!next.starts_with("_") && !q_param) continue;
          ++candidates;
          if (!chosen || !q_param || q_param->type != chosen->type) one_kind = false;
        }
      key += links[i]->key;
      bool untyped = candidates > 1 && one_kind && Chance(50);
      if (untyped) {
        q.features.push_back("chain:several-types");
      } else if (candidates != 1 || Chance(25)) {
        key += std::string(":") + links[i]->target;
        q.features.push_back("chain:typed");
      }
      key += ".";
      type = links[i]->target;
    }
    q.params.emplace_back(key + c->key, c->value);
    if (chain.links.size() > 1) q.features.push_back("chain:2-links");
    return q;
  }
  return std::nullopt;
}

std::optional<GeneratedQuery> QueryGenerator::Has() {
  const size_t n = sizeof(kHas) / sizeof(kHas[0]);
  if (Chance(15)) {
    // Nested: patients with an encounter that has an observation matching the criterion.
    const auto& observations = data_.OfType("Observation");
    for (int attempt = 0; attempt < 20 && !observations.empty(); ++attempt) {
      const json::Value* o = Pick(observations);
      auto c = RandomCriterion("Observation", "ttdq", o, true);
      if (!c) continue;
      GeneratedQuery q;
      q.type = "Patient";
      q.params.emplace_back("_has:Encounter:patient:_has:Observation:encounter:" + c->key,
                            c->value);
      q.features = c->features;
      q.features.push_back("_has");
      q.features.push_back("_has:nested");
      return q;
    }
    return std::nullopt;
  }
  const HasSpec& spec = kHas[Below(n)];
  const auto& sources = data_.OfType(spec.source);
  for (int attempt = 0; attempt < 30 && !sources.empty(); ++attempt) {
    const json::Value* s = Pick(sources);
    std::vector<const json::Value*> nodes;
    Collect(*s, spec.path, nodes);
    bool refers = false;
    for (const json::Value* node : nodes)
      refers = refers || Str(node->Find("reference")).starts_with(std::string(spec.target) + "/");
    if (!refers) continue;
    auto c = RandomCriterion(spec.source, "tttddsq", s, true);
    if (!c) continue;
    GeneratedQuery q;
    q.type = spec.target;
    q.params.emplace_back("_has:" + std::string(spec.source) + ":" + spec.reference + ":" + c->key,
                          c->value);
    q.features = c->features;
    q.features.push_back("_has");
    return q;
  }
  return std::nullopt;
}

std::vector<GeneratedQuery> QueryGenerator::Generate(int count) {
  // Families in a fixed rotation, so that every one is well represented whatever the count.
  static const char* const kRotation[] = {
      "s", "t", "r", "d",          "q", "and", "chain", "_has", "t",   "d", "s", "m",
      "i", "r", "q", "date-range", "t", "d",   "chain", "_has", "and", "m", "u"};
  const size_t rotation = sizeof(kRotation) / sizeof(kRotation[0]);
  std::vector<GeneratedQuery> out;
  std::set<std::string> seen;
  for (size_t i = 0; static_cast<int>(out.size()) < count && i < static_cast<size_t>(count) * 20;
       ++i) {
    std::string_view family = kRotation[i % rotation];
    std::optional<GeneratedQuery> q;
    if (family == "and") {
      q = And();
    } else if (family == "chain") {
      q = Chain();
    } else if (family == "_has") {
      q = Has();
    } else if (family == "date-range") {
      q = DateRange();
    } else {
      q = Single(family);
    }
    if (!q || !seen.insert(q->Describe()).second) continue;
    q->features.insert(q->features.begin(), "on:" + q->type);
    std::sort(q->features.begin(), q->features.end());
    q->features.erase(std::unique(q->features.begin(), q->features.end()), q->features.end());
    out.push_back(std::move(*q));
  }
  return out;
}

}  // namespace fhirstone::differential
