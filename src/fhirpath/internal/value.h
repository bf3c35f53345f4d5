// The values the evaluator works on: Val is either an element of the evaluated resource (a JSON
// node with its FHIR type) or a computed System value (Boolean, Integer, Decimal, String, Date,
// DateTime, Time, Quantity). Also the FHIRPath semantics of these values: the primitive view of
// an element, equality, equivalence, ordering, date/time parsing, formatting and arithmetic.
// Plain data and pure functions: thread-compatible. Internal to fhirstone_fhirpath.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/result.h"
#include "fhir/model.h"

namespace fhirstone::fhirpath::internal {

enum class SysType : uint8_t {
  kNode,  // an element of the resource (or of a resolved one)
  kBoolean,
  kInteger,
  kDecimal,
  kString,
  kDate,
  kDateTime,
  kTime,
  kQuantity,
};

// "System.String" for kString...; "" for kNode.
std::string_view SysTypeName(SysType t);
// "String" -> kString (without the "System." prefix); nullopt when not a System type name.
std::optional<SysType> SysTypeFromName(std::string_view name);

struct Val {
  SysType type = SysType::kNode;
  // kNode: the FHIR type (nullptr when unknown), the JSON node (nullptr for a primitive that has
  // only extensions) and the `_field` companion of a primitive.
  const fhir::StructureInfo* fhir = nullptr;
  const json::Value* node = nullptr;
  const json::Value* ext = nullptr;
  bool b = false;  // kBoolean
  int64_t i = 0;   // kInteger
  double d = 0;    // kDecimal, kQuantity
  // kString: the string; kDecimal / kQuantity: the number's text; kDate / kDateTime / kTime: the
  // text without '@'. Either owned (`text`) or borrowed from the Program (`text_ref`).
  const std::string* text_ref = nullptr;
  std::string text;
  std::string unit;  // kQuantity

  std::string_view Text() const { return text_ref != nullptr ? *text_ref : text; }
  bool is_node() const { return type == SysType::kNode; }

  static Val Node(const json::Value* node, const json::Value* ext, const fhir::StructureInfo* fhir);
  static Val Boolean(bool b);
  static Val Integer(int64_t i);
  // REQUIRES: `text` is a JSON number.
  static Val Decimal(double d, std::string text);
  // Formats `d` (nullopt when not finite).
  static std::optional<Val> DecimalFrom(double d);
  static Val String(std::string s);
  static Val Temporal(SysType type, std::string text);
  static Val Quantity(double d, std::string number_text, std::string unit);
};

// The primitive value of a Val, without copying: System values as they are; FHIR primitive
// elements as their System type (code, id, uri... -> String; integer, positiveInt... -> Integer;
// instant -> DateTime); FHIR Quantity (and Age, Duration...) elements as a Quantity whose unit is
// the UCUM code (else the unit text). type is kNode for complex elements and elements without a
// value.
struct Prim {
  SysType type = SysType::kNode;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string_view text;
  std::string_view unit;
};
Prim GetPrim(const Val& v);
// Whether `fhir` is `ancestor` or derives from it (Age -> Quantity, code -> string,
// Patient -> DomainResource -> Resource, Patient.contact -> BackboneElement -> Element).
bool DerivesFrom(const fhir::StructureInfo* fhir, std::string_view ancestor);

// Date / DateTime / Time values at their precision.
enum class Precision : uint8_t { kYear = 1, kMonth, kDay, kHour, kMinute, kSecond, kMillisecond };

struct DateTime {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0;
  Precision precision = Precision::kYear;
  bool has_tz = false;
  int tz_minutes = 0;
  bool time_only = false;
};

// Parses the text of a Date ("2015", "2015-02", "2015-02-04"), a DateTime (a date, optionally
// followed by "T" and a partial time hh[:mm[:ss[.fff]]] and a zone "Z" / "+hh:mm") or a Time
// ("hh[:mm[:ss[.fff]]]"); nullopt when malformed.
std::optional<DateTime> ParseTemporal(SysType type, std::string_view text);
// The text of `dt` as `type` at its precision ("2015-02-04T14:34:28.123+09:00").
std::string FormatTemporal(SysType type, const DateTime& dt);
// -1, 0, 1, or nullopt when the values differ only below the precision one of them has.
std::optional<int> CompareTemporal(const DateTime& a, const DateTime& b);
// `dt` plus `amount` `unit` (a calendar duration keyword or a UCUM time unit); nullopt when the
// unit is not a time unit or the result leaves years 1..9999.
std::optional<DateTime> AddDuration(const DateTime& dt, double amount, std::string_view unit);

// Number helpers.
std::optional<int64_t> ParseInteger(std::string_view text);
std::optional<double> ParseDecimal(std::string_view text);
// Shortest text of `d` with at most 15 significant digits, a valid JSON number.
std::string FormatDecimal(double d);

// FHIRPath `=`: nullopt when the result is empty (a value missing, or date/times of different
// precision).
std::optional<bool> Equal(const Val& a, const Val& b);
// FHIRPath `~`.
bool Equivalent(const Val& a, const Val& b);
// FHIRPath ordering (<, >, <=, >=): -1/0/1; nullopt when uncertain (date/time precision) or the
// units differ; an Error when the types cannot be compared.
Result<std::optional<int>> Compare(const Val& a, const Val& b);
// Identity for elements (same node), equality for computed values: how repeat() stops.
bool SameItem(const Val& a, const Val& b);

// toString() of a primitive value; nullopt for complex elements.
std::optional<std::string> ToText(const Val& v);

}  // namespace fhirstone::fhirpath::internal
