// capabilities: https://hl7.org/fhir/R4/http.html#capabilities. The CapabilityStatement states
// exactly what this server implements, no more: the instance-level and type-level interactions
// below for every R4 resource type, versioned updates, system history, and search with every
// R4 search parameter except the special ones (_query, _filter...; near, _text and _content are
// offered), conditional
// create/read/update/delete (multiple deletes), patch (JSON Patch and FHIRPath Patch), batch
// and transaction. AuditEvent is the server's audit log: read, vread, create and search on the
// parameters the log answers, nothing else (docs/decisions/0010-audit.md).
#include <algorithm>

#include "api/internal/request.h"
#include "common/time.h"
#include "fhir/model.h"
#include "search/fulltext.h"

namespace fhirstone::api {
namespace {

json::Value Code(std::string_view code) {
  json::Value v = json::Value::EmptyObject();
  v.Set("code", code);
  return v;
}

json::Value SearchParamEntry(const search::SearchParam& p) {
  json::Value sp = json::Value::EmptyObject();
  sp.Set("name", p.code);
  sp.Set("definition", p.url);
  sp.Set("type", search::ParamTypeName(p.type));
  return sp;
}

// The audit log: append-only, searched on its own columns.
json::Value AuditEventCapability(const search::Registry& registry) {
  json::Value r = json::Value::EmptyObject();
  r.Set("type", "AuditEvent");
  r.Set("documentation",
        "The server's audit log (IHE Basic Audit Log Patterns): every access and security event, "
        "hash-chained. Records are appended, never changed or deleted; the server assigns ids.");
  json::Array interactions;
  for (const char* code : {"read", "vread", "create", "search-type"})
    interactions.push_back(Code(code));
  r.Set("interaction", std::move(interactions));
  r.Set("versioning", "versioned");
  r.Set("readHistory", false);
  r.Set("updateCreate", false);
  json::Array search_params;
  for (const char* code : {"_id", "action", "address", "agent", "date", "entity", "outcome",
                           "patient", "subtype", "type"})
    if (const search::SearchParam* p = registry.Find("AuditEvent", code))
      search_params.push_back(SearchParamEntry(*p));
  r.Set("searchParam", std::move(search_params));
  return r;
}

}  // namespace

json::Value BuildCapabilityStatement(const ApiContext& ctx) {
  json::Value cs = json::Value::EmptyObject();
  cs.Set("resourceType", "CapabilityStatement");
  cs.Set("status", "active");
  cs.Set("date", FormatInstant(ctx.clock.NowMicros()).substr(0, 10));
  cs.Set("publisher", "Fhirstone");
  cs.Set("kind", "instance");
  json::Value software = json::Value::EmptyObject();
  software.Set("name", "Fhirstone");
  software.Set("version", ctx.options.software_version);
  cs.Set("software", std::move(software));
  json::Value implementation = json::Value::EmptyObject();
  implementation.Set("description", "Fhirstone FHIR R4 server");
  implementation.Set("url", ctx.base);
  cs.Set("implementation", std::move(implementation));
  cs.Set("fhirVersion", "4.0.1");
  cs.Set("patchFormat", json::Array{json::Value("application/json-patch+json"),
                                    json::Value("application/fhir+json")});
  cs.Set("format", json::Array{json::Value("application/fhir+json"), json::Value("json"),
                               json::Value("application/json")});

  std::shared_ptr<const search::Registry> registry = ctx.registry.Get();
  json::Array resources;
  for (std::string_view type : fhir::ResourceTypes()) {
    json::Value r = json::Value::EmptyObject();
    r.Set("type", type);
    if (type == "AuditEvent") {
      resources.push_back(AuditEventCapability(*registry));
      continue;
    }
    json::Array interactions;
    for (const char* code : {"read", "vread", "update", "patch", "delete", "history-instance",
                             "history-type", "create", "search-type"})
      interactions.push_back(Code(code));
    r.Set("interaction", std::move(interactions));
    r.Set("versioning", "versioned-update");
    r.Set("readHistory", true);
    r.Set("updateCreate", true);
    r.Set("conditionalCreate", true);
    r.Set("conditionalRead", "full-support");
    r.Set("conditionalUpdate", true);
    r.Set("conditionalDelete", "multiple");
    r.Set("searchInclude", json::Array{json::Value("*")});
    r.Set("searchRevInclude", json::Array{json::Value("*")});
    std::vector<const search::SearchParam*> params = registry->ForType(type);
    std::sort(params.begin(), params.end(),
              [](const auto* a, const auto* b) { return a->code < b->code; });
    json::Array search_params;
    for (const search::SearchParam* p : params) {
      if (p->type == search::ParamType::kSpecial && p->code != "near") continue;
      if (!p->compiled && p->code != "_id" && p->code != "_lastUpdated" && !search::IsFullText(*p))
        continue;
      search_params.push_back(SearchParamEntry(*p));
    }
    r.Set("searchParam", std::move(search_params));
    resources.push_back(std::move(r));
  }
  json::Value rest = json::Value::EmptyObject();
  rest.Set("mode", "server");
  if (!ctx.options.security.is_null()) rest.Set("security", ctx.options.security);
  rest.Set("resource", std::move(resources));
  rest.Set("interaction", json::Array{Code("transaction"), Code("batch"), Code("history-system"),
                                      Code("search-system")});
  if (ctx.options.start_reindex) {
    json::Value reindex = json::Value::EmptyObject();
    reindex.Set("name", "reindex");
    reindex.Set("definition", ctx.base + "/OperationDefinition/reindex");
    rest.Set("operation", json::Array{std::move(reindex)});
  }
  cs.Set("rest", json::Array{std::move(rest)});
  return cs;
}

}  // namespace fhirstone::api
