// read and vread: https://hl7.org/fhir/R4/http.html#read and #vread, with conditional read
// (If-None-Match, If-Modified-Since: 304) as in https://hl7.org/fhir/R4/http.html#cread.
#include "api/internal/request.h"
#include "common/strings.h"
#include "common/time.h"

namespace fhirstone::api {
namespace {

bool NotModified(const FhirRequest& req, const store::ResourceVersion& v) {
  std::string_view if_none_match = req.http->Header("If-None-Match");
  if (!if_none_match.empty()) {
    for (auto tag : Split(if_none_match, ',')) {
      if (Trim(tag) == "*") return true;
      auto version = ParseETagVersion(tag);
      if (version && *version == v.version) return true;
    }
    return false;  // If-None-Match takes precedence over If-Modified-Since (RFC 9110 13.1.3)
  }
  std::string_view if_modified_since = req.http->Header("If-Modified-Since");
  if (!if_modified_since.empty()) {
    auto since = ParseHttpDate(Trim(if_modified_since));
    // HTTP dates have one-second precision: compare whole seconds.
    if (since && v.last_updated / 1000000 <= *since / 1000000) return true;
  }
  return false;
}

Result<http::Response> Answer(const ApiContext& ctx, const FhirRequest& req,
                              const store::ResourceVersion& v) {
  if (NotModified(req, v)) {
    http::Response response;
    response.status = 304;
    AddVersionHeaders(response, v, ctx, /*location=*/false);
    return response;
  }
  auto body = RenderResource(v.body, req);
  if (!body) return std::move(body).error();
  http::Response response = JsonResponse(200, std::move(body).value());
  AddVersionHeaders(response, v, ctx, /*location=*/false);
  return response;
}

}  // namespace

Result<http::Response> HandleRead(const ApiContext& ctx, const FhirRequest& req) {
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermRead));
  auto v = ctx.store.Read(req.type, req.id);
  if (!v) return std::move(v).error();
  FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermRead, *v));
  NoteDisclosed(req, *v);
  return Answer(ctx, req, *v);
}

Result<http::Response> HandleVRead(const ApiContext& ctx, const FhirRequest& req) {
  FHIRSTONE_RETURN_IF_ERROR(Authorize(req, req.type, kPermRead));
  auto v = ctx.store.VRead(req.type, req.id, req.version);
  if (!v) return std::move(v).error();
  FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermRead, *v));
  NoteDisclosed(req, *v);
  return Answer(ctx, req, *v);
}

}  // namespace fhirstone::api
