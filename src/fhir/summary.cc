#include "fhir/summary.h"

#include <string_view>
#include <utility>

#include "fhir/model.h"

namespace fhirstone::fhir {
namespace {

constexpr std::string_view kSubsettedSystem =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
constexpr std::string_view kSubsettedCode = "SUBSETTED";

std::string_view ElementName(std::string_view key) {
  return !key.empty() && key[0] == '_' ? key.substr(1) : key;
}

// The summary (isSummary) elements of an object of structure `s`, recursing into backbone
// elements; sets `removed` when anything was left out.
json::Object SummaryObject(const json::Object& obj, const StructureInfo& s, bool is_resource,
                           bool& removed);

// The summary form of one backbone item, or null when nothing of it remains.
json::Value SummaryItem(const json::Value& v, const StructureInfo& s, bool& removed) {
  if (!v.is_object()) return v;
  json::Object o = SummaryObject(v.as_object(), s, false, removed);
  if (o.empty()) return json::Value();
  return json::Value(std::move(o));
}

json::Object SummaryObject(const json::Object& obj, const StructureInfo& s, bool is_resource,
                           bool& removed) {
  json::Object out;
  for (const auto& [key, value] : obj) {
    if (is_resource && key == "resourceType") {
      out.emplace_back(key, value);
      continue;
    }
    ElementMatch m = s.Resolve(ElementName(key));
    if (!m || !m.element->is_summary) {
      removed = true;
      continue;
    }
    if (m.type->kind != StructureKind::kBackboneElement) {
      out.emplace_back(key, value);
      continue;
    }
    if (value.is_array()) {
      json::Array items;
      for (const json::Value& item : value.as_array()) {
        json::Value kept = SummaryItem(item, *m.type, removed);
        if (kept.is_null()) {
          removed = true;
        } else {
          items.push_back(std::move(kept));
        }
      }
      if (!items.empty()) out.emplace_back(key, json::Value(std::move(items)));
    } else {
      json::Value kept = SummaryItem(value, *m.type, removed);
      if (kept.is_null()) {
        removed = true;
      } else {
        out.emplace_back(key, std::move(kept));
      }
    }
  }
  return out;
}

bool IsSubsettedTag(const json::Value& tag) {
  return tag.GetString("system") == kSubsettedSystem && tag.GetString("code") == kSubsettedCode;
}

}  // namespace

void AddSubsettedTag(json::Value& resource) {
  json::Value* meta = resource.Find("meta");
  if (meta == nullptr || !meta->is_object()) {
    json::Object& members = resource.as_object();
    size_t pos = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      if (members[i].first == "resourceType" || members[i].first == "id" ||
          members[i].first == "_id")
        pos = i + 1;
    }
    if (meta != nullptr) {
      *meta = json::Value::EmptyObject();
    } else {
      members.insert(members.begin() + static_cast<std::ptrdiff_t>(pos),
                     json::Member("meta", json::Value::EmptyObject()));
      meta = &members[pos].second;
    }
  }
  json::Value* tags = meta->Find("tag");
  if (tags == nullptr || !tags->is_array()) tags = &meta->Set("tag", json::Value::EmptyArray());
  for (const json::Value& tag : tags->as_array())
    if (IsSubsettedTag(tag)) return;
  json::Object tag;
  tag.emplace_back("system", json::Value(kSubsettedSystem));
  tag.emplace_back("code", json::Value(kSubsettedCode));
  tags->PushBack(json::Value(std::move(tag)));
}

json::Value Summarize(const json::Value& resource, SummaryMode mode) {
  if (mode == SummaryMode::kFalse || !resource.is_object()) return resource;
  const StructureInfo* s = FindResourceType(resource.GetString("resourceType"));
  if (s == nullptr) return resource;

  bool removed = false;
  json::Object out;
  switch (mode) {
    case SummaryMode::kFalse:
      return resource;
    case SummaryMode::kTrue:
      out = SummaryObject(resource.as_object(), *s, true, removed);
      break;
    case SummaryMode::kText:
      for (const auto& [key, value] : resource.as_object()) {
        std::string_view name = ElementName(key);
        bool keep = key == "resourceType" || name == "text" || name == "id" || name == "meta";
        if (!keep) {
          ElementMatch m = s->Resolve(name);
          keep = m && m.element->min > 0;
        }
        if (keep) {
          out.emplace_back(key, value);
        } else {
          removed = true;
        }
      }
      break;
    case SummaryMode::kData:
      for (const auto& [key, value] : resource.as_object()) {
        if (ElementName(key) == "text") {
          removed = true;
        } else {
          out.emplace_back(key, value);
        }
      }
      break;
  }
  json::Value result(std::move(out));
  if (removed) AddSubsettedTag(result);
  return result;
}

json::Value SelectElements(const json::Value& resource,
                           const std::vector<std::string>& element_names) {
  if (!resource.is_object()) return resource;
  std::string_view type = resource.GetString("resourceType");
  const StructureInfo* s = FindResourceType(type);

  // Requested element names, without a "Type." prefix.
  std::vector<std::string_view> names;
  names.reserve(element_names.size());
  for (const std::string& raw : element_names) {
    std::string_view name = raw;
    if (!type.empty() && name.size() > type.size() && name.starts_with(type) &&
        name[type.size()] == '.')
      name.remove_prefix(type.size() + 1);
    if (!name.empty()) names.push_back(name);
  }
  auto requested = [&](std::string_view name) {
    for (std::string_view n : names)
      if (n == name) return true;
    return false;
  };

  bool removed = false;
  json::Object out;
  for (const auto& [key, value] : resource.as_object()) {
    std::string_view name = ElementName(key);
    bool keep = key == "resourceType" || name == "id" || name == "meta" || requested(name);
    if (!keep && s != nullptr) {
      ElementMatch m = s->Resolve(name);
      keep = m && m.element->is_choice && requested(m.element->name);
    }
    if (keep) {
      out.emplace_back(key, value);
    } else {
      removed = true;
    }
  }
  json::Value result(std::move(out));
  if (removed) AddSubsettedTag(result);
  return result;
}

}  // namespace fhirstone::fhir
