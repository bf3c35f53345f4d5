#include "differential/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fhirstone::differential {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kUuidPrefix = "urn:uuid:";

Result<json::Value> ReadJson(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::NotFound("Cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto parsed = json::Parse(buffer.str());
  if (!parsed) return Error::Invalid(path.string() + ": " + parsed.error().message());
  return std::move(parsed).value();
}

struct Entry {
  std::string full_url;
  json::Value resource;
};

// The entries of a Bundle, moved out of it.
Result<std::vector<Entry>> TakeEntries(json::Value bundle, const std::string& name) {
  json::Value* entries = bundle.Find("entry");
  if (!entries || !entries->is_array()) return Error::Invalid(name + " has no entries");
  std::vector<Entry> out;
  for (json::Value& e : entries->as_array()) {
    json::Value* resource = e.Find("resource");
    if (!resource || !resource->is_object())
      return Error::Invalid(name + ": an entry has no resource");
    out.push_back({std::string(e.GetString("fullUrl")), std::move(*resource)});
  }
  return out;
}

// Rewrites every Reference.reference below `node` with `rewrite`; false stops at the first
// reference it cannot rewrite (its text is left in `failed`).
template <typename F>
bool RewriteReferences(json::Value& node, F& rewrite, std::string& failed) {
  if (node.is_array()) {
    for (json::Value& v : node.as_array())
      if (!RewriteReferences(v, rewrite, failed)) return false;
  } else if (node.is_object()) {
    for (auto& [key, value] : node.as_object()) {
      if (key == "reference" && value.is_string()) {
        if (!rewrite(value)) {
          failed = value.as_string();
          return false;
        }
      } else if (!RewriteReferences(value, rewrite, failed)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

const std::vector<const json::Value*>& Dataset::OfType(std::string_view type) const {
  static const std::vector<const json::Value*> kNone;
  auto it = by_type_.find(type);
  return it == by_type_.end() ? kNone : it->second;
}

const json::Value* Dataset::Find(std::string_view type, std::string_view id) const {
  auto it = by_key_.find(std::string(type) + "/" + std::string(id));
  return it == by_key_.end() ? nullptr : it->second;
}

std::vector<std::string> Dataset::Types() const {
  std::vector<std::string> out;
  for (const auto& [type, list] : by_type_) out.push_back(type);
  return out;
}

Result<std::unique_ptr<Dataset>> Dataset::LoadSynthea(const std::string& dir) {
  // The two batch bundles (organizations and locations, practitioners) come first.
  std::vector<fs::path> first, patients;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    std::string name = entry.path().filename().string();
    if (name.starts_with("0-hospitalInformation") || name.starts_with("0-practitionerInformation"))
      first.push_back(entry.path());
    else
      patients.push_back(entry.path());
  }
  if (ec) return Error::NotFound("Cannot list " + dir + ": " + ec.message());
  std::sort(first.begin(), first.end());  // hospital before practitioner
  std::sort(patients.begin(), patients.end());
  if (first.size() != 2 || patients.empty())
    return Error::NotFound(dir +
                           " does not hold the Synthea hospital, practitioner and patient files");

  std::vector<Entry> entries;
  size_t batch_entries = 0;
  for (const auto* list : {&first, &patients}) {
    for (const fs::path& path : *list) {
      auto bundle = ReadJson(path);
      if (!bundle) return std::move(bundle).error();
      auto taken = TakeEntries(std::move(bundle).value(), path.filename().string());
      if (!taken) return std::move(taken).error();
      for (Entry& e : *taken) entries.push_back(std::move(e));
    }
    if (list == &first) batch_entries = entries.size();
  }

  // fullUrl -> "Type/id", and (for the batch bundles) "Type?identifier=SYSTEM|VALUE" -> "Type/id".
  std::unordered_map<std::string, std::string> by_full_url;
  std::unordered_map<std::string, std::string> by_identifier;
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    if (!e.full_url.starts_with(kUuidPrefix))
      return Error::Invalid("Unexpected fullUrl '" + e.full_url + "'");
    std::string id = e.full_url.substr(kUuidPrefix.size());
    std::string type(e.resource.GetString("resourceType"));
    if (type.empty()) return Error::Invalid(e.full_url + " has no resourceType");
    e.resource.Set("id", id);
    by_full_url[e.full_url] = type + "/" + id;
    if (i >= batch_entries) continue;
    if (const json::Value* identifiers = e.resource.Find("identifier");
        identifiers && identifiers->is_array()) {
      for (const json::Value& identifier : identifiers->as_array()) {
        std::string key = type + "?identifier=" + std::string(identifier.GetString("system")) +
                          "|" + std::string(identifier.GetString("value"));
        by_identifier[key] = type + "/" + id;
      }
    }
  }

  std::unique_ptr<Dataset> data(new Dataset());
  auto rewrite = [&](json::Value& reference) {
    const std::string& text = reference.as_string();
    if (text.starts_with('#')) return true;
    const std::unordered_map<std::string, std::string>* map = nullptr;
    std::string kind;
    if (text.starts_with(kUuidPrefix)) {
      map = &by_full_url;
      kind = "urn:uuid";
    } else if (text.find('?') != std::string::npos) {
      map = &by_identifier;
      kind = "conditional";
    } else {
      return true;  // already relative or absolute
    }
    auto it = map->find(text);
    if (it == map->end()) return false;
    reference = json::Value(it->second);
    ++data->rewritten_[kind];
    return true;
  };
  for (Entry& e : entries) {
    std::string failed;
    if (!RewriteReferences(e.resource, rewrite, failed))
      return Error::Invalid(e.full_url + ": cannot rewrite the reference '" + failed + "'");
    data->resources_.push_back(std::move(e.resource));
  }
  for (const json::Value& r : data->resources_) {
    std::string type(r.GetString("resourceType"));
    std::string key = type + "/" + std::string(r.GetString("id"));
    if (!data->by_key_.emplace(key, &r).second) return Error::Invalid("Two resources are " + key);
    data->by_type_[type].push_back(&r);
  }
  return data;
}

}  // namespace fhirstone::differential
