// Structural validation of a FHIR R4 resource in JSON form (https://hl7.org/fhir/R4/json.html)
// against the element metadata of fhir/model.h: resourceType, id syntax, unknown elements, JSON
// types, arrays vs single values, cardinality, choice types, primitive formats, `_field` primitive
// extensions, contained resources, extensions and narrative. Profiles, invariants (other than
// ext-1) and terminology are not checked. The resource is only read, nothing of it is kept;
// stateless free functions: thread-safe. Allocates only to describe the problems it finds.
#pragma once

#include <cstddef>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::fhir {

struct ValidateOptions {
  size_t max_issues = 100;  // further problems are summed up in one last issue
};

// Ok, or Error::Invalid whose issues list every problem found (up to options.max_issues), each
// with a message and the FHIRPath expression of the element at fault, such as
// `Patient.name[0].given[1]`, `Observation.valueQuantity.value` or `Patient.contained[0].id`.
Status ValidateResource(const json::Value& resource, const ValidateOptions& options = {});

}  // namespace fhirstone::fhir
