// The matching rules below follow https://hl7.org/fhir/R4/search.html section by section; they are
// written from the specification, not from the server's index or SQL, so that the two can be
// compared.
#include "differential/oracle.h"

#include <algorithm>
#include <limits>

#include "fhir/model.h"
#include "search/ucum.h"

namespace fhirstone::differential {
namespace oracle_internal {
namespace {

// Decodes one UTF-8 code point at `s[*i]` (advancing `*i`); invalid bytes come back as themselves.
uint32_t NextCodePoint(std::string_view s, size_t* i) {
  unsigned char c = static_cast<unsigned char>(s[*i]);
  int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
  if (*i + extra >= s.size()) extra = 0;  // truncated: the lead byte alone
  uint32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  *i += 1 + extra;
  return cp;
}

// Latin letters with diacritics, grouped by the letter they fold to.
const std::unordered_map<uint32_t, std::string>& FoldTable() {
  static const auto* table = [] {
    static const std::pair<const char*, const char*> kGroups[] = {{"a", "ÀÁÂÃÄÅàáâãäåĀāĂăĄą"},
                                                                  {"ae", "Ææ"},
                                                                  {"c", "ÇçĆćĈĉĊċČč"},
                                                                  {"d", "ĎďĐđÐð"},
                                                                  {"e", "ÈÉÊËèéêëĒēĔĕĖėĘęĚě"},
                                                                  {"g", "ĜĝĞğĠġĢģ"},
                                                                  {"h", "ĤĥĦħ"},
                                                                  {"i", "ÌÍÎÏìíîïĨĩĪīĬĭĮįİı"},
                                                                  {"j", "Ĵĵ"},
                                                                  {"k", "Ķķ"},
                                                                  {"l", "ĹĺĻļĽľĿŀŁł"},
                                                                  {"n", "ÑñŃńŅņŇň"},
                                                                  {"o", "ÒÓÔÕÖØòóôõöøŌōŎŏŐő"},
                                                                  {"oe", "Œœ"},
                                                                  {"r", "ŔŕŖŗŘř"},
                                                                  {"s", "ŚśŜŝŞşŠšſ"},
                                                                  {"ss", "ß"},
                                                                  {"t", "ŢţŤťŦŧ"},
                                                                  {"th", "Þþ"},
                                                                  {"u", "ÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲų"},
                                                                  {"w", "Ŵŵ"},
                                                                  {"y", "ÝýÿŶŷŸ"},
                                                                  {"z", "ŹźŻżŽž"}};
    auto* t = new std::unordered_map<uint32_t, std::string>();
    for (const auto& [base, letters] : kGroups) {
      std::string_view s(letters);
      for (size_t i = 0; i < s.size();) (*t)[NextCodePoint(s, &i)] = base;
    }
    return t;
  }();
  return *table;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian), counted year by year.
int64_t DaysSinceEpoch(int64_t y, int m, int d) {
  int64_t days = 0;
  for (int64_t k = 1970; k < y; ++k) days += IsLeap(k) ? 366 : 365;
  for (int64_t k = y; k < 1970; ++k) days -= IsLeap(k) ? 366 : 365;
  for (int k = 1; k < m; ++k) days += DaysInMonth(y, k);
  return days + d - 1;
}

// Reads exactly `n` digits at s[*i].
bool Digits(std::string_view s, size_t* i, int n, int64_t* out) {
  if (*i + n > s.size()) return false;
  int64_t v = 0;
  for (int k = 0; k < n; ++k) {
    char c = s[*i + k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *i += n;
  *out = v;
  return true;
}

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;

}  // namespace

std::string Fold(std::string_view s) {
  const auto& table = FoldTable();
  std::string out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = NextCodePoint(s, &i);
    if (cp >= 'A' && cp <= 'Z') {
      out.push_back(static_cast<char>(cp - 'A' + 'a'));
    } else if (cp >= 0x300 && cp <= 0x36F) {
      // a combining diacritical mark (decomposed accents): dropped
    } else if (auto it = table.find(cp); it != table.end()) {
      out += it->second;
    } else {
      AppendUtf8(cp, out);
    }
  }
  return out;
}

bool ParseDateRange(std::string_view s, int64_t* low, int64_t* high) {
  size_t i = 0;
  int64_t year = 0, month = 1, day = 1;
  if (!Digits(s, &i, 4, &year)) return false;
  if (i == s.size()) {
    *low = DaysSinceEpoch(year, 1, 1) * kMicrosPerDay;
    *high = DaysSinceEpoch(year + 1, 1, 1) * kMicrosPerDay;
    return true;
  }
  if (s[i++] != '-' || !Digits(s, &i, 2, &month) || month < 1 || month > 12) return false;
  if (i == s.size()) {
    *low = DaysSinceEpoch(year, static_cast<int>(month), 1) * kMicrosPerDay;
    *high = *low + DaysInMonth(year, static_cast<int>(month)) * kMicrosPerDay;
    return true;
  }
  if (s[i++] != '-' || !Digits(s, &i, 2, &day) || day < 1 ||
      day > DaysInMonth(year, static_cast<int>(month)))
    return false;
  int64_t start =
      DaysSinceEpoch(year, static_cast<int>(month), static_cast<int>(day)) * kMicrosPerDay;
  if (i == s.size()) {
    *low = start;
    *high = start + kMicrosPerDay;
    return true;
  }
  if (s[i++] != 'T') return false;
  int64_t hour = 0, minute = 0, second = 0, fraction = 0;
  int64_t width = 60 * kMicrosPerSecond;  // minute precision unless seconds follow
  if (!Digits(s, &i, 2, &hour) || hour > 23 || i >= s.size() || s[i++] != ':' ||
      !Digits(s, &i, 2, &minute) || minute > 59)
    return false;
  if (i < s.size() && s[i] == ':') {
    ++i;
    if (!Digits(s, &i, 2, &second) || second > 59) return false;
    width = kMicrosPerSecond;
    if (i < s.size() && s[i] == '.') {
      ++i;
      int digits = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (digits < 6) {
          fraction = fraction * 10 + (s[i] - '0');
          width /= 10;
        }
        ++digits;
        ++i;
      }
      if (digits == 0) return false;
      for (int k = digits; k < 6; ++k) fraction *= 10;
    }
  }
  int64_t offset = 0;
  if (i < s.size()) {
    if (s[i] == 'Z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i++] == '-' ? -1 : 1;
      int64_t oh = 0, om = 0;
      if (!Digits(s, &i, 2, &oh) || oh > 14 || i >= s.size() || s[i++] != ':' ||
          !Digits(s, &i, 2, &om) || om > 59)
        return false;
      offset = sign * (oh * 3600 + om * 60) * kMicrosPerSecond;
    } else {
      return false;
    }
  }
  if (i != s.size()) return false;
  *low = start + (hour * 3600 + minute * 60 + second) * kMicrosPerSecond + fraction - offset;
  *high = *low + width;
  return true;
}

bool ParseDecimal(std::string_view s, Decimal* out) {
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  __int128 units = 0;
  int digits = 0, scale = 0;
  bool dot = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.' && !dot) {
      dot = true;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 34) return false;
      units = units * 10 + (c - '0');
      if (dot) ++scale;
    } else {
      break;
    }
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    int sign = 1;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) sign = s[i++] == '-' ? -1 : 1;
    int exponent = 0, exponent_digits = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++exponent_digits)
      exponent = exponent * 10 + (s[i] - '0');
    if (exponent_digits == 0 || exponent > 30) return false;
    scale -= sign * exponent;
  }
  if (i != s.size()) return false;
  while (scale < 0) {
    units *= 10;
    ++scale;
  }
  out->units = negative ? -units : units;
  out->scale = scale;
  return true;
}

int Compare(const Decimal& a, const Decimal& b) {
  __int128 x = a.units, y = b.units;
  for (int k = a.scale; k < b.scale; ++k) x *= 10;
  for (int k = b.scale; k < a.scale; ++k) y *= 10;
  return x < y ? -1 : x > y ? 1 : 0;
}

}  // namespace oracle_internal

namespace {

using fhirpath::Collection;
using fhirpath::Item;
using oracle_internal::Compare;
using oracle_internal::Decimal;
using oracle_internal::Fold;
using oracle_internal::ParseDateRange;
using oracle_internal::ParseDecimal;
using search::ParamType;
using search::SearchParam;

constexpr int64_t kOpenLow = std::numeric_limits<int64_t>::min();
constexpr int64_t kOpenHigh = std::numeric_limits<int64_t>::max();

// The JSON of an item: its node in the resource, or its computed value.
const json::Value* JsonOf(const Item& item) {
  if (item.node) return item.node;
  if (item.value) return &*item.value;
  return nullptr;
}

std::string_view StringOf(const json::Value* v) {
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// The strings of member `key` of `v` (a string or an array of strings).
void AppendStrings(const json::Value& v, std::string_view key, std::vector<std::string>& out) {
  const json::Value* m = v.Find(key);
  if (!m) return;
  if (m->is_string()) {
    if (!m->as_string().empty()) out.push_back(m->as_string());
  } else if (m->is_array()) {
    for (const json::Value& e : m->as_array())
      if (e.is_string() && !e.as_string().empty()) out.push_back(e.as_string());
  }
}

// The type of an item, from the model when known, else guessed from the JSON's shape.
std::string TypeOf(const Item& item) {
  std::string t = item.type;
  if (t.starts_with("System.")) t = t.substr(7);
  if (!t.empty() && t != "string" && t != "Object") return t;
  const json::Value* v = JsonOf(item);
  if (!v) return t;
  if (v->is_string()) return t.empty() ? "string" : t;
  if (v->is_bool()) return "boolean";
  if (v->is_number()) return "decimal";
  if (!v->is_object()) return t;
  if (v->Find("coding") || (v->Find("text") && v->as_object().size() == 1))
    return "CodeableConcept";
  if (v->Find("reference")) return "Reference";
  if (v->Find("start") || v->Find("end")) return "Period";
  if (v->Find("value") && (v->Find("unit") || v->Find("code") || v->Find("system")))
    return "Quantity";
  if (v->Find("family") || v->Find("given")) return "HumanName";
  if (v->Find("city") || v->Find("line")) return "Address";
  if (v->Find("system") && v->Find("value")) return "Identifier";
  if (v->Find("code")) return "Coding";
  return t;
}

// Splits a parameter value on unescaped commas (the OR separator), unescaping "\,".
std::vector<std::string> SplitOr(std::string_view value) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size() && value[i + 1] == ',') {
      out.back().push_back(',');
      ++i;
    } else if (value[i] == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(value[i]);
    }
  }
  return out;
}

// "[base/]Type/id[/_history/v]" -> Type and id; false for anything else ("#x", "urn:...").
bool ParseLiteralReference(std::string_view ref, std::string* type, std::string* id) {
  if (ref.empty() || ref[0] == '#' || ref.find('?') != std::string_view::npos) return false;
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (true) {
    size_t slash = ref.find('/', start);
    segments.push_back(ref.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  size_t n = segments.size();
  if (n >= 4 && segments[n - 2] == "_history") n -= 2;
  if (n < 2 || !fhir::IsResourceType(segments[n - 2]) || segments[n - 1].empty()) return false;
  *type = std::string(segments[n - 2]);
  *id = std::string(segments[n - 1]);
  return true;
}

// ---- per-type values of a collection ----

std::vector<std::string> StringValues(const Collection& items) {
  std::vector<std::string> out;
  for (const Item& item : items) {
    const json::Value* v = JsonOf(item);
    if (!v) continue;
    std::string t = TypeOf(item);
    if (v->is_string()) {
      if (!v->as_string().empty()) out.push_back(v->as_string());
    } else if (t == "HumanName") {
      for (const char* part : {"family", "given", "prefix", "suffix", "text"})
        AppendStrings(*v, part, out);
    } else if (t == "Address") {
      for (const char* part :
           {"line", "city", "district", "state", "postalCode", "country", "text"})
        AppendStrings(*v, part, out);
    }
  }
  return out;
}

struct Code {
  bool has_system = false;
  std::string system;
  std::string code;
};

struct TokenValues {
  std::vector<Code> codes;
  std::vector<std::string> texts;  // for :text
};

void AddCoding(const json::Value& coding, TokenValues& out) {
  std::string_view code = StringOf(coding.Find("code"));
  const json::Value* system = coding.Find("system");
  if (!code.empty() || system)
    out.codes.push_back({system != nullptr, std::string(StringOf(system)), std::string(code)});
  AppendStrings(coding, "display", out.texts);
}

TokenValues TokenValuesOf(const Collection& items) {
  TokenValues out;
  for (const Item& item : items) {
    const json::Value* v = JsonOf(item);
    if (!v) continue;
    std::string t = TypeOf(item);
    if (v->is_bool()) {
      out.codes.push_back({false, "", v->as_bool() ? "true" : "false"});
    } else if (v->is_string()) {
      out.codes.push_back({false, "", v->as_string()});
    } else if (!v->is_object()) {
      continue;
    } else if (t == "CodeableConcept") {
      if (const json::Value* codings = v->Find("coding"); codings && codings->is_array())
        for (const json::Value& c : codings->as_array()) AddCoding(c, out);
      AppendStrings(*v, "text", out.texts);
    } else if (t == "Identifier") {
      const json::Value* system = v->Find("system");
      out.codes.push_back({system != nullptr, std::string(StringOf(system)),
                           std::string(StringOf(v->Find("value")))});
      if (const json::Value* type = v->Find("type")) AppendStrings(*type, "text", out.texts);
    } else if (t == "ContactPoint") {
      // The token of a ContactPoint is its value; its system (phone, email...) is no URI.
      out.codes.push_back({false, "", std::string(StringOf(v->Find("value")))});
    } else {
      AddCoding(*v, out);  // Coding, and anything shaped like one
    }
  }
  return out;
}

struct Ref {
  std::string raw;   // as written
  std::string type;  // of a literal reference ("" otherwise)
  std::string id;
  bool relative = false;
};

std::vector<Ref> ReferenceValues(const Collection& items) {
  std::vector<Ref> out;
  for (const Item& item : items) {
    const json::Value* v = JsonOf(item);
    if (!v) continue;
    Ref r;
    r.raw = v->is_string()   ? v->as_string()
            : v->is_object() ? std::string(StringOf(v->Find("reference")))
                             : "";
    if (r.raw.empty()) continue;
    ParseLiteralReference(r.raw, &r.type, &r.id);
    r.relative = !r.type.empty() && r.raw.find("://") == std::string::npos;
    out.push_back(std::move(r));
  }
  return out;
}

struct Range {
  int64_t low;
  int64_t high;  // exclusive
};

std::vector<Range> DateValues(const Collection& items) {
  std::vector<Range> out;
  auto add_period = [&](const json::Value& period) {
    std::string_view start = StringOf(period.Find("start")), end = StringOf(period.Find("end"));
    if (start.empty() && end.empty()) return;
    Range r{kOpenLow, kOpenHigh};
    int64_t lo, hi;
    if (!start.empty()) {
      if (!ParseDateRange(start, &lo, &hi)) return;
      r.low = lo;
    }
    if (!end.empty()) {
      if (!ParseDateRange(end, &lo, &hi)) return;
      r.high = hi;
    }
    out.push_back(r);
  };
  for (const Item& item : items) {
    const json::Value* v = JsonOf(item);
    if (!v) continue;
    int64_t lo, hi;
    if (v->is_string()) {
      if (ParseDateRange(v->as_string(), &lo, &hi)) out.push_back({lo, hi});
    } else if (v->is_object() && TypeOf(item) == "Timing") {
      if (const json::Value* events = v->Find("event"); events && events->is_array())
        for (const json::Value& e : events->as_array())
          if (e.is_string() && ParseDateRange(e.as_string(), &lo, &hi)) out.push_back({lo, hi});
      if (const json::Value* repeat = v->Find("repeat"))
        if (const json::Value* bounds = repeat->Find("boundsPeriod")) add_period(*bounds);
    } else if (v->is_object()) {
      add_period(*v);
    }
  }
  return out;
}

struct QuantityValue {
  Decimal value;
  std::string system;
  std::string code;
  std::string unit;
};

std::vector<QuantityValue> QuantityValues(const Collection& items) {
  std::vector<QuantityValue> out;
  for (const Item& item : items) {
    const json::Value* v = JsonOf(item);
    if (!v || !v->is_object()) continue;
    const json::Value* value = v->Find("value");
    QuantityValue q;
    if (!value || !value->is_number() || !ParseDecimal(value->as_string(), &q.value)) continue;
    if (TypeOf(item) == "Money") {
      q.system = "urn:iso:std:iso:4217";
      q.code = std::string(StringOf(v->Find("currency")));
    } else {
      q.system = std::string(StringOf(v->Find("system")));
      q.code = std::string(StringOf(v->Find("code")));
      q.unit = std::string(StringOf(v->Find("unit")));
    }
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<Decimal> NumberValues(const Collection& items) {
  std::vector<Decimal> out;
  for (const Item& item : items) {
    const json::Value* v = JsonOf(item);
    Decimal d;
    if (v && (v->is_number() || v->is_string()) && ParseDecimal(v->as_string(), &d))
      out.push_back(d);
  }
  return out;
}

// Whether the parameter has a value at all (for :missing): the expression selects something.
bool HasAnyValue(const Collection& items) {
  for (const Item& item : items)
    if (JsonOf(item)) return true;
  return false;
}

// ---- prefixes (https://hl7.org/fhir/R4/search.html#prefix) ----

enum class Prefix { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };

Prefix TakePrefix(std::string_view& v) {
  static const std::pair<std::string_view, Prefix> kPrefixes[] = {
      {"eq", Prefix::kEq}, {"ne", Prefix::kNe}, {"gt", Prefix::kGt},
      {"lt", Prefix::kLt}, {"ge", Prefix::kGe}, {"le", Prefix::kLe},
      {"sa", Prefix::kSa}, {"eb", Prefix::kEb}, {"ap", Prefix::kAp}};
  if (v.size() < 3) return Prefix::kEq;
  for (const auto& [text, prefix] : kPrefixes) {
    if (v.substr(0, 2) == text && ((v[2] >= '0' && v[2] <= '9') || v[2] == '-' || v[2] == '.')) {
      v.remove_prefix(2);
      return prefix;
    }
  }
  return Prefix::kEq;
}

// A date search value S = [sl, sh) against a target range T = [tl, th), per the spec's wording:
// eq: S fully contains T; gt: the range above S intersects T; lt: the range below S intersects T;
// ge / le: gt / lt or eq; sa: T does not overlap S and the range above S contains T; eb: likewise
// below; ne: not eq.
bool DateMatches(Prefix prefix, int64_t sl, int64_t sh, const Range& t) {
  bool contains = sl <= t.low && t.high <= sh;
  bool above = t.high > sh;  // [sh, +inf) intersects [tl, th)
  bool below = t.low < sl;   // (-inf, sl) intersects [tl, th)
  bool overlaps = t.low < sh && sl < t.high;
  switch (prefix) {
    case Prefix::kEq:
      return contains;
    case Prefix::kNe:
      return !contains;
    case Prefix::kGt:
      return above;
    case Prefix::kLt:
      return below;
    case Prefix::kGe:
      return above || contains;
    case Prefix::kLe:
      return below || contains;
    case Prefix::kSa:
      return !overlaps && t.low >= sh;
    case Prefix::kEb:
      return !overlaps && t.high <= sl;
    case Prefix::kAp:
      return false;
  }
  return false;
}

// A prefix's verdict on a target given whether it lies in the search value's precision range
// and how it compares (-1, 0, 1) with the search value itself.
bool PrefixMatches(Prefix prefix, bool in_range, int c) {
  switch (prefix) {
    case Prefix::kEq:
      return in_range;
    case Prefix::kNe:
      return !in_range;
    case Prefix::kGt:
    case Prefix::kSa:
      return c > 0;
    case Prefix::kLt:
    case Prefix::kEb:
      return c < 0;
    case Prefix::kGe:
      return c >= 0;
    case Prefix::kLe:
      return c <= 0;
    case Prefix::kAp:
      return false;
  }
  return false;
}

// A number search value against a target number: eq / ne use the range the search value's
// precision implies ([v - half, v + half) with half = 5 in the digit after the last one given);
// the other prefixes compare with the value itself.
bool NumberMatches(Prefix prefix, const Decimal& search, const Decimal& target) {
  Decimal low{search.units * 10 - 5, search.scale + 1};
  Decimal high{search.units * 10 + 5, search.scale + 1};
  bool in_range = Compare(low, target) <= 0 && Compare(target, high) < 0;
  return PrefixMatches(prefix, in_range, Compare(target, search));
}

double ToDouble(const Decimal& d) {
  std::string digits;
  __int128 u = d.units < 0 ? -d.units : d.units;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  } while (u > 0);
  return std::stod((d.units < 0 ? "-" : "") + digits + "e" + std::to_string(-d.scale));
}

// NumberMatches for a value `target` in a unit of factor `target_factor` against a search value
// in a unit of factor `factor`, both in their base unit: the search value's precision range and
// the value scaled, as doubles.
bool CanonicalMatches(Prefix prefix, const Decimal& search, double factor, const Decimal& target,
                      double target_factor) {
  Decimal low{search.units * 10 - 5, search.scale + 1};
  Decimal high{search.units * 10 + 5, search.scale + 1};
  double lo = ToDouble(low) * factor, hi = ToDouble(high) * factor;
  double v = ToDouble(search) * factor, t = ToDouble(target) * target_factor;
  return PrefixMatches(prefix, lo <= t && t < hi, t < v ? -1 : t > v ? 1 : 0);
}

// ---- leaf tests: one parameter, one modifier, OR'ed values ----

class LeafTest {
 public:
  virtual ~LeafTest() = default;
  virtual bool Matches(const Collection& items) const = 0;
};

class StringTest : public LeafTest {
 public:
  StringTest(std::string modifier, const std::vector<std::string>& values)
      : modifier_(std::move(modifier)) {
    for (const auto& v : values) values_.push_back(modifier_ == "exact" ? v : Fold(v));
  }
  bool Matches(const Collection& items) const override {
    for (const std::string& s : StringValues(items)) {
      std::string folded = modifier_ == "exact" ? s : Fold(s);
      for (const std::string& v : values_) {
        if (modifier_ == "exact"      ? folded == v
            : modifier_ == "contains" ? folded.find(v) != std::string::npos
                                      : folded.starts_with(v))
          return true;
      }
    }
    return false;
  }

 private:
  std::string modifier_;
  std::vector<std::string> values_;
};

class TokenTest : public LeafTest {
 public:
  TokenTest(std::string modifier, const std::vector<std::string>& values)
      : modifier_(std::move(modifier)) {
    for (const std::string& v : values) {
      Query q;
      if (modifier_ == "text") {
        q.code = Fold(v);
      } else if (size_t bar = v.find('|'); bar != std::string::npos) {
        q.system_given = true;
        q.system = v.substr(0, bar);
        q.code = v.substr(bar + 1);
      } else {
        q.code = v;
      }
      queries_.push_back(std::move(q));
    }
  }
  bool Matches(const Collection& items) const override {
    TokenValues t = TokenValuesOf(items);
    bool any = false;
    for (const Query& q : queries_) {
      if (modifier_ == "text") {
        for (const std::string& text : t.texts) any = any || Fold(text).starts_with(q.code);
        continue;
      }
      for (const Code& c : t.codes) {
        bool match;
        if (!q.system_given) {
          match = c.code == q.code;  // [code]: any system
        } else if (q.system.empty()) {
          match = !c.has_system && c.code == q.code;  // |[code]: no system
        } else if (q.code.empty()) {
          match = c.has_system && c.system == q.system;  // [system]|: any code of the system
        } else {
          match = c.has_system && c.system == q.system && c.code == q.code;
        }
        any = any || match;
      }
    }
    return modifier_ == "not" ? !any : any;
  }

 private:
  struct Query {
    bool system_given = false;
    std::string system;
    std::string code;
  };
  std::string modifier_;
  std::vector<Query> queries_;
};

class ReferenceTest : public LeafTest {
 public:
  // A value is an id, Type/id, or an absolute URL: under `base` (the server's own) it means the
  // local Type/id; under another base, only a reference written as that URL matches.
  static Result<std::unique_ptr<LeafTest>> Make(const std::string& modifier,
                                                const std::vector<std::string>& values,
                                                const std::string& base) {
    auto test = std::make_unique<ReferenceTest>();
    for (const std::string& v : values) {
      Wanted w;
      if (v.find("://") != std::string::npos) {
        w.url = v;
        if (!base.empty() && v.starts_with(base + "/") &&
            ParseLiteralReference(v.substr(base.size() + 1), &w.type, &w.id)) {
          w.local = true;
        }
      } else if (ParseLiteralReference(v, &w.type, &w.id)) {
        w.local = true;
      } else if (v.find('/') == std::string::npos && v.find(':') == std::string::npos) {
        w.type = modifier;  // an id, of any type unless the modifier names one
        w.id = v;
        w.local = true;
      } else {
        return Error::NotSupported("Reference value '" + v + "'");
      }
      if (w.local && !modifier.empty() && w.type != modifier)
        return Error::Invalid("'" + v + "' is no " + modifier + " reference");
      test->wanted_.push_back(std::move(w));
    }
    return std::unique_ptr<LeafTest>(std::move(test));
  }
  bool Matches(const Collection& items) const override {
    for (const Ref& r : ReferenceValues(items)) {
      for (const Wanted& w : wanted_) {
        if (!w.url.empty() && r.raw == w.url) return true;
        if (w.local && r.relative && r.id == w.id && (w.type.empty() || w.type == r.type))
          return true;
      }
    }
    return false;
  }

 private:
  struct Wanted {
    std::string url;  // an absolute URL as given
    bool local = false;
    std::string type;  // "" for any type
    std::string id;
  };
  std::vector<Wanted> wanted_;
};

class DateTest : public LeafTest {
 public:
  static Result<std::unique_ptr<LeafTest>> Make(const std::vector<std::string>& values) {
    auto test = std::make_unique<DateTest>();
    for (const std::string& value : values) {
      std::string_view v = value;
      Query q;
      q.prefix = TakePrefix(v);
      if (q.prefix == Prefix::kAp) return Error::NotSupported("ap (implementation-defined)");
      if (!ParseDateRange(v, &q.low, &q.high)) return Error::Invalid("Bad date '" + value + "'");
      test->queries_.push_back(q);
    }
    return std::unique_ptr<LeafTest>(std::move(test));
  }
  bool Matches(const Collection& items) const override {
    for (const Range& r : DateValues(items))
      for (const Query& q : queries_)
        if (DateMatches(q.prefix, q.low, q.high, r)) return true;
    return false;
  }

 private:
  struct Query {
    Prefix prefix;
    int64_t low;
    int64_t high;
  };
  std::vector<Query> queries_;
};

class QuantityTest : public LeafTest {
 public:
  static Result<std::unique_ptr<LeafTest>> Make(bool number,
                                                const std::vector<std::string>& values) {
    auto test = std::make_unique<QuantityTest>();
    test->number_ = number;
    for (const std::string& value : values) {
      std::string_view v = value;
      Query q;
      q.prefix = TakePrefix(v);
      if (q.prefix == Prefix::kAp) return Error::NotSupported("ap (implementation-defined)");
      std::vector<std::string_view> parts;
      for (size_t start = 0;;) {
        size_t bar = v.find('|', start);
        parts.push_back(v.substr(start, bar - start));
        if (bar == std::string_view::npos) break;
        start = bar + 1;
      }
      if ((number && parts.size() != 1) || (parts.size() != 1 && parts.size() != 3))
        return Error::Invalid("Bad quantity '" + value + "'");
      if (!ParseDecimal(parts[0], &q.number)) return Error::Invalid("Bad number '" + value + "'");
      if (parts.size() == 3) {
        q.system = std::string(parts[1]);
        q.code = std::string(parts[2]);
      }
      test->queries_.push_back(std::move(q));
    }
    return std::unique_ptr<LeafTest>(std::move(test));
  }
  bool Matches(const Collection& items) const override {
    if (number_) {
      for (const Decimal& d : NumberValues(items))
        for (const Query& q : queries_)
          if (NumberMatches(q.prefix, q.number, d)) return true;
      return false;
    }
    for (const QuantityValue& t : QuantityValues(items)) {
      for (const Query& q : queries_) {
        // A UCUM unit with a base unit (search/ucum.h's table): any UCUM value of the same
        // dimension, both in the base unit (as doubles, the server's arithmetic); or as written.
        auto unit = q.system == search::kUcumSystem ? search::UcumCanonicalOf(q.code)
                                                    : std::optional<search::UcumCanonical>();
        if (unit) {
          auto target = t.system == search::kUcumSystem ? search::UcumCanonicalOf(t.code)
                                                        : std::optional<search::UcumCanonical>();
          if (target && target->code == unit->code &&
              CanonicalMatches(q.prefix, q.number, unit->factor, t.value, target->factor))
            return true;
          // Else as written (below).
        }
        if (!NumberMatches(q.prefix, q.number, t.value)) continue;
        // [number]|[system]|[code]: with a system, system and code must match; with none
        // (number||code), the code matches either the unit's code or its display unit.
        if (!q.system.empty() && q.system != t.system) continue;
        if (!q.code.empty()) {
          bool code_ok =
              q.system.empty() ? (q.code == t.code || q.code == t.unit) : q.code == t.code;
          if (!code_ok) continue;
        }
        return true;
      }
    }
    return false;
  }

 private:
  struct Query {
    Prefix prefix;
    Decimal number;
    std::string system;
    std::string code;
  };
  bool number_ = false;
  std::vector<Query> queries_;
};

// uri: the whole URI (case-sensitive); :below: the resource's URI starts with the value;
// :above: the value starts with the resource's URI.
class UriTest : public LeafTest {
 public:
  UriTest(std::string modifier, const std::vector<std::string>& values)
      : modifier_(std::move(modifier)), values_(values) {}
  bool Matches(const Collection& items) const override {
    for (const Item& item : items) {
      std::string_view s = StringOf(JsonOf(item));
      if (s.empty()) continue;
      for (const std::string& v : values_) {
        if (modifier_ == "below"   ? s.starts_with(v)
            : modifier_ == "above" ? std::string_view(v).starts_with(s)
                                   : s == v)
          return true;
      }
    }
    return false;
  }

 private:
  std::string modifier_;
  std::vector<std::string> values_;
};

Result<std::unique_ptr<LeafTest>> MakeTest(const SearchParam& p, const std::string& modifier,
                                           const std::vector<std::string>& values,
                                           const std::string& base) {
  auto refuse = [&] {
    return Error::NotSupported("The oracle does not evaluate :" + modifier + " on " + p.code);
  };
  switch (p.type) {
    case ParamType::kString:
      if (!modifier.empty() && modifier != "exact" && modifier != "contains") return refuse();
      return std::unique_ptr<LeafTest>(std::make_unique<StringTest>(modifier, values));
    case ParamType::kToken:
      if (!modifier.empty() && modifier != "not" && modifier != "text") return refuse();
      return std::unique_ptr<LeafTest>(std::make_unique<TokenTest>(modifier, values));
    case ParamType::kReference:
      if (!modifier.empty() && !fhir::IsResourceType(modifier)) return refuse();
      return ReferenceTest::Make(modifier, values, base);
    case ParamType::kDate:
      if (!modifier.empty()) return refuse();
      return DateTest::Make(values);
    case ParamType::kNumber:
    case ParamType::kQuantity:
      if (!modifier.empty()) return refuse();
      return QuantityTest::Make(p.type == ParamType::kNumber, values);
    case ParamType::kUri:
      if (!modifier.empty() && modifier != "below" && modifier != "above") return refuse();
      return std::unique_ptr<LeafTest>(std::make_unique<UriTest>(modifier, values));
    default:
      return refuse();
  }
}

std::pair<std::string, std::string> SplitModifier(std::string_view key) {
  size_t colon = key.find(':');
  if (colon == std::string_view::npos) return {std::string(key), ""};
  return {std::string(key.substr(0, colon)), std::string(key.substr(colon + 1))};
}

bool IsResultParameter(const std::string& key) {
  static const char* const kResult[] = {"_count",      "_total",   "_sort",     "_include",
                                        "_revinclude", "_summary", "_elements", "_format",
                                        "_pretty",     "_page",    "_type",     "_contained"};
  for (const char* r : kResult)
    if (key == r || key.starts_with(std::string(r) + ":")) return true;
  return false;
}

}  // namespace

Oracle::Oracle(const search::Registry& registry, const Dataset& data, std::string base)
    : registry_(registry), data_(data), base_(std::move(base)) {
  for (std::string_view type : fhir::ResourceTypes()) {
    json::Value v = json::Value::EmptyObject();
    v.Set("resourceType", type);
    placeholders_.emplace(std::string(type), std::move(v));
  }
  options_.resolver = [this](std::string_view reference) -> const json::Value* {
    std::string type, id;
    if (!ParseLiteralReference(reference, &type, &id)) return nullptr;
    auto it = placeholders_.find(type);
    return it == placeholders_.end() ? nullptr : &it->second;
  };
}

const Collection& Oracle::Values(const json::Value& resource, const SearchParam& p) {
  auto key = std::make_pair(&resource, &p);
  auto it = memo_.find(key);
  if (it != memo_.end()) return it->second;
  Collection items;
  if (p.compiled) {
    auto evaluated = p.compiled->Evaluate(resource, options_);
    if (evaluated) {
      items = std::move(evaluated).value();
    } else {
      ++evaluation_errors_;
    }
  }
  return memo_.emplace(key, std::move(items)).first->second;
}

std::vector<const json::Value*> Oracle::Targets(const json::Value& resource, const SearchParam& p) {
  std::vector<const json::Value*> out;
  for (const Ref& r : ReferenceValues(Values(resource, p)))
    if (!r.type.empty())
      if (const json::Value* target = data_.Find(r.type, r.id)) out.push_back(target);
  return out;
}

Result<Oracle::ResourceSet> Oracle::MatchLeaf(const std::string& type, std::string_view key,
                                              const std::vector<std::string>& values) {
  auto [code, modifier] = SplitModifier(key);
  ResourceSet out;
  const auto& resources = data_.OfType(type);
  if (code == "_id") {
    if (!modifier.empty()) return Error::NotSupported("_id:" + modifier);
    for (const json::Value* r : resources)
      if (std::find(values.begin(), values.end(), r->GetString("id")) != values.end())
        out.insert(r);
    return out;
  }
  const SearchParam* p = registry_.Find(type, code);
  if (!p) return Error::NotFound("Unknown parameter " + type + "." + code);
  if (!p->compiled) return Error::NotSupported(type + "." + code + " has no expression");
  if (modifier == "missing") {
    if (values.size() != 1 || (values[0] != "true" && values[0] != "false"))
      return Error::Invalid(":missing takes true or false");
    bool want_missing = values[0] == "true";
    for (const json::Value* r : resources)
      if (HasAnyValue(Values(*r, *p)) != want_missing) out.insert(r);
    return out;
  }
  auto test = MakeTest(*p, modifier, values, base_);
  if (!test) return std::move(test).error();
  for (const json::Value* r : resources)
    if ((*test)->Matches(Values(*r, *p))) out.insert(r);
  return out;
}

Result<Oracle::ResourceSet> Oracle::Match(const std::string& type, std::string_view key,
                                          const std::vector<std::string>& values, int depth) {
  if (depth > 6) return Error::Invalid("Chain too deep");
  ResourceSet out;
  if (key.starts_with("_has:")) {
    // _has:Source:reference:rest - resources that a Source matching `rest` refers to with
    // `reference`.
    std::string_view rest = key.substr(5);
    size_t c1 = rest.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : rest.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return Error::Invalid("Bad _has '" + std::string(key) + "'");
    std::string source(rest.substr(0, c1));
    std::string reference(rest.substr(c1 + 1, c2 - c1 - 1));
    const SearchParam* p = registry_.Find(source, reference);
    if (!p || p->type != ParamType::kReference)
      return Error::Invalid(source + "." + reference + " is no reference parameter");
    auto sources = Match(source, rest.substr(c2 + 1), values, depth + 1);
    if (!sources) return std::move(sources).error();
    for (const json::Value* s : *sources)
      for (const json::Value* target : Targets(*s, *p))
        if (target->GetString("resourceType") == type) out.insert(target);
    return out;
  }
  size_t dot = key.find('.');
  if (dot == std::string_view::npos) return MatchLeaf(type, key, values);

  // A chain: reference[:Type].rest - resources whose reference points at a match of `rest`.
  auto [code, modifier] = SplitModifier(key.substr(0, dot));
  std::string_view rest = key.substr(dot + 1);
  const SearchParam* p = registry_.Find(type, code);
  if (!p || p->type != ParamType::kReference)
    return Error::Invalid(type + "." + code + " is no reference parameter");
  std::string next_code(rest.substr(0, rest.find_first_of(":.")));
  std::vector<std::string> target_types;
  if (!modifier.empty()) {
    target_types.push_back(modifier);
  } else {
    for (const std::string& t : p->targets)
      if (next_code.starts_with("_") || registry_.Find(t, next_code)) target_types.push_back(t);
  }
  if (target_types.empty())
    return Error::Invalid("No target type of " + code + " has " + next_code);
  ResourceSet targets;
  for (const std::string& t : target_types) {
    auto matched = Match(t, rest, values, depth + 1);
    if (!matched) return std::move(matched).error();
    targets.insert(matched->begin(), matched->end());
  }
  for (const json::Value* r : data_.OfType(type))
    for (const json::Value* target : Targets(*r, *p))
      if (targets.count(target)) {
        out.insert(r);
        break;
      }
  return out;
}

Result<std::set<std::string>> Oracle::Evaluate(const std::string& type, const QueryParams& params) {
  const auto& all = data_.OfType(type);
  ResourceSet current(all.begin(), all.end());
  for (const auto& [key, value] : params) {
    if (IsResultParameter(key)) continue;
    auto matched = Match(type, key, SplitOr(value), 0);
    if (!matched) return std::move(matched).error();
    ResourceSet both;
    for (const json::Value* r : current)
      if (matched->count(r)) both.insert(r);
    current = std::move(both);
  }
  std::set<std::string> ids;
  for (const json::Value* r : current) ids.insert(std::string(r->GetString("id")));
  return ids;
}

}  // namespace fhirstone::differential
