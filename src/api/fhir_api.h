// FhirApi: the FHIR R4 RESTful API (https://hl7.org/fhir/R4/http.html) mounted under /fhir.
// Handle() classifies a request (interaction, type, id, version), negotiates the format, runs the
// interaction against the ResourceStore and renders the answer; every refusal is an
// OperationOutcome through the one Error -> HTTP mapping (error_response.h).
// Thread-safe: Handle() is called concurrently from the server's I/O threads.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "api/access.h"
#include "common/clock.h"
#include "common/json.h"
#include "http/message.h"
#include "search/registry.h"
#include "store/resource_store.h"

namespace fhirstone::store {
class AuditQueue;
}

namespace fhirstone::api {

struct ApiOptions {
  std::string base_url = "http://localhost:8080";  // public origin; the FHIR base is base_url/fhir
  std::string software_version = "0.0.0";
  int default_page_size = 50;
  int max_page_size = 1000;
  // A search that takes at least this long is logged at info level with the plan chosen (its
  // SQL, whose values are placeholders: no patient data); faster ones at debug level.
  int slow_search_ms = 200;
  // Starts the reindex job ($reindex); Conflict when one is already running. Empty: $reindex is
  // not offered.
  std::function<Status()> start_reindex;
  // The CapabilityStatement's rest.security (SMART on FHIR service and OAuth URIs); null when
  // the API is open.
  json::Value security;
  // The audit log's queue: every interaction but reading the CapabilityStatement is recorded
  // (writes in their own transaction, the rest through the queue). Null: nothing is audited.
  store::AuditQueue* audit = nullptr;
};

class FhirApi {
 public:
  // The store, clock, id generator and registry outlive the FhirApi.
  FhirApi(store::ResourceStore& store, Clock& clock, IdGenerator& ids,
          const search::RegistryHolder& registry, ApiOptions options);
  ~FhirApi();
  FhirApi(const FhirApi&) = delete;
  FhirApi& operator=(const FhirApi&) = delete;

  // REQUIRES: request.Path() starts with "/fhir".
  // `access` states what the caller may do (SMART scopes); null: unrestricted.
  http::Response Handle(http::Request& request, const AccessContext* access = nullptr);

  const std::string& fhir_base() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhirstone::api
