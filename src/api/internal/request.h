// Internal to api/: the classified FHIR request and the helpers every interaction shares
// (format negotiation, Prefer, version headers, rendering). Not for other libraries.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/access.h"
#include "api/fhir_api.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/result.h"
#include "http/message.h"
#include "search/registry.h"
#include "store/audit.h"
#include "store/resource_store.h"

namespace fhirstone::api {

enum class Interaction {
  kCapabilities,
  kRead,
  kVRead,
  kUpdate,
  kDelete,
  kCreate,
  kHistoryInstance,
  kHistoryType,
  kHistorySystem,
  kSearchType,
  kSearchSystem,
  kReindex,
  kConditionalUpdate,
  kConditionalDelete,
  kBatch,  // batch or transaction Bundle
  kPatch,  // also conditional (id empty, criteria in the query)
};

enum class PreferReturn { kRepresentation, kMinimal, kOperationOutcome };

// What the audit log records of one request: who asks and how (filled before the interaction
// runs), then what the interaction disclosed. Writes append their records with the data
// (AuditOf); the rest is queued once the answer is known. One per request, on its thread.
struct AuditTrail {
  store::AuditRecord record;
  bool written = false;  // the interaction's writes appended their records
};

using Params = std::vector<std::pair<std::string, std::string>>;

struct FhirRequest {
  Interaction interaction;
  std::string type;
  std::string id;
  int64_t version = 0;
  // Compartment search (/Patient/123/Observation): the compartment; `type` is Observation.
  std::string compartment_type;
  std::string compartment_id;
  Params params;  // decoded query parameters, in order
  bool pretty = false;
  PreferReturn prefer = PreferReturn::kRepresentation;
  http::Request* http = nullptr;
  // What the caller may do; null: unrestricted.
  const AccessContext* access = nullptr;
  // The audit trail; null when the API does not audit.
  AuditTrail* audit = nullptr;

  // The first value of parameter `name`, if present.
  std::optional<std::string_view> Param(std::string_view name) const;
};

// What interactions share: the store, the options and the FHIR base URL.
// Dispatches one request through the whole API (used for the GET entries of a Bundle).
using Dispatcher = std::function<http::Response(http::Request&, const AccessContext*)>;

struct ApiContext {
  store::ResourceStore& store;
  Clock& clock;
  IdGenerator& ids;
  const search::RegistryHolder& registry;
  ApiOptions options;
  std::string base;  // e.g. http://localhost:8080/fhir
  Dispatcher dispatch;
};

// The resources of `type` matching the search `query` (a query string without '?') inside `tx`:
// conditional create, update, delete and references. Unknown parameters are refused (a
// conditional operation must not silently match more than asked); at most `limit` are returned.
Result<std::vector<store::ResourceVersion>> MatchConditional(const ApiContext& ctx,
                                                             store::StoreTransaction& tx,
                                                             std::string_view type,
                                                             std::string_view query, int limit);
// The same outside a write transaction, on the store's latest snapshot: what a match is before
// the write (a transaction's conditional references are resolved ahead, then checked inside).
Result<std::vector<store::ResourceVersion>> MatchConditional(const ApiContext& ctx,
                                                             std::string_view type,
                                                             std::string_view query, int limit);

// Splits a request target into decoded path segments and query parameters (Boost.URL).
struct Target {
  std::vector<std::string> segments;
  Params params;
};
Result<Target> ParseTarget(std::string_view target);
// Percent-encodes a query parameter value.
std::string EncodeQueryValue(std::string_view value);
// Decodes base64 (RFC 4648, whitespace ignored) with OpenSSL; nullopt when malformed.
std::optional<std::string> DecodeBase64(std::string_view text);
// `url` followed by `?k=v&...` (encoded); `url` alone when `params` is empty.
std::string WithQuery(std::string url, const Params& params);

// Parses `W/"3"`, `"3"` or `3` into 3.
std::optional<int64_t> ParseETagVersion(std::string_view etag);
std::string ETag(int64_t version);

// A response carrying a FHIR JSON body.
http::Response JsonResponse(int status, std::string body);
http::Response JsonResponse(int status, const json::Value& value, bool pretty);
// Adds ETag, Last-Modified (and Location when `location`) for one version.
void AddVersionHeaders(http::Response& response, const store::ResourceVersion& v,
                       const ApiContext& ctx, bool location);
// The body that a write answers with, per Prefer (https://hl7.org/fhir/R4/http.html#ops).
Result<http::Response> WriteResponse(int status, const store::ResourceVersion& v,
                                     const FhirRequest& req, const ApiContext& ctx,
                                     std::string_view outcome_message);
// Parses and validates a request body as a resource of `type` (the body's resourceType must
// match; structural validation applies unless `validate` is false).
Result<json::Value> ParseResourceBody(const FhirRequest& req, std::string_view type,
                                      bool validate = true);
// The stored body re-rendered when _pretty/_summary/_elements ask for it, else as stored.
Result<std::string> RenderResource(const std::string& stored, const FhirRequest& req);

// Auditing: the record that writes append in their transaction (null when not audited), and what
// an interaction notes once it succeeded.
const store::AuditRecord* AuditOf(const FhirRequest& req);
// The interaction wrote: its records are in the log already.
void NoteWritten(const FhirRequest& req);
// The interaction disclosed `v` (read, searched, listed in a history, or matched without a write).
void NoteDisclosed(const FhirRequest& req, const store::ResourceVersion& v);

// Access control (SMART scopes as an AccessContext). A Grant is what the request's access allows
// for one permission on one type: unrestricted, or a list of allowances (each confined to the
// patient compartment and/or a query restriction), any one of which suffices.
struct Allowance {
  bool patient_context = false;
  const std::vector<std::pair<std::string, std::string>>* query = nullptr;  // may be empty
};
struct Grant {
  bool unrestricted = false;
  std::vector<Allowance> allowances;
};
// Forbidden (403) when nothing allows `permission` on `type`.
Result<Grant> Authorize(const FhirRequest& req, std::string_view type, Permission permission);
// Whether `resource` (of a type `grant` was computed for) is within the grant.
bool Permits(const ApiContext& ctx, const FhirRequest& req, const Grant& grant,
             const json::Value& resource);
// Authorize + Permits for a stored body; Forbidden when not permitted.
Status CheckStored(const ApiContext& ctx, const FhirRequest& req, Permission permission,
                   const store::ResourceVersion& v);
Status CheckResource(const ApiContext& ctx, const FhirRequest& req, Permission permission,
                     const json::Value& resource);
// Confines a parsed search to what the access allows (compartment, query restrictions, chained
// and reverse-chained types); Forbidden when it cannot be confined.
Status RestrictSearch(const ApiContext& ctx, const FhirRequest& req,
                      const search::Registry& registry, search::SearchQuery& query);
// Conditional operations search before they write: they need unrestricted search on the type.
Status CheckConditional(const FhirRequest& req, std::string_view type);
// The same, and search access to the types the criteria's chains and reverse chains read
// (criteria that do not parse are refused where they run).
Status CheckConditional(const ApiContext& ctx, const FhirRequest& req, std::string_view type,
                        std::string_view criteria);

// The CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html): exactly what is
// implemented. Built once at start-up.
json::Value BuildCapabilityStatement(const ApiContext& ctx);
Result<http::Response> HandleRead(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleVRead(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleCreate(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleUpdate(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleDelete(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleHistory(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleSearch(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleConditionalUpdate(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleConditionalDelete(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandleBundle(const ApiContext& ctx, const FhirRequest& req);
Result<http::Response> HandlePatch(const ApiContext& ctx, const FhirRequest& req);
// Applies a JSON Patch (media application/json-patch+json) or FHIRPath Patch to `current`, and
// checks the result as an update would (same type and id, structurally valid).
Result<json::Value> ApplyPatch(std::string_view media, const json::Value& current,
                               const json::Value& patch_document);
Result<json::Value> PatchedResource(const json::Value& current, const json::Value& patched);

}  // namespace fhirstone::api
