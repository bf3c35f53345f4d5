// generate: a deterministic generator of realistic synthetic FHIR R4 patients, independent of
// Synthea, for the sandbox and for benchmarks at any scale. Each patient is one transaction Bundle
// (Patient, Coverage, encounters over the years with vital signs, labs, conditions, allergies,
// medications, immunizations and claims, all linked by urn:uuid fullUrls); the organizations and
// practitioners they reference come first, in one batch Bundle of PUTs with fixed ids.
//
// Determinism: the same options give byte-identical output with every compiler and standard
// library (own PRNG, no <random> distributions, no libm beyond rounding). Patient i depends only on
// (seed, i, now_micros, years_of_history), not on how many patients are generated, so a larger
// data set extends a smaller one.
//
// Ownership: the caller owns the emitted text. Thread safety: stateless free functions; calls may
// run concurrently (e.g. one range of patients per thread with GeneratePatient).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace fhirstone::generate {

struct GenerateOptions {
  int patients = 10;
  uint64_t seed = 1;
  // The "today" of the data set, microseconds since the Unix epoch (UTC): every date falls before
  // it. Fixed by the caller so that the output is deterministic; default 2025-01-01T00:00:00Z.
  int64_t now_micros = 1735689600000000;
  // Encounters and their data span the last `years_of_history` years (or the patient's life).
  int years_of_history = 10;
};

// Called once per Bundle with its name ("0-organizations-practitioners", then
// "patient-000001"...) and its compact JSON text; an error stops the generation and is returned.
using EmitBundle = std::function<Status(std::string_view name, std::string bundle_json)>;

// Calls `emit` with one batch Bundle of the organizations, practitioners and practitioner roles
// (PUT with fixed ids), then with one transaction Bundle per patient. Error::Invalid for options
// out of range (patients < 0, years_of_history outside 1..100).
Status Generate(const GenerateOptions& options, const EmitBundle& emit);

// The first Bundle of Generate (the same for every option).
std::string DirectoryBundle();
// The transaction Bundle of patient `index` (1-based, as named by Generate), identical to what
// Generate emits for it. REQUIRES: index >= 1 and valid options.
std::string GeneratePatient(const GenerateOptions& options, int64_t index);
// The name Generate gives to the Bundle of patient `index`: "patient-000042".
std::string PatientBundleName(int64_t index);

}  // namespace fhirstone::generate
