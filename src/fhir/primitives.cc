#include "fhir/primitives.h"

#include <array>
#include <cstddef>

namespace fhirstone::fhir {
namespace {

constexpr std::array<std::string_view, 20> kNames = {
    "base64Binary", "boolean",     "canonical", "code",     "date", "dateTime",    "decimal",
    "id",           "instant",     "integer",   "markdown", "oid",  "positiveInt", "string",
    "time",         "unsignedInt", "uri",       "url",      "uuid", "xhtml",
};

constexpr size_t kMaxStringChars = 1024 * 1024;
constexpr int64_t kMaxInt32 = 2147483647;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// A left-to-right reader over the text for the date/time grammars.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool AtEnd() const { return i_ == s_.size(); }
  bool Peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool Take(char c) {
    if (!Peek(c)) return false;
    ++i_;
    return true;
  }
  // Reads exactly `n` digits into `value`.
  bool Digits(int n, int& value) {
    if (s_.size() - i_ < static_cast<size_t>(n)) return false;
    value = 0;
    for (int k = 0; k < n; ++k) {
      char c = s_[i_ + k];
      if (!IsDigit(c)) return false;
      value = value * 10 + (c - '0');
    }
    i_ += n;
    return true;
  }
  // Reads one or more digits (a fraction).
  bool SomeDigits() {
    size_t start = i_;
    while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    return i_ > start;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// YYYY(-MM(-DD)?)?; `parts` receives how many of the three were present.
bool ScanDate(Scanner& s, int& parts) {
  int year, month, day;
  if (!s.Digits(4, year) || year == 0) return false;
  parts = 1;
  if (!s.Take('-')) return true;
  if (!s.Digits(2, month) || month < 1 || month > 12) return false;
  parts = 2;
  if (!s.Take('-')) return true;
  if (!s.Digits(2, day) || day < 1 || day > DaysInMonth(year, month)) return false;
  parts = 3;
  return true;
}

// hh:mm:ss(.f+)?
bool ScanTime(Scanner& s) {
  int h, m, sec;
  if (!s.Digits(2, h) || h > 23 || !s.Take(':')) return false;
  if (!s.Digits(2, m) || m > 59 || !s.Take(':')) return false;
  if (!s.Digits(2, sec) || sec > 60) return false;
  if (s.Take('.') && !s.SomeDigits()) return false;
  return true;
}

// Z | (+|-)hh:mm with hh:mm at most 14:00.
bool ScanZone(Scanner& s) {
  if (s.Take('Z')) return true;
  if (!s.Take('+') && !s.Take('-')) return false;
  int h, m;
  if (!s.Digits(2, h) || !s.Take(':') || !s.Digits(2, m)) return false;
  if (m > 59) return false;
  return h < 14 || (h == 14 && m == 0);
}

// Digits only, no leading zero (except "0" itself), a value of at most `limit`.
bool ScanBoundedDigits(std::string_view digits, int64_t limit) {
  if (digits.empty() || digits.size() > 10) return false;
  if (digits[0] == '0' && digits.size() > 1) return false;
  int64_t v = 0;
  for (char c : digits) {
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  return v <= limit;
}

}  // namespace

std::optional<PrimitiveType> PrimitiveTypeFromName(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return static_cast<PrimitiveType>(i);
  return std::nullopt;
}

std::string_view PrimitiveTypeName(PrimitiveType type) { return kNames[static_cast<size_t>(type)]; }

json::Type PrimitiveJsonType(PrimitiveType type) {
  switch (type) {
    case PrimitiveType::kBoolean:
      return json::Type::kBool;
    case PrimitiveType::kInteger:
    case PrimitiveType::kPositiveInt:
    case PrimitiveType::kUnsignedInt:
    case PrimitiveType::kDecimal:
      return json::Type::kNumber;
    default:
      return json::Type::kString;
  }
}

bool IsValidInteger(std::string_view t) {
  if (!t.empty() && t[0] == '-') return ScanBoundedDigits(t.substr(1), kMaxInt32 + 1);
  return ScanBoundedDigits(t, kMaxInt32);
}

bool IsValidPositiveInt(std::string_view t) { return ScanBoundedDigits(t, kMaxInt32) && t != "0"; }

bool IsValidUnsignedInt(std::string_view t) { return ScanBoundedDigits(t, kMaxInt32); }

bool IsValidDecimal(std::string_view s) { return json::IsNumberText(s); }

bool IsValidString(std::string_view t) {
  if (t.empty()) return false;
  if (t.size() <= kMaxStringChars) return true;
  // Count characters, not bytes: skip UTF-8 continuation bytes.
  size_t chars = 0;
  for (char c : t)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  return chars <= kMaxStringChars;
}

bool IsValidCode(std::string_view t) {
  if (t.empty() || t.front() == ' ' || t.back() == ' ') return false;
  char prev = 0;
  for (char c : t) {
    if (IsSpace(c) && c != ' ') return false;
    if (c == ' ' && prev == ' ') return false;
    prev = c;
  }
  return true;
}

bool IsValidId(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  for (char c : t) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || IsDigit(c) || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool IsValidUri(std::string_view t) {
  if (t.empty()) return false;
  for (char c : t)
    if (IsSpace(c)) return false;
  return true;
}

bool IsValidOid(std::string_view t) {
  constexpr std::string_view kPrefix = "urn:oid:";
  if (!t.starts_with(kPrefix)) return false;
  t.remove_prefix(kPrefix.size());
  if (t.empty() || t[0] < '0' || t[0] > '2') return false;
  t.remove_prefix(1);
  if (t.empty()) return false;  // at least one further arc
  while (!t.empty()) {
    if (t[0] != '.') return false;
    t.remove_prefix(1);
    size_t n = 0;
    while (n < t.size() && IsDigit(t[n])) ++n;
    if (n == 0 || (t[0] == '0' && n > 1)) return false;
    t.remove_prefix(n);
  }
  return true;
}

bool IsValidUuid(std::string_view t) {
  constexpr std::string_view kPrefix = "urn:uuid:";
  if (!t.starts_with(kPrefix)) return false;
  t.remove_prefix(kPrefix.size());
  if (t.size() != 36) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!IsDigit(c) && !(c >= 'a' && c <= 'f')) {
      return false;
    }
  }
  return true;
}

bool IsValidDate(std::string_view t) {
  Scanner s(t);
  int parts;
  return ScanDate(s, parts) && s.AtEnd();
}

bool IsValidDateTime(std::string_view t) {
  Scanner s(t);
  int parts;
  if (!ScanDate(s, parts)) return false;
  if (s.AtEnd()) return true;
  if (parts != 3 || !s.Take('T')) return false;
  return ScanTime(s) && ScanZone(s) && s.AtEnd();
}

bool IsValidInstant(std::string_view t) {
  Scanner s(t);
  int parts;
  if (!ScanDate(s, parts) || parts != 3 || !s.Take('T')) return false;
  return ScanTime(s) && ScanZone(s) && s.AtEnd();
}

bool IsValidTime(std::string_view t) {
  Scanner s(t);
  return ScanTime(s) && s.AtEnd();
}

bool IsValidBase64(std::string_view t) {
  size_t count = 0, padding = 0;
  for (char c : t) {
    if (IsSpace(c)) continue;
    bool alpha =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || IsDigit(c) || c == '+' || c == '/';
    if (alpha) {
      if (padding > 0) return false;  // data after padding
    } else if (c == '=') {
      if (++padding > 2) return false;
    } else {
      return false;
    }
    ++count;
  }
  return count > 0 && count % 4 == 0;
}

bool IsValidXhtml(std::string_view t) {
  size_t i = 0;
  while (i < t.size() && IsSpace(t[i])) ++i;
  t.remove_prefix(i);
  if (!t.starts_with("<div")) return false;
  if (t.size() == 4) return false;
  char next = t[4];
  return IsSpace(next) || next == '>' || next == '/';
}

bool IsValidPrimitiveText(PrimitiveType type, std::string_view text) {
  switch (type) {
    case PrimitiveType::kBase64Binary:
      return IsValidBase64(text);
    case PrimitiveType::kBoolean:
      return text == "true" || text == "false";
    case PrimitiveType::kCanonical:
    case PrimitiveType::kUri:
    case PrimitiveType::kUrl:
      return IsValidUri(text);
    case PrimitiveType::kCode:
      return IsValidCode(text);
    case PrimitiveType::kDate:
      return IsValidDate(text);
    case PrimitiveType::kDateTime:
      return IsValidDateTime(text);
    case PrimitiveType::kDecimal:
      return IsValidDecimal(text);
    case PrimitiveType::kId:
      return IsValidId(text);
    case PrimitiveType::kInstant:
      return IsValidInstant(text);
    case PrimitiveType::kInteger:
      return IsValidInteger(text);
    case PrimitiveType::kMarkdown:
    case PrimitiveType::kString:
      return IsValidString(text);
    case PrimitiveType::kOid:
      return IsValidOid(text);
    case PrimitiveType::kPositiveInt:
      return IsValidPositiveInt(text);
    case PrimitiveType::kTime:
      return IsValidTime(text);
    case PrimitiveType::kUnsignedInt:
      return IsValidUnsignedInt(text);
    case PrimitiveType::kUuid:
      return IsValidUuid(text);
    case PrimitiveType::kXhtml:
      return IsValidXhtml(text);
  }
  return false;
}

bool IsValidPrimitive(PrimitiveType type, const json::Value& value) {
  json::Type expected = PrimitiveJsonType(type);
  if (value.type() != expected) return false;
  if (expected == json::Type::kBool) return true;
  return IsValidPrimitiveText(type, value.as_string());
}

bool IsValidPrimitive(std::string_view fhir_type, const json::Value& value) {
  auto type = PrimitiveTypeFromName(fhir_type);
  return type && IsValidPrimitive(*type, value);
}

}  // namespace fhirstone::fhir
