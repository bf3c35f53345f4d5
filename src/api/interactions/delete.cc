// delete: https://hl7.org/fhir/R4/http.html#delete. Logical: a new version marks the resource
// deleted, a later read answers 410 and history keeps every version. Deleting what is not there
// (or already deleted) succeeds without a new version. If-Match is honoured (412).
#include "api/error_response.h"
#include "api/internal/request.h"

namespace fhirstone::api {

Result<http::Response> HandleDelete(const ApiContext& ctx, const FhirRequest& req) {
  std::optional<int64_t> if_match;
  std::string_view if_match_header = req.http->Header("If-Match");
  if (!if_match_header.empty()) {
    if_match = ParseETagVersion(if_match_header);
    if (!if_match)
      return Error::Invalid("If-Match must be a version ETag such as W/\"3\", not '" +
                            std::string(if_match_header) + "'");
  }
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermDelete));
  if (req.access) {
    auto existing = ctx.store.Read(req.type, req.id);
    if (existing) FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermDelete, *existing));
  }
  auto result = ctx.store.Delete(req.type, req.id, if_match, AuditOf(req));
  if (!result) return std::move(result).error();
  if (result->deleted) NoteWritten(req);
  std::string message = result->deleted ? "Deleted " + req.type + "/" + req.id
                                        : req.type + "/" + req.id + " had nothing to delete";
  http::Response response;
  if (req.prefer == PreferReturn::kOperationOutcome) {
    response = JsonResponse(200, InformationOutcome(message), req.pretty);
  } else {
    response.status = 204;
  }
  if (result->deleted) {
    response.SetHeader("ETag", ETag(result->deleted->version));
  }
  return response;
}

}  // namespace fhirstone::api
