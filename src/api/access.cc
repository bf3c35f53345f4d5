// Enforcement of SMART scopes on the FHIR API
// (https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html): the letters
// c, r, u, d, s per resource type, patient/ scopes confined to the patient compartment
// (https://hl7.org/fhir/R4/compartmentdefinition-patient.html) and v2 query restrictions.
// Resource types outside the Patient compartment (Practitioner, Organization, Medication...) are
// not patient data: a patient/ scope on them allows them by type alone.
#include <algorithm>

#include "api/internal/request.h"
#include "common/strings.h"
#include "search/extract.h"
#include "search/normalize.h"
#include "search/query.h"

namespace fhirstone::api {
namespace {

std::string PermissionWord(Permission permission) {
  switch (permission) {
    case kPermCreate:
      return "create";
    case kPermRead:
      return "read";
    case kPermUpdate:
      return "update";
    case kPermDelete:
      return "delete";
    case kPermSearch:
      return "search";
  }
  return "access";
}

bool InCompartmentType(const search::Registry& registry, std::string_view type) {
  return type == "Patient" || !registry.CompartmentParams("Patient", type).empty();
}

// Whether `resource` belongs to the compartment of Patient/`patient`.
bool InPatientCompartment(const ApiContext& ctx, const search::Registry& registry,
                          const json::Value& resource, const std::string& patient) {
  if (patient.empty()) return false;
  std::string_view type = resource.GetString("resourceType");
  if (type == "Patient") return resource.GetString("id") == patient;
  const auto& params = registry.CompartmentParams("Patient", type);
  if (params.empty()) return true;  // not patient data
  // Only the compartment's parameters are evaluated (not the whole index).
  search::IndexEntries entries = search::ExtractIndex(params, resource, ctx.base);
  for (const auto& ref : entries.references)
    if (ref.target_type == "Patient" && ref.target_id == patient) return true;
  return false;
}

// Whether `resource` matches one restriction parameter (values OR'ed), judged on its index
// entries. Supported: _id, token, reference, uri and string parameters without modifiers;
// anything else does not match (access is refused rather than guessed).
bool MatchesParam(const ApiContext& ctx, const search::Registry& registry,
                  const json::Value& resource, const search::IndexEntries& entries,
                  const std::string& name, const std::string& value) {
  if (name.find(':') != std::string::npos) return false;
  std::vector<std::string> values = search::SplitValues(value);
  if (name == "_id") {
    std::string_view id = resource.GetString("id");
    return std::find(values.begin(), values.end(), id) != values.end();
  }
  const search::SearchParam* param = registry.Find(resource.GetString("resourceType"), name);
  if (!param) return false;
  for (const auto& v : values) {
    switch (param->type) {
      case search::ParamType::kToken: {
        size_t bar = v.find('|');
        for (const auto& t : entries.tokens) {
          if (t.param != param || t.of_type) continue;  // :of-type rows are not the values
          if (bar == std::string::npos) {
            if (t.code == v) return true;
          } else {
            std::string_view system = std::string_view(v).substr(0, bar);
            std::string_view code = std::string_view(v).substr(bar + 1);
            if (t.system == system && (code.empty() || t.code == code)) return true;
          }
        }
        break;
      }
      case search::ParamType::kReference:
        for (const auto& r : entries.references) {
          if (r.param != param) continue;
          if (r.url == v || (!r.target_id.empty() &&
                             (r.target_id == v || r.target_type + "/" + r.target_id == v)))
            return true;
        }
        break;
      case search::ParamType::kUri:
        for (const auto& u : entries.uris)
          if (u.param == param && u.uri == v) return true;
        break;
      case search::ParamType::kString: {
        std::string wanted = search::NormalizeString(v);
        for (const auto& s : entries.strings)
          if (s.param == param && std::string_view(s.normalized).starts_with(wanted)) return true;
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

bool MatchesQuery(const ApiContext& ctx, const search::Registry& registry,
                  const json::Value& resource,
                  const std::vector<std::pair<std::string, std::string>>& query) {
  if (query.empty()) return true;
  search::IndexEntries entries = search::ExtractIndex(registry, resource, ctx.base);
  for (const auto& [name, value] : query)
    if (!MatchesParam(ctx, registry, resource, entries, name, value)) return false;
  return true;
}

Error Denied(const FhirRequest& req, std::string message) {
  return Error::Forbidden(std::move(message) + (req.access && !req.access->client_id.empty()
                                                    ? " (client " + req.access->client_id + ")"
                                                    : std::string()));
}

}  // namespace

Result<Grant> Authorize(const FhirRequest& req, std::string_view type, Permission permission) {
  Grant grant;
  if (!req.access) {
    grant.unrestricted = true;
    return grant;
  }
  for (const auto& rule : req.access->rules) {
    if ((rule.type != "*" && rule.type != type) || !(rule.permissions & permission)) continue;
    if (!rule.patient_context && rule.query.empty()) {
      grant.unrestricted = true;
      grant.allowances.clear();
      return grant;
    }
    grant.allowances.push_back(Allowance{rule.patient_context, &rule.query});
  }
  if (grant.allowances.empty())
    return Denied(req, "The access token does not allow to " + PermissionWord(permission) + " " +
                           std::string(type) + " resources");
  return grant;
}

bool Permits(const ApiContext& ctx, const FhirRequest& req, const Grant& grant,
             const json::Value& resource) {
  if (grant.unrestricted) return true;
  std::shared_ptr<const search::Registry> registry = ctx.registry.Get();
  for (const auto& a : grant.allowances) {
    if (a.patient_context &&
        !InPatientCompartment(ctx, *registry, resource, req.access ? req.access->patient : ""))
      continue;
    if (a.query && !MatchesQuery(ctx, *registry, resource, *a.query)) continue;
    return true;
  }
  return false;
}

Status CheckResource(const ApiContext& ctx, const FhirRequest& req, Permission permission,
                     const json::Value& resource) {
  if (!req.access) return Ok();
  std::string type(resource.GetString("resourceType"));
  auto grant = Authorize(req, type, permission);
  if (!grant) return std::move(grant).error();
  if (Permits(ctx, req, *grant, resource)) return Ok();
  std::string id(resource.GetString("id"));
  return Denied(req, "The access token does not allow to " + PermissionWord(permission) + " " +
                         type + (id.empty() ? std::string(" resources like this one") : "/" + id) +
                         ": it is outside the granted patient compartment or scope restriction");
}

Status CheckStored(const ApiContext& ctx, const FhirRequest& req, Permission permission,
                   const store::ResourceVersion& v) {
  if (!req.access) return Ok();
  auto grant = Authorize(req, v.type, permission);
  if (!grant) return std::move(grant).error();
  if (grant->unrestricted) return Ok();  // no need to look inside
  if (v.body.empty())                    // a deletion: only unrestricted access sees it
    return Denied(req, "The access token does not allow to see deleted " + v.type + " resources");
  auto parsed = json::Parse(v.body);
  if (!parsed) return Error::Internal("A stored resource could not be parsed");
  return CheckResource(ctx, req, permission, *parsed);
}

Status CheckConditional(const FhirRequest& req, std::string_view type) {
  if (!req.access) return Ok();
  auto grant = Authorize(req, type, kPermSearch);
  if (!grant) return std::move(grant).error();
  if (grant->unrestricted) return Ok();
  return Denied(req, "Conditional operations on " + std::string(type) +
                         " need user- or system-level search access without restriction");
}

namespace {

// The one allowance of `grant` (not unrestricted, on `type`) that a search applies: the most
// permissive one when several would; Forbidden when their restrictions differ.
Result<const Allowance*> ChooseAllowance(const FhirRequest& req, const Grant& grant,
                                         std::string_view type) {
  const Allowance* chosen = nullptr;
  for (const auto& a : grant.allowances) {
    bool broader =
        !chosen || (chosen->query && !chosen->query->empty() && (!a.query || a.query->empty()) &&
                    (a.patient_context == chosen->patient_context || !a.patient_context));
    if (broader) chosen = &a;
  }
  for (const auto& a : grant.allowances) {
    if (&a == chosen) continue;
    bool covered = (!chosen->query || chosen->query->empty()) &&
                   (!chosen->patient_context || a.patient_context);
    if (!covered)
      return Denied(req, "The granted scopes on " + std::string(type) +
                             " carry different restrictions; one search cannot combine them");
  }
  if (!chosen) return Denied(req, "The access token does not allow to search " + std::string(type));
  return chosen;
}

// The criteria of a scope's query restriction on `type` (`?category=...`), as a search of that
// type. A restriction that chains or reverse-chains is refused (it would read other types
// unchecked), as one whose values need expanding where it confines a chain's link (`in_link`: the
// store expands the criteria of a search, not those of its links).
Result<std::vector<search::Criterion>> RestrictionCriteria(
    const FhirRequest& req, const search::Registry& registry, std::string_view type,
    const std::vector<std::pair<std::string, std::string>>& restriction, bool in_link) {
  search::ParseOptions options;
  options.strict = true;
  auto parsed = search::ParseQuery(registry, {std::string(type)}, restriction, options);
  if (!parsed) return std::move(parsed).error();
  for (const auto& c : parsed->criteria) {
    if (!c.chain.empty() || !c.has.empty() || !c.any_of.empty())
      return Denied(req, "The access token's query restriction on " + std::string(type) +
                             " chains to other types: it cannot confine a search");
    bool expanded = c.modifier == "in" || c.modifier == "not-in" ||
                    ((c.modifier == "above" || c.modifier == "below") && c.param &&
                     c.param->type == search::ParamType::kToken);
    if (in_link && expanded)
      return Denied(req, "The access token's query restriction on " + std::string(type) + " (:" +
                             c.modifier + ") cannot confine a chain or reverse chain through " +
                             std::string(type) + ": search " + std::string(type) + " itself");
  }
  return std::move(parsed->criteria);
}

// Chains and reverse chains read the types they pass through: search access to each. With
// `registry`, the resources each link reads are confined to what that access allows (the
// patient's compartment, the scope's query restriction), as a search of the type itself would
// be; without, the access must be unrestricted (conditional operations).
Status AuthorizeCriteriaTypes(const FhirRequest& req, const search::Registry* registry,
                              search::SearchQuery& query) {
  auto confine = [&](const std::string& type,
                     std::shared_ptr<const search::Confinement>& confined) -> Status {
    auto grant = Authorize(req, type, kPermSearch);
    if (!grant) return std::move(grant).error();
    if (grant->unrestricted) return Ok();
    if (!registry)
      return Denied(req, "Conditional operations need unrestricted search access to " + type +
                             ", which their criteria read");
    auto chosen = ChooseAllowance(req, *grant, type);
    if (!chosen) return std::move(chosen).error();
    auto c = std::make_shared<search::Confinement>();
    if ((*chosen)->patient_context && InCompartmentType(*registry, type)) {
      c->patient = req.access->patient;
      if (c->patient.empty())
        return Denied(req, "No patient is in context for patient-level access");
      if (type != "Patient") c->compartment = registry->CompartmentParams("Patient", type);
    }
    if ((*chosen)->query && !(*chosen)->query->empty()) {
      auto criteria = RestrictionCriteria(req, *registry, type, *(*chosen)->query, true);
      if (!criteria) return std::move(criteria).error();
      c->criteria = std::move(criteria).value();
    }
    if (!c->patient.empty() || !c->criteria.empty()) confined = std::move(c);
    return Ok();
  };
  for (auto& c : query.criteria) {
    for (auto& link : c.chain) FHIRSTONE_RETURN_IF_ERROR(confine(link.target_type, link.confined));
    for (auto& path : c.any_of) {  // a chain through several types: every path's
      for (auto& link : path.chain)
        FHIRSTONE_RETURN_IF_ERROR(confine(link.target_type, link.confined));
      for (auto& has : path.has) FHIRSTONE_RETURN_IF_ERROR(confine(has.type, has.confined));
    }
    for (auto& has : c.has) FHIRSTONE_RETURN_IF_ERROR(confine(has.type, has.confined));
  }
  return Ok();
}

}  // namespace

Status CheckConditional(const ApiContext& ctx, const FhirRequest& req, std::string_view type,
                        std::string_view criteria) {
  if (!req.access) return Ok();
  FHIRSTONE_RETURN_IF_ERROR(CheckConditional(req, type));
  if (criteria.starts_with("?")) criteria.remove_prefix(1);
  auto target = ParseTarget("/?" + std::string(criteria));
  if (!target) return Ok();  // refused as malformed where it is run
  std::shared_ptr<const search::Registry> registry = ctx.registry.Get();
  auto query = search::ParseQuery(*registry, {std::string(type)}, target->params, {});
  if (!query) return Ok();  // refused where it is run, with the reason
  return AuthorizeCriteriaTypes(req, nullptr, *query);
}

Status RestrictSearch(const ApiContext& ctx, const FhirRequest& req,
                      const search::Registry& registry, search::SearchQuery& query) {
  if (!req.access) return Ok();
  FHIRSTONE_RETURN_IF_ERROR(AuthorizeCriteriaTypes(req, &registry, query));
  if (query.types.size() != 1) {
    std::vector<std::string> types = query.types;
    if (types.empty()) types.push_back("*");
    for (const auto& t : types) {
      auto grant = Authorize(req, t, kPermSearch);
      if (!grant) return std::move(grant).error();
      if (!grant->unrestricted)
        return Denied(req, "A search across several types needs unrestricted search access to " +
                               (t == "*" ? std::string("all types") : t) +
                               ": search one type at a time");
    }
    return Ok();
  }
  const std::string& type = query.types.front();
  auto grant = Authorize(req, type, kPermSearch);
  if (!grant) return std::move(grant).error();
  if (grant->unrestricted) return Ok();
  // One allowance applies: the most permissive one when several would, else refuse to guess.
  auto allowance = ChooseAllowance(req, *grant, type);
  if (!allowance) return std::move(allowance).error();
  const Allowance* chosen = *allowance;
  bool in_compartment = InCompartmentType(registry, type);
  if (chosen->patient_context && in_compartment) {
    const std::string& patient = req.access->patient;
    if (patient.empty()) return Denied(req, "No patient is in context for patient-level access");
    if (query.compartment) {
      if (query.compartment->type != "Patient" || query.compartment->id != patient)
        return Denied(req, "The access token only allows the compartment of Patient/" + patient);
    } else if (type == "Patient") {
      auto id = search::ParseQuery(registry, {type}, {{"_id", patient}}, {});
      if (!id) return std::move(id).error();
      for (auto& c : id->criteria) query.criteria.push_back(std::move(c));
    } else {
      search::Compartment c;
      c.type = "Patient";
      c.id = patient;
      c.params = registry.CompartmentParams("Patient", type);
      query.compartment = std::move(c);
    }
  }
  if (chosen->query && !chosen->query->empty()) {
    auto criteria = RestrictionCriteria(req, registry, type, *chosen->query, false);
    if (!criteria) return std::move(criteria).error();
    for (auto& c : *criteria) query.criteria.push_back(std::move(c));
  }
  return Ok();
}

}  // namespace fhirstone::api
