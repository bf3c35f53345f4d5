#include "generate/generator.h"

#include <cstdio>

#include "common/json.h"
#include "generate/internal/directory.h"
#include "generate/internal/patient.h"

namespace fhirstone::generate {
namespace {

Status CheckOptions(const GenerateOptions& options) {
  if (options.patients < 0) return Error::Invalid("patients must not be negative");
  if (options.years_of_history < 1 || options.years_of_history > 100)
    return Error::Invalid("years_of_history must be between 1 and 100");
  return Ok();
}

}  // namespace

std::string PatientBundleName(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "patient-%06lld", static_cast<long long>(index));
  return name;
}

std::string DirectoryBundle() { return json::Write(internal::Directory().BatchBundle()); }

std::string GeneratePatient(const GenerateOptions& options, int64_t index) {
  internal::Directory directory;
  return json::Write(internal::BuildPatientBundle(directory, options, index));
}

Status Generate(const GenerateOptions& options, const EmitBundle& emit) {
  FHIRSTONE_RETURN_IF_ERROR(CheckOptions(options));
  internal::Directory directory;
  FHIRSTONE_RETURN_IF_ERROR(
      emit("0-organizations-practitioners", json::Write(directory.BatchBundle())));
  for (int64_t i = 1; i <= options.patients; ++i) {
    FHIRSTONE_RETURN_IF_ERROR(emit(
        PatientBundleName(i), json::Write(internal::BuildPatientBundle(directory, options, i))));
  }
  return Ok();
}

}  // namespace fhirstone::generate
