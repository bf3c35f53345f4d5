// Helpers shared by the interactions: versions and ETags, Prefer, rendering.
#include <openssl/evp.h>

#include <algorithm>

#include "api/error_response.h"
#include "api/internal/request.h"
#include "common/strings.h"
#include "common/time.h"
#include "fhir/summary.h"
#include "fhir/validate.h"

namespace fhirstone::api {

std::optional<std::string_view> FhirRequest::Param(std::string_view name) const {
  for (const auto& [key, value] : params)
    if (key == name) return std::string_view(value);
  return std::nullopt;
}

const store::AuditRecord* AuditOf(const FhirRequest& req) {
  return req.audit ? &req.audit->record : nullptr;
}

void NoteWritten(const FhirRequest& req) {
  if (req.audit) req.audit->written = true;
}

void NoteDisclosed(const FhirRequest& req, const store::ResourceVersion& v) {
  if (!req.audit) return;
  store::AuditRecord& r = req.audit->record;
  if (r.version == 0 && r.entity.size() == v.type.size() + 1 + v.id.size() &&
      r.entity.starts_with(v.type) && r.entity.ends_with(v.id))
    r.version = v.version;  // the version read
  bool first = r.resources.empty() && r.patients.empty() && !r.without_patient;
  if (v.type == "Patient") {  // the patient is known without looking inside
    if (r.patient.empty() && first) {
      r.patient = v.id;
      return;
    }
    if (r.patient == v.id) return;
  }
  if (!r.patient.empty() && first) {  // several resources: one record per patient on append
    r.patients.push_back(std::move(r.patient));
    r.patient.clear();
  }
  if (v.body.empty()) return;  // a deletion discloses no data
  if (v.type == "Patient") {
    if (std::find(r.patients.begin(), r.patients.end(), v.id) == r.patients.end())
      r.patients.push_back(v.id);
  } else if (v.patients) {
    if (v.patients->empty()) r.without_patient = true;
    for (const std::string& p : *v.patients)
      if (std::find(r.patients.begin(), r.patients.end(), p) == r.patients.end())
        r.patients.push_back(p);
  } else {
    r.resources.push_back(v.body);
  }
}

std::optional<std::string> DecodeBase64(std::string_view text) {
  std::string compact;
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') compact.push_back(c);
  if (compact.size() % 4 != 0) return std::nullopt;
  std::string out(compact.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(compact.data()),
                          static_cast<int>(compact.size()));
  if (n < 0) return std::nullopt;
  size_t padding = 0;
  if (!compact.empty() && compact.back() == '=') ++padding;
  if (compact.size() > 1 && compact[compact.size() - 2] == '=') ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::optional<int64_t> ParseETagVersion(std::string_view etag) {
  etag = Trim(etag);
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  auto v = ParseInt64(etag);
  if (!v || *v < 1) return std::nullopt;
  return v;
}

std::string ETag(int64_t version) { return "W/\"" + std::to_string(version) + "\""; }

http::Response JsonResponse(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.SetHeader("Content-Type", "application/fhir+json;charset=utf-8");
  response.body = std::move(body);
  return response;
}

http::Response JsonResponse(int status, const json::Value& value, bool pretty) {
  return JsonResponse(status, json::Write(value, {.pretty = pretty}));
}

void AddVersionHeaders(http::Response& response, const store::ResourceVersion& v,
                       const ApiContext& ctx, bool location) {
  response.SetHeader("ETag", ETag(v.version));
  response.SetHeader("Last-Modified", FormatHttpDate(v.last_updated));
  if (location) {
    response.SetHeader("Location", ctx.base + "/" + v.type + "/" + v.id + "/_history/" +
                                       std::to_string(v.version));
  }
}

Result<http::Response> WriteResponse(int status, const store::ResourceVersion& v,
                                     const FhirRequest& req, const ApiContext& ctx,
                                     std::string_view outcome_message) {
  http::Response response;
  switch (req.prefer) {
    case PreferReturn::kMinimal:
      response.status = status;
      break;
    case PreferReturn::kOperationOutcome:
      response = JsonResponse(status, InformationOutcome(std::string(outcome_message)), req.pretty);
      break;
    case PreferReturn::kRepresentation: {
      auto body = RenderResource(v.body, req);
      if (!body) return std::move(body).error();
      response = JsonResponse(status, std::move(body).value());
      break;
    }
  }
  AddVersionHeaders(response, v, ctx, /*location=*/true);
  return response;
}

Result<json::Value> ParseResourceBody(const FhirRequest& req, std::string_view type,
                                      bool validate) {
  std::string_view content_type = req.http->Header("Content-Type");
  if (!content_type.empty()) {
    std::string media = AsciiLower(Trim(content_type.substr(0, content_type.find(';'))));
    if (media != "application/fhir+json" && media != "application/json" && media != "json") {
      return Error::UnsupportedMediaType("Content-Type '" + std::string(content_type) +
                                         "' is not supported: send application/fhir+json");
    }
  }
  if (Trim(req.http->body).empty())
    return Error::Invalid("The request has no body: a resource is expected");
  auto parsed = json::Parse(req.http->body);
  if (!parsed) return std::move(parsed).error();
  json::Value& resource = *parsed;
  if (!resource.is_object()) return Error::Invalid("The body is not a JSON object");
  const json::Value* resource_type = resource.Find("resourceType");
  if (!resource_type || !resource_type->is_string())
    return Error::Invalid("The resource has no resourceType", "resourceType");
  if (resource_type->as_string() != type) {
    return Error::Invalid("The body's resourceType '" + resource_type->as_string() +
                              "' does not match the URL's type '" + std::string(type) + "'",
                          "resourceType");
  }
  if (validate) FHIRSTONE_RETURN_IF_ERROR(fhir::ValidateResource(resource));
  return std::move(parsed).value();
}

Result<std::string> RenderResource(const std::string& stored, const FhirRequest& req) {
  auto summary = req.Param("_summary");
  auto elements = req.Param("_elements");
  if (!req.pretty && !summary && !elements) return stored;
  auto parsed = json::Parse(stored);
  if (!parsed) return Error::Internal("A stored resource could not be parsed");
  json::Value resource = std::move(parsed).value();
  if (summary) {
    fhir::SummaryMode mode;
    if (*summary == "true") {
      mode = fhir::SummaryMode::kTrue;
    } else if (*summary == "text") {
      mode = fhir::SummaryMode::kText;
    } else if (*summary == "data") {
      mode = fhir::SummaryMode::kData;
    } else if (*summary == "false") {
      mode = fhir::SummaryMode::kFalse;
    } else {
      return Error::Invalid("_summary must be true, text, data or false here, not '" +
                            std::string(*summary) + "'");
    }
    resource = fhir::Summarize(resource, mode);
  }
  if (elements) {
    std::vector<std::string> names;
    for (auto name : Split(*elements, ',')) {
      name = Trim(name);
      if (!name.empty()) names.emplace_back(name);
    }
    resource = fhir::SelectElements(resource, names);
  }
  return json::Write(resource, {.pretty = req.pretty});
}

}  // namespace fhirstone::api
