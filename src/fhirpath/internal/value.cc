#include "fhirpath/internal/value.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace fhirstone::fhirpath::internal {
namespace {

constexpr std::string_view kUcumSystem = "http://unitsofmeasure.org";
constexpr int64_t kMillisPerDay = 86400000;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `n` digits at `p`.
bool ReadDigits(std::string_view s, size_t& p, size_t n, int& out) {
  if (p + n > s.size()) return false;
  int v = 0;
  for (size_t i = p; i < p + n; ++i) {
    if (!IsDigit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  p += n;
  out = v;
  return true;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

int64_t DaysFromCivil(int y, int m, int d) {
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}};
  return sys_days{ymd}.time_since_epoch().count();
}

void CivilFromDays(int64_t days, int& y, int& m, int& d) {
  using namespace std::chrono;
  year_month_day ymd{sys_days{std::chrono::days{days}}};
  y = static_cast<int>(ymd.year());
  m = static_cast<int>(static_cast<unsigned>(ymd.month()));
  d = static_cast<int>(static_cast<unsigned>(ymd.day()));
}

// Milliseconds since the epoch of the components of `dt` (its zone ignored).
int64_t EpochMillis(const DateTime& dt) {
  int64_t days = DaysFromCivil(dt.year, dt.month, dt.day);
  return ((days * 24 + dt.hour) * 60 + dt.minute) * 60000 + dt.second * 1000 + dt.millis;
}

void SetFromEpochMillis(int64_t ms, DateTime& dt) {
  int64_t days = ms >= 0 ? ms / kMillisPerDay : (ms - kMillisPerDay + 1) / kMillisPerDay;
  int64_t in_day = ms - days * kMillisPerDay;
  CivilFromDays(days, dt.year, dt.month, dt.day);
  dt.hour = static_cast<int>(in_day / 3600000);
  dt.minute = static_cast<int>(in_day / 60000 % 60);
  dt.second = static_cast<int>(in_day / 1000 % 60);
  dt.millis = static_cast<int>(in_day % 1000);
}

bool ParseTime(std::string_view s, size_t& p, DateTime& dt) {
  if (!ReadDigits(s, p, 2, dt.hour) || dt.hour > 23) return false;
  dt.precision = Precision::kHour;
  if (p >= s.size() || s[p] != ':') return true;
  ++p;
  if (!ReadDigits(s, p, 2, dt.minute) || dt.minute > 59) return false;
  dt.precision = Precision::kMinute;
  if (p >= s.size() || s[p] != ':') return true;
  ++p;
  if (!ReadDigits(s, p, 2, dt.second) || dt.second > 59) return false;
  dt.precision = Precision::kSecond;
  if (p >= s.size() || s[p] != '.') return true;
  ++p;
  size_t start = p;
  int millis = 0, scale = 100;
  while (p < s.size() && IsDigit(s[p])) {
    millis += (s[p] - '0') * scale;
    scale /= 10;
    ++p;
  }
  if (p == start) return false;
  dt.millis = millis;
  dt.precision = Precision::kMillisecond;
  return true;
}

// Merges seconds and milliseconds: FHIRPath compares them as one precision.
int Level(Precision p) { return p == Precision::kMillisecond ? 6 : static_cast<int>(p); }

// Time units as one of: 'Y' year, 'M' month, 'W' week, 'D' day, 'h', 'm' minute, 's', 'l' ms.
char TimeUnit(std::string_view unit) {
  if (unit == "year" || unit == "years" || unit == "a") return 'Y';
  if (unit == "month" || unit == "months" || unit == "mo") return 'M';
  if (unit == "week" || unit == "weeks" || unit == "wk") return 'W';
  if (unit == "day" || unit == "days" || unit == "d") return 'D';
  if (unit == "hour" || unit == "hours" || unit == "h") return 'h';
  if (unit == "minute" || unit == "minutes" || unit == "min") return 'm';
  if (unit == "second" || unit == "seconds" || unit == "s") return 's';
  if (unit == "millisecond" || unit == "milliseconds" || unit == "ms") return 'l';
  return 0;
}

// The unit as compared by `=`: calendar keywords in the singular; UCUM codes of definite
// durations (week and below) are equal to their keywords, 'a' and 'mo' are not (FHIRPath 2.5).
std::string_view CanonicalUnit(std::string_view unit, bool equivalence) {
  char t = TimeUnit(unit);
  switch (t) {
    case 'Y':
      return unit == "a" && !equivalence ? "a" : "year";
    case 'M':
      return unit == "mo" && !equivalence ? "mo" : "month";
    case 'W':
      return "week";
    case 'D':
      return "day";
    case 'h':
      return "hour";
    case 'm':
      return "minute";
    case 's':
      return "second";
    case 'l':
      return "millisecond";
    default:
      return unit.empty() ? "1" : unit;
  }
}

// Seconds in a definite duration unit (week and below; UCUM code or calendar keyword), else 0.
double DefiniteSeconds(std::string_view unit) {
  switch (TimeUnit(unit)) {
    case 'W':
      return 604800;
    case 'D':
      return 86400;
    case 'h':
      return 3600;
    case 'm':
      return 60;
    case 's':
      return 1;
    case 'l':
      return 0.001;
    default:
      return 0;
  }
}

// The value of quantity `q` expressed in `unit`: the same unit, or another definite duration.
std::optional<double> QuantityIn(const Prim& q, std::string_view unit) {
  if (CanonicalUnit(q.unit, false) == CanonicalUnit(unit, false)) return q.d;
  double from = DefiniteSeconds(q.unit), to = DefiniteSeconds(unit);
  if (from == 0 || to == 0) return std::nullopt;
  return q.d * from / to;
}

bool IsNumber(SysType t) { return t == SysType::kInteger || t == SysType::kDecimal; }
bool IsDateLike(SysType t) { return t == SysType::kDate || t == SysType::kDateTime; }

double AsDouble(const Prim& p) { return p.type == SysType::kInteger ? double(p.i) : p.d; }

// Digits after the decimal point of a number's text ("1.50" -> 2, "3" -> 0, "1e-3" -> 3).
int DecimalPlaces(std::string_view text) {
  size_t e = text.find_first_of("eE");
  std::string_view mantissa = text.substr(0, e);
  size_t dot = mantissa.find('.');
  int places = dot == std::string_view::npos ? 0 : static_cast<int>(mantissa.size() - dot - 1);
  if (e != std::string_view::npos && e + 1 < text.size()) {
    auto exp = ParseInteger(text.substr(e + 1));
    if (exp) places -= static_cast<int>(std::clamp<int64_t>(*exp, -400, 400));
  }
  return std::max(places, 0);
}

std::string NormalizeSpaces(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

std::optional<DateTime> PrimTemporal(const Prim& p) { return ParseTemporal(p.type, p.text); }

// Compares two primitives of comparable types; `known` false when they are not comparable.
std::optional<int> ComparePrims(const Prim& a, const Prim& b, bool& known) {
  known = true;
  auto sign = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (IsNumber(a.type) && IsNumber(b.type)) {
    if (a.type == SysType::kInteger && b.type == SysType::kInteger) return sign(a.i, b.i);
    return sign(AsDouble(a), AsDouble(b));
  }
  if (a.type == SysType::kString && b.type == SysType::kString) return sign(a.text, b.text);
  if ((IsDateLike(a.type) && IsDateLike(b.type)) ||
      (a.type == SysType::kTime && b.type == SysType::kTime)) {
    auto x = PrimTemporal(a), y = PrimTemporal(b);
    if (!x || !y) return std::nullopt;
    return CompareTemporal(*x, *y);
  }
  if (a.type == SysType::kQuantity && b.type == SysType::kQuantity) {
    std::optional<double> x = QuantityIn(a, b.unit), y = QuantityIn(b, b.unit);
    if (!x || !y) return std::nullopt;
    return sign(*x, *y);
  }
  if (a.type == SysType::kBoolean && b.type == SysType::kBoolean) return sign(a.b, b.b);
  known = false;
  return std::nullopt;
}

}  // namespace

std::string_view SysTypeName(SysType t) {
  switch (t) {
    case SysType::kNode:
      return "";
    case SysType::kBoolean:
      return "System.Boolean";
    case SysType::kInteger:
      return "System.Integer";
    case SysType::kDecimal:
      return "System.Decimal";
    case SysType::kString:
      return "System.String";
    case SysType::kDate:
      return "System.Date";
    case SysType::kDateTime:
      return "System.DateTime";
    case SysType::kTime:
      return "System.Time";
    case SysType::kQuantity:
      return "System.Quantity";
  }
  return "";
}

std::optional<SysType> SysTypeFromName(std::string_view name) {
  for (SysType t : {SysType::kBoolean, SysType::kInteger, SysType::kDecimal, SysType::kString,
                    SysType::kDate, SysType::kDateTime, SysType::kTime, SysType::kQuantity}) {
    if (SysTypeName(t).substr(7) == name) return t;
  }
  return std::nullopt;
}

Val Val::Node(const json::Value* node, const json::Value* ext, const fhir::StructureInfo* fhir) {
  Val v;
  v.node = node;
  v.ext = ext;
  v.fhir = fhir;
  return v;
}

Val Val::Boolean(bool b) {
  Val v;
  v.type = SysType::kBoolean;
  v.b = b;
  return v;
}

Val Val::Integer(int64_t i) {
  Val v;
  v.type = SysType::kInteger;
  v.i = i;
  return v;
}

Val Val::Decimal(double d, std::string text) {
  Val v;
  v.type = SysType::kDecimal;
  v.d = d;
  v.text = std::move(text);
  return v;
}

std::optional<Val> Val::DecimalFrom(double d) {
  if (!std::isfinite(d)) return std::nullopt;
  return Decimal(d, FormatDecimal(d));
}

Val Val::String(std::string s) {
  Val v;
  v.type = SysType::kString;
  v.text = std::move(s);
  return v;
}

Val Val::Temporal(SysType type, std::string text) {
  Val v;
  v.type = type;
  v.text = std::move(text);
  return v;
}

Val Val::Quantity(double d, std::string number_text, std::string unit) {
  Val v;
  v.type = SysType::kQuantity;
  v.d = d;
  v.text = std::move(number_text);
  v.unit = std::move(unit);
  return v;
}

bool DerivesFrom(const fhir::StructureInfo* t, std::string_view ancestor) {
  for (int guard = 0; t != nullptr && guard < 16; ++guard) {
    if (t->name == ancestor) return true;
    if (t->base.empty() || t->base == t->name) return false;
    t = fhir::FindStructure(t->base);
  }
  return false;
}

Prim GetPrim(const Val& v) {
  Prim p;
  if (!v.is_node()) {
    p.type = v.type;
    p.b = v.b;
    p.i = v.i;
    p.d = v.d;
    p.text = v.Text();
    p.unit = v.unit;
    return p;
  }
  if (v.node == nullptr) return p;
  const json::Value& n = *v.node;
  if (v.fhir != nullptr && v.fhir->is_primitive()) {
    using fhir::PrimitiveType;
    switch (*v.fhir->primitive) {
      case PrimitiveType::kBoolean:
        if (n.is_bool()) {
          p.type = SysType::kBoolean;
          p.b = n.as_bool();
          return p;
        }
        break;
      case PrimitiveType::kDecimal:
        if (n.is_number()) {
          if (auto d = ParseDecimal(n.as_string())) {
            p.type = SysType::kDecimal;
            p.d = *d;
            p.text = n.as_string();
            return p;
          }
        }
        break;
      case PrimitiveType::kInteger:
      case PrimitiveType::kPositiveInt:
      case PrimitiveType::kUnsignedInt:
        break;  // by the JSON number below
      case PrimitiveType::kDate:
      case PrimitiveType::kDateTime:
      case PrimitiveType::kInstant:
      case PrimitiveType::kTime:
        if (n.is_string()) {
          PrimitiveType t = *v.fhir->primitive;
          p.type = t == PrimitiveType::kDate   ? SysType::kDate
                   : t == PrimitiveType::kTime ? SysType::kTime
                                               : SysType::kDateTime;
          p.text = n.as_string();
          return p;
        }
        break;
      default:
        if (n.is_string()) {
          p.type = SysType::kString;
          p.text = n.as_string();
          return p;
        }
        break;
    }
  } else if (v.fhir != nullptr) {
    if (n.is_object() && DerivesFrom(v.fhir, "Quantity")) {
      const json::Value* value = n.Find("value");
      if (value == nullptr || !value->is_number()) return p;
      auto d = ParseDecimal(value->as_string());
      if (!d) return p;
      p.type = SysType::kQuantity;
      p.d = *d;
      p.text = value->as_string();
      std::string_view code = n.GetString("code");
      std::string_view unit = n.GetString("unit");
      p.unit =
          (n.GetString("system") == kUcumSystem && !code.empty()) || unit.empty() ? code : unit;
    }
    return p;
  }
  // A JSON primitive of unknown or mismatched type: by its JSON type.
  if (n.is_bool()) {
    p.type = SysType::kBoolean;
    p.b = n.as_bool();
  } else if (n.is_string()) {
    p.type = SysType::kString;
    p.text = n.as_string();
  } else if (n.is_number()) {
    p.text = n.as_string();
    if (auto i = ParseInteger(p.text)) {
      p.type = SysType::kInteger;
      p.i = *i;
    } else if (auto d = ParseDecimal(p.text)) {
      p.type = SysType::kDecimal;
      p.d = *d;
    }
  }
  return p;
}

std::optional<DateTime> ParseTemporal(SysType type, std::string_view s) {
  DateTime dt;
  size_t p = 0;
  if (type == SysType::kTime) {
    dt.time_only = true;
    if (!ParseTime(s, p, dt) || p != s.size()) return std::nullopt;
    return dt;
  }
  if (type != SysType::kDate && type != SysType::kDateTime) return std::nullopt;
  if (!ReadDigits(s, p, 4, dt.year) || dt.year == 0) return std::nullopt;
  if (p < s.size() && s[p] == '-') {
    ++p;
    if (!ReadDigits(s, p, 2, dt.month) || dt.month < 1 || dt.month > 12) return std::nullopt;
    dt.precision = Precision::kMonth;
    if (p < s.size() && s[p] == '-') {
      ++p;
      if (!ReadDigits(s, p, 2, dt.day) || dt.day < 1 || dt.day > DaysInMonth(dt.year, dt.month)) {
        return std::nullopt;
      }
      dt.precision = Precision::kDay;
    }
  }
  if (type == SysType::kDate) {
    if (p != s.size()) return std::nullopt;
    return dt;
  }
  if (p < s.size() && s[p] == 'T') {
    ++p;
    if (p < s.size() && IsDigit(s[p])) {
      if (dt.precision != Precision::kDay) return std::nullopt;
      if (!ParseTime(s, p, dt)) return std::nullopt;
      if (p < s.size() && s[p] == 'Z') {
        ++p;
        dt.has_tz = true;
      } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
        int sign = s[p] == '-' ? -1 : 1, h = 0, m = 0;
        ++p;
        if (!ReadDigits(s, p, 2, h) || p >= s.size() || s[p] != ':') return std::nullopt;
        ++p;
        if (!ReadDigits(s, p, 2, m) || h > 14 || m > 59) return std::nullopt;
        dt.has_tz = true;
        dt.tz_minutes = sign * (h * 60 + m);
      }
    }
  }
  if (p != s.size()) return std::nullopt;
  return dt;
}

std::string FormatTemporal(SysType type, const DateTime& dt) {
  char buf[48];
  std::string out;
  int level = static_cast<int>(dt.precision);
  if (!dt.time_only) {
    std::snprintf(buf, sizeof(buf), "%04d", dt.year);
    out += buf;
    if (level >= 2) {
      std::snprintf(buf, sizeof(buf), "-%02d", dt.month);
      out += buf;
    }
    if (level >= 3) {
      std::snprintf(buf, sizeof(buf), "-%02d", dt.day);
      out += buf;
    }
    if (type == SysType::kDate || level <= 3) return out;
    out += 'T';
  }
  std::snprintf(buf, sizeof(buf), "%02d", dt.hour);
  out += buf;
  if (level >= 5) {
    std::snprintf(buf, sizeof(buf), ":%02d", dt.minute);
    out += buf;
  }
  if (level >= 6) {
    std::snprintf(buf, sizeof(buf), ":%02d", dt.second);
    out += buf;
  }
  if (level >= 7) {
    std::snprintf(buf, sizeof(buf), ".%03d", dt.millis);
    out += buf;
  }
  if (!dt.time_only && dt.has_tz) {
    if (dt.tz_minutes == 0) {
      out += 'Z';
    } else {
      int m = std::abs(dt.tz_minutes);
      std::snprintf(buf, sizeof(buf), "%c%02d:%02d", dt.tz_minutes < 0 ? '-' : '+', m / 60, m % 60);
      out += buf;
    }
  }
  return out;
}

std::optional<int> CompareTemporal(const DateTime& a_in, const DateTime& b_in) {
  if (a_in.time_only != b_in.time_only) return std::nullopt;
  DateTime a = a_in, b = b_in;
  for (DateTime* x : {&a, &b}) {
    if (!x->time_only && x->precision >= Precision::kHour && x->tz_minutes != 0) {
      SetFromEpochMillis(EpochMillis(*x) - int64_t{x->tz_minutes} * 60000, *x);
      x->tz_minutes = 0;
    }
  }
  std::array<int, 6> ca = {a.year, a.month, a.day, a.hour, a.minute, a.second * 1000 + a.millis};
  std::array<int, 6> cb = {b.year, b.month, b.day, b.hour, b.minute, b.second * 1000 + b.millis};
  int la = Level(a.precision), lb = Level(b.precision);
  int first = a.time_only ? 4 : 1;
  for (int level = first; level <= std::min(la, lb); ++level) {
    int x = ca[level - 1], y = cb[level - 1];
    if (x != y) return x < y ? -1 : 1;
  }
  if (la == lb) return 0;
  return std::nullopt;
}

std::optional<DateTime> AddDuration(const DateTime& dt_in, double amount, std::string_view unit) {
  char u = TimeUnit(unit);
  if (u == 0 || !std::isfinite(amount) || std::fabs(amount) > 1e13) return std::nullopt;
  DateTime dt = dt_in;
  auto add_months = [&dt](int64_t months) -> bool {
    int64_t total = int64_t{dt.year} * 12 + (dt.month - 1) + months;
    if (total < 12 || total >= 10000 * 12) return false;
    dt.year = static_cast<int>(total / 12);
    dt.month = static_cast<int>(total % 12) + 1;
    dt.day = std::min(dt.day, DaysInMonth(dt.year, dt.month));
    return true;
  };
  static constexpr double kMillis[] = {/*W*/ 7.0 * kMillisPerDay,
                                       /*D*/ kMillisPerDay,
                                       /*h*/ 3600000,
                                       /*m*/ 60000,
                                       /*s*/ 1000,
                                       /*l*/ 1};
  if (dt.time_only) {
    if (u == 'Y' || u == 'M' || u == 'W' || u == 'D') return std::nullopt;
    double factor = kMillis[u == 'h' ? 2 : u == 'm' ? 3 : u == 's' ? 4 : 5];
    int64_t ms = (int64_t{dt.hour} * 3600 + dt.minute * 60 + dt.second) * 1000 + dt.millis +
                 static_cast<int64_t>(std::trunc(amount * factor));
    ms %= kMillisPerDay;
    if (ms < 0) ms += kMillisPerDay;
    dt.hour = static_cast<int>(ms / 3600000);
    dt.minute = static_cast<int>(ms / 60000 % 60);
    dt.second = static_cast<int>(ms / 1000 % 60);
    dt.millis = static_cast<int>(ms % 1000);
    return dt;
  }
  int64_t whole = static_cast<int64_t>(std::trunc(amount));
  if (u == 'Y') {
    if (!add_months(whole * 12)) return std::nullopt;
    return dt;
  }
  if (u == 'M') {
    if (dt.precision == Precision::kYear) whole = whole / 12 * 12;
    if (!add_months(whole)) return std::nullopt;
    return dt;
  }
  double factor = kMillis[u == 'W'   ? 0
                          : u == 'D' ? 1
                          : u == 'h' ? 2
                          : u == 'm' ? 3
                          : u == 's' ? 4
                                     : 5];
  double ms = std::trunc(amount * factor);
  if (dt.precision >= Precision::kDay) {
    int64_t delta = static_cast<int64_t>(
        dt.precision == Precision::kDay ? std::trunc(ms / kMillisPerDay) * kMillisPerDay : ms);
    SetFromEpochMillis(EpochMillis(dt) + delta, dt);
  } else if (dt.precision == Precision::kMonth) {
    if (!add_months(static_cast<int64_t>(std::trunc(ms / (30.0 * kMillisPerDay))))) {
      return std::nullopt;
    }
  } else {
    if (!add_months(12 * static_cast<int64_t>(std::trunc(ms / (365.0 * kMillisPerDay))))) {
      return std::nullopt;
    }
  }
  if (dt.year < 1 || dt.year > 9999) return std::nullopt;
  return dt;
}

std::optional<int64_t> ParseInteger(std::string_view text) {
  int64_t v = 0;
  if (text.empty()) return std::nullopt;
  const char* first = text.data();
  if (*first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> ParseDecimal(std::string_view text) {
  double v = 0;
  if (text.empty()) return std::nullopt;
  const char* first = text.data();
  if (*first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::string FormatDecimal(double d) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::general, 15);
  std::string out(buf, ec == std::errc() ? ptr : buf);
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}

std::optional<bool> Equal(const Val& a, const Val& b) {
  Prim pa = GetPrim(a), pb = GetPrim(b);
  if (pa.type == SysType::kNode || pb.type == SysType::kNode) {
    // An element without a value (only extensions) compares as empty.
    if ((a.is_node() && a.node == nullptr) || (b.is_node() && b.node == nullptr)) {
      return std::nullopt;
    }
    if (pa.type != pb.type) return false;
    if (a.node == b.node) return true;
    return *a.node == *b.node;
  }
  bool known = false;
  std::optional<int> c = ComparePrims(pa, pb, known);
  if (!known) return false;
  if (!c) return std::nullopt;
  return *c == 0;
}

bool Equivalent(const Val& a, const Val& b) {
  Prim pa = GetPrim(a), pb = GetPrim(b);
  if (pa.type == SysType::kNode || pb.type == SysType::kNode) {
    if (pa.type != pb.type || a.node == nullptr || b.node == nullptr) return false;
    return a.node == b.node || *a.node == *b.node;
  }
  if (pa.type == SysType::kString && pb.type == SysType::kString) {
    return NormalizeSpaces(pa.text) == NormalizeSpaces(pb.text);
  }
  if (IsNumber(pa.type) && IsNumber(pb.type) &&
      (pa.type == SysType::kDecimal || pb.type == SysType::kDecimal)) {
    int places = std::min(pa.type == SysType::kDecimal ? DecimalPlaces(pa.text) : 0,
                          pb.type == SysType::kDecimal ? DecimalPlaces(pb.text) : 0);
    double scale = std::pow(10.0, std::min(places, 15));
    return std::round(AsDouble(pa) * scale) == std::round(AsDouble(pb) * scale);
  }
  if (pa.type == SysType::kQuantity && pb.type == SysType::kQuantity) {
    if (CanonicalUnit(pa.unit, true) == CanonicalUnit(pb.unit, true)) return pa.d == pb.d;
    std::optional<double> x = QuantityIn(pa, pb.unit);
    return x && *x == pb.d;
  }
  bool known = false;
  std::optional<int> c = ComparePrims(pa, pb, known);
  return known && c && *c == 0;
}

Result<std::optional<int>> Compare(const Val& a, const Val& b) {
  Prim pa = GetPrim(a), pb = GetPrim(b);
  if (pa.type == SysType::kBoolean || pb.type == SysType::kBoolean) {
    return Error::Invalid("cannot order Boolean values");
  }
  bool known = false;
  std::optional<int> c = ComparePrims(pa, pb, known);
  if (!known) {
    if (pa.type == SysType::kNode && a.node == nullptr) return std::optional<int>();
    if (pb.type == SysType::kNode && b.node == nullptr) return std::optional<int>();
    return Error::Invalid("cannot compare values of these types");
  }
  return c;
}

bool SameItem(const Val& a, const Val& b) {
  if (a.is_node() || b.is_node()) {
    return a.is_node() && b.is_node() && a.node == b.node && a.ext == b.ext;
  }
  if (a.type != b.type) return false;
  std::optional<bool> eq = Equal(a, b);
  return eq.value_or(false) && a.Text() == b.Text();
}

std::optional<std::string> ToText(const Val& v) {
  Prim p = GetPrim(v);
  switch (p.type) {
    case SysType::kNode:
      return std::nullopt;
    case SysType::kBoolean:
      return std::string(p.b ? "true" : "false");
    case SysType::kInteger:
      return std::to_string(p.i);
    case SysType::kDecimal:
    case SysType::kString:
    case SysType::kDate:
    case SysType::kDateTime:
    case SysType::kTime:
      return std::string(p.text);
    case SysType::kQuantity: {
      std::string out(p.text);
      out += " '";
      out += p.unit;
      out += '\'';
      return out;
    }
  }
  return std::nullopt;
}

}  // namespace fhirstone::fhirpath::internal
