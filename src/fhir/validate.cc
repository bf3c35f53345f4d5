#include "fhir/validate.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/internal/meta_tables.h"
#include "fhir/model.h"
#include "fhir/primitives.h"

namespace fhirstone::fhir {
namespace {

// Where the validator is, as a chain of stack frames; rendered to a FHIRPath expression only when
// an issue is reported. `name[index]` when index >= 0.
struct PathNode {
  const PathNode* parent;
  std::string_view name;
  int64_t index;
};

void AppendPath(const PathNode* node, std::string& out) {
  if (node == nullptr) return;
  if (node->parent != nullptr) {
    AppendPath(node->parent, out);
    out.push_back('.');
  }
  out.append(node->name);
  if (node->index >= 0) {
    out.push_back('[');
    out.append(std::to_string(node->index));
    out.push_back(']');
  }
}

// At most 64 bytes of `s`, cut at a UTF-8 character boundary.
std::string_view Truncate(std::string_view s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return s;
  size_t n = kMax;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// `s` for a message: truncated, with "..." when it was.
std::string Excerpt(std::string_view s) {
  std::string_view head = Truncate(s);
  return head.size() == s.size() ? std::string(s) : std::string(head) + "...";
}

std::string_view JsonTypeName(json::Type type) {
  switch (type) {
    case json::Type::kNull:
      return "null";
    case json::Type::kBool:
      return "a boolean";
    case json::Type::kNumber:
      return "a number";
    case json::Type::kString:
      return "a string";
    case json::Type::kArray:
      return "an array";
    case json::Type::kObject:
      return "an object";
  }
  return "?";
}

const json::Value* FindUnderscored(const json::Object& obj, std::string_view name) {
  for (const auto& [key, value] : obj) {
    if (key.size() == name.size() + 1 && key[0] == '_' && std::string_view(key).substr(1) == name)
      return &value;
  }
  return nullptr;
}

bool HasMember(const json::Object& obj, std::string_view name) {
  for (const auto& member : obj)
    if (member.first == name) return true;
  return false;
}

class Validator {
 public:
  explicit Validator(size_t max_issues) : max_issues_(std::max<size_t>(max_issues, 1)) {
    extension_ = FindStructure("Extension");
    extension_extension_ = extension_->FindElement("extension")->index;
    extension_value_ = extension_->FindElement("value")->index;
  }

  void Resource(const json::Value& v, const PathNode* container) {
    if (!v.is_object()) {
      Report(container,
             "A resource must be a JSON object, not " + std::string(JsonTypeName(v.type())));
      return;
    }
    const json::Value* type = v.Find("resourceType");
    if (type == nullptr) {
      Report(container, "Missing resourceType");
      return;
    }
    if (!type->is_string()) {
      Report(container, "resourceType must be a string");
      return;
    }
    const StructureInfo* s = FindResourceType(type->as_string());
    if (s == nullptr) {
      Report(container, "Unknown resource type '" + Excerpt(type->as_string()) + "'");
      return;
    }
    if (container != nullptr) {
      Object(v.as_object(), *s, *container, true);
    } else {
      PathNode root{nullptr, s->name, -1};
      Object(v.as_object(), *s, root, true);
    }
  }

  Status Finish() && {
    if (issues_.empty()) return Ok();
    Error error = Error::Invalid(std::move(issues_[0].message), std::move(issues_[0].expression));
    for (size_t i = 1; i < issues_.size(); ++i)
      error.AddIssue(std::move(issues_[i].message), std::move(issues_[i].expression));
    if (truncated_) {
      error.AddIssue("Too many issues: only the first " + std::to_string(issues_.size()) +
                     " are reported");
    }
    return error;
  }

 private:
  bool Full() const { return issues_.size() >= max_issues_; }
  // True (and notes that issues were left out) once the cap is reached: callers stop walking.
  bool Stopped() {
    if (!Full()) return false;
    truncated_ = true;
    return true;
  }

  void Report(const PathNode* at, std::string message) {
    if (Full()) {
      truncated_ = true;
      return;
    }
    std::string expression;
    AppendPath(at, expression);
    issues_.push_back({std::move(message), std::move(expression)});
  }

  // The members of an object of structure `s` (a resource when `is_resource`).
  void Object(const json::Object& obj, const StructureInfo& s, const PathNode& here,
              bool is_resource) {
    if (Stopped()) return;
    if (obj.empty()) {
      Report(&here, "An object must not be empty");
      return;
    }
    // Per element: 0 when absent, else 1 + the structure index of the type used (for choices).
    uint16_t seen[internal::kMaxElementsPerStructure] = {};
    bool reported_choice[internal::kMaxElementsPerStructure] = {};
    bool has_underscore = false;
    for (const auto& member : obj) {
      if (!member.first.empty() && member.first[0] == '_') {
        has_underscore = true;
        break;
      }
    }
    for (const auto& [key, value] : obj) {
      if (Stopped()) return;
      if (is_resource && key == "resourceType") continue;
      bool underscore = !key.empty() && key[0] == '_';
      std::string_view name = std::string_view(key).substr(underscore ? 1 : 0);
      ElementMatch match = s.Resolve(name);
      if (!match || (underscore && !match.type->is_primitive())) {
        PathNode at{&here, Truncate(key), -1};
        Report(&at, "Unknown element '" + Excerpt(key) + "'");
        continue;
      }
      const ElementInfo& e = *match.element;
      PathNode at{&here, name, -1};
      uint16_t tag = static_cast<uint16_t>(match.type->index + 1);
      if (seen[e.index] != 0 && seen[e.index] != tag) {
        if (!reported_choice[e.index]) {
          reported_choice[e.index] = true;
          Report(&at, "Only one type may be given for the choice element '" + std::string(e.name) +
                          "[x]'");
        }
        continue;
      }
      seen[e.index] = tag;
      if (match.type->is_primitive()) {
        if (underscore) {
          if (HasMember(obj, name)) continue;  // checked together with its value
          Primitive(nullptr, &value, e, *match.type, at);
        } else {
          Primitive(&value, has_underscore ? FindUnderscored(obj, name) : nullptr, e, *match.type,
                    at);
        }
      } else {
        Complex(value, e, *match.type, at);
      }
    }
    for (const ElementInfo& e : s.elements) {
      if (e.min > 0 && seen[e.index] == 0) {
        PathNode at{&here, e.name, -1};
        Report(&at,
               "Missing required element '" + std::string(e.name) + (e.is_choice ? "[x]'" : "'"));
      }
    }
    if (&s == extension_ && seen[extension_extension_] != 0 && seen[extension_value_] != 0)
      Report(&here, "An extension must have either extensions or value[x], not both (ext-1)");
  }

  // A primitive element: its value (`name`) and/or its extension object (`_name`), single or
  // repeating (then two arrays aligned by index).
  void Primitive(const json::Value* value, const json::Value* ext, const ElementInfo& e,
                 const StructureInfo& type, const PathNode& at) {
    if (!e.many) {
      if (value != nullptr) {
        if (value->is_array()) {
          Report(&at, "Element '" + std::string(e.name) + "' must not be an array");
        } else {
          PrimitiveValue(*value, type, at);
        }
      }
      if (ext != nullptr) {
        if (ext->is_array()) {
          Report(&at, "Element '_" + std::string(at.name) + "' must not be an array");
        } else {
          PrimitiveExtension(*ext, type, at);
        }
      }
      return;
    }
    const json::Array* values = nullptr;
    const json::Array* exts = nullptr;
    if (value != nullptr) values = RepeatingArray(*value, at, "");
    if (ext != nullptr) exts = RepeatingArray(*ext, at, "_");
    if (values != nullptr && exts != nullptr && values->size() != exts->size()) {
      Report(&at, "Element '_" + std::string(at.name) + "' must have as many items as '" +
                      std::string(at.name) + "'");
    }
    size_t n = std::max(values ? values->size() : 0, exts ? exts->size() : 0);
    for (size_t i = 0; i < n && !Stopped(); ++i) {
      PathNode item{at.parent, at.name, static_cast<int64_t>(i)};
      const json::Value* v = values && i < values->size() ? &(*values)[i] : nullptr;
      const json::Value* x = exts && i < exts->size() ? &(*exts)[i] : nullptr;
      if (v != nullptr) {
        if (!v->is_null()) {
          PrimitiveValue(*v, type, item);
        } else if (x == nullptr || !x->is_object()) {
          Report(&item, "null in '" + std::string(at.name) + "' is only allowed where '_" +
                            std::string(at.name) + "' has an object at the same index");
        }
      }
      if (x != nullptr) {
        if (!x->is_null()) {
          PrimitiveExtension(*x, type, item);
        } else if (v == nullptr) {
          Report(&item, "null in '_" + std::string(at.name) + "' without a value in '" +
                            std::string(at.name) + "' at the same index");
        }
      }
    }
  }

  // The array of a repeating element, or nullptr (reported) when `v` is not a non-empty array.
  const json::Array* RepeatingArray(const json::Value& v, const PathNode& at,
                                    std::string_view prefix) {
    if (!v.is_array()) {
      Report(&at, "Element '" + std::string(prefix) + std::string(at.name) +
                      "' must be an array, not " + std::string(JsonTypeName(v.type())));
      return nullptr;
    }
    if (v.as_array().empty()) {
      Report(&at, "Element '" + std::string(prefix) + std::string(at.name) +
                      "' must not be an empty array");
      return nullptr;
    }
    return &v.as_array();
  }

  void PrimitiveValue(const json::Value& v, const StructureInfo& type, const PathNode& at) {
    PrimitiveType p = *type.primitive;
    json::Type want = PrimitiveJsonType(p);
    if (v.type() != want) {
      Report(&at, "Element '" + std::string(at.name) + "' must be " +
                      std::string(JsonTypeName(want)) + " (" + std::string(type.name) + "), not " +
                      std::string(JsonTypeName(v.type())));
      return;
    }
    if (want == json::Type::kBool) return;
    const std::string& text = v.as_string();
    if (text.empty()) {
      Report(&at, "Element '" + std::string(at.name) + "' must not be an empty string");
    } else if (!IsValidPrimitiveText(p, text)) {
      Report(&at, "Invalid " + std::string(type.name) + " '" + Excerpt(text) + "'");
    }
  }

  void PrimitiveExtension(const json::Value& x, const StructureInfo& type, const PathNode& at) {
    if (!x.is_object()) {
      Report(&at, "Element '_" + std::string(at.name) + "' must be an object, not " +
                      std::string(JsonTypeName(x.type())));
      return;
    }
    Object(x.as_object(), type, at, false);
  }

  void Complex(const json::Value& v, const ElementInfo& e, const StructureInfo& type,
               const PathNode& at) {
    if (!e.many) {
      if (v.is_array()) {
        Report(&at, "Element '" + std::string(at.name) + "' must not be an array");
        return;
      }
      ComplexItem(v, type, at);
      return;
    }
    const json::Array* items = RepeatingArray(v, at, "");
    if (items == nullptr) return;
    for (size_t i = 0; i < items->size() && !Stopped(); ++i) {
      PathNode item{at.parent, at.name, static_cast<int64_t>(i)};
      ComplexItem((*items)[i], type, item);
    }
  }

  void ComplexItem(const json::Value& v, const StructureInfo& type, const PathNode& at) {
    if (!v.is_object()) {
      Report(&at,
             "Element '" + std::string(at.name) + "' must be an object (" +
                 std::string(type.kind == StructureKind::kBackboneElement ? type.base : type.name) +
                 "), not " + std::string(JsonTypeName(v.type())));
      return;
    }
    if (type.is_resource()) {
      Resource(v, &at);
      return;
    }
    Object(v.as_object(), type, at, false);
  }

  size_t max_issues_;
  bool truncated_ = false;
  std::vector<Issue> issues_;
  const StructureInfo* extension_;
  uint8_t extension_extension_;
  uint8_t extension_value_;
};

}  // namespace

Status ValidateResource(const json::Value& resource, const ValidateOptions& options) {
  Validator validator(options.max_issues);
  validator.Resource(resource, nullptr);
  return std::move(validator).Finish();
}

}  // namespace fhirstone::fhir
