// Canonical forms of common UCUM units (https://ucum.org/ucum): a quantity in one of them is also
// indexed in its dimension's base unit, so that a search in another unit of that dimension finds
// it (5 mg by 0.005|http://unitsofmeasure.org|g). Units with an offset (Cel, [degF]), arbitrary
// units and the rest are compared as written.
#pragma once

#include <optional>
#include <string_view>

namespace fhirstone::search {

inline constexpr std::string_view kUcumSystem = "http://unitsofmeasure.org";

struct UcumCanonical {
  std::string_view code;  // the dimension's base unit (g, m, L, s, g/L, mol/L, Pa)
  double factor;          // a value in the unit times this is the value in `code`
};

// The canonical form of the UCUM unit `code` (case-sensitive, as UCUM's c/s codes; the litre as L
// or l), or nullopt. mm[Hg] is UCUM's 133.322 Pa.
std::optional<UcumCanonical> UcumCanonicalOf(std::string_view code);

}  // namespace fhirstone::search
