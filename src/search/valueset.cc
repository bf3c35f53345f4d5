#include "search/valueset.h"

#include <algorithm>
#include <map>
#include <set>

namespace fhirstone::search {
namespace {

constexpr int kMaxDepth = 5;  // value sets that include value sets

std::string Str(const json::Value* v) { return v && v->is_string() ? v->as_string() : ""; }

constexpr size_t kMaxValueSets = 50;  // distinct value sets one expansion may read

// The value sets included so far by canonical, shared by the expanders of one expansion: each
// is read and expanded once however often it is included.
struct Shared {
  std::map<std::string, std::vector<ValueSetCode>, std::less<>> expanded;
  std::set<std::string, std::less<>> expanding;  // on the current path: a cycle
};

struct Expander {
  const ValueSetResolver& resolve;
  size_t max_codes;
  Shared& shared;
  std::vector<ValueSetCode> codes;

  Status Add(ValueSetCode c) {
    if (std::find(codes.begin(), codes.end(), c) != codes.end()) return Ok();
    codes.push_back(std::move(c));
    if (codes.size() > max_codes)
      return Error::Invalid("The value set has more than " + std::to_string(max_codes) +
                            " codes: too many to search with :in or :not-in");
    return Ok();
  }

  Status Contains(const json::Value& list, int depth) {
    if (!list.is_array() || depth > 50) return Ok();
    for (const auto& c : list.as_array()) {
      std::string code = Str(c.Find("code"));
      if (!code.empty()) FHIRSTONE_RETURN_IF_ERROR(Add({Str(c.Find("system")), code}));
      if (const json::Value* nested = c.Find("contains"))
        FHIRSTONE_RETURN_IF_ERROR(Contains(*nested, depth + 1));
    }
    return Ok();
  }

  Status Expand(const json::Value& vs, int depth) {
    if (depth > kMaxDepth)
      return Error::Invalid("Value sets include each other more than " + std::to_string(kMaxDepth) +
                            " levels deep (or in a cycle)");
    if (const json::Value* expansion = vs.Find("expansion")) {
      if (const json::Value* contains = expansion->Find("contains")) return Contains(*contains, 0);
      return Ok();  // an expansion without codes: empty
    }
    const json::Value* compose = vs.Find("compose");
    if (!compose) return Ok();
    if (const json::Value* includes = compose->Find("include"); includes && includes->is_array()) {
      for (const auto& include : includes->as_array()) {
        if (include.Find("filter"))
          return Error::NotSupported(
              "The value set selects codes with a filter (is-a, regex...): :in and :not-in "
              "search with enumerated codes, whole code systems and included value sets only");
        std::string system = Str(include.Find("system"));
        const json::Value* imports = include.Find("valueSet");
        if (imports && imports->is_array()) {
          if (!system.empty())
            return Error::NotSupported(
                "The value set includes the intersection of a code system and value sets: "
                "not supported by :in and :not-in");
          for (const auto& url : imports->as_array()) {
            std::string canonical = Str(&url);
            auto cached = shared.expanded.find(canonical);
            if (cached == shared.expanded.end()) {
              if (shared.expanding.contains(canonical))
                return Error::Invalid("Value sets include each other in a cycle (" + canonical +
                                      ")");
              if (shared.expanded.size() >= kMaxValueSets)
                return Error::Invalid("The value set includes more than " +
                                      std::to_string(kMaxValueSets) + " value sets");
              auto found = resolve(canonical);
              if (!found) return std::move(found).error();
              // Its own excludes apply to its own codes only: a fresh expander.
              Expander child{resolve, max_codes, shared, {}};
              shared.expanding.insert(canonical);
              Status status = child.Expand(*found, depth + 1);
              shared.expanding.erase(canonical);
              FHIRSTONE_RETURN_IF_ERROR(status);
              cached = shared.expanded.emplace(canonical, std::move(child.codes)).first;
            }
            for (const auto& code : cached->second) FHIRSTONE_RETURN_IF_ERROR(Add(code));
          }
          continue;
        }
        const json::Value* concepts = include.Find("concept");
        if (concepts && concepts->is_array()) {
          for (const auto& c : concepts->as_array())
            FHIRSTONE_RETURN_IF_ERROR(Add({system, Str(c.Find("code"))}));
        } else if (!system.empty()) {
          FHIRSTONE_RETURN_IF_ERROR(Add({system, ""}));
        }
      }
    }
    if (const json::Value* excludes = compose->Find("exclude"); excludes && excludes->is_array()) {
      for (const auto& exclude : excludes->as_array()) {
        const json::Value* concepts = exclude.Find("concept");
        if (exclude.Find("filter") || exclude.Find("valueSet") || !concepts ||
            !concepts->is_array())
          return Error::NotSupported(
              "The value set excludes by filter, value set or whole code system: :in and "
              ":not-in support excluded concepts only");
        std::string system = Str(exclude.Find("system"));
        for (const auto& c : concepts->as_array()) {
          ValueSetCode gone{system, Str(c.Find("code"))};
          if (std::find(codes.begin(), codes.end(), ValueSetCode{system, ""}) != codes.end())
            return Error::NotSupported(
                "The value set excludes concepts from a whole code system: :in and :not-in "
                "cannot enumerate it");
          std::erase(codes, gone);
        }
      }
    }
    return Ok();
  }
};

// Parent -> children and child -> parents of a code system's concepts.
struct Hierarchy {
  std::map<std::string, std::vector<std::string>, std::less<>> children, parents;
  std::set<std::string, std::less<>> codes;

  void Link(const std::string& parent, const std::string& child) {
    children[parent].push_back(child);
    parents[child].push_back(parent);
  }
  void Walk(const json::Value& concepts, const std::string& parent, int depth) {
    if (!concepts.is_array() || depth > 100) return;
    for (const auto& c : concepts.as_array()) {
      std::string code = Str(c.Find("code"));
      if (code.empty()) continue;
      codes.insert(code);
      if (!parent.empty()) Link(parent, code);
      if (const json::Value* properties = c.Find("property");
          properties && properties->is_array()) {
        for (const auto& p : properties->as_array()) {
          std::string name = Str(p.Find("code"));
          std::string value = Str(p.Find("valueCode"));
          if (value.empty()) continue;
          if (name == "parent") Link(value, code);
          if (name == "child") Link(code, value);
        }
      }
      if (const json::Value* nested = c.Find("concept")) Walk(*nested, code, depth + 1);
    }
  }
};

}  // namespace

Result<std::vector<std::string>> SubsumedCodes(const json::Value& code_system,
                                               std::string_view code, bool below,
                                               size_t max_codes) {
  Hierarchy h;
  if (const json::Value* concepts = code_system.Find("concept")) h.Walk(*concepts, "", 0);
  if (!h.codes.contains(code))
    return Error::Invalid("The code '" + std::string(code) + "' is not in the code system " +
                          Str(code_system.Find("url")));
  const auto& edges = below ? h.children : h.parents;
  std::vector<std::string> out{std::string(code)};
  std::set<std::string, std::less<>> seen{std::string(code)};
  for (size_t i = 0; i < out.size(); ++i) {  // breadth first; cycles stop at seen codes
    auto it = edges.find(out[i]);
    if (it == edges.end()) continue;
    for (const auto& next : it->second) {
      if (!seen.insert(next).second) continue;
      out.push_back(next);
      if (out.size() > max_codes)
        return Error::Invalid("More than " + std::to_string(max_codes) + " codes are " +
                              (below ? "below" : "above") + " '" + std::string(code) +
                              "': too many to search");
    }
  }
  return out;
}

Result<std::vector<ValueSetCode>> ExpandValueSet(const json::Value& value_set,
                                                 const ValueSetResolver& resolve,
                                                 size_t max_codes) {
  Shared shared;
  Expander e{resolve, max_codes, shared, {}};
  FHIRSTONE_RETURN_IF_ERROR(e.Expand(value_set, 0));
  return std::move(e.codes);
}

}  // namespace fhirstone::search
