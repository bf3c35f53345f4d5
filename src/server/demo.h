// The demo data set of `fhirstone serve --demo` (and `make run`): on a database without it, loads
// deterministic synthetic patients (the generator) through the FHIR API, creates demo users (a
// practitioner and two patients, with random passwords kept so that the home page can show them:
// demo mode only) and registers the sample app "vitals". Run once at start-up, before serving.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace fhirstone::api {
class FhirApi;
}
namespace fhirstone::db {
class Database;
}
namespace fhirstone::oauth {
class AuthStore;
}

namespace fhirstone::server {

struct DemoAccount {
  std::string username, password, display, fhir_user, role;  // role: practitioner | patient
};

// Sets the demo up if it is not yet (idempotent) and returns the demo accounts.
Result<std::vector<DemoAccount>> SetUpDemo(db::Database& db, api::FhirApi& api,
                                           oauth::AuthStore& auth, const std::string& base_url,
                                           int patients);

}  // namespace fhirstone::server
