#include "common/json.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>

namespace fhirstone::json {
namespace {

namespace od = simdjson::ondemand;

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

// JSON number grammar (RFC 8259 section 6): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsNumberText(std::string_view s) {
  size_t i = 0, n = s.size();
  auto digit = [&](size_t k) { return k < n && s[k] >= '0' && s[k] <= '9'; };
  if (i < n && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == n;
}

namespace {

class Builder {
 public:
  explicit Builder(const ParseOptions& options) : options_(options) {}

  Result<Value> FromValue(od::value v, int depth) {
    od::json_type type;
    if (auto err = v.type().get(type)) return Fail(err);
    switch (type) {
      case od::json_type::object: {
        od::object obj;
        if (auto err = v.get_object().get(obj)) return Fail(err);
        return FromObject(obj, depth + 1);
      }
      case od::json_type::array: {
        od::array arr;
        if (auto err = v.get_array().get(arr)) return Fail(err);
        return FromArray(arr, depth + 1);
      }
      case od::json_type::number: {
        std::string_view raw = TrimRight(v.raw_json_token());
        if (!IsNumberText(raw))
          return Error::Invalid("Invalid JSON: malformed number '" +
                                std::string(raw.substr(0, 40)) + "'");
        return Value::NumberText(std::string(raw));
      }
      case od::json_type::string: {
        std::string_view s;
        if (auto err = v.get_string().get(s)) return Fail(err);
        return Value(std::string(s));
      }
      case od::json_type::boolean: {
        bool b;
        if (auto err = v.get_bool().get(b)) return Fail(err);
        return Value(b);
      }
      case od::json_type::null: {
        bool is_null = false;
        if (auto err = v.is_null().get(is_null)) return Fail(err);
        if (!is_null) return Error::Invalid("Invalid JSON: malformed literal");
        return Value();
      }
    }
    return Error::Invalid("Invalid JSON: unknown token");
  }

  Result<Value> FromObject(od::object& obj, int depth) {
    if (depth > options_.max_depth) return TooDeep();
    Object members;
    for (auto field_result : obj) {
      od::field field;
      if (auto err = std::move(field_result).get(field)) return Fail(err);
      std::string_view key;
      if (auto err = field.unescaped_key().get(key)) return Fail(err);
      std::string key_copy(key);
      auto value = FromValue(field.value(), depth);
      if (!value) return std::move(value).error();
      members.emplace_back(std::move(key_copy), std::move(value).value());
    }
    if (const std::string* dup = FindDuplicate(members))
      return Error::Invalid("Invalid JSON: duplicate key '" + *dup + "' in an object");
    return Value(std::move(members));
  }

  Result<Value> FromArray(od::array& arr, int depth) {
    if (depth > options_.max_depth) return TooDeep();
    Array items;
    for (auto item_result : arr) {
      od::value item;
      if (auto err = std::move(item_result).get(item)) return Fail(err);
      auto value = FromValue(item, depth);
      if (!value) return std::move(value).error();
      items.push_back(std::move(value).value());
    }
    return Value(std::move(items));
  }

  static Error Fail(simdjson::error_code err) {
    return Error::Invalid(std::string("Invalid JSON: ") + simdjson::error_message(err));
  }

  Error TooDeep() const {
    return Error::Invalid("Invalid JSON: nesting deeper than " +
                          std::to_string(options_.max_depth) + " levels");
  }

  // A key that occurs twice, or nullptr. (A pointer, not a string: "" is a valid duplicate key.)
  static const std::string* FindDuplicate(const Object& members) {
    if (members.size() < 2) return nullptr;
    if (members.size() <= 16) {
      for (size_t i = 1; i < members.size(); ++i)
        for (size_t j = 0; j < i; ++j)
          if (members[i].first == members[j].first) return &members[i].first;
      return nullptr;
    }
    std::vector<const std::string*> keys;
    keys.reserve(members.size());
    for (const auto& m : members) keys.push_back(&m.first);
    std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
    auto it =
        std::adjacent_find(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a == *b; });
    return it == keys.end() ? nullptr : *it;
  }

 private:
  const ParseOptions& options_;
};

Result<Value> ParseDocument(od::document& doc, std::string_view text, const ParseOptions& options) {
  Builder builder(options);
  od::json_type type;
  if (auto err = doc.type().get(type)) return Builder::Fail(err);
  if (type != od::json_type::object && type != od::json_type::array) {
    // A scalar document: its one token must be the whole (trimmed) input.
    std::string_view raw;
    if (auto err = doc.raw_json_token().get(raw)) return Builder::Fail(err);
    std::string_view trimmed = text;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t' ||
                                trimmed.front() == '\n' || trimmed.front() == '\r'))
      trimmed.remove_prefix(1);
    if (TrimRight(raw) != TrimRight(trimmed))
      return Error::Invalid("Invalid JSON: unexpected content after the value");
  }
  Result<Value> result = Value();
  switch (type) {
    case od::json_type::object: {
      od::object obj;
      if (auto err = doc.get_object().get(obj)) return Builder::Fail(err);
      result = builder.FromObject(obj, 1);
      break;
    }
    case od::json_type::array: {
      od::array arr;
      if (auto err = doc.get_array().get(arr)) return Builder::Fail(err);
      result = builder.FromArray(arr, 1);
      break;
    }
    case od::json_type::number: {
      std::string_view raw;
      if (auto err = doc.raw_json_token().get(raw)) return Builder::Fail(err);
      raw = TrimRight(raw);
      if (!IsNumberText(raw)) return Error::Invalid("Invalid JSON: malformed number");
      result = Value::NumberText(std::string(raw));
      break;
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto err = doc.get_string().get(s)) return Builder::Fail(err);
      result = Value(std::string(s));
      break;
    }
    case od::json_type::boolean: {
      bool b;
      if (auto err = doc.get_bool().get(b)) return Builder::Fail(err);
      result = Value(b);
      break;
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto err = doc.is_null().get(is_null)) return Builder::Fail(err);
      if (!is_null) return Error::Invalid("Invalid JSON: malformed literal");
      break;
    }
  }
  if (!result || (type != od::json_type::object && type != od::json_type::array)) return result;
  // current_location() fails with OUT_OF_BOUNDS exactly when the whole input was consumed.
  const char* location = nullptr;
  if (doc.current_location().get(location) != simdjson::OUT_OF_BOUNDS)
    return Error::Invalid("Invalid JSON: unexpected content after the value");
  return result;
}

void Indent(std::string& out, int level) {
  out.push_back('\n');
  out.append(static_cast<size_t>(level) * 2, ' ');
}

void WriteValue(const Value& v, std::string& out, bool pretty, int level) {
  switch (v.type()) {
    case Type::kNull:
      out.append("null");
      return;
    case Type::kBool:
      out.append(v.as_bool() ? "true" : "false");
      return;
    case Type::kNumber:
      out.append(v.as_string());
      return;
    case Type::kString:
      WriteString(v.as_string(), out);
      return;
    case Type::kArray: {
      const Array& a = v.as_array();
      out.push_back('[');
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out.push_back(',');
        if (pretty) Indent(out, level + 1);
        WriteValue(a[i], out, pretty, level + 1);
      }
      if (pretty && !a.empty()) Indent(out, level);
      out.push_back(']');
      return;
    }
    case Type::kObject: {
      const Object& o = v.as_object();
      out.push_back('{');
      for (size_t i = 0; i < o.size(); ++i) {
        if (i) out.push_back(',');
        if (pretty) Indent(out, level + 1);
        WriteString(o[i].first, out);
        out.append(pretty ? ": " : ":");
        WriteValue(o[i].second, out, pretty, level + 1);
      }
      if (pretty && !o.empty()) Indent(out, level);
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

Value Value::NumberText(std::string text) {
  Value v;
  v.type_ = Type::kNumber;
  v.data_ = std::move(text);
  return v;
}

Value Value::Number(int64_t n) { return NumberText(std::to_string(n)); }

const Value* Value::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& m : std::get<Object>(data_))
    if (m.first == key) return &m.second;
  return nullptr;
}

Value* Value::Find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->Find(key));
}

std::string_view Value::GetString(std::string_view key) const {
  const Value* v = Find(key);
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

Value& Value::Set(std::string_view key, Value value) {
  Object& o = as_object();
  for (auto& m : o) {
    if (m.first == key) {
      m.second = std::move(value);
      return m.second;
    }
  }
  o.emplace_back(std::string(key), std::move(value));
  return o.back().second;
}

bool Value::Erase(std::string_view key) {
  if (type_ != Type::kObject) return false;
  Object& o = as_object();
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (it->first == key) {
      o.erase(it);
      return true;
    }
  }
  return false;
}

bool operator==(const Value& a, const Value& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Type::kNull:
      return true;
    case Type::kBool:
      return a.as_bool() == b.as_bool();
    case Type::kNumber:
    case Type::kString:
      return a.as_string() == b.as_string();
    case Type::kArray:
      return a.as_array() == b.as_array();
    case Type::kObject: {
      const Object& x = a.as_object();
      const Object& y = b.as_object();
      if (x.size() != y.size()) return false;
      for (const auto& m : x) {
        const Value* other = b.Find(m.first);
        if (!other || !(*other == m.second)) return false;
      }
      return true;
    }
  }
  return false;
}

Result<Value> Parse(std::string_view text, const ParseOptions& options) {
  thread_local od::parser parser;
  simdjson::padded_string padded(text);
  od::document doc;
  if (auto err = parser.iterate(padded).get(doc)) return Builder::Fail(err);
  return ParseDocument(doc, text, options);
}

std::string Write(const Value& value, const WriteOptions& options) {
  std::string out;
  WriteTo(value, out, options);
  return out;
}

void WriteTo(const Value& value, std::string& out, const WriteOptions& options) {
  WriteValue(value, out, options.pretty, 0);
}

void WriteString(std::string_view s, std::string& out) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  AppendEscaped(s, out);
  out.push_back('"');
}

namespace {

// Whether one of the 8 bytes of `x` may be a control character (below 0x20), '"' or '\\': a byte
// is zero in x ^ c where it equals c, and x - 0x20 borrows into the high bit of a byte below 0x20
// (Bit Twiddling Hacks, "haszero" and "hasless"). A byte of 0x80 or more is never taken.
inline bool MayNeedEscape(uint64_t x) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  const uint64_t quote = x ^ (kOnes * '"'), backslash = x ^ (kOnes * '\\');
  return (((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash) |
          ((x - kOnes * 0x20) & ~x)) &
         kHigh;
}

}  // namespace

void AppendEscaped(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    // Eight bytes at a time while none needs escaping (ids, codes, most text); the last bytes
    // of a string of eight or more as its last eight (read again in part).
    while (i + 8 <= s.size()) {
      uint64_t x;
      std::memcpy(&x, s.data() + i, 8);
      if (MayNeedEscape(x)) break;
      i += 8;
    }
    if (i < s.size() && i + 8 > s.size() && s.size() >= 8 && s.size() - 8 >= start) {
      uint64_t x;
      std::memcpy(&x, s.data() + s.size() - 8, 8);
      if (!MayNeedEscape(x)) i = s.size();
    }
    if (i == s.size()) break;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
  }
  out.append(s.data() + start, s.size() - start);
}

}  // namespace fhirstone::json
