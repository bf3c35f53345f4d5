// Subsetting a resource for the `_summary` and `_elements` search / read parameters
// (https://hl7.org/fhir/R4/search.html#summary, #elements). The inputs are not modified; the
// results are new values. Whenever something was removed the result carries the tag SUBSETTED
// (system http://terminology.hl7.org/CodeSystem/v3-ObservationValue) in meta.tag. Elements the
// model does not know are dropped by every mode but kFalse and kData. Stateless free functions:
// thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/json.h"

namespace fhirstone::fhir {

enum class SummaryMode {
  kFalse,  // everything
  kTrue,   // the elements marked isSummary, recursing into backbone elements
  kText,   // text, id, meta and the top-level mandatory elements
  kData,   // everything but text
};

// REQUIRES: `resource` is an object with a known resourceType (else it is returned unchanged).
json::Value Summarize(const json::Value& resource, SummaryMode mode);

// `_elements`: resourceType, id, meta and the named top-level elements. A choice name ("value")
// matches its typed forms ("valueQuantity"); "Patient.name" is accepted for "name"; unknown names
// are ignored. `_name` primitive extensions follow their element.
json::Value SelectElements(const json::Value& resource,
                           const std::vector<std::string>& element_names);

// Adds the SUBSETTED tag to resource.meta.tag unless present (creating meta after id when absent).
// REQUIRES: resource.is_object().
void AddSubsettedTag(json::Value& resource);

}  // namespace fhirstone::fhir
