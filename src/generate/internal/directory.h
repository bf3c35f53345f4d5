// Directory: the fixed organizations (hospitals, clinics, payers) and practitioners of the
// generated data set, with their fixed ids, and the batch Bundle that PUTs them. Its content does
// not depend on the options (the same ids and names for every seed), so that data sets of several
// seeds can share one server. Immutable after construction: thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "generate/internal/fhir.h"
#include "generate/internal/random.h"

namespace fhirstone::generate::internal {

enum class OrgKind { kHospital, kClinic, kPediatrics, kPayer };

struct Organization {
  std::string_view id;
  std::string_view name;
  OrgKind kind;
  std::string_view line;
  std::string_view city;
  std::string_view state;
  std::string_view postal_code;
  std::string_view phone;
  std::string_view plan_type;  // payers: v3-ActCode coverage type (HIP, PUBLICPOL)
};

enum class Specialty { kFamily, kGeneral, kPediatrics, kEmergency, kInternal, kCardiology };

struct Practitioner {
  std::string id;
  std::string role_id;  // its PractitionerRole
  std::string given;
  std::string family;
  bool female;
  std::string npi;
  int organization;  // index into organizations()
  Specialty specialty;
  std::string display;  // "Dr. Given Family"
};

class Directory {
 public:
  Directory();

  const std::vector<Organization>& organizations() const { return organizations_; }
  const std::vector<Practitioner>& practitioners() const { return practitioners_; }

  // The hospital that serves `state`.
  int HospitalFor(std::string_view state) const;
  // An adult primary-care clinic near `state`.
  int ClinicFor(std::string_view state, Rng& rng) const;
  int PediatricClinic() const;
  // A practitioner of `organization` with `specialty`, else any of that organization.
  int PractitionerAt(int organization, Specialty specialty, Rng& rng) const;
  // Payers by name: "medicare", "medicaid", or a private plan.
  int Medicare() const;
  int Medicaid() const;
  int PrivatePlan(Rng& rng) const;

  // "Organization/<id>", "Practitioner/<id>".
  std::string OrganizationRef(int index) const;
  std::string PractitionerRef(int index) const;

  // The batch Bundle that creates or updates every organization, practitioner and practitioner
  // role (PUT Type/id).
  json::Value BatchBundle() const;

 private:
  std::vector<Organization> organizations_;
  std::vector<Practitioner> practitioners_;
};

// A 10-digit NPI-shaped number (Luhn check digit over the 80840 prefix) that starts with 9999,
// a range the NPI registry does not issue.
std::string SyntheticNpi(int serial);

}  // namespace fhirstone::generate::internal
