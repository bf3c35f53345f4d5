// AccessContext: what one request may do, stated in FHIR terms (resource types, interactions,
// the patient compartment, search-parameter restrictions) so that the API enforces SMART scopes
// without knowing OAuth: auth/ fills it from a verified access token. A null AccessContext means
// unrestricted access (the open development mode and the server's own offline commands).
// Value type; thread-compatible (one per request, read-only while the request runs).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fhirstone::api {

// The SMART v2 permission letters (c r u d s) as bits.
enum Permission : uint8_t {
  kPermCreate = 1,  // create
  kPermRead = 2,    // read, vread, history
  kPermUpdate = 4,  // update, patch
  kPermDelete = 8,  // delete
  kPermSearch = 16  // search
};

// One granted resource scope.
struct AccessRule {
  std::string type;         // a resource type, or "*"
  uint8_t permissions = 0;  // Permission bits
  // A patient/ scope: confined to the compartment of AccessContext::patient.
  bool patient_context = false;
  // A v2 query restriction (`?category=...`): resources must match every parameter.
  std::vector<std::pair<std::string, std::string>> query;
  std::string scope;  // as granted, for messages
};

struct AccessContext {
  std::vector<AccessRule> rules;
  std::string patient;    // the patient in context (id), for patient_context rules
  std::string client_id;  // who asks, for messages and audit
  std::string fhir_user;  // e.g. Practitioner/123
  bool admin = false;     // may run server operations ($reindex)
};

}  // namespace fhirstone::api
