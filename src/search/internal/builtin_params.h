// The built-in SearchParameter table, generated at build time by tools/gen_search_params.py from
// the official R4 search-parameters.json (one row per base type and code). Internal to search/.
#pragma once

#include <cstddef>

namespace fhirstone::search::internal {

struct BuiltinParam {
  const char* base;  // resource type, or Resource / DomainResource
  const char* code;
  const char* type;  // number, date, string, token, reference, composite, quantity, uri, special
  const char* expression;  // FHIRPath, restricted to this base type's branches ("" when none)
  const char* targets;     // comma-separated target types of a reference
  const char* url;
  const char* components;  // composite: "definition-url=expression;..."
};

extern const BuiltinParam kBuiltinParams[];
extern const size_t kBuiltinParamCount;

// From the CompartmentDefinitions: the parameters of `type` that link it to a compartment.
struct CompartmentParams {
  const char* compartment;  // Patient, Encounter, RelatedPerson, Practitioner, Device
  const char* type;
  const char* params;  // comma-separated codes
};

extern const CompartmentParams kCompartmentParams[];
extern const size_t kCompartmentParamCount;

}  // namespace fhirstone::search::internal
