// The FHIR R4 primitive types (https://hl7.org/fhir/R4/datatypes.html#primitive) and their
// lexical checks: the JSON type each one takes (boolean: JSON true/false; integer, positiveInt,
// unsignedInt, decimal: JSON number; all others: JSON string) and the regular expression of its
// StructureDefinition, implemented as hand-written scanners. Stateless free functions: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/json.h"

namespace fhirstone::fhir {

enum class PrimitiveType : uint8_t {
  kBase64Binary,
  kBoolean,
  kCanonical,
  kCode,
  kDate,
  kDateTime,
  kDecimal,
  kId,
  kInstant,
  kInteger,
  kMarkdown,
  kOid,
  kPositiveInt,
  kString,
  kTime,
  kUnsignedInt,
  kUri,
  kUrl,
  kUuid,
  kXhtml,
};

// "dateTime" -> kDateTime; nullopt when `name` is not an R4 primitive type.
std::optional<PrimitiveType> PrimitiveTypeFromName(std::string_view name);
// kDateTime -> "dateTime".
std::string_view PrimitiveTypeName(PrimitiveType type);
// The JSON type a value of `type` takes: Type::kBool, Type::kNumber or Type::kString.
json::Type PrimitiveJsonType(PrimitiveType type);

// True when `value` has the JSON type of `type` and its text matches the type's syntax.
bool IsValidPrimitive(PrimitiveType type, const json::Value& value);
// The same by type name; false for an unknown type name.
bool IsValidPrimitive(std::string_view fhir_type, const json::Value& value);
// Checks only the text: a JSON string's content, or a number's / boolean's JSON text
// ("12", "1.5e3", "true").
bool IsValidPrimitiveText(PrimitiveType type, std::string_view text);

// The checks one by one, on the text of the value.
bool IsValidInteger(std::string_view text);      // -2147483648..2147483647, no fraction/exponent
bool IsValidPositiveInt(std::string_view text);  // 1..2147483647
bool IsValidUnsignedInt(std::string_view text);  // 0..2147483647
bool IsValidDecimal(std::string_view text);      // a JSON number
bool IsValidString(std::string_view text);       // non-empty, at most 1,048,576 characters
bool IsValidCode(std::string_view text);         // tokens separated by single spaces
bool IsValidId(std::string_view text);           // [A-Za-z0-9\-\.]{1,64}
bool IsValidUri(std::string_view text);          // non-empty, no whitespace (uri, url, canonical)
bool IsValidOid(std::string_view text);          // urn:oid:[0-2](\.(0|[1-9][0-9]*))+
bool IsValidUuid(std::string_view text);         // urn:uuid: + lower-case 8-4-4-4-12 hex
bool IsValidDate(std::string_view text);         // YYYY, YYYY-MM or YYYY-MM-DD
bool IsValidDateTime(std::string_view text);     // a date, or YYYY-MM-DDThh:mm:ss(.f+)?(Z|+hh:mm)
bool IsValidInstant(std::string_view text);      // YYYY-MM-DDThh:mm:ss(.f+)?(Z|+hh:mm)
bool IsValidTime(std::string_view text);         // hh:mm:ss(.f+)?
bool IsValidBase64(std::string_view text);       // base64 alphabet, padded, whitespace ignored
bool IsValidXhtml(std::string_view text);        // starts with <div after optional whitespace

}  // namespace fhirstone::fhir
