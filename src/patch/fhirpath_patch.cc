// FHIRPath Patch: https://hl7.org/fhir/R4/fhirpatch.html.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fhir/model.h"
#include "fhir/primitives.h"
#include "fhirpath/fhirpath.h"
#include "patch/patch.h"

namespace fhirstone::patch {
namespace {

using fhir::ElementInfo;
using fhir::ElementMatch;
using fhir::StructureInfo;

enum class OpType { kAdd, kInsert, kDelete, kReplace, kMove };

// One `operation` parameter, checked for form.
struct Operation {
  OpType type = OpType::kAdd;
  std::string type_name;  // "add"...
  // add, delete, replace: the element to change. insert, move: the element that holds the list
  // (nullptr: the resource itself), with `list` the list's element name.
  std::unique_ptr<const fhirpath::Expression> path;
  std::string list;
  std::string name;                    // add
  const json::Value* value = nullptr;  // add, insert, replace: the `value` part
  size_t index = 0;                    // insert
  size_t source = 0;                   // move
  size_t destination = 0;              // move
};

// A value to write: the JSON of a value[x], a resource or an element built from parts.
struct PatchValue {
  json::Value json;
  std::optional<json::Value> companion;  // `_valueX` of a primitive value: its id / extensions
  const StructureInfo* type = nullptr;   // from the value[x] suffix or resourceType; nullptr
                                         // for parts, which are built for the expected type
};

// Where an element of the resource lives.
struct Location {
  json::Value* node = nullptr;    // the element's JSON (for `companion`, its `_name` JSON)
  bool companion = false;         // a primitive that has only id / extensions
  json::Value* object = nullptr;  // the object holding the member; nullptr for the resource
  std::string key;                // the member's JSON name, without '_': "given", "valueQuantity"
  std::optional<size_t> index;    // the position in the member's array
  const ElementInfo* element = nullptr;  // nullptr when the model does not know the member
  const StructureInfo* type = nullptr;   // the concrete type, when the model knows it
};

Status Invalid(std::string message) { return Error::Invalid(std::move(message)); }
Status Unprocessable(std::string message) { return Error::Unprocessable(std::move(message)); }

// The type of a JSON node declared as `declared`: contained resources, Bundle.entry.resource...
// take it from resourceType.
const StructureInfo* Concrete(const StructureInfo* declared, const json::Value& node) {
  if ((declared == nullptr || (declared->is_resource() && declared->is_abstract)) &&
      node.is_object()) {
    if (const StructureInfo* t = fhir::FindResourceType(node.GetString("resourceType"))) return t;
  }
  return declared;
}

// Every JSON node of a resource with its location, built from a walk over the resource so that
// the (const) nodes FHIRPath returns can be edited. Valid until the resource is next modified.
class NodeIndex {
 public:
  explicit NodeIndex(json::Value& resource) {
    const StructureInfo* type = Concrete(nullptr, resource);
    locations_[&resource] = Location{&resource, false, nullptr, "", std::nullopt, nullptr, type};
    if (resource.is_object()) Walk(resource, type);
  }

  const Location* Find(const json::Value* node) const {
    auto it = locations_.find(node);
    return it == locations_.end() ? nullptr : &it->second;
  }

 private:
  void Walk(json::Value& object, const StructureInfo* type) {
    for (json::Member& m : object.as_object()) {
      std::string_view key = m.first;
      if (key == "resourceType") continue;
      bool companion = !key.empty() && key[0] == '_';
      std::string_view base = companion ? key.substr(1) : key;
      ElementMatch match = type != nullptr ? type->Resolve(base) : ElementMatch{};
      auto visit = [&](json::Value& child, std::optional<size_t> index) {
        const StructureInfo* child_type = companion ? match.type : Concrete(match.type, child);
        locations_[&child] = Location{&child, companion,     &object,   std::string(base),
                                      index,  match.element, child_type};
        if (child.is_object()) Walk(child, child_type);
      };
      if (m.second.is_array()) {
        json::Array& items = m.second.as_array();
        for (size_t i = 0; i < items.size(); ++i) visit(items[i], i);
      } else {
        visit(m.second, std::nullopt);
      }
    }
  }

  std::unordered_map<const json::Value*, Location> locations_;
};

// ---- Parsing the Parameters resource ---------------------------------------------------------

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// The value[x] member of a part ("valueString"), or nullptr; Invalid when there are several.
Result<const json::Member*> FindValueX(const json::Value& part) {
  const json::Member* found = nullptr;
  for (const json::Member& m : part.as_object()) {
    if (m.first.size() > 5 && m.first.starts_with("value") && IsUpper(m.first[5])) {
      if (found != nullptr) {
        return Error::Invalid("a part has both " + found->first + " and " + m.first);
      }
      found = &m;
    }
  }
  return found;
}

// The text of a part's valueString / valueCode.
Result<std::string> StringPart(const json::Value& part, std::string_view name) {
  for (std::string_view key : {"valueString", "valueCode"}) {
    if (const json::Value* v = part.Find(key); v != nullptr && v->is_string()) {
      return v->as_string();
    }
  }
  return Error::Invalid("part '" + std::string(name) + "' needs a valueString or valueCode");
}

// A non-negative integer part (valueInteger; valueUnsignedInt and valuePositiveInt also do).
Result<size_t> IndexPart(const json::Value& part, std::string_view name) {
  Result<const json::Member*> value = FindValueX(part);
  if (!value) return std::move(value).error();
  std::string what = "part '" + std::string(name) + "'";
  if (*value == nullptr || !(*value)->second.is_number()) {
    return Error::Invalid(what + " needs a valueInteger");
  }
  const std::string& text = (*value)->second.as_string();
  if (text.empty() || text.size() > 9) return Error::Invalid(what + " is out of range: " + text);
  size_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return Error::Invalid(what + " must be a non-negative integer: " + text);
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return n;
}

bool IsIdentifierStart(char c) { return IsUpper(c) || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentifierChar(char c) { return IsIdentifierStart(c) || (c >= '0' && c <= '9'); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits the path of insert / move, "Patient.name[0].given", into the expression of the element
// that holds the list ("Patient.name[0]"; empty: the resource) and the list's name ("given"): at
// the last '.' outside brackets, parentheses and string literals.
Result<std::pair<std::string, std::string>> SplitListPath(std::string_view path) {
  size_t last_dot = std::string_view::npos;
  int depth = 0;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '\'' || c == '"' || c == '`') {
      for (++i; i < path.size() && path[i] != c; ++i) {
        if (path[i] == '\\') ++i;
      }
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if (c == ')' || c == ']' || c == '}') {
      --depth;
    } else if (c == '.' && depth == 0) {
      last_dot = i;
    }
  }
  std::string_view prefix = last_dot == std::string_view::npos ? "" : path.substr(0, last_dot);
  std::string_view name =
      Trim(last_dot == std::string_view::npos ? path : path.substr(last_dot + 1));
  if (name.size() > 2 && name.front() == '`' && name.back() == '`') {
    name = name.substr(1, name.size() - 2);
  }
  bool ok = !name.empty() && IsIdentifierStart(name[0]);
  for (char c : name) ok = ok && IsIdentifierChar(c);
  if (!ok) {
    return Error::Invalid(
        "the path of a list must end with the list's element name, e.g. "
        "Patient.name[0].given: '" +
        std::string(path) + "'");
  }
  return std::pair{std::string(Trim(prefix)), std::string(name)};
}

Result<std::unique_ptr<const fhirpath::Expression>> CompilePath(std::string_view text) {
  auto compiled = fhirpath::Compile(text);
  if (!compiled) {
    return Error(compiled.error().code(),
                 "path '" + std::string(text) + "': " + compiled.error().message());
  }
  return std::move(*compiled);
}

Result<Operation> ParseOperation(const json::Value& parameter) {
  if (!parameter.is_object()) return Error::Invalid("the parameter is not a JSON object");
  std::string_view parameter_name = parameter.GetString("name");
  if (parameter_name != "operation") {
    return Error::Invalid("the parameter is named '" + std::string(parameter_name) +
                          "', not 'operation'");
  }
  const json::Value* parts = parameter.Find("part");
  if (parts == nullptr || !parts->is_array()) return Error::Invalid("the operation has no parts");
  Operation op;
  std::optional<std::string> type, path, name;
  std::optional<size_t> index, source, destination;
  for (const json::Value& part : parts->as_array()) {
    if (!part.is_object()) return Error::Invalid("a part is not a JSON object");
    std::string_view part_name = part.GetString("name");
    auto once = [&](bool seen) -> Status {
      if (seen) return Invalid("part '" + std::string(part_name) + "' is given twice");
      return Ok();
    };
    if (part_name == "type" || part_name == "path" || part_name == "name") {
      std::optional<std::string>& slot =
          part_name == "type" ? type : (part_name == "path" ? path : name);
      FHIRSTONE_RETURN_IF_ERROR(once(slot.has_value()));
      Result<std::string> text = StringPart(part, part_name);
      if (!text) return std::move(text).error();
      slot = std::move(*text);
    } else if (part_name == "index" || part_name == "source" || part_name == "destination") {
      std::optional<size_t>& slot =
          part_name == "index" ? index : (part_name == "source" ? source : destination);
      FHIRSTONE_RETURN_IF_ERROR(once(slot.has_value()));
      Result<size_t> n = IndexPart(part, part_name);
      if (!n) return std::move(n).error();
      slot = *n;
    } else if (part_name == "value") {
      FHIRSTONE_RETURN_IF_ERROR(once(op.value != nullptr));
      op.value = &part;
    } else {
      return Error::Invalid("unknown part '" + std::string(part_name) + "'");
    }
  }
  if (!type) return Error::Invalid("the operation has no 'type' part");
  static constexpr std::pair<std::string_view, OpType> kTypes[] = {{"add", OpType::kAdd},
                                                                   {"insert", OpType::kInsert},
                                                                   {"delete", OpType::kDelete},
                                                                   {"replace", OpType::kReplace},
                                                                   {"move", OpType::kMove}};
  bool known = false;
  for (const auto& [text, t] : kTypes) {
    if (*type == text) {
      op.type = t;
      known = true;
    }
  }
  if (!known) return Error::Invalid("unknown type '" + *type + "'");
  op.type_name = *type;
  if (!path) return Error::Invalid("the operation has no 'path' part");
  auto require = [](bool present, std::string_view part) -> Status {
    if (!present) return Invalid("the operation needs a '" + std::string(part) + "' part");
    return Ok();
  };
  switch (op.type) {
    case OpType::kAdd:
      FHIRSTONE_RETURN_IF_ERROR(require(name.has_value(), "name"));
      FHIRSTONE_RETURN_IF_ERROR(require(op.value != nullptr, "value"));
      op.name = *name;
      break;
    case OpType::kInsert:
      FHIRSTONE_RETURN_IF_ERROR(require(op.value != nullptr, "value"));
      FHIRSTONE_RETURN_IF_ERROR(require(index.has_value(), "index"));
      op.index = *index;
      break;
    case OpType::kDelete:
      break;
    case OpType::kReplace:
      FHIRSTONE_RETURN_IF_ERROR(require(op.value != nullptr, "value"));
      break;
    case OpType::kMove:
      FHIRSTONE_RETURN_IF_ERROR(require(source.has_value(), "source"));
      FHIRSTONE_RETURN_IF_ERROR(require(destination.has_value(), "destination"));
      op.source = *source;
      op.destination = *destination;
      break;
  }
  std::string expression = *path;
  if (op.type == OpType::kInsert || op.type == OpType::kMove) {
    auto split = SplitListPath(*path);
    if (!split) return std::move(split).error();
    expression = std::move(split->first);
    op.list = std::move(split->second);
  }
  if (!expression.empty()) {
    auto compiled = CompilePath(expression);
    if (!compiled) return std::move(compiled).error();
    op.path = std::move(*compiled);
  }
  return op;
}

// ---- Values ------------------------------------------------------------------------------------

// The FHIR type a value[x] suffix names: "Quantity" -> Quantity, "DateTime" -> dateTime.
const StructureInfo* TypeFromSuffix(std::string_view suffix) {
  const StructureInfo* t = fhir::FindStructure(suffix);
  if (t != nullptr && t->kind == fhir::StructureKind::kComplexType) return t;
  std::string lower(suffix);
  lower[0] = static_cast<char>(lower[0] - 'A' + 'a');
  t = fhir::FindStructure(lower);
  if (t != nullptr && t->is_primitive()) return t;
  return nullptr;
}

bool DerivesFrom(const StructureInfo* type, const StructureInfo& base) {
  for (int depth = 0; type != nullptr && depth < 16; ++depth) {
    if (type == &base) return true;
    if (type->base.empty() || type->base == type->name) return false;
    type = fhir::FindStructure(type->base);
  }
  return false;
}

// Whether `v` fits an element of type `target`.
Status CheckType(const PatchValue& v, const StructureInfo& target, std::string_view element) {
  std::string where = "element '" + std::string(element) + "' (" + std::string(target.name) + ")";
  if (target.is_primitive()) {
    if (v.type != nullptr && !v.type->is_primitive()) {
      return Unprocessable(where + " cannot take a " + std::string(v.type->name));
    }
    if (!fhir::IsValidPrimitive(*target.primitive, v.json)) {
      return Unprocessable(where + " cannot take the value " + json::Write(v.json));
    }
    return Ok();
  }
  if (!v.json.is_object()) {
    return Unprocessable(where + " cannot take the primitive value " + json::Write(v.json));
  }
  if (v.type != nullptr && !DerivesFrom(v.type, target)) {
    return Unprocessable(where + " cannot take a " + std::string(v.type->name));
  }
  return Ok();
}

// A list member `key` and its `_key` companion (id / extensions of primitive items), padded with
// nulls to the same length. Pointers are valid until `object` changes.
struct Lists {
  json::Array* values = nullptr;      // nullptr when absent
  json::Array* companions = nullptr;  // nullptr when absent
  size_t size = 0;
};

// Unprocessable when a member exists but is no JSON array.
Result<Lists> GetLists(json::Value& object, const std::string& key, bool create_values,
                       bool create_companions) {
  const std::string companion_key = "_" + key;
  // Create first: adding a member may move the others.
  if (create_values && object.Find(key) == nullptr) object.Set(key, json::Value::EmptyArray());
  if (create_companions && object.Find(companion_key) == nullptr) {
    object.Set(companion_key, json::Value::EmptyArray());
  }
  Lists out;
  for (const std::string* k : {&key, &companion_key}) {
    json::Value* v = object.Find(*k);
    if (v == nullptr) continue;
    if (!v->is_array()) return Error::Unprocessable("'" + *k + "' is not a JSON array");
    (k == &key ? out.values : out.companions) = &v->as_array();
    out.size = std::max(out.size, v->as_array().size());
  }
  if (out.values != nullptr) out.values->resize(out.size);
  if (out.companions != nullptr) out.companions->resize(out.size);
  return out;
}

// Removes `key` when it is an empty list or a list of nulls without companions, and `_key` when
// it holds only nulls.
void Tidy(json::Value& object, const std::string& key) {
  auto all_null = [](const json::Value* v) {
    if (v == nullptr || !v->is_array()) return false;
    for (const json::Value& item : v->as_array()) {
      if (!item.is_null()) return false;
    }
    return true;
  };
  std::string companion_key = "_" + key;
  if (all_null(object.Find(companion_key))) object.Erase(companion_key);
  if (all_null(object.Find(key)) && object.Find(companion_key) == nullptr) object.Erase(key);
}

// Inserts `v` into list `key` at `index`, keeping `_key` aligned. REQUIRES: index <= its size.
Status InsertItem(json::Value& object, const std::string& key, size_t index, PatchValue v) {
  Result<Lists> lists = GetLists(object, key, true, v.companion.has_value());
  if (!lists) return std::move(lists).error();
  auto at = static_cast<std::ptrdiff_t>(index);
  if (lists->companions != nullptr) {
    lists->companions->insert(lists->companions->begin() + at,
                              v.companion ? std::move(*v.companion) : json::Value());
  }
  lists->values->insert(lists->values->begin() + at, std::move(v.json));
  Tidy(object, key);
  return Ok();
}

// Replaces item `index` of list `key` and its companion. REQUIRES: index < its size.
Status SetItem(json::Value& object, const std::string& key, size_t index, PatchValue v) {
  Result<Lists> lists = GetLists(object, key, true, v.companion.has_value());
  if (!lists) return std::move(lists).error();
  if (lists->companions != nullptr) {
    (*lists->companions)[index] = v.companion ? std::move(*v.companion) : json::Value();
  }
  (*lists->values)[index] = std::move(v.json);
  Tidy(object, key);
  return Ok();
}

// Removes item `index` of list `key` and its companion. REQUIRES: index < its size.
Status EraseItem(json::Value& object, const std::string& key, size_t index) {
  Result<Lists> lists = GetLists(object, key, false, false);
  if (!lists) return std::move(lists).error();
  auto at = static_cast<std::ptrdiff_t>(index);
  for (json::Array* list : {lists->values, lists->companions}) {
    if (list != nullptr) list->erase(list->begin() + at);
  }
  Tidy(object, key);
  return Ok();
}

// Moves item `from` of list `key` to position `to`. REQUIRES: both < its size.
Status MoveItem(json::Value& object, const std::string& key, size_t from, size_t to) {
  Result<Lists> lists = GetLists(object, key, false, false);
  if (!lists) return std::move(lists).error();
  for (json::Array* list : {lists->values, lists->companions}) {
    if (list == nullptr) continue;
    json::Value item = std::move((*list)[from]);
    list->erase(list->begin() + static_cast<std::ptrdiff_t>(from));
    list->insert(list->begin() + static_cast<std::ptrdiff_t>(to), std::move(item));
  }
  return Ok();
}

// Sets the single member `key` to `v`, replacing its value and its `_key` companion.
void SetMember(json::Value& object, const std::string& key, PatchValue v) {
  object.Set(key, std::move(v.json));
  object.Erase("_" + key);
  if (v.companion) object.Set("_" + key, std::move(*v.companion));
}

// The key a choice element (value[x]) takes for `v`: "valueQuantity".
Result<std::string> ChoiceKey(const ElementInfo& element, const PatchValue& v) {
  std::string name(element.name);
  if (v.type == nullptr) {
    return Error::Unprocessable("the choice element '" + name +
                                "[x]' needs a typed value (a value[x] part)");
  }
  for (const StructureInfo* allowed : element.types) {
    if (allowed == v.type) {
      std::string suffix(v.type->name);
      if (suffix[0] >= 'a' && suffix[0] <= 'z')
        suffix[0] = static_cast<char>(suffix[0] - 'a' + 'A');
      return name + suffix;
    }
  }
  return Error::Unprocessable("the choice element '" + name + "[x]' cannot take a " +
                              std::string(v.type->name));
}

// The element `name` denotes in `type`: an element name ("given", "value" for value[x]) or the
// JSON name of a choice's typed form ("valueQuantity"). match.type is nullptr for a choice
// element named without its type.
ElementMatch FindChild(const StructureInfo& type, std::string_view name) {
  if (const ElementInfo* e = type.FindElement(name)) {
    return ElementMatch{e, e->is_choice ? nullptr : &e->type()};
  }
  return type.Resolve(name);
}

Result<PatchValue> BuildValue(const json::Value& part, const StructureInfo* expected, int depth);

// A complex element of type `type` from nested parts, one per child element.
Result<PatchValue> BuildFromParts(const json::Array& parts, const StructureInfo* type, int depth) {
  if (type == nullptr || type->is_primitive()) {
    return Error::Unprocessable(
        "a value given as nested parts needs an element of complex type (a choice element "
        "needs a value[x])");
  }
  PatchValue out{json::Value::EmptyObject(), std::nullopt, nullptr};
  for (const json::Value& part : parts) {
    if (!part.is_object()) return Error::Invalid("a nested part is not a JSON object");
    std::string_view name = part.GetString("name");
    if (name.empty()) return Error::Invalid("a nested part has no name");
    ElementMatch match = FindChild(*type, name);
    if (!match) {
      return Error::Unprocessable(std::string(type->name) + " has no element '" +
                                  std::string(name) + "'");
    }
    Result<PatchValue> v = BuildValue(part, match.type, depth + 1);
    if (!v) return std::move(v).error();
    std::string key(name);
    const StructureInfo* element_type = match.type;
    if (element_type == nullptr) {
      Result<std::string> choice = ChoiceKey(*match.element, *v);
      if (!choice) return std::move(choice).error();
      key = std::move(*choice);
      element_type = v->type;
    }
    FHIRSTONE_RETURN_IF_ERROR(CheckType(*v, *element_type, key));
    if (match.element->many) {
      Result<Lists> lists = GetLists(out.json, key, false, false);
      if (!lists) return std::move(lists).error();
      FHIRSTONE_RETURN_IF_ERROR(InsertItem(out.json, key, lists->size, std::move(*v)));
    } else {
      if (out.json.Find(key) != nullptr) {
        return Error::Invalid("nested part '" + key + "' is given twice for a single element");
      }
      SetMember(out.json, key, std::move(*v));
    }
  }
  return out;
}

// The value a `value` part carries: value[x] (with its `_valueX`), a resource or nested parts
// building an element of type `expected`.
Result<PatchValue> BuildValue(const json::Value& part, const StructureInfo* expected, int depth) {
  if (depth > 64) return Error::Invalid("the parts nest too deeply");
  Result<const json::Member*> value_x = FindValueX(part);
  if (!value_x) return std::move(value_x).error();
  const json::Value* resource = part.Find("resource");
  const json::Value* parts = part.Find("part");
  int given = (*value_x != nullptr) + (resource != nullptr) + (parts != nullptr);
  std::string name(part.GetString("name"));
  if (given != 1) {
    return Error::Invalid("part '" + name + "' needs exactly one of value[x], resource or part");
  }
  if (*value_x != nullptr) {
    const std::string& key = (*value_x)->first;
    const StructureInfo* type = TypeFromSuffix(std::string_view(key).substr(5));
    if (type == nullptr) return Error::Invalid("part '" + name + "': unknown type in " + key);
    PatchValue v{(*value_x)->second, std::nullopt, type};
    if (const json::Value* companion = part.Find("_" + key)) v.companion = *companion;
    return v;
  }
  if (resource != nullptr) {
    const StructureInfo* type = resource->is_object()
                                    ? fhir::FindResourceType(resource->GetString("resourceType"))
                                    : nullptr;
    if (type == nullptr) {
      return Error::Invalid("part '" + name + "': the resource has no known resourceType");
    }
    return PatchValue{*resource, std::nullopt, type};
  }
  if (!parts->is_array()) return Error::Invalid("part '" + name + "': 'part' is not an array");
  return BuildFromParts(parts->as_array(), expected, depth);
}

// ---- Applying ----------------------------------------------------------------------------------

// The locations of the elements `path` selects in `doc` (the resource itself for no path).
Result<std::vector<Location>> Select(json::Value& doc, const fhirpath::Expression* path) {
  NodeIndex index(doc);
  if (path == nullptr) return std::vector<Location>{*index.Find(&doc)};
  Result<fhirpath::Collection> items = path->Evaluate(doc);
  if (!items) {
    return Error::Unprocessable("path '" + path->text() + "': " + items.error().message());
  }
  std::vector<Location> out;
  for (const fhirpath::Item& item : *items) {
    const json::Value* node = item.node != nullptr ? item.node : item.extension_node;
    if (node == nullptr) {
      return Error::Unprocessable("path '" + path->text() +
                                  "' selects a computed value, not an element of the resource");
    }
    const Location* location = index.Find(node);
    if (location == nullptr) {
      return Error::Unprocessable("path '" + path->text() +
                                  "' selects an element outside the resource");
    }
    out.push_back(*location);
  }
  return out;
}

// The single element `path` selects.
Result<Location> SelectOne(json::Value& doc, const Operation& op) {
  Result<std::vector<Location>> found = Select(doc, op.path.get());
  if (!found) return std::move(found).error();
  std::string what = op.path != nullptr ? "path '" + op.path->text() + "'" : "the resource";
  if (found->empty()) return Error::Unprocessable(what + " matches no element");
  if (found->size() > 1) {
    return Error::Unprocessable(what + " matches " + std::to_string(found->size()) + " elements; " +
                                op.type_name + " needs exactly one");
  }
  return std::move(found->front());
}

// The object holding the children of the element at `loc` and the structure describing them: the
// element itself or, for a primitive, its `_name` companion (id, extension), created when `create`
// (else object is nullptr when absent).
struct Children {
  json::Value* object = nullptr;
  const StructureInfo* type = nullptr;
};

Result<Children> ChildrenOf(const Location& loc, bool create) {
  if (loc.type == nullptr) {
    return Error::Unprocessable("the model does not know the type of the element at '" + loc.key +
                                "'");
  }
  if (!loc.type->is_primitive() || loc.companion) {
    if (!loc.node->is_object()) return Error::Unprocessable("'" + loc.key + "' is not an object");
    return Children{loc.node, loc.type};
  }
  json::Value& owner = *loc.object;
  json::Value* companion = nullptr;
  if (loc.index) {
    Result<Lists> lists = GetLists(owner, loc.key, false, create);
    if (!lists) return std::move(lists).error();
    if (lists->companions != nullptr) {
      companion = &(*lists->companions)[*loc.index];
      if (companion->is_null()) {
        if (create) {
          *companion = json::Value::EmptyObject();
        } else {
          companion = nullptr;
        }
      }
    }
  } else {
    companion = owner.Find("_" + loc.key);
    if (companion == nullptr && create) {
      companion = &owner.Set("_" + loc.key, json::Value::EmptyObject());
    }
  }
  if (companion != nullptr && !companion->is_object()) {
    return Error::Unprocessable("'_" + loc.key + "' is not an object");
  }
  return Children{companion, loc.type};
}

// The list element `op.list` of the single element `op.path` selects.
struct ListTarget {
  Children holder;
  const ElementInfo* element = nullptr;
  size_t size = 0;
};

Result<ListTarget> SelectList(json::Value& doc, const Operation& op, bool create) {
  Result<Location> loc = SelectOne(doc, op);
  if (!loc) return std::move(loc).error();
  Result<Children> holder = ChildrenOf(*loc, create);
  if (!holder) return std::move(holder).error();
  ElementMatch match = FindChild(*holder->type, op.list);
  if (!match) {
    return Error::Unprocessable(std::string(holder->type->name) + " has no element '" + op.list +
                                "'");
  }
  if (!match.element->many || match.type == nullptr) {
    return Error::Unprocessable("'" + op.list + "' is not a list");
  }
  ListTarget out{*holder, match.element, 0};
  if (holder->object != nullptr) {
    Result<Lists> lists = GetLists(*holder->object, op.list, false, false);
    if (!lists) return std::move(lists).error();
    out.size = lists->size;
  }
  return out;
}

Status ApplyAdd(json::Value& doc, const Operation& op) {
  Result<Location> loc = SelectOne(doc, op);
  if (!loc) return std::move(loc).error();
  Result<Children> holder = ChildrenOf(*loc, true);
  if (!holder) return std::move(holder).error();
  json::Value& object = *holder->object;
  ElementMatch match = FindChild(*holder->type, op.name);
  if (!match) {
    return Unprocessable(std::string(holder->type->name) + " has no element '" + op.name + "'");
  }
  Result<PatchValue> v = BuildValue(*op.value, match.type, 0);
  if (!v) return std::move(v).error();
  std::string key = op.name;
  const StructureInfo* type = match.type;
  if (type == nullptr) {
    Result<std::string> choice = ChoiceKey(*match.element, *v);
    if (!choice) return std::move(choice).error();
    key = std::move(*choice);
    type = v->type;
  }
  FHIRSTONE_RETURN_IF_ERROR(CheckType(*v, *type, key));
  if (match.element->many) {
    Result<Lists> lists = GetLists(object, key, false, false);
    if (!lists) return std::move(lists).error();
    return InsertItem(object, key, lists->size, std::move(*v));
  }
  // A single element must not exist yet, in any of its typed forms.
  for (const json::Member& m : object.as_object()) {
    std::string_view base = m.first;
    if (!base.empty() && base[0] == '_') base.remove_prefix(1);
    if (holder->type->Resolve(base).element == match.element) {
      return Unprocessable(std::string(holder->type->name) + " already has '" + std::string(base) +
                           "'; use replace");
    }
  }
  SetMember(object, key, std::move(*v));
  return Ok();
}

Status ApplyInsert(json::Value& doc, const Operation& op) {
  Result<ListTarget> target = SelectList(doc, op, true);
  if (!target) return std::move(target).error();
  if (op.index > target->size) {
    return Unprocessable("index " + std::to_string(op.index) + " is beyond the end of '" + op.list +
                         "' (" + std::to_string(target->size) + " items)");
  }
  Result<PatchValue> v = BuildValue(*op.value, &target->element->type(), 0);
  if (!v) return std::move(v).error();
  FHIRSTONE_RETURN_IF_ERROR(CheckType(*v, target->element->type(), op.list));
  return InsertItem(*target->holder.object, op.list, op.index, std::move(*v));
}

Status ApplyMove(json::Value& doc, const Operation& op) {
  Result<ListTarget> target = SelectList(doc, op, false);
  if (!target) return std::move(target).error();
  for (size_t i : {op.source, op.destination}) {
    if (i >= target->size) {
      return Unprocessable("index " + std::to_string(i) + " is out of range for '" + op.list +
                           "' (" + std::to_string(target->size) + " items)");
    }
  }
  return MoveItem(*target->holder.object, op.list, op.source, op.destination);
}

// Removes the element at `loc`, then every object left empty above it (FHIR JSON has no empty
// objects or arrays).
Status Delete(const NodeIndex& index, const Location& start) {
  const Location* loc = &start;
  while (true) {
    json::Value& owner = *loc->object;
    if (loc->index) {
      Result<Lists> lists = GetLists(owner, loc->key, false, false);
      if (!lists) return std::move(lists).error();
      if (loc->companion && lists->values != nullptr && !(*lists->values)[*loc->index].is_null()) {
        // Only the id / extensions of a primitive that keeps its value.
        (*lists->companions)[*loc->index] = json::Value();
        Tidy(owner, loc->key);
      } else {
        FHIRSTONE_RETURN_IF_ERROR(EraseItem(owner, loc->key, *loc->index));
      }
    } else if (loc->companion) {
      owner.Erase("_" + loc->key);
    } else {
      owner.Erase(loc->key);
      owner.Erase("_" + loc->key);
    }
    if (!owner.as_object().empty()) return Ok();
    loc = index.Find(&owner);
    if (loc == nullptr || loc->object == nullptr) return Ok();  // the resource itself
  }
}

Status ApplyDelete(json::Value& doc, const Operation& op) {
  NodeIndex index(doc);
  Result<fhirpath::Collection> items = op.path->Evaluate(doc);
  if (!items) {
    return Unprocessable("path '" + op.path->text() + "': " + items.error().message());
  }
  if (items->empty()) return Ok();
  if (items->size() > 1) {
    return Unprocessable("path '" + op.path->text() + "' matches " + std::to_string(items->size()) +
                         " elements; delete removes only one");
  }
  const fhirpath::Item& item = items->front();
  const json::Value* node = item.node != nullptr ? item.node : item.extension_node;
  const Location* loc = node != nullptr ? index.Find(node) : nullptr;
  if (loc == nullptr) {
    return Unprocessable("path '" + op.path->text() + "' selects no element of the resource");
  }
  if (loc->object == nullptr) return Unprocessable("cannot delete the resource itself");
  return Delete(index, *loc);
}

Status ApplyReplace(json::Value& doc, const Operation& op) {
  Result<Location> loc = SelectOne(doc, op);
  if (!loc) return std::move(loc).error();
  if (loc->object == nullptr) {
    return Unprocessable("cannot replace the resource itself (use update)");
  }
  const ElementInfo* element = loc->element;
  const StructureInfo* expected =
      element != nullptr && !element->is_choice ? &element->type() : nullptr;
  Result<PatchValue> v = BuildValue(*op.value, expected, 0);
  if (!v) return std::move(v).error();
  std::string key = loc->key;
  if (element != nullptr) {
    const StructureInfo* type = expected;
    if (element->is_choice) {
      Result<std::string> choice = ChoiceKey(*element, *v);
      if (!choice) return std::move(choice).error();
      key = std::move(*choice);
      type = v->type;
    }
    FHIRSTONE_RETURN_IF_ERROR(CheckType(*v, *type, key));
  }
  json::Value& owner = *loc->object;
  if (loc->index) return SetItem(owner, key, *loc->index, std::move(*v));
  if (key != loc->key) {
    // Another type for a choice element: rename the member in place.
    owner.Erase("_" + loc->key);
    for (json::Member& m : owner.as_object()) {
      if (m.first == loc->key) m.first = key;
    }
  }
  SetMember(owner, key, std::move(*v));
  return Ok();
}

Status Apply(json::Value& doc, const Operation& op) {
  switch (op.type) {
    case OpType::kAdd:
      return ApplyAdd(doc, op);
    case OpType::kInsert:
      return ApplyInsert(doc, op);
    case OpType::kDelete:
      return ApplyDelete(doc, op);
    case OpType::kReplace:
      return ApplyReplace(doc, op);
    case OpType::kMove:
      return ApplyMove(doc, op);
  }
  return Error::Internal("unhandled FHIRPath Patch operation");
}

Error AtOperation(size_t index, std::string_view type, const Error& error) {
  std::string label = type.empty() ? "" : " (" + std::string(type) + ")";
  std::string expression = "Parameters.parameter[" + std::to_string(index) + "]";
  return Error(error.code(),
               "FHIRPath Patch operation " + std::to_string(index) + label + ": " + error.message(),
               expression);
}

}  // namespace

Result<json::Value> ApplyFhirPathPatch(const json::Value& resource, const json::Value& parameters) {
  if (!parameters.is_object() || parameters.GetString("resourceType") != "Parameters") {
    return Error::Invalid("FHIRPath Patch: the document is not a Parameters resource");
  }
  std::vector<Operation> ops;
  if (const json::Value* list = parameters.Find("parameter")) {
    if (!list->is_array()) return Error::Invalid("FHIRPath Patch: 'parameter' is not an array");
    const json::Array& items = list->as_array();
    ops.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      Result<Operation> op = ParseOperation(items[i]);
      if (!op) return AtOperation(i, "", op.error());
      ops.push_back(std::move(*op));
    }
  }
  json::Value doc = resource;
  for (size_t i = 0; i < ops.size(); ++i) {
    Status status = Apply(doc, ops[i]);
    if (!status) return AtOperation(i, ops[i].type_name, status.error());
  }
  return doc;
}

}  // namespace fhirstone::patch
