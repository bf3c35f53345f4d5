// patch: https://hl7.org/fhir/R4/http.html#patch, with JSON Patch (application/json-patch+json)
// and FHIRPath Patch (a Parameters resource, application/fhir+json). The current version is read,
// patched, checked (resourceType and id unchanged, structural validation as for any update) and
// written in one write transaction, honouring If-Match: no concurrent update is lost.
// Conditional patch (PATCH /Type?criteria) patches the one match (412 on none or several).
#include "patch/patch.h"

#include "api/internal/request.h"
#include "common/strings.h"
#include "fhir/validate.h"

namespace fhirstone::api {

Result<json::Value> ApplyPatch(std::string_view media, const json::Value& current,
                               const json::Value& patch_document) {
  if (media == "application/json-patch+json") return patch::ApplyJsonPatch(current, patch_document);
  return patch::ApplyFhirPathPatch(current, patch_document);
}

Result<json::Value> PatchedResource(const json::Value& current, const json::Value& patched) {
  if (patched.GetString("resourceType") != current.GetString("resourceType"))
    return Error::Unprocessable("A patch cannot change resourceType", "resourceType");
  if (patched.GetString("id") != current.GetString("id"))
    return Error::Unprocessable("A patch cannot change the id", "id");
  FHIRSTONE_RETURN_IF_ERROR(fhir::ValidateResource(patched));
  return patched;
}

Result<http::Response> HandlePatch(const ApiContext& ctx, const FhirRequest& req) {
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermUpdate));
  if (req.id.empty())
    FHIRSTONE_RETURN_IF_ERROR(CheckConditional(ctx, req, req.type, req.http->Query()));
  std::string_view content_type = req.http->Header("Content-Type");
  std::string media = AsciiLower(Trim(content_type.substr(0, content_type.find(';'))));
  if (media != "application/json-patch+json" && media != "application/fhir+json" &&
      media != "application/json")
    return Error::UnsupportedMediaType(
        "PATCH takes application/json-patch+json (JSON Patch) or application/fhir+json "
        "(FHIRPath Patch Parameters), not '" +
        std::string(content_type) + "'");
  auto document = json::Parse(req.http->body);
  if (!document) return std::move(document).error();
  if (media != "application/json-patch+json" && document->GetString("resourceType") != "Parameters")
    return Error::Invalid("A FHIRPath Patch is a Parameters resource");
  std::optional<int64_t> if_match;
  if (std::string_view header = req.http->Header("If-Match"); !header.empty()) {
    if_match = ParseETagVersion(header);
    if (!if_match) return Error::Invalid("If-Match must be a version ETag such as W/\"3\"");
  }
  store::UpdateResult result;
  FHIRSTONE_RETURN_IF_ERROR(ctx.store.InTransaction(
      [&](store::StoreTransaction& tx) -> Status {
        std::string id = req.id;
        if (id.empty()) {  // conditional patch
          auto matches = MatchConditional(ctx, tx, req.type, req.http->Query(), 2);
          if (!matches) return std::move(matches).error();
          if (matches->size() != 1)
            return Error::PreconditionFailed(
                "The patch criteria match " +
                std::string(matches->empty() ? "nothing" : "several resources"));
          id = matches->front().id;
        }
        auto current = tx.Read(req.type, id);
        if (!current) return std::move(current).error();
        if (if_match && current->version != *if_match)
          return Error::PreconditionFailed("If-Match: version " + std::to_string(*if_match) +
                                           " was expected but " + req.type + "/" + id +
                                           " is at version " + std::to_string(current->version));
        auto parsed = json::Parse(current->body);
        if (!parsed) return Error::Internal("A stored resource could not be parsed");
        auto patched = ApplyPatch(media, *parsed, *document);
        if (!patched) return std::move(patched).error();
        auto checked = PatchedResource(*parsed, *patched);
        if (!checked) return std::move(checked).error();
        FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermUpdate, *parsed));
        FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermUpdate, *checked));
        auto updated = tx.Update(std::move(checked).value(), current->version);
        if (!updated) return std::move(updated).error();
        result = std::move(updated).value();
        return Ok();
      },
      AuditOf(req)));
  NoteWritten(req);
  const store::ResourceVersion& v = result.resource;
  return WriteResponse(
      200, v, req, ctx,
      "Patched " + v.type + "/" + v.id + " to version " + std::to_string(v.version));
}

}  // namespace fhirstone::api
