// update: https://hl7.org/fhir/R4/http.html#update, with update-as-create (201) and version-aware
// updates (If-Match: 412 when the current version differs,
// https://hl7.org/fhir/R4/http.html#concurrency).
#include "api/internal/request.h"

namespace fhirstone::api {

Result<http::Response> HandleUpdate(const ApiContext& ctx, const FhirRequest& req) {
  std::optional<int64_t> if_match;
  std::string_view if_match_header = req.http->Header("If-Match");
  if (!if_match_header.empty()) {
    if_match = ParseETagVersion(if_match_header);
    if (!if_match)
      return Error::Invalid("If-Match must be a version ETag such as W/\"3\", not '" +
                            std::string(if_match_header) + "'");
  }
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermUpdate));
  auto resource = ParseResourceBody(req, req.type);
  if (!resource) return std::move(resource).error();
  const json::Value* id = resource->Find("id");
  if (!id || !id->is_string())
    return Error::Invalid("An update needs the resource id in the body", req.type + ".id");
  if (id->as_string() != req.id) {
    return Error::Invalid(
        "The body's id '" + id->as_string() + "' does not match the URL's id '" + req.id + "'",
        req.type + ".id");
  }
  if (req.access) {
    FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermUpdate, *resource));
    auto existing = ctx.store.Read(req.type, req.id);
    if (existing) {
      FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermUpdate, *existing));
    } else if (existing.error().code() == ErrorCode::kNotFound ||
               existing.error().code() == ErrorCode::kGone) {
      // update as create: the caller must be allowed to create it
      FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermCreate, *resource));
    } else {
      return std::move(existing).error();
    }
  }
  auto updated = ctx.store.Update(std::move(resource).value(), if_match, AuditOf(req));
  if (!updated) return std::move(updated).error();
  NoteWritten(req);
  const store::ResourceVersion& v = updated->resource;
  return WriteResponse(updated->created ? 201 : 200, v, req, ctx,
                       (updated->created ? "Created " : "Updated ") + v.type + "/" + v.id +
                           " version " + std::to_string(v.version));
}

}  // namespace fhirstone::api
