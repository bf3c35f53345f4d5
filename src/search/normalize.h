// String normalization for string search (https://hl7.org/fhir/R4/search.html#string): case- and
// accent-insensitive. Lower-cases ASCII and folds the Latin-1 Supplement and Latin Extended-A
// letters to their base letter (é -> e, Ø -> o, ß -> ss) and drops combining diacritical marks
// (so a decomposed "e\u0301" matches too); other characters pass unchanged.
// Whitespace runs collapse to one space. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace fhirstone::search {

std::string NormalizeString(std::string_view s);

}  // namespace fhirstone::search
