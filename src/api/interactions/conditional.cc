// Conditional update and delete: https://hl7.org/fhir/R4/http.html#cond-update and
// https://hl7.org/fhir/R4/http.html#3.1.0.7.1. Criteria select the resource inside one write
// transaction with the change itself.
//   update: no match -> create (with the body's id, or a new one), one match -> update it (the
//   body's id, if any, must be that one), several -> 412.
//   delete: no match -> 204, one or more (up to kMaxConditionalDeletes) -> all deleted, more ->
//   412 (conditionalDelete "multiple").
#include "api/error_response.h"
#include "api/internal/request.h"

namespace fhirstone::api {
namespace {

constexpr int kMaxConditionalDeletes = 1000;

std::optional<int64_t> IfMatch(const FhirRequest& req, Status& status) {
  std::string_view header = req.http->Header("If-Match");
  if (header.empty()) return std::nullopt;
  auto version = ParseETagVersion(header);
  if (!version)
    status = Error::Invalid("If-Match must be a version ETag such as W/\"3\", not '" +
                            std::string(header) + "'");
  return version;
}

}  // namespace

Result<http::Response> HandleConditionalUpdate(const ApiContext& ctx, const FhirRequest& req) {
  Status status = Ok();
  auto if_match = IfMatch(req, status);
  if (!status) return std::move(status).error();
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermUpdate));
  FHIRSTONE_RETURN_IF_ERROR(CheckConditional(ctx, req, req.type, req.http->Query()));
  auto resource = ParseResourceBody(req, req.type);
  if (!resource) return std::move(resource).error();
  FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermUpdate, *resource));
  store::UpdateResult result;
  FHIRSTONE_RETURN_IF_ERROR(ctx.store.InTransaction(
      [&](store::StoreTransaction& tx) -> Status {
        auto matches = MatchConditional(ctx, tx, req.type, req.http->Query(), 2);
        if (!matches) return std::move(matches).error();
        if (matches->size() > 1)
          return Error::PreconditionFailed(
              "The criteria match several resources: not selective enough");
        std::string_view body_id = resource->GetString("id");
        if (matches->empty()) {
          if (body_id.empty()) {
            auto created = tx.Create(std::move(resource).value(), "");
            if (!created) return std::move(created).error();
            result.resource = std::move(created).value();
            result.created = true;
            return Ok();
          }
        } else {
          FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermUpdate, matches->front()));
          const std::string& match_id = matches->front().id;
          if (!body_id.empty() && body_id != match_id)
            return Error::Invalid("The body's id '" + std::string(body_id) +
                                      "' is not the id of the resource the criteria match ('" +
                                      match_id + "')",
                                  req.type + ".id");
          resource->Set("id", match_id);
        }
        auto updated = tx.Update(std::move(resource).value(), if_match);
        if (!updated) return std::move(updated).error();
        result = std::move(updated).value();
        return Ok();
      },
      AuditOf(req)));
  NoteWritten(req);
  const store::ResourceVersion& v = result.resource;
  return WriteResponse(result.created ? 201 : 200, v, req, ctx,
                       (result.created ? "Created " : "Updated ") + v.type + "/" + v.id +
                           " version " + std::to_string(v.version));
}

Result<http::Response> HandleConditionalDelete(const ApiContext& ctx, const FhirRequest& req) {
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermDelete));
  FHIRSTONE_RETURN_IF_ERROR(CheckConditional(ctx, req, req.type, req.http->Query()));
  int deleted = 0;
  FHIRSTONE_RETURN_IF_ERROR(ctx.store.InTransaction(
      [&](store::StoreTransaction& tx) -> Status {
        auto matches =
            MatchConditional(ctx, tx, req.type, req.http->Query(), kMaxConditionalDeletes + 1);
        if (!matches) return std::move(matches).error();
        if (static_cast<int>(matches->size()) > kMaxConditionalDeletes)
          return Error::PreconditionFailed("The criteria match more than " +
                                           std::to_string(kMaxConditionalDeletes) +
                                           " resources: refine them");
        for (const auto& m : *matches) {
          FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermDelete, m));
          auto result = tx.Delete(m.type, m.id, std::nullopt);
          if (!result) return std::move(result).error();
          if (result->deleted) ++deleted;
        }
        return Ok();
      },
      AuditOf(req)));
  if (deleted > 0) NoteWritten(req);
  std::string message = "Deleted " + std::to_string(deleted) + " " + req.type + " resource" +
                        (deleted == 1 ? "" : "s");
  if (req.prefer == PreferReturn::kOperationOutcome)
    return JsonResponse(200, InformationOutcome(message), req.pretty);
  http::Response response;
  response.status = 204;
  return response;
}

}  // namespace fhirstone::api
