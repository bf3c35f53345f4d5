#include "search/extract.h"

#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "common/strings.h"
#include "common/time.h"
#include "fhir/model.h"
#include "search/normalize.h"
#include "search/ucum.h"

namespace fhirstone::search {
namespace {

// Placeholder resources that answer resolve() during extraction: only resourceType is known.
const json::Value* Placeholder(std::string_view reference) {
  static const auto* placeholders = [] {
    auto* map = new std::unordered_map<std::string, json::Value>();
    for (std::string_view type : fhir::ResourceTypes()) {
      json::Value v = json::Value::EmptyObject();
      v.Set("resourceType", type);
      map->emplace(std::string(type), std::move(v));
    }
    return map;
  }();
  std::string type, id, version;
  if (!ParseReference(reference, std::nullopt, &type, &id, &version)) return nullptr;
  auto it = placeholders->find(type);
  return it == placeholders->end() ? nullptr : &it->second;
}

std::string_view Str(const json::Value* v) {
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// The JSON value of an item: its node, or its computed value.
const json::Value* ValueOf(const fhirpath::Item& item) {
  if (item.node) return item.node;
  if (item.value) return &*item.value;
  return nullptr;
}

void AddString(IndexEntries& out, const SearchParam* p, std::string_view s) {
  if (s.empty()) return;
  out.strings.push_back({p, NormalizeString(s), std::string(s)});
}

void ExtractString(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item) {
  const json::Value* v = ValueOf(item);
  if (!v) return;
  if (v->is_string()) {
    AddString(out, p, v->as_string());
    return;
  }
  if (!v->is_object()) return;
  static const char* const kParts[] = {"family", "given",      "prefix", "suffix",
                                       "text",   "line",       "city",   "district",
                                       "state",  "postalCode", "country"};
  for (const char* part : kParts) {
    const json::Value* child = v->Find(part);
    if (!child) continue;
    if (child->is_string()) {
      AddString(out, p, child->as_string());
    } else if (child->is_array()) {
      for (const auto& e : child->as_array())
        if (e.is_string()) AddString(out, p, e.as_string());
    }
  }
}

void AddToken(IndexEntries& out, const SearchParam* p, std::string_view system,
              std::string_view code, std::string_view text) {
  if (code.empty() && text.empty()) return;
  out.tokens.push_back({p, std::string(system), std::string(code), NormalizeString(text)});
}

void ExtractToken(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item) {
  const json::Value* v = ValueOf(item);
  if (!v) return;
  if (v->is_bool()) {
    AddToken(out, p, "", v->as_bool() ? "true" : "false", "");
    return;
  }
  if (v->is_string()) {
    AddToken(out, p, "", v->as_string(), "");
    return;
  }
  if (!v->is_object()) return;
  const std::string& t = item.type;
  if (t == "CodeableConcept") {
    const json::Value* codings = v->Find("coding");
    std::string_view text = Str(v->Find("text"));
    bool any = false;
    if (codings && codings->is_array()) {
      for (const auto& c : codings->as_array()) {
        std::string_view display = Str(c.Find("display"));
        AddToken(out, p, Str(c.Find("system")), Str(c.Find("code")),
                 display.empty() ? text : display);
        any = true;
      }
    }
    if (!text.empty()) AddToken(out, p, "", "", text);
    (void)any;
    return;
  }
  if (t == "Identifier") {
    const json::Value* type = v->Find("type");
    std::string_view value = Str(v->Find("value"));
    AddToken(out, p, Str(v->Find("system")), value,
             type ? Str(type->Find("text")) : std::string_view());
    // identifier:of-type=system|code|value (https://hl7.org/fhir/R4/search.html#token)
    const json::Value* codings = type ? type->Find("coding") : nullptr;
    if (!value.empty() && codings && codings->is_array()) {
      for (const auto& c : codings->as_array()) {
        std::string_view code = Str(c.Find("code"));
        if (code.empty()) continue;
        out.tokens.push_back({p, std::string(Str(c.Find("system"))),
                              std::string(code) + "|" + std::string(value), "", true});
      }
    }
    return;
  }
  if (t == "ContactPoint") {
    AddToken(out, p, Str(v->Find("system")), Str(v->Find("value")), "");
    return;
  }
  // Coding and anything else shaped like one.
  AddToken(out, p, Str(v->Find("system")), Str(v->Find("code")), Str(v->Find("display")));
}

void ExtractReference(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item,
                      std::string_view local_base) {
  const json::Value* v = ValueOf(item);
  if (!v) return;
  ReferenceEntry e{p, "", "", "", "", "", ""};
  if (v->is_string()) {  // canonical or uri
    e.url = v->as_string();
    ParseReference(e.url, local_base, &e.target_type, &e.target_id, &e.version);
    out.references.push_back(std::move(e));
    return;
  }
  if (!v->is_object()) return;
  std::string_view reference = Str(v->Find("reference"));
  if (!reference.empty()) {
    e.url = std::string(reference);
    ParseReference(reference, local_base, &e.target_type, &e.target_id, &e.version);
  }
  if (const json::Value* identifier = v->Find("identifier")) {
    e.identifier_system = std::string(Str(identifier->Find("system")));
    e.identifier_value = std::string(Str(identifier->Find("value")));
  }
  if (e.url.empty() && e.identifier_value.empty()) return;
  out.references.push_back(std::move(e));
}

void AddDate(IndexEntries& out, const SearchParam* p, std::string_view low, std::string_view high) {
  int64_t lo = kMinTime, hi = kMaxTime;
  if (!low.empty()) {
    auto r = ParseFhirDateTime(low);
    if (!r) return;
    lo = r->low;
  }
  if (!high.empty()) {
    auto r = ParseFhirDateTime(high);
    if (!r) return;
    hi = r->high;
  }
  if (low.empty() && high.empty()) return;
  out.dates.push_back({p, lo, hi});
}

void ExtractDate(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item) {
  const json::Value* v = ValueOf(item);
  if (!v) return;
  if (v->is_string()) {
    AddDate(out, p, v->as_string(), v->as_string());
    return;
  }
  if (!v->is_object()) return;
  if (item.type == "Timing") {
    if (const json::Value* events = v->Find("event"); events && events->is_array()) {
      for (const auto& e : events->as_array())
        if (e.is_string()) AddDate(out, p, e.as_string(), e.as_string());
    }
    if (const json::Value* repeat = v->Find("repeat")) {
      if (const json::Value* bounds = repeat->Find("boundsPeriod"))
        AddDate(out, p, Str(bounds->Find("start")), Str(bounds->Find("end")));
    }
    return;
  }
  // Period
  AddDate(out, p, Str(v->Find("start")), Str(v->Find("end")));
}

bool ToDouble(const json::Value* v, double* out) {
  if (!v || !v->is_number()) return false;
  char* end = nullptr;
  *out = std::strtod(v->as_string().c_str(), &end);
  return end && *end == '\0';
}

void ExtractNumber(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item) {
  double d;
  if (ToDouble(ValueOf(item), &d)) out.numbers.push_back({p, d});
}

// A UCUM quantity also in its dimension's base unit (the open ends of a Range stay open).
void AddCanonical(IndexEntries& out) {
  const QuantityEntry& e = out.quantities.back();
  if (e.system != kUcumSystem) return;
  auto canonical = UcumCanonicalOf(e.code);
  if (!canonical) return;
  auto scale = [&](double x) { return x <= -1e308 || x >= 1e308 ? x : x * canonical->factor; };
  QuantityEntry c{e.param, scale(e.low), scale(e.high), e.system, std::string(canonical->code),
                  "",      true};
  out.quantities.push_back(std::move(c));
}

void ExtractQuantity(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item) {
  const json::Value* v = ValueOf(item);
  if (!v || !v->is_object()) return;
  double value;
  if (item.type == "Range") {
    double lo = -1e308, hi = 1e308;
    const json::Value* low = v->Find("low");
    const json::Value* high = v->Find("high");
    bool has_low = low && ToDouble(low->Find("value"), &lo);
    bool has_high = high && ToDouble(high->Find("value"), &hi);
    if (!has_low && !has_high) return;
    const json::Value* q = has_low ? low : high;
    out.quantities.push_back({p, lo, hi, std::string(Str(q->Find("system"))),
                              std::string(Str(q->Find("code"))),
                              std::string(Str(q->Find("unit")))});
    AddCanonical(out);
    return;
  }
  if (!ToDouble(v->Find("value"), &value)) return;
  if (item.type == "Money") {
    out.quantities.push_back(
        {p, value, value, "urn:iso:std:iso:4217", std::string(Str(v->Find("currency"))), ""});
    return;
  }
  out.quantities.push_back({p, value, value, std::string(Str(v->Find("system"))),
                            std::string(Str(v->Find("code"))), std::string(Str(v->Find("unit")))});
  AddCanonical(out);
}

void ExtractUri(IndexEntries& out, const SearchParam* p, const fhirpath::Item& item) {
  const json::Value* v = ValueOf(item);
  if (v && v->is_string() && !v->as_string().empty()) out.uris.push_back({p, v->as_string()});
}

void ExtractValue(IndexEntries& out, const SearchParam* p, ParamType type,
                  const fhirpath::Item& item, std::string_view local_base) {
  switch (type) {
    case ParamType::kString:
      ExtractString(out, p, item);
      break;
    case ParamType::kToken:
      ExtractToken(out, p, item);
      break;
    case ParamType::kReference:
      ExtractReference(out, p, item, local_base);
      break;
    case ParamType::kDate:
      ExtractDate(out, p, item);
      break;
    case ParamType::kNumber:
      ExtractNumber(out, p, item);
      break;
    case ParamType::kQuantity:
      ExtractQuantity(out, p, item);
      break;
    case ParamType::kUri:
      ExtractUri(out, p, item);
      break;
    default:
      break;
  }
}

// The values of one component as partial composite entries (only its own fields set).
std::vector<CompositeEntry> ComponentValues(const SearchParam* p, const SearchParam::Component& c,
                                            size_t position, const fhirpath::Collection& items,
                                            std::string_view local_base) {
  IndexEntries values;
  for (const auto& item : items) ExtractValue(values, p, c.type, item, local_base);
  std::vector<CompositeEntry> out;
  auto add = [&](auto fill) {
    CompositeEntry e{p};
    fill(e);
    out.push_back(std::move(e));
  };
  if (position == 0) {
    for (const auto& t : values.tokens)
      add([&](CompositeEntry& e) {
        e.a_system = t.system;
        e.a_code = t.code;
      });
    for (const auto& r : values.references)
      add([&](CompositeEntry& e) {
        e.a_code = r.target_type.empty() ? r.url : r.target_type + "/" + r.target_id;
      });
  } else if (position == 1) {
    for (const auto& t : values.tokens)
      add([&](CompositeEntry& e) {
        e.b_system = t.system;
        e.b_code = t.code;
      });
    for (const auto& s : values.strings) add([&](CompositeEntry& e) { e.b_text = s.normalized; });
    for (const auto& q : values.quantities) {
      if (q.canonical) continue;  // composites compare the value as written
      add([&](CompositeEntry& e) {
        e.b_low = q.low;
        e.b_high = q.high;
        e.b_system = q.system;
        e.b_code = q.code;
      });
    }
    for (const auto& n : values.numbers)
      add([&](CompositeEntry& e) { e.b_low = e.b_high = n.value; });
    for (const auto& d : values.dates)
      add([&](CompositeEntry& e) {
        e.b_date_low = d.low;
        e.b_date_high = d.high;
      });
  } else {
    for (const auto& n : values.numbers)
      add([&](CompositeEntry& e) { e.c_low = e.c_high = n.value; });
  }
  return out;
}

void ExtractComposite(IndexEntries& out, const SearchParam* p, const fhirpath::Item& root,
                      const fhirpath::EvalOptions& options, std::string_view local_base) {
  if (p->components.size() < 2 || p->components.size() > 3) return;
  std::vector<CompositeEntry> combined{CompositeEntry{p}};
  for (size_t i = 0; i < p->components.size(); ++i) {
    auto items = p->components[i].compiled->EvaluateItems({root}, options);
    if (!items) return;
    auto values = ComponentValues(p, p->components[i], i, *items, local_base);
    if (values.empty()) return;  // a composite needs every component
    std::vector<CompositeEntry> next;
    for (const auto& partial : combined) {
      for (const auto& v : values) {
        CompositeEntry e = partial;
        if (i == 0) {
          e.a_system = v.a_system;
          e.a_code = v.a_code;
        } else if (i == 1) {
          e.b_system = v.b_system;
          e.b_code = v.b_code;
          e.b_text = v.b_text;
          e.b_low = v.b_low;
          e.b_high = v.b_high;
          e.b_date_low = v.b_date_low;
          e.b_date_high = v.b_date_high;
        } else {
          e.c_low = v.c_low;
          e.c_high = v.c_high;
        }
        next.push_back(std::move(e));
      }
    }
    combined = std::move(next);
    if (combined.size() > 1000) return;  // bound a pathological resource
  }
  out.composites.insert(out.composites.end(), combined.begin(), combined.end());
}

}  // namespace

bool ParseReference(std::string_view reference, std::optional<std::string_view> local_base,
                    std::string* type, std::string* id, std::string* version) {
  if (reference.empty() || reference.front() == '#' || reference.starts_with("urn:")) return false;
  if (reference.find('?') != std::string_view::npos) return false;  // a conditional reference
  std::string_view relative = reference;
  if (reference.find("://") != std::string_view::npos) {
    if (local_base) {
      // Only this server's own base is local; other servers' URLs stay URLs.
      if (local_base->empty() || !reference.starts_with(*local_base) ||
          reference.size() <= local_base->size() || reference[local_base->size()] != '/')
        return false;
      relative = reference.substr(local_base->size() + 1);
    } else {
      // Any base: the last Type/id[/_history/v] segments.
      std::vector<std::string_view> parts = Split(reference, '/');
      size_t n = parts.size();
      size_t keep = n >= 4 && parts[n - 2] == "_history" ? 4 : 2;
      if (n < keep + 3) return false;
      size_t offset = 0;
      for (size_t i = 0; i < n - keep; ++i) offset += parts[i].size() + 1;
      relative = reference.substr(offset);
    }
  }
  std::vector<std::string_view> parts = Split(relative, '/');
  if (parts.size() != 2 && !(parts.size() == 4 && parts[2] == "_history")) return false;
  if (!fhir::IsResourceType(parts[0]) || !fhir::IsValidId(parts[1])) return false;
  if (parts.size() == 4 && !fhir::IsValidId(parts[3])) return false;
  *type = std::string(parts[0]);
  *id = std::string(parts[1]);
  *version = parts.size() == 4 ? std::string(parts[3]) : std::string();
  return true;
}

IndexEntries ExtractIndex(const Registry& registry, const json::Value& resource,
                          std::string_view local_base, bool stored_only) {
  std::string_view type = resource.GetString("resourceType");
  IndexEntries out = ExtractIndex(
      stored_only ? registry.StoredForType(type) : registry.ForType(type), resource, local_base);
  if (const SearchParam* shard = registry.ShardParam(type)) {
    bool several = false;
    for (const ReferenceEntry& ref : out.references) {
      if (ref.param != shard || ref.target_type != "Patient" || ref.target_id.empty()) continue;
      if (!out.shard_patient.empty() && out.shard_patient != ref.target_id) several = true;
      out.shard_patient = ref.target_id;
    }
    if (several) out.shard_patient.clear();
  }
  return out;
}

int64_t ShardKeyOf(std::string_view type, std::string_view id, const IndexEntries& entries) {
  if (type == "Patient") return PatientShardKey(id);
  if (!entries.shard_patient.empty()) return PatientShardKey(entries.shard_patient);
  return OwnShardKey(type, id);
}

std::string ShardOwnerOf(std::string_view type, std::string_view id, const IndexEntries& entries) {
  if (type == "Patient") return "Patient/" + std::string(id);
  if (!entries.shard_patient.empty()) return "Patient/" + entries.shard_patient;
  return std::string(type) + "/" + std::string(id);
}

IndexEntries ExtractIndex(const std::vector<const SearchParam*>& params,
                          const json::Value& resource, std::string_view local_base) {
  IndexEntries out;
  fhirpath::EvalOptions options;
  options.resolver = Placeholder;
  options.root_resource = &resource;
  for (const SearchParam* p : params) {
    if (!p->compiled || p->code == "_id" || p->code == "_lastUpdated") continue;
    if (p->type == ParamType::kSpecial && p->code != "near") continue;
    auto items = p->compiled->Evaluate(resource, options);
    if (!items) continue;  // an expression that does not apply to this resource's shape
    for (const fhirpath::Item& item : *items) {
      if (p->type == ParamType::kSpecial) {  // near: Location.position, kept as a quantity row
        const json::Value* v = ValueOf(item);
        const json::Value* lat = v ? v->Find("latitude") : nullptr;
        const json::Value* lon = v ? v->Find("longitude") : nullptr;
        if (lat && lon && lat->is_number() && lon->is_number()) {
          double la = std::strtod(lat->as_string().c_str(), nullptr);
          double lo = std::strtod(lon->as_string().c_str(), nullptr);
          if (std::isfinite(la) && std::isfinite(lo) && std::abs(la) <= 90 && std::abs(lo) <= 180)
            out.quantities.push_back({p, la, lo, "", "", "deg"});
        }
        continue;
      }
      if (p->type == ParamType::kComposite) {
        ExtractComposite(out, p, item, options, local_base);
      } else {
        ExtractValue(out, p, p->type, item, local_base);
      }
    }
  }
  return out;
}

}  // namespace fhirstone::search
