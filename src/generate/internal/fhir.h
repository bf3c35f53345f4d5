// Small builders of FHIR JSON for the generator: codings, references, quantities with a fixed
// number of decimals (json::Value::NumberText), money, and dates formatted from microseconds.
// Pure functions and a move-only object builder; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/json.h"

namespace fhirstone::generate::internal {

inline constexpr int64_t kSecond = 1000000;
inline constexpr int64_t kMinute = 60 * kSecond;
inline constexpr int64_t kHour = 60 * kMinute;
inline constexpr int64_t kDay = 24 * kHour;
inline constexpr double kYear = 365.2425 * kDay;

inline constexpr std::string_view kSnomed = "http://snomed.info/sct";
inline constexpr std::string_view kLoinc = "http://loinc.org";
inline constexpr std::string_view kRxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm";
inline constexpr std::string_view kCvx = "http://hl7.org/fhir/sid/cvx";
inline constexpr std::string_view kUcum = "http://unitsofmeasure.org";
inline constexpr std::string_view kNpiSystem = "http://hl7.org/fhir/sid/us-npi";
inline constexpr std::string_view kSsnSystem = "http://hl7.org/fhir/sid/us-ssn";
// Code systems of terminology.hl7.org.
inline constexpr std::string_view kOrganizationType =
    "http://terminology.hl7.org/CodeSystem/organization-type";
inline constexpr std::string_view kDegreeLicense = "http://terminology.hl7.org/CodeSystem/v2-0360";
inline constexpr std::string_view kPractitionerRoleCode =
    "http://terminology.hl7.org/CodeSystem/practitioner-role";
inline constexpr std::string_view kActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
inline constexpr std::string_view kParticipationType =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
inline constexpr std::string_view kConditionClinical =
    "http://terminology.hl7.org/CodeSystem/condition-clinical";
inline constexpr std::string_view kConditionVerification =
    "http://terminology.hl7.org/CodeSystem/condition-ver-status";
inline constexpr std::string_view kConditionCategory =
    "http://terminology.hl7.org/CodeSystem/condition-category";
inline constexpr std::string_view kAllergyClinical =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
inline constexpr std::string_view kAllergyVerification =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
inline constexpr std::string_view kObservationCategory =
    "http://terminology.hl7.org/CodeSystem/observation-category";
inline constexpr std::string_view kDiagnosticServiceSection =
    "http://terminology.hl7.org/CodeSystem/v2-0074";
inline constexpr std::string_view kMaritalStatus =
    "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus";
inline constexpr std::string_view kIdentifierType = "http://terminology.hl7.org/CodeSystem/v2-0203";
inline constexpr std::string_view kClaimType = "http://terminology.hl7.org/CodeSystem/claim-type";
inline constexpr std::string_view kProcessPriority =
    "http://terminology.hl7.org/CodeSystem/processpriority";
inline constexpr std::string_view kSubscriberRelationship =
    "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
inline constexpr std::string_view kCoverageClass =
    "http://terminology.hl7.org/CodeSystem/coverage-class";
inline constexpr std::string_view kObservationInterpretation =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
inline constexpr std::string_view kDischargeDisposition =
    "http://terminology.hl7.org/CodeSystem/discharge-disposition";

// A code of a code system with its display.
struct Code {
  std::string_view system;
  std::string_view code;
  std::string_view display;
};

// Builds a JSON object member by member, in order.
class Obj {
 public:
  Obj& Add(std::string_view key, json::Value value) {
    members_.emplace_back(std::string(key), std::move(value));
    return *this;
  }
  json::Value Build() { return json::Value(std::move(members_)); }

 private:
  json::Object members_;
};

// A JSON array of the given values.
template <typename... V>
json::Value List(V&&... items) {
  json::Array array;
  array.reserve(sizeof...(items));
  (array.push_back(json::Value(std::forward<V>(items))), ...);
  return json::Value(std::move(array));
}

json::Value Coding(const Code& code);
// {"coding": [code], "text": display}.
json::Value Concept(const Code& code);
// {"coding": [code]} without text.
json::Value ConceptNoText(const Code& code);
json::Value Ref(std::string_view reference);
json::Value Ref(std::string_view reference, std::string_view display);

// `value` rounded to `places` decimals, written with exactly that many ("72.0", "5", "0.25").
std::string FixedText(double value, int places);
json::Value Decimal(double value, int places);
json::Value Integer(int64_t value);
// A UCUM Quantity: {"value", "unit", "system", "code"}.
json::Value Quantity(double value, int places, std::string_view unit, std::string_view ucum);
// {"value": cents / 100 with two decimals, "currency": "USD"}. REQUIRES: cents >= 0.
json::Value Money(int64_t cents);

// The lowercase ASCII letters and digits of `utf8`, accented Latin letters folded to their base
// letter ("Núñez" -> "nunez", "O'Brien" -> "obrien"): the local part of a generated e-mail address.
std::string AsciiLetters(std::string_view utf8);

// "2019-03-04" (UTC).
std::string FormatDate(int64_t micros);
// "2019-03-04T14:05:00Z": a FHIR dateTime at second precision.
std::string FormatDateTime(int64_t micros);
// The UTC calendar month (1-12) and year of `micros`.
int MonthOf(int64_t micros);
int YearOf(int64_t micros);
// Midnight UTC of the day that holds `micros`.
int64_t StartOfDay(int64_t micros);

}  // namespace fhirstone::generate::internal
