// json::Value: the one JSON value type of Fhirstone (FHIR resources, OAuth payloads, config).
// Numbers keep their exact source text ("1.0" stays "1.0", "1.000000000000000000E-245" stays as
// written), objects keep their members in order. Parse() builds a Value from text with simdjson
// (validating UTF-8, number syntax, duplicate keys and nesting depth); Write() renders compact or
// pretty JSON. Values are plain data: thread-compatible, cheap to move.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"

namespace fhirstone::json {

enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;

class Value {
 public:
  Value() = default;                                                   // null
  Value(bool b) : type_(Type::kBool), data_(b) {}                      // NOLINT: implicit
  Value(std::string s) : type_(Type::kString), data_(std::move(s)) {}  // NOLINT: implicit
  Value(std::string_view s) : Value(std::string(s)) {}                 // NOLINT: implicit
  Value(const char* s) : Value(std::string(s)) {}                      // NOLINT: implicit
  Value(Array a) : type_(Type::kArray), data_(std::move(a)) {}         // NOLINT: implicit
  Value(Object o) : type_(Type::kObject), data_(std::move(o)) {}       // NOLINT: implicit

  // A number from its JSON text. REQUIRES: `text` is a valid JSON number.
  static Value NumberText(std::string text);
  static Value Number(int64_t n);
  static Value EmptyArray() { return Value(Array{}); }
  static Value EmptyObject() { return Value(Object{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // REQUIRES: the matching type.
  bool as_bool() const { return std::get<bool>(data_); }
  // The text of a string (unescaped) or of a number (as written).
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const Array& as_array() const { return std::get<Array>(data_); }
  Array& as_array() { return std::get<Array>(data_); }
  const Object& as_object() const { return std::get<Object>(data_); }
  Object& as_object() { return std::get<Object>(data_); }

  // Object access; nullptr when absent or when this is not an object.
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  // The string member `key`, or "" when absent or not a string.
  std::string_view GetString(std::string_view key) const;
  // Sets member `key` (replacing it in place, else appending). REQUIRES: is_object().
  Value& Set(std::string_view key, Value value);
  // Removes member `key`; false when absent.
  bool Erase(std::string_view key);
  // Appends to an array. REQUIRES: is_array().
  void PushBack(Value value) { as_array().push_back(std::move(value)); }

  // Structural equality: objects compare as unordered sets of members, numbers by their text.
  friend bool operator==(const Value& a, const Value& b);

 private:
  Type type_ = Type::kNull;
  std::variant<std::monostate, bool, std::string, Array, Object> data_;
};

struct ParseOptions {
  int max_depth = 100;  // nesting of arrays and objects
};

// Parses one JSON document (RFC 8259): rejects invalid UTF-8, bad number syntax, duplicate keys,
// trailing content and nesting deeper than max_depth, with an Error::Invalid that says where.
Result<Value> Parse(std::string_view text, const ParseOptions& options = {});

struct WriteOptions {
  bool pretty = false;  // two-space indentation
};

std::string Write(const Value& value, const WriteOptions& options = {});
void WriteTo(const Value& value, std::string& out, const WriteOptions& options = {});
// Whether `text` is a JSON number (RFC 8259 section 6), e.g. for FHIR's decimal.
bool IsNumberText(std::string_view text);

// Appends `s` as a quoted JSON string.
void WriteString(std::string_view s, std::string& out);
// Appends `s` escaped as inside a JSON string, without the quotes.
void AppendEscaped(std::string_view s, std::string& out);

}  // namespace fhirstone::json
