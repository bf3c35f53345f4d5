// create: https://hl7.org/fhir/R4/http.html#create. The server assigns the id (an id in the body
// is ignored, as the spec says) and answers 201 with Location, ETag and Last-Modified.
#include "api/internal/request.h"

namespace fhirstone::api {

Result<http::Response> HandleCreate(const ApiContext& ctx, const FhirRequest& req) {
  if (!req.http->Header("If-None-Exist").empty())
    return Error::NotSupported("Conditional create (If-None-Exist) is not supported yet");
  auto resource = ParseResourceBody(req, req.type);
  if (!resource) return std::move(resource).error();
  auto created = ctx.store.Create(std::move(resource).value());
  if (!created) return std::move(created).error();
  return WriteResponse(201, *created, req, ctx,
                       "Created " + created->type + "/" + created->id + " version 1");
}

}  // namespace fhirstone::api
