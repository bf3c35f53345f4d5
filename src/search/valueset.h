// The codes of a ValueSet, for the token modifiers :in and :not-in
// (https://hl7.org/fhir/R4/search.html#token): its expansion when it carries one, else its
// compose (included concepts, whole code systems and other value sets, minus excluded concepts).
// Filters (is-a, regex...) need a terminology server: refused with Error::NotSupported.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::search {

struct ValueSetCode {
  std::string system;
  std::string code;  // empty: every code of `system`
  bool operator==(const ValueSetCode&) const = default;
};

// Finds a ValueSet by canonical URL (for compose.include.valueSet); Error::NotFound if unknown.
using ValueSetResolver = std::function<Result<json::Value>(std::string_view canonical)>;

// The codes of `value_set`, at most `max_codes` (more: Error::Invalid naming the count).
Result<std::vector<ValueSetCode>> ExpandValueSet(const json::Value& value_set,
                                                 const ValueSetResolver& resolve,
                                                 size_t max_codes = 1000);

// The codes of `code_system` (a CodeSystem resource) that `code` subsumes (`below`: the code
// and its descendants) or that subsume it (`above`: the code and its ancestors), by the
// concepts' nesting and their `parent` / `child` properties; for the token modifiers :below
// and :above. Error::Invalid when the code is not in the code system, or past `max_codes`.
Result<std::vector<std::string>> SubsumedCodes(const json::Value& code_system,
                                               std::string_view code, bool below,
                                               size_t max_codes = 1000);

}  // namespace fhirstone::search
