// history: https://hl7.org/fhir/R4/http.html#history, of an instance, a type and the system:
// a Bundle of type history, newest first, with _count, _since and _at, and stable paging (the
// next link continues from a position, so writes between pages do not shift them).
#include "api/internal/request.h"
#include "common/strings.h"
#include "common/time.h"

namespace fhirstone::api {
namespace {

std::string HistoryUrl(const ApiContext& ctx, const FhirRequest& req, const Params& params) {
  std::string url = ctx.base;
  if (!req.type.empty()) url += "/" + req.type;
  if (!req.id.empty()) url += "/" + req.id;
  url += "/_history";
  return WithQuery(std::move(url), params);
}

void AppendEntry(std::string& out, const ApiContext& ctx, const store::ResourceVersion& v) {
  std::string url = v.type + "/" + v.id;
  out += "{\"fullUrl\":";
  json::WriteString(ctx.base + "/" + url, out);
  if (!v.deleted) {
    out += ",\"resource\":";
    out += v.body;
  }
  const char* method = v.method == store::Method::kCreate   ? "POST"
                       : v.method == store::Method::kDelete ? "DELETE"
                                                            : "PUT";
  out += ",\"request\":{\"method\":\"";
  out += method;
  out += "\",\"url\":";
  json::WriteString(v.method == store::Method::kCreate ? v.type : url, out);
  const char* status = v.deleted ? "204 No Content" : v.version == 1 ? "201 Created" : "200 OK";
  out += "},\"response\":{\"status\":\"";
  out += status;
  out += "\",\"etag\":";
  json::WriteString(ETag(v.version), out);
  out += ",\"lastModified\":\"";
  out += FormatInstant(v.last_updated);
  out += "\"}}";
}

}  // namespace

Result<http::Response> HandleHistory(const ApiContext& ctx, const FhirRequest& req) {
  store::HistoryQuery query;
  query.type = req.type;
  query.id = req.id;
  query.count = ctx.options.default_page_size;
  Params link_params;  // the parameters that the self and next links carry
  for (const auto& [key, value] : req.params) {
    if (key == "_count") {
      auto count = ParseInt64(value);
      if (!count || *count < 0)
        return Error::Invalid("_count must be a non-negative integer, not '" + value + "'");
      query.count = static_cast<int>(std::min<int64_t>(*count, ctx.options.max_page_size));
    } else if (key == "_since") {
      auto since = ParseFhirDateTime(value);
      if (!since) return Error::Invalid("_since must be an instant, not '" + value + "'");
      query.since = since->low;
    } else if (key == "_at") {
      auto at = ParseFhirDateTime(value);
      if (!at) return Error::Invalid("_at must be a date or dateTime, not '" + value + "'");
      query.at = *at;
    } else if (key == "_cursor") {
      auto cursor = ParseInt64(value);
      if (!cursor || *cursor < 1) return Error::Invalid("Invalid paging position '" + value + "'");
      query.cursor = *cursor;
      continue;
    } else if (key != "_format" && key != "_pretty") {
      continue;  // unknown parameters are ignored (https://hl7.org/fhir/R4/search.html#errors)
    }
    link_params.emplace_back(key, value);
  }
  FHIRSTONE_RETURN_IF_ERROR(
      Authorize(req, req.type.empty() ? std::string_view("*") : req.type, kPermRead));
  auto page = ctx.store.History(query);
  if (!page) return std::move(page).error();
  if (req.access) {  // only the versions the access allows reading; deletions need type access
    std::erase_if(page->entries, [&](const store::ResourceVersion& v) {
      return !CheckStored(ctx, req, kPermRead, v);
    });
  }

  std::string out;
  for (const auto& v : page->entries) NoteDisclosed(req, v);
  out.reserve(256 + page->entries.size() * 512);
  out += "{\"resourceType\":\"Bundle\",\"id\":";
  json::WriteString(ctx.ids.NewId(), out);
  out += ",\"meta\":{\"lastUpdated\":\"";
  out += FormatInstant(ctx.clock.NowMicros());
  out += "\"},\"type\":\"history\"";
  if (page->total) {
    out += ",\"total\":";
    out += std::to_string(*page->total);
  }
  Params self_params = link_params;
  if (query.cursor) self_params.emplace_back("_cursor", std::to_string(*query.cursor));
  out += ",\"link\":[{\"relation\":\"self\",\"url\":";
  json::WriteString(HistoryUrl(ctx, req, self_params), out);
  out += "}";
  if (page->next) {
    Params next_params = link_params;
    next_params.emplace_back("_cursor", std::to_string(*page->next));
    out += ",{\"relation\":\"next\",\"url\":";
    json::WriteString(HistoryUrl(ctx, req, next_params), out);
    out += "}";
  }
  out += "]";
  if (!page->entries.empty()) {
    out += ",\"entry\":[";
    for (size_t i = 0; i < page->entries.size(); ++i) {
      if (i) out += ',';
      AppendEntry(out, ctx, page->entries[i]);
    }
    out += "]";
  }
  out += "}";
  if (req.pretty) {
    auto parsed = json::Parse(out);
    if (!parsed) return Error::Internal("A history bundle could not be rendered");
    return JsonResponse(200, *parsed, /*pretty=*/true);
  }
  return JsonResponse(200, std::move(out));
}

}  // namespace fhirstone::api
