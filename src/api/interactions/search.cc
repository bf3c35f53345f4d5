// search: https://hl7.org/fhir/R4/http.html#search and https://hl7.org/fhir/R4/search.html.
// Type-level (GET /Type?..., POST /Type/_search with a form body), system-level (GET /?_type=...,
// POST /_search) and compartment search (GET /Patient/123/Observation). The answer is a Bundle of
// type searchset whose entries carry search.mode match or include, with self/next/previous links.
// Unknown parameters are ignored and left out of the self link, or refused under
// Prefer: handling=strict.
#include <spdlog/spdlog.h>

#include <chrono>

#include "api/internal/request.h"
#include "common/strings.h"
#include "common/time.h"
#include "fhir/model.h"
#include "fhir/summary.h"
#include "search/query.h"

namespace fhirstone::api {
namespace {

bool StrictHandling(const http::Request& http) {
  for (auto part : Split(http.Header("Prefer"), ','))
    for (auto token : Split(part, ';'))
      if (Trim(token) == "handling=strict") return true;
  return false;
}

std::string SearchUrl(const ApiContext& ctx, const FhirRequest& req,
                      const search::QueryParams& params) {
  std::string url = ctx.base;
  if (!req.compartment_type.empty()) url += "/" + req.compartment_type + "/" + req.compartment_id;
  if (!req.type.empty()) url += "/" + req.type;
  return WithQuery(std::move(url), params);
}

void AppendLink(std::string& out, const char* relation, const std::string& url) {
  out += "{\"relation\":\"";
  out += relation;
  out += "\",\"url\":";
  json::WriteString(url, out);
  out += "}";
}

// Whether the entries carry the stored bodies as they are (no _summary, no _elements).
bool WholeResources(const search::SearchQuery& q) {
  return (q.summary == search::SummaryMode::kNone || q.summary == search::SummaryMode::kFalse) &&
         q.elements.empty();
}

// The resource of an entry when it is not whole: summarized or cut to _elements.
Result<std::string> EntryResource(const store::ResourceVersion& v, const search::SearchQuery& q) {
  auto parsed = json::Parse(v.body);
  if (!parsed) return Error::Internal("A stored resource could not be parsed");
  json::Value resource = std::move(parsed).value();
  switch (q.summary) {
    case search::SummaryMode::kTrue:
      resource = fhir::Summarize(resource, fhir::SummaryMode::kTrue);
      break;
    case search::SummaryMode::kText:
      resource = fhir::Summarize(resource, fhir::SummaryMode::kText);
      break;
    case search::SummaryMode::kData:
      resource = fhir::Summarize(resource, fhir::SummaryMode::kData);
      break;
    default:
      break;
  }
  if (!q.elements.empty()) resource = fhir::SelectElements(resource, q.elements);
  return json::Write(resource);
}

// Appends searchset entries: `{"fullUrl":"` with the escaped base, type and id, the resource and
// `suffix` (its search mode). The escaped prefix of the last type is kept for the next entry.
class EntryWriter {
 public:
  explicit EntryWriter(std::string_view base) {
    base_prefix_ = "{\"fullUrl\":\"";
    json::AppendEscaped(base, base_prefix_);
    base_prefix_ += '/';
  }
  void Append(std::string& out, const store::ResourceVersion& v, std::string_view resource,
              std::string_view suffix) {
    if (prefix_.empty() || v.type != type_) {
      type_ = v.type;
      prefix_ = base_prefix_;
      json::AppendEscaped(v.type, prefix_);
      prefix_ += '/';
    }
    out.append(prefix_);
    json::AppendEscaped(v.id, out);
    out.append(std::string_view("\",\"resource\":"));
    out.append(resource);
    out.append(suffix);
  }

 private:
  std::string base_prefix_;
  std::string type_;
  std::string prefix_;  // base_prefix_, type_ escaped and a slash
};

}  // namespace

Result<http::Response> HandleSearch(const ApiContext& ctx, const FhirRequest& req) {
  search::QueryParams params = req.params;
  if (req.http->method == "POST") {
    std::string_view content_type = req.http->Header("Content-Type");
    std::string media = AsciiLower(Trim(content_type.substr(0, content_type.find(';'))));
    if (!req.http->body.empty() && media != "application/x-www-form-urlencoded")
      return Error::UnsupportedMediaType(
          "POST _search takes an application/x-www-form-urlencoded body");
    // As long as a request line and headers may be (http::ServerOptions::max_header_bytes): the
    // bounds of a query hold whichever way it comes.
    constexpr size_t kMaxForm = 64 * 1024;
    if (req.http->body.size() > kMaxForm)
      return Error::Invalid("The form body of _search is over 64 KiB, the limit of a query");
    auto form = ParseTarget("/?" + req.http->body);
    if (!form) return Error::Invalid("The form body of _search is malformed");
    params.insert(params.end(), form->params.begin(), form->params.end());
  }
  std::vector<std::string> types;
  if (!req.type.empty()) {
    types.push_back(req.type);
  } else {
    for (const auto& [key, value] : params) {
      if (key != "_type") continue;
      for (auto t : Split(value, ',')) {
        t = Trim(t);
        if (!fhir::IsResourceType(t))
          return Error::Invalid("_type: unknown resource type '" + std::string(t) + "'");
        types.emplace_back(t);
      }
    }
  }
  search::ParseOptions options;
  options.strict = StrictHandling(*req.http);
  options.default_count = ctx.options.default_page_size;
  options.max_count = ctx.options.max_page_size;
  std::shared_ptr<const search::Registry> registry = ctx.registry.Get();  // kept for the request
  auto query = search::ParseQuery(*registry, types, params, options);
  if (!query) return std::move(query).error();
  if (!req.compartment_type.empty()) {
    search::Compartment c;
    c.type = req.compartment_type;
    c.id = req.compartment_id;
    c.params = registry->CompartmentParams(req.compartment_type, req.type);
    if (c.params.empty() && req.type != req.compartment_type)
      return Error::Invalid(req.type + " resources are not in the " + req.compartment_type +
                            " compartment");
    query->compartment = std::move(c);
  }
  FHIRSTONE_RETURN_IF_ERROR(RestrictSearch(ctx, req, *registry, *query));

  query->with_patients = req.audit != nullptr;  // the audit log splits its records per patient
  if (req.access) {
    // Included resources are shown only when the access allows reading them; the store leaves
    // out the others as it reads them, before an :iterate round follows their references.
    query->include_visible = [&](std::string_view type, std::string_view body) {
      store::ResourceVersion v;
      v.type = type;
      v.body = body;
      return CheckStored(ctx, req, kPermRead, v) || CheckStored(ctx, req, kPermSearch, v);
    };
  }
  auto start = std::chrono::steady_clock::now();
  auto result = ctx.store.Search(*query);
  if (!result) return std::move(result).error();
  for (const auto& v : result->matches) NoteDisclosed(req, v);
  for (const auto& v : result->included) NoteDisclosed(req, v);
  if (req.audit) {
    // A query about one patient may stay in that patient's audit record: every parameter of it
    // understood (an ignored one could name anyone), none of free text (_elements, _type).
    store::AuditRecord& r = req.audit->record;
    bool checked = query->understood.size() + (query->page ? 1 : 0) == params.size() &&
                   std::none_of(params.begin(), params.end(), [](const auto& p) {
                     return p.first == "_elements" || p.first == "_type";
                   });
    if (checked) {
      if (auto patient = search::QueryPatient(*registry, *query)) r.query_patient = *patient;
    }
    // One Patient disclosed (or a compartment's patient, nothing disclosed): the record has that
    // patient already. A query not about them alone goes to a record of its own, as when several
    // patients' data are disclosed.
    if (!r.patient.empty() && !r.query.empty() && r.patient != r.query_patient) {
      r.patients.push_back(std::move(r.patient));
      r.patient.clear();
    }
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (elapsed.count() >= ctx.options.slow_search_ms) {
    spdlog::info("slow search ({} ms) on {}: plan {}", elapsed.count(), req.type, result->plan);
  } else {
    spdlog::debug("search on {}: plan {}", req.type, result->plan);
  }

  std::string out;
  const bool whole = WholeResources(*query);
  size_t size = 1024;
  for (const auto* list : {&result->matches, &result->included})
    for (const auto& v : *list)
      size += (whole ? v.body.size() : 1024) + ctx.base.size() + v.type.size() + v.id.size() + 64;
  out.reserve(size);
  out += "{\"resourceType\":\"Bundle\",\"id\":";
  json::WriteString(ctx.ids.NewId(), out);
  out += ",\"meta\":{\"lastUpdated\":\"";
  out += FormatInstant(ctx.clock.NowMicros());
  out += "\"},\"type\":\"searchset\"";
  if (result->total) {
    out += ",\"total\":";
    out += std::to_string(*result->total);
  }
  search::QueryParams link_params = query->understood;
  out += ",\"link\":[";
  search::QueryParams self = link_params;
  if (query->page) self.emplace_back("_page", *query->page);
  AppendLink(out, "self", SearchUrl(ctx, req, self));
  if (result->next_page) {
    search::QueryParams next = link_params;
    next.emplace_back("_page", *result->next_page);
    out += ",";
    AppendLink(out, "next", SearchUrl(ctx, req, next));
  }
  if (result->previous_page) {
    search::QueryParams previous = link_params;
    previous.emplace_back("_page", *result->previous_page);
    out += ",";
    AppendLink(out, "previous", SearchUrl(ctx, req, previous));
  }
  out += "]";
  if (!result->matches.empty() || !result->included.empty()) {
    EntryWriter entries(ctx.base);
    out += ",\"entry\":[";
    bool first = true;
    for (const auto& [list, mode] :
         {std::pair{&result->matches, std::string_view(",\"search\":{\"mode\":\"match\"}}")},
          std::pair{&result->included, std::string_view(",\"search\":{\"mode\":\"include\"}}")}}) {
      for (const auto& v : *list) {
        if (!first) out += ',';
        first = false;
        if (whole) {
          entries.Append(out, v, v.body, mode);
          continue;
        }
        auto resource = EntryResource(v, *query);
        if (!resource) return std::move(resource).error();
        entries.Append(out, v, *resource, mode);
      }
    }
    if (!result->included_cut.empty()) {  // says so, rather than look complete
      out +=
          ",{\"resource\":{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
          "\"warning\",\"code\":\"incomplete\",\"diagnostics\":";
      json::WriteString(result->included_cut, out);
      out += "}]},\"search\":{\"mode\":\"outcome\"}}";
    }
    out += "]";
  }
  out += "}";
  if (req.pretty) {
    auto parsed = json::Parse(out);
    if (!parsed) return Error::Internal("A search bundle could not be rendered");
    return JsonResponse(200, *parsed, /*pretty=*/true);
  }
  return JsonResponse(200, std::move(out));
}

}  // namespace fhirstone::api
