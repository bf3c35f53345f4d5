// JSON Patch: https://www.rfc-editor.org/rfc/rfc6902 over JSON Pointer:
// https://www.rfc-editor.org/rfc/rfc6901.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "patch/patch.h"

namespace fhirstone::patch {
namespace {

using Tokens = std::vector<std::string>;

// "'path' is missing": a member name quoted, then the rest of a message.
std::string Quoted(std::string_view member, std::string_view rest) {
  std::string out = "'";
  out += member;
  out += "' ";
  out += rest;
  return out;
}

// Splits a pointer into its unescaped reference tokens ("" is the whole document).
Result<Tokens> ParsePointer(std::string_view pointer, std::string_view member) {
  Tokens tokens;
  if (pointer.empty()) return tokens;
  if (pointer[0] != '/') {
    return Error::Invalid(Quoted(member, "must be empty or start with '/'"));
  }
  std::string token;
  for (size_t i = 1; i <= pointer.size(); ++i) {
    if (i == pointer.size() || pointer[i] == '/') {
      tokens.push_back(std::move(token));
      token.clear();
    } else if (pointer[i] == '~') {
      char next = i + 1 < pointer.size() ? pointer[i + 1] : '\0';
      if (next != '0' && next != '1') {
        return Error::Invalid(Quoted(member, "has '~' not followed by 0 or 1"));
      }
      token += next == '0' ? '~' : '/';
      ++i;
    } else {
      token += pointer[i];
    }
  }
  return tokens;
}

// An array index token: "0" or digits without a leading zero.
std::optional<size_t> ParseIndex(std::string_view token) {
  if (token.empty() || token.size() > 15 || (token.size() > 1 && token[0] == '0')) {
    return std::nullopt;
  }
  size_t index = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    index = index * 10 + static_cast<size_t>(c - '0');
  }
  return index;
}

// The value `tokens` refers to, or nullptr.
json::Value* Resolve(json::Value& doc, std::span<const std::string> tokens) {
  json::Value* v = &doc;
  for (const std::string& token : tokens) {
    if (v->is_object()) {
      v = v->Find(token);
    } else if (v->is_array()) {
      std::optional<size_t> index = ParseIndex(token);
      if (!index || *index >= v->as_array().size()) return nullptr;
      v = &v->as_array()[*index];
    } else {
      return nullptr;
    }
    if (v == nullptr) return nullptr;
  }
  return v;
}

Status Add(json::Value& doc, const Tokens& path, json::Value value) {
  if (path.empty()) {
    doc = std::move(value);
    return Ok();
  }
  json::Value* parent = Resolve(doc, std::span(path).first(path.size() - 1));
  if (parent == nullptr) return Error::Unprocessable("the parent of 'path' does not exist");
  const std::string& last = path.back();
  if (parent->is_object()) {
    parent->Set(last, std::move(value));
    return Ok();
  }
  if (!parent->is_array()) {
    return Error::Unprocessable("the parent of 'path' is neither an object nor an array");
  }
  json::Array& array = parent->as_array();
  if (last == "-") {
    array.push_back(std::move(value));
    return Ok();
  }
  std::optional<size_t> index = ParseIndex(last);
  if (!index || *index > array.size()) {
    return Error::Unprocessable("array index '" + last + "' is out of range (size " +
                                std::to_string(array.size()) + ")");
  }
  array.insert(array.begin() + static_cast<std::ptrdiff_t>(*index), std::move(value));
  return Ok();
}

Result<json::Value> Remove(json::Value& doc, const Tokens& path, std::string_view member) {
  if (path.empty()) return Error::Unprocessable("cannot remove the whole document");
  json::Value* parent = Resolve(doc, std::span(path).first(path.size() - 1));
  const std::string& last = path.back();
  if (parent != nullptr && parent->is_object()) {
    if (json::Value* target = parent->Find(last)) {
      json::Value removed = std::move(*target);
      parent->Erase(last);
      return removed;
    }
  } else if (parent != nullptr && parent->is_array()) {
    json::Array& array = parent->as_array();
    std::optional<size_t> index = ParseIndex(last);
    if (index && *index < array.size()) {
      json::Value removed = std::move(array[*index]);
      array.erase(array.begin() + static_cast<std::ptrdiff_t>(*index));
      return removed;
    }
  }
  return Error::Unprocessable(Quoted(member, "does not exist"));
}

// A JSON number reduced to sign, significant digits and exponent: equal numbers, equal forms.
struct CanonicalNumber {
  bool negative = false;
  std::string digits;    // no leading or trailing zeros; empty for zero
  int64_t exponent = 0;  // value = digits * 10^exponent
  friend bool operator==(const CanonicalNumber&, const CanonicalNumber&) = default;
};

// REQUIRES: `text` is a valid JSON number.
CanonicalNumber Canonicalize(std::string_view text) {
  CanonicalNumber n;
  size_t i = 0;
  if (i < text.size() && text[i] == '-') {
    n.negative = true;
    ++i;
  }
  int64_t fraction_digits = 0;
  bool in_fraction = false;
  for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
    if (text[i] == '.') {
      in_fraction = true;
      continue;
    }
    if (in_fraction) ++fraction_digits;
    if (n.digits.empty() && text[i] == '0') continue;  // leading zero
    n.digits += text[i];
  }
  int64_t exponent = 0;
  if (i < text.size()) {
    ++i;
    bool negative_exponent = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative_exponent = text[i++] == '-';
    for (; i < text.size(); ++i) {
      // Beyond 10^15 every exponent differs from any written in a sane document anyway.
      if (exponent < 1'000'000'000'000'000) exponent = exponent * 10 + (text[i] - '0');
    }
    if (negative_exponent) exponent = -exponent;
  }
  n.exponent = exponent - fraction_digits;
  while (!n.digits.empty() && n.digits.back() == '0') {
    n.digits.pop_back();
    ++n.exponent;
  }
  if (n.digits.empty()) n = CanonicalNumber{};  // -0 == 0
  return n;
}

// RFC 6902 section 4.6 equality: numbers by value, arrays in order, objects by member set.
bool JsonEqual(const json::Value& a, const json::Value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json::Type::kNull:
      return true;
    case json::Type::kBool:
      return a.as_bool() == b.as_bool();
    case json::Type::kNumber:
      return Canonicalize(a.as_string()) == Canonicalize(b.as_string());
    case json::Type::kString:
      return a.as_string() == b.as_string();
    case json::Type::kArray: {
      const json::Array& x = a.as_array();
      const json::Array& y = b.as_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!JsonEqual(x[i], y[i])) return false;
      }
      return true;
    }
    case json::Type::kObject: {
      if (a.as_object().size() != b.as_object().size()) return false;
      for (const json::Member& m : a.as_object()) {
        const json::Value* other = b.Find(m.first);
        if (other == nullptr || !JsonEqual(m.second, *other)) return false;
      }
      return true;
    }
  }
  return false;
}

// True when `prefix` is a proper prefix of `path`: moving a value into its own child.
bool IsProperPrefix(const Tokens& prefix, const Tokens& path) {
  if (prefix.size() >= path.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (prefix[i] != path[i]) return false;
  }
  return true;
}

enum class OpType { kAdd, kRemove, kReplace, kMove, kCopy, kTest };

// One operation of the patch document, checked for form.
struct Operation {
  OpType type;
  std::string name;  // "add"...
  Tokens path;
  Tokens from;                         // move, copy
  const json::Value* value = nullptr;  // add, replace, test; points into the patch document
};

// A pointer member ("path" or "from") of an operation.
Result<Tokens> PointerMember(const json::Value& op, std::string_view member) {
  const json::Value* text = op.Find(member);
  if (text == nullptr) return Error::Invalid(Quoted(member, "is missing"));
  if (!text->is_string()) return Error::Invalid(Quoted(member, "is not a string"));
  return ParsePointer(text->as_string(), member);
}

// Checks the form of one operation; members an operation does not use are ignored (RFC 6902
// section 4).
Result<Operation> ParseOperation(const json::Value& op) {
  if (!op.is_object()) return Error::Invalid("the operation is not a JSON object");
  const json::Value* name = op.Find("op");
  if (name == nullptr || !name->is_string()) {
    return Error::Invalid("'op' is missing or not a string");
  }
  static constexpr std::pair<std::string_view, OpType> kTypes[] = {
      {"add", OpType::kAdd},   {"remove", OpType::kRemove}, {"replace", OpType::kReplace},
      {"move", OpType::kMove}, {"copy", OpType::kCopy},     {"test", OpType::kTest}};
  Operation out{OpType::kAdd, name->as_string(), {}, {}, nullptr};
  bool known = false;
  for (const auto& [text, type] : kTypes) {
    if (out.name == text) {
      out.type = type;
      known = true;
    }
  }
  if (!known) return Error::Invalid("unknown op '" + out.name + "'");
  Result<Tokens> path = PointerMember(op, "path");
  if (!path) return std::move(path).error();
  out.path = std::move(*path);
  if (out.type == OpType::kMove || out.type == OpType::kCopy) {
    Result<Tokens> from = PointerMember(op, "from");
    if (!from) return std::move(from).error();
    out.from = std::move(*from);
  }
  if (out.type == OpType::kAdd || out.type == OpType::kReplace || out.type == OpType::kTest) {
    out.value = op.Find("value");
    if (out.value == nullptr) return Error::Invalid("'value' is missing");
  }
  return out;
}

Status ApplyOperation(json::Value& doc, const Operation& op) {
  switch (op.type) {
    case OpType::kAdd:
      return Add(doc, op.path, *op.value);
    case OpType::kRemove: {
      Result<json::Value> removed = Remove(doc, op.path, "path");
      if (!removed) return std::move(removed).error();
      return Ok();
    }
    case OpType::kReplace:
    case OpType::kTest: {
      json::Value* target = Resolve(doc, op.path);
      if (target == nullptr) return Error::Unprocessable("'path' does not exist");
      if (op.type == OpType::kReplace) {
        *target = *op.value;
      } else if (!JsonEqual(*target, *op.value)) {
        return Error::Unprocessable("test failed: the value at 'path' differs from 'value'");
      }
      return Ok();
    }
    case OpType::kCopy: {
      json::Value* source = Resolve(doc, op.from);
      if (source == nullptr) return Error::Unprocessable("'from' does not exist");
      json::Value copy = *source;
      return Add(doc, op.path, std::move(copy));
    }
    case OpType::kMove: {
      if (IsProperPrefix(op.from, op.path)) {
        return Error::Unprocessable("cannot move a value into one of its own children");
      }
      if (op.from == op.path) {
        if (Resolve(doc, op.from) == nullptr) return Error::Unprocessable("'from' does not exist");
        return Ok();
      }
      Result<json::Value> moved = Remove(doc, op.from, "from");
      if (!moved) return std::move(moved).error();
      return Add(doc, op.path, std::move(*moved));
    }
  }
  return Error::Internal("unhandled JSON Patch operation");
}

Error AtOperation(size_t index, std::string_view name, const Error& error) {
  std::string label = name.empty() ? "" : " (" + std::string(name) + ")";
  return Error(error.code(),
               "JSON Patch operation " + std::to_string(index) + label + ": " + error.message());
}

}  // namespace

Result<json::Value> ApplyJsonPatch(const json::Value& resource, const json::Value& patch) {
  if (!patch.is_array()) return Error::Invalid("JSON Patch: the document is not a JSON array");
  // The whole document is checked before anything applies, so that a malformed operation is
  // reported as such (Invalid) even after one that would not apply.
  const json::Array& items = patch.as_array();
  std::vector<Operation> ops;
  ops.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Result<Operation> op = ParseOperation(items[i]);
    if (!op) {
      const json::Value* name = items[i].is_object() ? items[i].Find("op") : nullptr;
      return AtOperation(i, name != nullptr && name->is_string() ? name->as_string() : "",
                         op.error());
    }
    ops.push_back(std::move(*op));
  }
  json::Value doc = resource;
  for (size_t i = 0; i < ops.size(); ++i) {
    Status status = ApplyOperation(doc, ops[i]);
    if (!status) return AtOperation(i, ops[i].name, status.error());
  }
  return doc;
}

}  // namespace fhirstone::patch
