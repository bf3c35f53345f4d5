#include "search/registry.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "common/strings.h"
#include "fhir/model.h"
#include "search/internal/builtin_params.h"

namespace fhirstone::search {
namespace {

ParamType ParseType(std::string_view t) {
  if (t == "number") return ParamType::kNumber;
  if (t == "date") return ParamType::kDate;
  if (t == "string") return ParamType::kString;
  if (t == "token") return ParamType::kToken;
  if (t == "reference") return ParamType::kReference;
  if (t == "composite") return ParamType::kComposite;
  if (t == "quantity") return ParamType::kQuantity;
  if (t == "uri") return ParamType::kUri;
  return ParamType::kSpecial;
}

const std::vector<const SearchParam*> kNone;

bool IsAlnumOrDot(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.';
}

// The one element path built-in parameter `p` reaches on `type` when every element on it is
// single-valued ("Observation.subject.where(resolve() is Patient)": Observation.subject;
// "Appointment.participant.actor...": none, participant repeats); "" otherwise.
std::string SingleValuedPath(const SearchParam& p, std::string_view type) {
  if (!p.builtin) return "";
  std::string found;
  for (std::string_view part : Split(p.expression, '|')) {
    std::string_view t = Trim(part);
    while (!t.empty() && t.front() == '(') t.remove_prefix(1);
    if (!t.starts_with(type) || t.size() <= type.size() || t[type.size()] != '.') continue;
    size_t end = 0;
    while (end < t.size() && IsAlnumOrDot(t[end])) ++end;
    std::string_view path = t.substr(0, end);
    if (end < t.size() && t[end] == '(') path = path.substr(0, path.rfind('.'));  // .where(
    while (path.ends_with('.')) path.remove_suffix(1);
    if (!found.empty()) return "";  // several paths
    for (size_t dot = path.find('.'); dot != std::string_view::npos;) {
      size_t next = path.find('.', dot + 1);
      const fhir::ElementInfo* e = fhir::FindElementByPath(path.substr(0, next));
      if (!e || e->many) return "";
      dot = next;
    }
    found = path;
  }
  return found;
}

// The operands of the top-level unions of built-in parameter `p`'s expression that apply to
// `type` ("Observation.code | Observation.component.code" on Observation: both), whitespace
// runs made single spaces. Empty when the expression is not a union of plain operands: an operand
// is kept only when, outside parentheses, it is a path (letters, digits, dots), so that `|` is
// its top-level operator whatever the precedence of the rest.
std::vector<std::string> UnionOperands(const SearchParam& p, std::string_view type) {
  std::vector<std::string> out;
  if (!p.builtin || p.expression.empty()) return out;
  std::vector<std::string> operands(1);
  int depth = 0;
  for (char c : p.expression) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth < 0) return {};
    if (c == '|' && depth == 0) {
      operands.emplace_back();
      continue;
    }
    std::string& o = operands.back();
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (space) {
      if (!o.empty() && o.back() != ' ') o += ' ';
      continue;
    }
    o += c;
  }
  if (depth != 0) return {};
  for (std::string& o : operands) {
    while (!o.empty() && o.back() == ' ') o.pop_back();
    if (o.empty()) return {};
    int d = 0;
    for (char c : o) {
      if (c == '(') ++d;
      if (c == ')') --d;
      if (d == 0 && c != ')' && c != '_' && !IsAlnumOrDot(c)) return {};
    }
    // Kept when it starts at `type`; left out when it starts at another resource type (empty
    // on `type`); anything else (a relative path, Resource.meta...) may apply: not a union.
    std::string_view t = o;
    while (!t.empty() && t.front() == '(') t.remove_prefix(1);
    size_t n = 0;
    while (n < t.size() && t[n] != '.' && IsAlnumOrDot(t[n])) ++n;
    std::string_view lead = t.substr(0, n);
    if (lead == type) {
      out.push_back(std::move(o));
    } else if (lead == "Resource" || lead == "DomainResource" || !fhir::IsResourceType(lead)) {
      return {};
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool SameComponents(const SearchParam& a, const SearchParam& b) {
  if (a.components.size() != b.components.size()) return false;
  for (size_t i = 0; i < a.components.size(); ++i)
    if (a.components[i].expression != b.components[i].expression ||
        a.components[i].type != b.components[i].type)
      return false;
  return true;
}

}  // namespace

std::string_view ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kNumber:
      return "number";
    case ParamType::kDate:
      return "date";
    case ParamType::kString:
      return "string";
    case ParamType::kToken:
      return "token";
    case ParamType::kReference:
      return "reference";
    case ParamType::kComposite:
      return "composite";
    case ParamType::kQuantity:
      return "quantity";
    case ParamType::kUri:
      return "uri";
    case ParamType::kSpecial:
      return "special";
  }
  return "special";
}

Result<std::unique_ptr<Registry>> Registry::Builtin() {
  std::unique_ptr<Registry> registry(new Registry());
  std::unordered_map<std::string, ParamType> type_by_url;
  for (size_t i = 0; i < internal::kBuiltinParamCount; ++i)
    type_by_url[internal::kBuiltinParams[i].url] = ParseType(internal::kBuiltinParams[i].type);
  std::vector<std::unique_ptr<SearchParam>> params(internal::kBuiltinParamCount);
  for (size_t i = 0; i < internal::kBuiltinParamCount; ++i) {
    const internal::BuiltinParam& b = internal::kBuiltinParams[i];
    auto p = std::make_unique<SearchParam>();
    p->base = b.base;
    p->code = b.code;
    p->type = ParseType(b.type);
    p->expression = b.expression;
    p->url = b.url;
    p->builtin = true;
    for (auto t : Split(b.targets, ','))
      if (!t.empty()) p->targets.emplace_back(t);
    for (auto part : Split(b.components, ';')) {
      if (part.empty()) continue;
      size_t eq = part.find('=');
      SearchParam::Component c;
      c.definition = std::string(part.substr(0, eq));
      c.expression = std::string(part.substr(eq + 1));
      auto known = type_by_url.find(c.definition);
      c.type = known == type_by_url.end() ? ParamType::kToken : known->second;
      p->components.push_back(std::move(c));
    }
    params[i] = std::move(p);
  }
  // The expressions are compiled by two threads (an eighth of the server's start-up): every
  // parameter's, then its components'. The first failure in parameter order is reported.
  auto compile = [&](size_t first, size_t step, std::optional<Error>& failed, size_t& failed_at) {
    for (size_t i = first; i < params.size(); i += step) {
      SearchParam& p = *params[i];
      auto fail = [&](const char* what, const Error& e) {
        failed = Error::Internal("SearchParameter " + p.base + "." + p.code + ": " + what +
                                 " does not compile: " + e.message());
        failed_at = i;
      };
      if (!p.expression.empty()) {
        auto compiled = fhirpath::Compile(p.expression);
        if (!compiled) return fail("expression", compiled.error());
        p.compiled = std::move(compiled).value();
      }
      for (SearchParam::Component& c : p.components) {
        auto compiled = fhirpath::Compile(c.expression);
        if (!compiled) return fail("component", compiled.error());
        c.compiled = std::move(compiled).value();
      }
    }
  };
  std::optional<Error> failed[2];
  size_t failed_at[2] = {params.size(), params.size()};
  std::thread helper(compile, 1, 2, std::ref(failed[1]), std::ref(failed_at[1]));
  compile(0, 2, failed[0], failed_at[0]);
  helper.join();
  if (failed[0] || failed[1]) return *failed[failed_at[0] < failed_at[1] ? 0 : 1];
  for (auto& p : params) {
    registry->by_type_[p->base][p->code] = p.get();
    registry->params_.push_back(std::move(p));
  }
  registry->Index();
  return registry;
}

void Registry::Index() {
  Registry* registry = this;
  registry->for_type_.clear();
  registry->compartment_.clear();
  for (std::string_view type : fhir::ResourceTypes()) {
    std::vector<const SearchParam*>& list = registry->for_type_[std::string(type)];
    for (const char* base : {"Resource", "DomainResource"}) {
      auto it = registry->by_type_.find(base);
      if (it == registry->by_type_.end()) continue;
      if (std::string_view(base) == "DomainResource" &&
          (type == "Bundle" || type == "Binary" || type == "Parameters"))
        continue;
      for (const auto& [code, param] : it->second) list.push_back(param);
    }
    auto own = registry->by_type_.find(std::string(type));
    if (own != registry->by_type_.end())
      for (const auto& [code, param] : own->second) list.push_back(param);
  }
  for (size_t i = 0; i < internal::kCompartmentParamCount; ++i) {
    const internal::CompartmentParams& c = internal::kCompartmentParams[i];
    auto& list = registry->compartment_[std::string(c.compartment) + "/" + c.type];
    for (auto code : Split(c.params, ',')) {
      const SearchParam* p = registry->Find(c.type, code);
      if (p && p->type == ParamType::kReference) list.push_back(p);
    }
  }
  // Parameters whose rows are the union of others' (SearchParam::stored_as): each is covered by
  // parameters with fewer operands, or is the same as one with a smaller code (Patient phonetic
  // = name), of the same type (and components), none itself derived. Not reference parameters:
  // compartments and shards are read from their own entries (ShardParam, CompartmentParams);
  // nor `url`: canonical resources are found by its rows (store FindCanonical).
  for (auto& p : params_) p->stored_as.clear();
  registry->stored_for_type_.clear();
  for (const auto& [base, by_code] : by_type_) {
    if (base == "Resource" || base == "DomainResource") continue;
    std::vector<std::pair<SearchParam*, std::vector<std::string>>> candidates;
    for (const auto& [code, param] : by_code) {
      if (param->type == ParamType::kSpecial || param->type == ParamType::kReference) continue;
      auto operands = UnionOperands(*param, base);
      if (!operands.empty()) candidates.emplace_back(const_cast<SearchParam*>(param), operands);
    }
    // Fewest operands first, so that a parameter is only ever covered by stored ones.
    std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
      return a.second.size() != b.second.size() ? a.second.size() < b.second.size()
                                                : a.first->code < b.first->code;
    });
    for (size_t i = 0; i < candidates.size(); ++i) {
      auto& [p, operands] = candidates[i];
      if (p->code == "url") continue;
      std::vector<std::string> covered;
      std::vector<const SearchParam*> parts;
      for (size_t j = 0; j < i; ++j) {
        const auto& [q, q_operands] = candidates[j];
        if (q->type != p->type || !q->stored_as.empty() || !SameComponents(*p, *q)) continue;
        if (q_operands.size() >= operands.size() && q_operands != operands) continue;
        if (!std::includes(operands.begin(), operands.end(), q_operands.begin(), q_operands.end()))
          continue;
        std::vector<std::string> merged;
        std::set_union(covered.begin(), covered.end(), q_operands.begin(), q_operands.end(),
                       std::back_inserter(merged));
        if (merged.size() == covered.size()) continue;  // adds nothing
        covered = std::move(merged);
        parts.push_back(q);
      }
      if (covered == operands) p->stored_as = std::move(parts);
    }
  }
  for (const auto& [type, list] : registry->for_type_) {
    auto& stored = registry->stored_for_type_[type];
    for (const SearchParam* p : list)
      if (p->stored_as.empty()) stored.push_back(p);
  }
  registry->shard_params_.clear();
  for (std::string_view type : fhir::ResourceTypes()) {
    if (type == "Patient") continue;
    const auto& params = registry->CompartmentParams("Patient", type);
    const SearchParam* chosen = nullptr;
    for (std::string_view code : {"patient", "subject"}) {
      for (const SearchParam* p : params)
        if (p->code == code) chosen = p;
      if (chosen) break;
    }
    if (!chosen) continue;
    std::string path = SingleValuedPath(*chosen, type);
    if (path.empty()) continue;
    // First the compartment's parameter, then the others on the same element (Observation:
    // subject, then patient = subject.where(resolve() is Patient)).
    std::vector<const SearchParam*>& list = registry->shard_params_[std::string(type)];
    list.push_back(chosen);
    for (const SearchParam* p : registry->ForType(type))
      if (p != chosen && p->type == ParamType::kReference && SingleValuedPath(*p, type) == path)
        list.push_back(p);
  }
}

const SearchParam* Registry::ShardParam(std::string_view type) const {
  auto it = shard_params_.find(std::string(type));
  return it == shard_params_.end() ? nullptr : it->second.front();
}

bool Registry::IsShardParam(std::string_view type, const SearchParam* param,
                            bool* patients_only) const {
  auto it = shard_params_.find(std::string(type));
  if (it == shard_params_.end() || !param) return false;
  for (const SearchParam* p : it->second) {
    if (p != param && (p->code != param->code || p->base != param->base)) continue;
    if (patients_only) {
      // Its values are patients when it names no other target, or keeps only patients.
      bool only = p->targets.size() == 1 && p->targets[0] == "Patient";
      for (std::string_view part : Split(p->expression, '|')) {
        std::string_view t = Trim(part);
        if (t.starts_with(std::string(type) + ".") && t.ends_with(".where(resolve() is Patient)"))
          only = true;
      }
      *patients_only = only;
    }
    return true;
  }
  return false;
}

namespace {

int64_t Fnv1a(std::string_view a, std::string_view b = {}) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (std::string_view part : {a, b})
    for (unsigned char c : part) h = (h ^ c) * 0x100000001b3ULL;
  int64_t key = static_cast<int64_t>(h);
  return key == 0 ? 1 : key;
}

// The key of a patient whose id is a version 7 UUID in lowercase (as this server assigns them):
// its 48-bit time in milliseconds, then 16 of its random bits.
std::optional<int64_t> TimeOrderedKey(std::string_view id) {
  if (id.size() != 36 || id[14] != '7' ||
      (id[19] != '8' && id[19] != '9' && id[19] != 'a' && id[19] != 'b'))
    return std::nullopt;
  uint64_t bits = 0;  // the characters 0-12 (the time's 12 digits), 15-17 and 20 (random)
  for (size_t i = 0; i < id.size(); ++i) {
    char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return std::nullopt;
      continue;
    }
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return std::nullopt;
    if (i < 13 || (i >= 15 && i <= 17) || i == 20) bits = (bits << 4) | static_cast<uint64_t>(v);
  }
  return static_cast<int64_t>(bits);  // positive until the year 6429
}

}  // namespace

int64_t PatientShardKey(std::string_view patient_id) {
  if (auto key = TimeOrderedKey(patient_id); key && *key > 0) return *key;
  return Fnv1a(patient_id);
}

int64_t OwnShardKey(std::string_view type, std::string_view id) {
  if (type == "Patient") return PatientShardKey(id);
  return Fnv1a(std::string(type) + "/", id);
}

Status Registry::CheckCustom(const json::Value& sp) {
  if (sp.GetString("resourceType") != "SearchParameter")
    return Error::Invalid("Not a SearchParameter");
  std::string_view code = sp.GetString("code");
  if (code.empty()) return Error::Invalid("SearchParameter.code is missing");
  ParamType type = ParseType(sp.GetString("type"));
  if (type == ParamType::kSpecial || type == ParamType::kComposite)
    return Error::Invalid("SearchParameter.type '" + std::string(sp.GetString("type")) +
                          "' is not supported for custom parameters");
  const json::Value* base = sp.Find("base");
  if (!base || !base->is_array() || base->as_array().empty())
    return Error::Invalid("SearchParameter.base is missing");
  for (const auto& b : base->as_array())
    if (!b.is_string() || !fhir::IsResourceType(b.as_string()))
      return Error::Invalid("SearchParameter.base names an unknown resource type");
  std::string_view expression = sp.GetString("expression");
  if (expression.empty()) return Error::Invalid("SearchParameter.expression is missing");
  auto compiled = fhirpath::Compile(expression);
  if (!compiled) return Error::Invalid("SearchParameter.expression: " + compiled.error().message());
  return Ok();
}

Result<std::unique_ptr<Registry>> Registry::WithCustom(const std::vector<json::Value>& custom,
                                                       std::vector<std::string>* skipped,
                                                       std::vector<std::string>* now_stored) {
  auto registry = Builtin();
  if (!registry) return registry;
  std::vector<const SearchParam*> derived;  // built-in parameters stored as others' without them
  for (const auto& p : (*registry)->params_)
    if (!p->stored_as.empty()) derived.push_back(p.get());
  // Reserved: the parameters compartments are made of and those that decide shards (a search by
  // one reads the patient's shard alone), as "Type.code".
  std::set<std::string> compartment_keys, shard_keys;
  for (size_t i = 0; i < internal::kCompartmentParamCount; ++i) {
    const internal::CompartmentParams& c = internal::kCompartmentParams[i];
    for (auto code : Split(c.params, ','))
      compartment_keys.insert(std::string(c.type) + "." + std::string(Trim(code)));
  }
  for (const auto& [type, params] : (*registry)->shard_params_)
    for (const SearchParam* p : params) shard_keys.insert(type + "." + p->code);
  // In id order: the last of one base and code wins, the same on every node.
  std::vector<const json::Value*> ordered;
  for (const json::Value& sp : custom) ordered.push_back(&sp);
  std::stable_sort(ordered.begin(), ordered.end(), [](const json::Value* a, const json::Value* b) {
    return a->GetString("id") < b->GetString("id");
  });
  // Why a custom parameter cannot be used (empty: it can).
  auto refusal = [&](const json::Value& sp) -> std::string {
    if (auto status = CheckCustom(sp); !status) return status.error().message();
    std::string_view code = sp.GetString("code");
    if (code.starts_with("_"))
      return "the code " + std::string(code) + " is one of the parameters of every resource";
    for (const auto& base : sp.Find("base")->as_array()) {
      std::string key = base.as_string() + "." + std::string(code);
      if (compartment_keys.count(key))
        return "it would replace " + key + ", which a compartment is made of";
      if (shard_keys.count(key))
        return "it would replace " + key + ", which decides the shard of a search by it";
    }
    return "";
  };
  std::map<std::string, std::string> chosen;  // "base.code" -> the id of the one used
  for (const json::Value* sp : ordered)
    if (refusal(*sp).empty())
      for (const auto& base : sp->Find("base")->as_array())
        chosen[base.as_string() + "." + std::string(sp->GetString("code"))] =
            std::string(sp->GetString("id"));
  for (const json::Value* one : ordered) {
    const json::Value& sp = *one;
    std::string name = std::string(sp.GetString("url"));
    if (name.empty()) name = std::string(sp.GetString("id"));
    if (std::string refused = refusal(sp); !refused.empty()) {
      if (skipped) skipped->push_back(name + ": " + refused);
      continue;
    }
    std::string_view code = sp.GetString("code");
    for (const auto& base : sp.Find("base")->as_array()) {
      std::string key = base.as_string() + "." + std::string(code);
      if (chosen[key] != sp.GetString("id")) {  // another of the same base and code is used
        if (skipped)
          skipped->push_back(name + ": for " + key + ", SearchParameter/" + chosen[key] +
                             " (the greatest id of those with this base and code) is used");
        continue;
      }
      auto p = std::make_unique<SearchParam>();
      p->base = base.as_string();
      p->code = sp.GetString("code");
      p->type = ParseType(sp.GetString("type"));
      p->expression = sp.GetString("expression");
      p->url = sp.GetString("url");
      if (const json::Value* targets = sp.Find("target"); targets && targets->is_array())
        for (const auto& t : targets->as_array())
          if (t.is_string()) p->targets.push_back(t.as_string());
      p->compiled = std::move(fhirpath::Compile(p->expression)).value();
      (*registry)->by_type_[p->base][p->code] = p.get();
      (*registry)->params_.push_back(std::move(p));
    }
  }
  (*registry)->Index();
  if (now_stored) {
    for (const SearchParam* p : derived) {
      const SearchParam* current = (*registry)->Find(p->base, p->code);
      if (current == p && p->stored_as.empty()) now_stored->push_back(p->base + "." + p->code);
    }
  }
  return registry;
}

bool Registry::HasCustom() const {
  return std::any_of(params_.begin(), params_.end(),
                     [](const std::unique_ptr<SearchParam>& p) { return !p->builtin; });
}

const std::vector<const SearchParam*>& Registry::CompartmentParams(std::string_view compartment,
                                                                   std::string_view type) const {
  auto it = compartment_.find(std::string(compartment) + "/" + std::string(type));
  return it == compartment_.end() ? kNone : it->second;
}

const SearchParam* Registry::Find(std::string_view type, std::string_view code) const {
  for (std::string_view base :
       {type, std::string_view("Resource"), std::string_view("DomainResource")}) {
    auto it = by_type_.find(std::string(base));
    if (it == by_type_.end()) continue;
    auto p = it->second.find(std::string(code));
    if (p != it->second.end()) return p->second;
  }
  return nullptr;
}

const std::vector<const SearchParam*>& Registry::ForType(std::string_view type) const {
  auto it = for_type_.find(std::string(type));
  return it == for_type_.end() ? kNone : it->second;
}

const std::vector<const SearchParam*>& Registry::StoredForType(std::string_view type) const {
  auto it = stored_for_type_.find(std::string(type));
  return it == stored_for_type_.end() ? kNone : it->second;
}

}  // namespace fhirstone::search
