#include "search/query.h"

#include <algorithm>
#include <iterator>

#include "common/strings.h"
#include "fhir/model.h"
#include "search/fulltext.h"

namespace fhirstone::search {
namespace {

Status CheckModifier(const SearchParam& p, const std::string& modifier) {
  if (IsFullText(p) && !modifier.empty())
    return Error::Invalid("The full-text parameter '" + p.code +
                          "' takes no modifier (:" + modifier + ")");
  if (modifier.empty() || modifier == "missing") return Ok();
  auto refuse = [&](std::string_view why) {
    return Error::Invalid("Modifier :" + modifier + " " + std::string(why) + " for the " +
                          std::string(ParamTypeName(p.type)) + " parameter '" + p.code + "'");
  };
  switch (p.type) {
    case ParamType::kString:
      if (modifier == "exact" || modifier == "contains") return Ok();
      break;
    case ParamType::kToken:
      if (p.code == "_id" && modifier != "not") return refuse("is not valid");  // an id has no text
      if (modifier == "text" || modifier == "not") return Ok();
      if (modifier == "of-type") {
        // Identifier-valued parameters only (Patient.identifier, Specimen.accessionIdentifier...).
        if (AsciiLower(p.expression).find("identifier") == std::string::npos)
          return refuse("applies to identifiers only");
        return Ok();
      }
      // A stored ValueSet's codes; a stored CodeSystem's hierarchy.
      if (modifier == "in" || modifier == "not-in" || modifier == "above" || modifier == "below")
        return Ok();
      break;
    case ParamType::kReference:
      if (modifier == "identifier") return Ok();
      if (fhir::IsResourceType(modifier)) {
        if (!p.targets.empty() &&
            std::find(p.targets.begin(), p.targets.end(), modifier) == p.targets.end())
          return refuse("names a type the parameter cannot refer to");
        return Ok();
      }
      break;
    case ParamType::kUri:
      if (modifier == "above" || modifier == "below") return Ok();
      break;
    default:
      break;
  }
  return refuse("is not valid");
}

// Resolves "code" or "code:modifier" of `type`.
Result<std::pair<const SearchParam*, std::string>> FindParam(const Registry& registry,
                                                             std::string_view type,
                                                             std::string_view part) {
  size_t colon = part.find(':');
  std::string code(part.substr(0, colon));
  std::string modifier = colon == std::string_view::npos ? "" : std::string(part.substr(colon + 1));
  const SearchParam* p = registry.Find(type, code);
  if (!p)
    return Error::NotFound("Unknown search parameter '" + code + "' for " + std::string(type));
  return std::make_pair(p, modifier);
}

std::vector<std::string> ChainTargets(const Registry& registry, const SearchParam& p,
                                      const std::string& explicit_type, std::string_view next) {
  if (!explicit_type.empty()) return {explicit_type};
  std::vector<std::string> out;
  std::string next_code(next.substr(0, next.find_first_of(":.")));
  for (const auto& t : p.targets)
    if (registry.Find(t, next_code) || next_code.starts_with("_")) out.push_back(t);
  return out;
}

}  // namespace

std::vector<std::string> SplitValues(std::string_view value) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\\' && i + 1 < value.size() &&
        (value[i + 1] == ',' || value[i + 1] == '$' || value[i + 1] == '|' ||
         value[i + 1] == '\\')) {
      // \| and \$ stay escaped: token and composite values split on them later.
      if (value[i + 1] == '|' || value[i + 1] == '$') out.back().push_back('\\');
      out.back().push_back(value[++i]);
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

Result<SearchQuery> ParseQuery(const Registry& registry, std::vector<std::string> types,
                               const QueryParams& params, const ParseOptions& options) {
  SearchQuery q;
  q.types = std::move(types);
  q.count = options.default_count;
  // The type criteria are checked against: the one type, or (system search) Resource.
  std::string base = q.types.size() == 1 ? q.types[0] : "Resource";
  for (const auto& [key, value] : params) {
    if (key == "_count") {
      auto n = ParseInt64(value);
      if (!n || *n < 0)
        return Error::Invalid("_count must be a non-negative integer, not '" + value + "'");
      q.count = static_cast<int>(std::min<int64_t>(*n, options.max_count));
    } else if (key == "_total") {
      if (value == "none")
        q.total = TotalMode::kNone;
      else if (value == "estimate")
        q.total = TotalMode::kEstimate;
      else if (value == "accurate")
        q.total = TotalMode::kAccurate;
      else
        return Error::Invalid("_total must be none, estimate or accurate, not '" + value + "'");
    } else if (key == "_summary") {
      if (value == "true")
        q.summary = SummaryMode::kTrue;
      else if (value == "text")
        q.summary = SummaryMode::kText;
      else if (value == "data")
        q.summary = SummaryMode::kData;
      else if (value == "count")
        q.summary = SummaryMode::kCount;
      else if (value == "false")
        q.summary = SummaryMode::kFalse;
      else
        return Error::Invalid("_summary must be true, text, data, count or false, not '" + value +
                              "'");
    } else if (key == "_elements") {
      for (auto e : Split(value, ','))
        if (!Trim(e).empty()) q.elements.emplace_back(Trim(e));
    } else if (key == "_page") {
      q.page = value;
      continue;  // not repeated in the self link as such
    } else if (key == "_sort") {
      for (auto part : Split(value, ',')) {
        part = Trim(part);
        if (part.empty()) continue;
        SortKey k;
        if (part.front() == '-') {
          k.descending = true;
          part.remove_prefix(1);
        }
        k.param = registry.Find(base, part);
        if (!k.param)
          return Error::Invalid("Cannot sort by unknown parameter '" + std::string(part) + "'");
        if (k.param->type == ParamType::kComposite || k.param->type == ParamType::kSpecial ||
            IsFullText(*k.param))
          return Error::Invalid("Cannot sort by the " + std::string(ParamTypeName(k.param->type)) +
                                " parameter '" + std::string(part) + "'");
        q.sort.push_back(k);
      }
      if (static_cast<int>(q.sort.size()) > options.max_sort_keys)
        return Error::Invalid("_sort takes at most " + std::to_string(options.max_sort_keys) +
                              " keys");
    } else if (key.starts_with("_include") || key.starts_with("_revinclude")) {
      Include inc;
      inc.reverse = key.starts_with("_revinclude");
      std::string_view mod = std::string_view(key).substr(inc.reverse ? 11 : 8);
      if (mod == ":iterate" || mod == ":recurse") {
        inc.iterate = true;
      } else if (!mod.empty()) {
        return Error::Invalid("Unknown modifier on " + key);
      }
      auto parts = Split(value, ':');
      if (value == "*" && !inc.reverse) {
        // Every reference of every resource in the answer (of any type: a system search, the
        // resources an :iterate round added).
        inc.source_type.clear();
      } else {
        if (parts.size() < 2 || parts.size() > 3 || !fhir::IsResourceType(parts[0]))
          return Error::Invalid(key + " must be SourceType:parameter[:TargetType], not '" + value +
                                "'");
        inc.source_type = std::string(parts[0]);
        if (parts[1] == "*" && inc.reverse) {
          // Type:* — every reference parameter of the type (those stored: a union's operands
          // hold its rows), each a reverse include of its own.
          if (parts.size() == 3) {
            if (!fhir::IsResourceType(parts[2]))
              return Error::Invalid(key + ": unknown target type '" + std::string(parts[2]) + "'");
            inc.target_type = std::string(parts[2]);
          }
          for (const SearchParam* p : registry.StoredForType(inc.source_type)) {
            if (p->type != ParamType::kReference) continue;
            if (!inc.target_type.empty() && !p->targets.empty() &&
                std::find(p->targets.begin(), p->targets.end(), inc.target_type) ==
                    p->targets.end())
              continue;
            Include each = inc;
            each.param = p;
            q.includes.push_back(std::move(each));
          }
          if (static_cast<int>(q.includes.size()) > options.max_includes)
            return Error::Invalid("At most " + std::to_string(options.max_includes) +
                                  " _include and _revinclude parameters (after expanding *)");
          q.understood.emplace_back(key, value);
          continue;
        }
        if (parts[1] != "*") {
          inc.param = registry.Find(inc.source_type, parts[1]);
          if (!inc.param || inc.param->type != ParamType::kReference)
            return Error::Invalid(key + ": '" + std::string(parts[1]) +
                                  "' is not a reference parameter of " + inc.source_type);
        }
        if (parts.size() == 3) {
          if (!fhir::IsResourceType(parts[2]))
            return Error::Invalid(key + ": unknown target type '" + std::string(parts[2]) + "'");
          inc.target_type = std::string(parts[2]);
        }
      }
      q.includes.push_back(std::move(inc));
      if (static_cast<int>(q.includes.size()) > options.max_includes)
        return Error::Invalid("At most " + std::to_string(options.max_includes) +
                              " _include and _revinclude parameters (after expanding *)");
    } else if (key == "_filter" || key == "_query") {
      return Error::NotSupported("The " + key + " parameter is not supported");
    } else if (key == "_format" || key == "_pretty" || key == "_type") {
      // request-level; kept in links
    } else {
      // A criterion: [_has:T:ref:]*param[:modifier][.chain...]
      Criterion c;
      std::string_view rest = key;
      std::string type = base;
      while (rest.starts_with("_has:")) {
        auto parts = Split(rest.substr(5), ':');
        if (parts.size() < 3 || !fhir::IsResourceType(parts[0]))
          return Error::Invalid("_has must be _has:Type:reference:parameter, not '" + key + "'");
        const SearchParam* ref = registry.Find(parts[0], parts[1]);
        if (!ref || ref->type != ParamType::kReference)
          return Error::Invalid("_has: '" + std::string(parts[1]) +
                                "' is not a reference parameter of " + std::string(parts[0]));
        c.has.push_back({std::string(parts[0]), ref, registry.IsShardParam(parts[0], ref)});
        if (static_cast<int>(c.has.size()) > options.max_chain_depth)
          return Error::Invalid("Reverse chains (_has) are limited to " +
                                std::to_string(options.max_chain_depth) + " levels");
        type = std::string(parts[0]);
        rest = rest.substr(5 + parts[0].size() + 1 + parts[1].size() + 1);
      }
      auto links = Split(rest, '.');
      if (static_cast<int>(links.size()) > options.max_chain_depth + 1)
        return Error::Invalid("Chains are limited to " + std::to_string(options.max_chain_depth) +
                              " links");
      // The paths of the chain: one, or one per target type where a link's reference may point
      // to several types that have the next link's parameter (DiagnosticReport?subject.name=x
      // reads Patient, Group, Device... names: search.html#chaining).
      struct Path {
        std::vector<Criterion::Link> chain;
        std::string type;
      };
      std::vector<Path> paths{{{}, type}};
      // With several paths, one that cannot take the rest of the chain (its parameter no
      // reference, of no type the next link names, without the modifier) is dropped; the query
      // is refused only when none is left, with the first path's reason.
      std::optional<Error> refused;
      auto refuse = [&](Error e, size_t paths_now) -> bool {  // true: refuse the query now
        if (paths_now <= 1) {
          refused = std::move(e);
          return true;
        }
        if (!refused) refused = std::move(e);
        return false;
      };
      bool unknown = false;
      for (size_t i = 0; i + 1 < links.size() && !unknown; ++i) {
        std::vector<Path> next_paths;
        refused.reset();
        for (const Path& path : paths) {
          auto found = FindParam(registry, path.type, links[i]);
          if (!found) {  // the first link's only (the next ones' were checked with their types)
            unknown = true;
            break;
          }
          auto [p, modifier] = *found;
          if (!modifier.empty() && !fhir::IsResourceType(modifier))
            return Error::Invalid(
                "A chained parameter takes a resource type as modifier, not ':" + modifier + "'");
          if (p->type != ParamType::kReference) {
            if (refuse(Error::Invalid("Cannot chain on '" + p->code + "': it is a " +
                                      std::string(ParamTypeName(p->type)) +
                                      " parameter, not a reference"),
                       paths.size()))
              return *refused;
            continue;
          }
          if (!modifier.empty() && !p->targets.empty() &&
              std::find(p->targets.begin(), p->targets.end(), modifier) == p->targets.end()) {
            if (refuse(Error::Invalid("'" + p->code + "' cannot refer to a " + modifier +
                                      ": the chain " + key + " can match nothing"),
                       paths.size()))
              return *refused;
            continue;
          }
          for (std::string& target : ChainTargets(registry, *p, modifier, links[i + 1])) {
            Path next = path;
            next.chain.push_back({p, target});
            next.type = std::move(target);
            next_paths.push_back(std::move(next));
          }
        }
        if (unknown) break;
        if (next_paths.empty()) {
          if (refused) return *refused;
          return Error::Invalid("'" + std::string(links[i + 1]) +
                                "' is not a parameter of any type the chain " + key +
                                " reaches there");
        }
        if (static_cast<int>(next_paths.size()) > options.max_chain_paths)
          return Error::Invalid("The chain " + key + " reaches " +
                                std::to_string(next_paths.size()) + " types (at most " +
                                std::to_string(options.max_chain_paths) +
                                "): name the types, e.g. " +
                                next_paths[0].chain.back().param->code + ":" + next_paths[0].type);
        paths = std::move(next_paths);
      }
      if (unknown) {
        if (options.strict) return Error::Invalid("Unknown search parameter '" + key + "'");
        continue;
      }
      std::vector<Criterion> alternatives;
      refused.reset();
      bool ignored = false;
      for (const Path& path : paths) {
        auto found = FindParam(registry, path.type, links.back());
        if (!found) {
          if (paths.size() > 1) continue;  // ChainTargets kept the types with the code
          if (options.strict) return Error::Invalid(found.error().message());
          ignored = true;  // ignored, left out of the self link
          break;
        }
        Criterion alternative = c;
        alternative.chain = path.chain;
        alternative.param = found->first;
        alternative.modifier = found->second;
        alternative.type = path.type;
        if (Status checked = CheckModifier(*alternative.param, alternative.modifier); !checked) {
          if (refuse(checked.error(), paths.size())) return *refused;
          continue;
        }
        if (alternative.param->type == ParamType::kSpecial && alternative.param->code != "near") {
          Error unsupported = Error::NotSupported(
              "Searching on the " + std::string(ParamTypeName(alternative.param->type)) +
              " parameter '" + alternative.param->code + "' is not supported yet");
          if (refuse(unsupported, paths.size())) return *refused;
          continue;
        }
        alternatives.push_back(std::move(alternative));
      }
      if (ignored) continue;
      if (alternatives.empty()) {
        if (refused) return *refused;
        return Error::Invalid("'" + std::string(links.back()) +
                              "' is not a parameter of any type the chain " + key + " reaches");
      }
      c = alternatives[0];
      c.values = SplitValues(value);
      if (static_cast<int>(c.values.size()) > options.max_values)
        return Error::Invalid("Too many values in '" + key + "' (at most " +
                              std::to_string(options.max_values) + ")");
      for (const auto& v : c.values) {
        if (v.empty()) return Error::Invalid("Empty value in '" + key + "'");
        for (const Criterion& alternative : alternatives) {
          if (!IsFullText(*alternative.param)) continue;  // checked here, translated by the store
          auto text = TranslateTextQuery(v, TextSyntax::kFts5);
          if (!text) return Error::Invalid(alternative.param->code + ": " + text.error().message());
        }
      }
      if (c.modifier == "missing") {
        bool missing = false, present = false;
        for (const auto& v : c.values) {
          if (v == "true") {
            missing = true;
          } else if (v == "false") {
            present = true;
          } else {
            return Error::Invalid(":missing takes true or false, not '" + v + "'");
          }
        }
        // true,false: every resource, no criterion (the parameter is understood all the same).
        if (missing && present) {
          q.understood.emplace_back(key, value);
          continue;
        }
        c.values = {missing ? "true" : "false"};
      }
      if (alternatives.size() > 1) {
        for (Criterion& alternative : alternatives) alternative.values = c.values;
        c.any_of = std::move(alternatives);
      }
      q.criteria.push_back(std::move(c));
      if (static_cast<int>(q.criteria.size()) > options.max_values)
        return Error::Invalid("Too many search criteria");
    }
    q.understood.emplace_back(key, value);
  }
  if (!q.sort.empty() && q.types.size() != 1) {
    for (const auto& k : q.sort)
      if (k.param->code != "_id" && k.param->code != "_lastUpdated")
        return Error::Invalid("Across several types, only _id and _lastUpdated can sort");
  }
  return q;
}

std::optional<size_t> ShardCriterion(const Registry& registry, const SearchQuery& q,
                                     std::string* patient) {
  if (q.types.size() != 1 || q.types[0] == "Patient" || !registry.ShardParam(q.types[0]))
    return std::nullopt;
  const std::string& type = q.types[0];
  for (size_t i = 0; i < q.criteria.size(); ++i) {
    const Criterion& c = q.criteria[i];
    bool patients = false;
    if (!registry.IsShardParam(type, c.param, &patients) || !c.chain.empty() || !c.has.empty() ||
        c.values.size() != 1)
      continue;
    if (!c.modifier.empty() && c.modifier != "Patient") continue;
    std::string_view v = c.values[0];
    bool only_patients = c.modifier == "Patient" || patients;
    if (v.starts_with("Patient/")) {
      v.remove_prefix(8);
    } else if (!only_patients) {
      continue;
    }
    if (v.empty() || v.find('/') != std::string_view::npos || v.find(':') != std::string_view::npos)
      continue;
    if (patient) *patient = std::string(v);
    return i;
  }
  return std::nullopt;
}

namespace {

// Token parameters whose values are codes of the resource (no identifier, telecom or free value
// of a person): the built-in ones an app searches a patient's data by.
bool CodeToken(const SearchParam& p, std::string_view type) {
  static constexpr std::string_view kCodes[] = {"code",
                                                "category",
                                                "status",
                                                "clinical-status",
                                                "verification-status",
                                                "intent",
                                                "priority",
                                                "class",
                                                "type",
                                                "combo-code",
                                                "component-code",
                                                "value-concept",
                                                "vaccine-code",
                                                "criticality",
                                                "severity",
                                                "_tag",
                                                "_security"};
  if (!p.builtin) return false;
  if (p.code == "_id") return type != "Patient";
  return std::find(std::begin(kCodes), std::end(kCodes), p.code) != std::end(kCodes);
}

}  // namespace

std::optional<std::string> QueryPatient(const Registry& registry, const SearchQuery& q) {
  if (q.types.size() != 1) return std::nullopt;
  const std::string& type = q.types[0];
  if (type == "Patient") {
    // Patient?_id=123 (the access's restriction may repeat it): nothing but that id.
    std::optional<std::string> patient;
    for (const Criterion& c : q.criteria) {
      if (!c.param || c.param->code != "_id" || !c.modifier.empty() || !c.chain.empty() ||
          !c.has.empty() || c.values.size() != 1 || (patient && *patient != c.values[0]))
        return std::nullopt;
      patient = c.values[0];
    }
    if (q.compartment && (q.compartment->type != "Patient" || q.compartment->id != patient))
      return std::nullopt;
    if (!patient || patient->empty()) return std::nullopt;
    return patient;
  }
  std::optional<std::string> patient;
  std::string id;
  std::optional<size_t> named = ShardCriterion(registry, q, &id);  // the criterion naming it
  if (q.compartment) {
    if (q.compartment->type != "Patient") return std::nullopt;
    patient = q.compartment->id;
    if (named && id != *patient) return std::nullopt;  // another patient named besides
  } else if (named) {
    patient = std::move(id);
  }
  if (!patient || patient->empty()) return std::nullopt;
  for (size_t i = 0; i < q.criteria.size(); ++i) {
    if (i == named) continue;
    const Criterion& c = q.criteria[i];
    if (!c.param || !c.chain.empty() || !c.has.empty()) return std::nullopt;
    if (!c.modifier.empty() && c.modifier != "missing" && c.modifier != "not") return std::nullopt;
    switch (c.param->type) {
      case ParamType::kToken:
        if (!CodeToken(*c.param, type)) return std::nullopt;
        break;
      case ParamType::kDate:
      case ParamType::kNumber:
      case ParamType::kQuantity:
        break;
      default:
        return std::nullopt;
    }
  }
  return patient;
}

std::optional<int64_t> QueryShard(const Registry& registry, const SearchQuery& q) {
  if (q.types.size() != 1) return std::nullopt;
  const std::string& type = q.types[0];
  if (type == "Patient") {
    for (const Criterion& c : q.criteria) {
      if (c.param && c.param->code == "_id" && c.modifier.empty() && c.chain.empty() &&
          c.has.empty() && c.values.size() == 1)
        return PatientShardKey(c.values[0]);
    }
    return std::nullopt;
  }
  if (!registry.ShardParam(type)) return std::nullopt;
  if (q.compartment && q.compartment->type == "Patient") {
    const auto& params = q.compartment->params;
    if (params.size() == 1 && registry.IsShardParam(type, params[0]))
      return PatientShardKey(q.compartment->id);
  }
  std::string patient;
  if (ShardCriterion(registry, q, &patient)) return PatientShardKey(patient);
  return std::nullopt;
}

}  // namespace fhirstone::search
