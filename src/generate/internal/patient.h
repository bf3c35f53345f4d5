// PatientBuilder: simulates the life of one synthetic patient over the history window (traits,
// conditions with onsets driven by age, sex and risk factors, physiology that evolves smoothly,
// encounters with what happens at each) and renders it as one FHIR transaction Bundle whose
// entries reference each other by urn:uuid fullUrls and the Directory by Type/id.
// Single-use; not thread-safe; the Directory must outlive it.
#pragma once

#include <cstdint>

#include "common/json.h"
#include "generate/generator.h"
#include "generate/internal/directory.h"

namespace fhirstone::generate::internal {

// The transaction Bundle of patient `index` (1-based).
json::Value BuildPatientBundle(const Directory& directory, const GenerateOptions& options,
                               int64_t index);

}  // namespace fhirstone::generate::internal
