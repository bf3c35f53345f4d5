// Search -> SQL: https://hl7.org/fhir/R4/search.html. Each criterion becomes a condition
// `alias.rowid IN (SELECT rid FROM idx_<type> WHERE param = ? AND ...)`, chains and _has nest
// such subqueries, and values are interpreted by parameter type with FHIR's prefix and
// precision rules.
#include "store/internal/search_sql.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/strings.h"
#include "common/time.h"
#include "fhir/model.h"
#include "search/normalize.h"
#include "search/registry.h"
#include "search/ucum.h"
#include "search/valueset.h"

namespace fhirstone::store::internal {
namespace {

using search::Criterion;
using search::ParamType;
using search::SearchParam;

enum class Prefix { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };

Prefix SplitPrefix(std::string_view& v) {
  static const std::pair<const char*, Prefix> kPrefixes[] = {
      {"eq", Prefix::kEq}, {"ne", Prefix::kNe}, {"gt", Prefix::kGt},
      {"lt", Prefix::kLt}, {"ge", Prefix::kGe}, {"le", Prefix::kLe},
      {"sa", Prefix::kSa}, {"eb", Prefix::kEb}, {"ap", Prefix::kAp}};
  if (v.size() > 2) {
    for (const auto& [text, prefix] : kPrefixes) {
      if (v.starts_with(text) &&
          (std::isdigit(static_cast<unsigned char>(v[2])) || v[2] == '-' || v[2] == '.')) {
        v.remove_prefix(2);
        return prefix;
      }
    }
  }
  return Prefix::kEq;
}

const char* TableFor(ParamType t) {
  switch (t) {
    case ParamType::kString:
      return "idx_string";
    case ParamType::kToken:
      return "idx_token";
    case ParamType::kReference:
      return "idx_reference";
    case ParamType::kDate:
      return "idx_date";
    case ParamType::kNumber:
      return "idx_number";
    case ParamType::kQuantity:
      return "idx_quantity";
    case ParamType::kUri:
      return "idx_uri";
    case ParamType::kComposite:
      return "idx_composite";
    case ParamType::kSpecial:  // near: positions are kept with the quantities
      return "idx_quantity";
    default:
      return "";
  }
}

// Past every string that starts with `s` in code point order (SQLite's BINARY, PostgreSQL's C
// collation): `s` followed by U+10FFFF, the last code point (valid UTF-8, as PostgreSQL requires).
std::string UpperBound(std::string s) {
  s += "\xf4\x8f\xbf\xbf";
  return s;
}

std::string EscapeLike(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Splits token text on the first unescaped '|' and unescapes "\|".
bool SplitBar(std::string_view v, std::string* left, std::string* right) {
  std::string cur;
  bool found = false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size() && v[i + 1] == '|') {
      cur.push_back('|');
      ++i;
    } else if (v[i] == '|' && !found) {
      *left = cur;
      cur.clear();
      found = true;
    } else {
      cur.push_back(v[i]);
    }
  }
  if (found) {
    *right = cur;
  } else {
    *left = cur;
  }
  return found;
}

// Subtracts one from a string of decimal digits (REQUIRES: not all zeros).
std::string DecrementDigits(std::string digits) {
  for (size_t i = digits.size(); i-- > 0;) {
    if (digits[i] != '0') {
      --digits[i];
      break;
    }
    digits[i] = '9';
  }
  size_t first = digits.find_first_not_of('0');
  return first == std::string::npos ? "0" : digits.substr(first);
}

// A number's value and the interval its precision implies ("100" -> [99.5, 100.5),
// https://hl7.org/fhir/R4/search.html#number). The bounds are computed in decimal, then
// converted once, so that a stored value equal to a bound compares exactly (9.3 -> [9.25, 9.35)).
Result<std::pair<double, std::pair<double, double>>> ParseNumber(std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  auto bad = [&] { return Error::Invalid("'" + s + "' is not a number"); };
  if (s.empty() || !end || *end != '\0' || !std::isfinite(v)) return bad();
  bool negative = s[0] == '-';
  size_t pos = negative || s[0] == '+' ? 1 : 0;
  std::string digits;
  int exponent = 0;
  bool dot = false;
  for (; pos < s.size() && s[pos] != 'e' && s[pos] != 'E'; ++pos) {
    if (s[pos] == '.') {
      if (dot) return bad();
      dot = true;
    } else if (std::isdigit(static_cast<unsigned char>(s[pos]))) {
      digits.push_back(s[pos]);
      if (dot) --exponent;
    } else {
      return bad();
    }
  }
  if (digits.empty()) return bad();
  if (pos < s.size()) {
    auto e = ParseInt64(std::string_view(s).substr(pos + 1).starts_with('+')
                            ? std::string_view(s).substr(pos + 2)
                            : std::string_view(s).substr(pos + 1));
    if (!e || *e > 400 || *e < -400) return bad();
    exponent += static_cast<int>(*e);
  }
  size_t first = digits.find_first_not_of('0');
  digits = first == std::string::npos ? "0" : digits.substr(first);
  // value = digits x 10^exponent; bounds = (digits x 10 -/+ 5) x 10^(exponent - 1).
  std::string scale = "e" + std::to_string(exponent - 1);
  double upper = std::strtod((digits + "5" + scale).c_str(), nullptr);
  double lower = digits == "0"
                     ? -upper
                     : std::strtod((DecrementDigits(digits) + "5" + scale).c_str(), nullptr);
  if (negative) return std::make_pair(v, std::make_pair(-upper, -lower));
  return std::make_pair(v, std::make_pair(lower, upper));
}

// The index key suffix of :of-type rows (TokenEntry::of_type).
constexpr std::string_view kOfType = ":of-type";
// The index key suffix of quantities in their UCUM base unit (QuantityEntry::canonical).
constexpr std::string_view kUcum = ":ucum";
// The modifiers ExpandValueSets leaves on criteria whose values are system|code pairs of a
// terminology (internal: a client cannot send a modifier with a space).
constexpr std::string_view kCodes = "in codes";
constexpr std::string_view kNotCodes = "not in codes";

struct Builder {
  Sql out;
  bool filter = false;           // the criterion filters rows another criterion found (see TestSql)
  std::string_view local_base;   // this server's FHIR base: absolute URLs under it are local
  std::optional<int64_t> shard;  // the index rows of row "r" are in this shard
  db::Dialect dialect = db::Dialect::kSqlite;
  // When set, the expression that stands for the tested row's id instead of "alias.rowid" (an
  // index row's rid column, when the resource row itself need not be read).
  std::string row;
  void Add(std::string_view text) { out.text += text; }
  void Bind(Binding b) { out.bindings.push_back(std::move(b)); }
};

// Ordered comparisons for number/quantity on columns lo_col/hi_col (equal for plain values).
Status OrderedCondition(Builder& b, Prefix prefix, double value, double lo, double hi,
                        const std::string& lo_col, const std::string& hi_col) {
  switch (prefix) {
    case Prefix::kEq:
      b.Add("(" + lo_col + " >= ? AND " + hi_col + " < ?)");
      b.Bind(lo);
      b.Bind(hi);
      break;
    case Prefix::kNe:
      b.Add("NOT (" + lo_col + " >= ? AND " + hi_col + " < ?)");
      b.Bind(lo);
      b.Bind(hi);
      break;
    case Prefix::kGt:
      b.Add(hi_col + " > ?");
      b.Bind(value);
      break;
    case Prefix::kSa:  // starts after: a range's low end above the value
      b.Add(lo_col + " > ?");
      b.Bind(value);
      break;
    case Prefix::kLt:
      b.Add(lo_col + " < ?");
      b.Bind(value);
      break;
    case Prefix::kEb:  // ends before: a range's high end below the value
      b.Add(hi_col + " < ?");
      b.Bind(value);
      break;
    case Prefix::kGe:
      b.Add(hi_col + " >= ?");
      b.Bind(value);
      break;
    case Prefix::kLe:
      b.Add(lo_col + " <= ?");
      b.Bind(value);
      break;
    case Prefix::kAp: {
      double d = std::fabs(value) * 0.1;
      b.Add("(" + hi_col + " >= ? AND " + lo_col + " <= ?)");
      b.Bind(value - d);
      b.Bind(value + d);
      break;
    }
  }
  return Ok();
}

// Date comparisons between the search range [sl, sh) and the stored range [low, high).
void DateCondition(Builder& b, Prefix prefix, int64_t sl, int64_t sh, const std::string& low,
                   const std::string& high) {
  switch (prefix) {
    case Prefix::kEq:
      b.Add("(" + low + " >= ? AND " + high + " <= ?)");
      b.Bind(sl);
      b.Bind(sh);
      break;
    case Prefix::kNe:
      b.Add("NOT (" + low + " >= ? AND " + high + " <= ?)");
      b.Bind(sl);
      b.Bind(sh);
      break;
    case Prefix::kGt:
      b.Add(high + " > ?");
      b.Bind(sh);
      break;
    case Prefix::kLt:
      b.Add(low + " < ?");
      b.Bind(sl);
      break;
    case Prefix::kGe:
      b.Add("(" + high + " > ? OR (" + low + " >= ? AND " + high + " <= ?))");
      b.Bind(sh);
      b.Bind(sl);
      b.Bind(sh);
      break;
    case Prefix::kLe:
      b.Add("(" + low + " < ? OR (" + low + " >= ? AND " + high + " <= ?))");
      b.Bind(sl);
      b.Bind(sl);
      b.Bind(sh);
      break;
    case Prefix::kSa:
      b.Add(low + " >= ?");
      b.Bind(sh);
      break;
    case Prefix::kEb:
      b.Add(high + " <= ?");
      b.Bind(sl);
      break;
    case Prefix::kAp: {
      int64_t d = (sh - sl) / 10 + 86400LL * 1000000;  // 10% of the range, at least a day
      b.Add("(" + high + " > ? AND " + low + " < ?)");
      b.Bind(sl - d);
      b.Bind(sh + d);
      break;
    }
  }
}

Result<TimeRange> ParseDate(std::string_view v) {
  auto r = ParseFhirDateTime(v);
  if (!r) return Error::Invalid("'" + std::string(v) + "' is not a date, dateTime or instant");
  return *r;
}

// The condition on one component of an idx_composite row (columns a_*, b_*, c_*).
Status ComponentCondition(Builder& b, ParamType type, size_t position, std::string_view v) {
  std::string col = position == 0 ? "a_" : position == 1 ? "b_" : "c_";
  switch (type) {
    case ParamType::kToken:
    case ParamType::kReference: {
      std::string system, code;
      if (type == ParamType::kToken && SplitBar(v, &system, &code)) {
        b.Add("(" + col + "system = ?" + (code.empty() ? "" : " AND " + col + "code = ?") + ")");
        b.Bind(system);
        if (!code.empty()) b.Bind(code);
      } else {
        b.Add(col + "code = ?");
        b.Bind(std::string(v));
      }
      return Ok();
    }
    case ParamType::kString: {
      std::string n = search::NormalizeString(v);
      b.Add("(" + col + "text >= ? AND " + col + "text < ?)");
      b.Bind(n);
      b.Bind(UpperBound(n));
      return Ok();
    }
    case ParamType::kQuantity:
    case ParamType::kNumber: {
      Prefix prefix = SplitPrefix(v);
      auto parts = Split(v, '|');
      auto n = ParseNumber(parts[0]);
      if (!n) return std::move(n).error();
      b.Add("(");
      FHIRSTONE_RETURN_IF_ERROR(OrderedCondition(b, prefix, n->first, n->second.first,
                                                 n->second.second, col + "low", col + "high"));
      if (parts.size() == 3 && !parts[2].empty()) {
        b.Add(" AND " + col + "code = ?");
        b.Bind(std::string(parts[2]));
      }
      if (parts.size() == 3 && !parts[1].empty()) {
        b.Add(" AND " + col + "system = ?");
        b.Bind(std::string(parts[1]));
      }
      b.Add(")");
      return Ok();
    }
    case ParamType::kDate: {
      Prefix prefix = SplitPrefix(v);
      auto r = ParseDate(v);
      if (!r) return std::move(r).error();
      DateCondition(b, prefix, r->low, r->high, col + "date_low", col + "date_high");
      return Ok();
    }
    default:
      return Error::NotSupported("This composite component cannot be searched");
  }
}

// near=latitude|longitude|[distance]|[units] (https://hl7.org/fhir/R4/location.html#positional):
// positions within the distance along the earth's surface (a sphere of radius 6371.0088 km;
// distance 10 km when absent; units km, m or [mi_i]). A bounding box on the latitude (and the
// longitude, away from the poles and the antimeridian) picks candidates through the index; the
// central angle decides: cos(angle) >= cos(distance / radius).
Status NearCondition(Builder& b, std::string_view v) {
  constexpr double kEarthKm = 6371.0088;
  constexpr double kPi = 3.14159265358979323846;
  auto parts = Split(v, '|');
  auto number = [](std::string_view text, double* out) {
    auto n = ParseNumber(text);
    if (!n) return false;
    *out = n->first;
    return true;
  };
  double lat = 0, lon = 0, distance = 10;
  if (parts.size() < 2 || parts.size() > 4 || !number(parts[0], &lat) || !number(parts[1], &lon) ||
      lat < -90 || lat > 90 || lon < -180 || lon > 180 ||
      (parts.size() >= 3 && !parts[2].empty() && !number(parts[2], &distance)) || distance < 0)
    return Error::Invalid(
        "near takes latitude|longitude|distance|units (e.g. "
        "42.36|-71.06|10|km), not '" +
        std::string(v) + "'");
  std::string_view units = parts.size() == 4 ? parts[3] : std::string_view("km");
  if (units == "m") {
    distance /= 1000;
  } else if (units == "[mi_i]" || units == "mi") {
    distance *= 1.609344;
  } else if (units != "km" && !units.empty()) {
    return Error::Invalid("near: distances are in km, m or [mi_i], not '" + std::string(units) +
                          "'");
  }
  double angle = std::min(distance / kEarthKm, kPi);
  double degrees = angle * 180 / kPi;
  double rad = kPi / 180;
  b.Add("(low >= ? AND low <= ?");
  b.Bind(lat - degrees);
  b.Bind(lat + degrees);
  // The longitudes within the distance span asin(sin(angle) / cos(lat)) either side, unless the
  // circle reaches a pole (or crosses the antimeridian): then no longitude bound.
  double cos_lat = std::cos(lat * rad);
  if (std::sin(angle) < cos_lat && angle < kPi / 2) {
    double span = std::asin(std::sin(angle) / cos_lat) * 180 / kPi;
    if (lon - span > -180 && lon + span < 180) {
      b.Add(" AND high >= ? AND high <= ?");
      b.Bind(lon - span);
      b.Bind(lon + span);
    }
  }
  // Haversine: sin^2(dlat/2) + cos(lat1) cos(lat2) sin^2(dlon/2) <= sin^2(angle/2).
  b.Add(
      " AND sin((radians(low) - ?) / 2) * sin((radians(low) - ?) / 2) + ? * cos(radians(low)) * "
      "sin((radians(high) - ?) / 2) * sin((radians(high) - ?) / 2) <= ?)");
  b.Bind(lat * rad);
  b.Bind(lat * rad);
  b.Bind(cos_lat);
  b.Bind(lon * rad);
  b.Bind(lon * rad);
  double half = std::sin(angle / 2);
  b.Bind(half * half * (1 + 1e-12));
  return Ok();
}

// The condition on one index row (columns unqualified) for one value.
Status ValueCondition(Builder& b, const SearchParam& p, const std::string& modifier,
                      const std::string& value) {
  std::string_view v = value;
  if (p.type == ParamType::kSpecial && p.code == "near") return NearCondition(b, v);
  switch (p.type) {
    case ParamType::kString: {
      if (modifier == "exact") {
        b.Add("exact = ?");
        b.Bind(value);
      } else if (modifier == "contains") {
        b.Add("norm LIKE ? ESCAPE '\\'");
        b.Bind("%" + EscapeLike(search::NormalizeString(value)) + "%");
      } else {
        std::string n = search::NormalizeString(value);
        b.Add("(norm >= ? AND norm < ?)");
        b.Bind(n);
        b.Bind(UpperBound(n));
      }
      return Ok();
    }
    case ParamType::kToken: {
      if (modifier == "in" || modifier == "not-in" || modifier == "above" || modifier == "below")
        return Error::NotSupported(":" + modifier + " is not supported here");  // not expanded
      if (modifier == kCodes || modifier == kNotCodes) {
        std::string system, code;
        SplitBar(v, &system, &code);
        if (code.empty()) {
          b.Add("system = ?");
          b.Bind(system);
        } else {
          b.Add("(code = ? AND system IN (?, ''))");
          b.Bind(code);
          b.Bind(system);
        }
        return Ok();
      }
      if (modifier == "of-type") {  // system|code|value: all three
        size_t first = v.find('|');
        size_t second = first == std::string_view::npos ? first : v.find('|', first + 1);
        if (second == std::string_view::npos || first == 0 || second == first + 1 ||
            second + 1 == v.size())
          return Error::Invalid(
              ":of-type takes system|code|value (the type's system and code, "
              "then the identifier's value), not '" +
              value + "'");
        b.Add("(code = ? AND system = ?)");
        b.Bind(std::string(v.substr(first + 1)));
        b.Bind(std::string(v.substr(0, first)));
        return Ok();
      }
      if (modifier == "text") {
        std::string n = search::NormalizeString(value);
        b.Add("(text >= ? AND text < ?)");
        b.Bind(n);
        b.Bind(UpperBound(n));
        return Ok();
      }
      std::string system, code;
      if (SplitBar(v, &system, &code)) {
        if (code.empty()) {
          b.Add("system = ?");
          b.Bind(system);
        } else {
          b.Add("(code = ? AND system = ?)");
          b.Bind(code);
          b.Bind(system);
        }
      } else {
        b.Add("code = ?");
        b.Bind(system);
      }
      return Ok();
    }
    case ParamType::kReference: {
      if (modifier == "identifier") {
        std::string system, code;
        if (SplitBar(v, &system, &code)) {
          b.Add("(id_value = ? AND id_system = ?)");
          b.Bind(code);
          b.Bind(system);
        } else {
          b.Add("id_value = ?");
          b.Bind(system);
        }
        return Ok();
      }
      std::string type, id, version;
      if (fhir::IsResourceType(modifier)) {
        if (!fhir::IsValidId(v)) {
          if (!search::ParseReference(v, b.local_base, &type, &id, &version) || type != modifier)
            return Error::Invalid("'" + value + "' is not an id of a " + modifier);
        } else {
          type = modifier;
          id = value;
        }
      } else if (fhir::IsValidId(v)) {
        b.Add("target_id = ?");
        b.Bind(value);
        return Ok();
      } else if (!search::ParseReference(v, b.local_base, &type, &id, &version)) {
        // A canonical URL (optionally |version), or any other URL as written.
        std::string url(v.substr(0, v.find('|')));
        b.Add("url = ?");
        b.Bind(url);
        return Ok();
      }
      b.Add("(target_id = ? AND target_type = ?");
      b.Bind(id);
      b.Bind(type);
      if (!version.empty()) {
        b.Add(" AND version = ?");
        b.Bind(version);
      }
      b.Add(")");
      return Ok();
    }
    case ParamType::kDate: {
      Prefix prefix = SplitPrefix(v);
      auto r = ParseDate(v);
      if (!r) return std::move(r).error();
      DateCondition(b, prefix, r->low, r->high, "low", "high");
      return Ok();
    }
    case ParamType::kNumber: {
      Prefix prefix = SplitPrefix(v);
      auto n = ParseNumber(v);
      if (!n) return std::move(n).error();
      return OrderedCondition(b, prefix, n->first, n->second.first, n->second.second, "value",
                              "value");
    }
    case ParamType::kQuantity: {
      Prefix prefix = SplitPrefix(v);
      auto parts = Split(v, '|');
      if (parts.size() != 1 && parts.size() != 3)
        return Error::Invalid("A quantity is [prefix]number[|system|code], not '" + value + "'");
      auto n = ParseNumber(parts[0]);
      if (!n) return std::move(n).error();
      b.Add("(");
      FHIRSTONE_RETURN_IF_ERROR(
          OrderedCondition(b, prefix, n->first, n->second.first, n->second.second, "low", "high"));
      if (parts.size() == 3) {
        if (!parts[1].empty()) {
          b.Add(" AND system = ?");
          b.Bind(std::string(parts[1]));
        }
        if (!parts[2].empty()) {
          b.Add(" AND (code = ? OR unit = ?)");
          b.Bind(std::string(parts[2]));
          b.Bind(std::string(parts[2]));
        }
      }
      b.Add(")");
      return Ok();
    }
    case ParamType::kUri: {
      // Prefixes compared exactly, by characters, on both databases (SQLite's LIKE ignores the
      // case of ASCII letters, PostgreSQL's does not).
      if (modifier == "below") {  // the value starts the stored uri
        int64_t characters = 0;
        for (unsigned char c : value) characters += (c & 0xC0) != 0x80;
        b.Add("substr(uri, 1, ?) = ?");
        b.Bind(characters);
        b.Bind(value);
      } else if (modifier == "above") {  // the stored uri starts the value
        b.Add("substr(?, 1, length(uri)) = uri");
        b.Bind(value);
      } else {
        b.Add("uri = ?");
        b.Bind(value);
      }
      return Ok();
    }
    case ParamType::kComposite: {
      std::vector<std::string> parts;
      {
        std::string cur;
        for (size_t i = 0; i < value.size(); ++i) {
          if (value[i] == '\\' && i + 1 < value.size() && value[i + 1] == '$') {
            cur.push_back('$');
            ++i;
          } else if (value[i] == '$') {
            parts.push_back(cur);
            cur.clear();
          } else {
            cur.push_back(value[i]);
          }
        }
        parts.push_back(cur);
      }
      if (parts.size() != p.components.size())
        return Error::Invalid("The composite parameter '" + p.code + "' takes " +
                              std::to_string(p.components.size()) + " values joined by $, not '" +
                              value + "'");
      b.Add("(");
      for (size_t i = 0; i < parts.size(); ++i) {
        if (i) b.Add(" AND ");
        FHIRSTONE_RETURN_IF_ERROR(ComponentCondition(b, p.components[i].type, i, parts[i]));
      }
      b.Add(")");
      return Ok();
    }
    default:
      return Error::NotSupported("Parameter '" + p.code + "' cannot be searched");
  }
}

// The row id of row `alias` (or the column that stands for it, Builder::row).
std::string RowOf(const Builder& b, const std::string& alias) {
  return b.row.empty() ? alias + ".rowid" : b.row;
}

// _text / _content (search/fulltext.h): the rows whose words match one of the values.
Status FullTextSql(Builder& b, const Criterion& c, const std::string& alias) {
  bool postgres = b.dialect == db::Dialect::kPostgres;
  std::string match;
  for (size_t i = 0; i < c.values.size(); ++i) {
    auto q = search::TranslateTextQuery(
        c.values[i], postgres ? search::TextSyntax::kTsQuery : search::TextSyntax::kFts5);
    if (!q) return Error::Invalid(c.param->code + ": " + q.error().message());
    if (i) match += postgres ? " | " : " OR ";
    match += *q;
  }
  std::string column = c.param->code == "_text" ? "narrative" : "content";
  if (postgres) {
    bool sharded = b.shard && alias == "r";
    b.Add(alias + ".rowid IN (SELECT rid FROM idx_fulltext WHERE " +
          (sharded ? "shard_key = ? AND " : "") + column + " @@ to_tsquery('simple', ?))");
    if (sharded) b.Bind(*b.shard);
    b.Bind(match);
  } else {
    b.Add(alias + ".rowid IN (SELECT rowid FROM idx_fulltext WHERE idx_fulltext MATCH ?)");
    b.Bind(column + " : (" + match + ")");
  }
  return Ok();
}

// `param = ? AND (value OR value...)`: the index rows of `c`'s parameter that hold one of its
// values (unqualified columns of its index table).
Status ValuesSql(Builder& b, const Criterion& c, bool with_param = true) {
  const SearchParam& p = *c.param;
  if (with_param && p.type == ParamType::kQuantity && c.modifier.empty()) {
    // A value in a UCUM unit with a base unit (search/ucum.h) is also looked up in that unit, on
    // the rows every stored UCUM quantity of its dimension has there (key + ":ucum"): 5|UCUM|mg
    // finds 0.005 g. Every value as written.
    std::vector<std::string_view> plain;
    std::vector<std::pair<std::string_view, search::UcumCanonical>> canonical;
    for (const std::string& v : c.values) {
      auto parts = Split(v, '|');
      std::optional<search::UcumCanonical> unit;
      if (parts.size() == 3 && parts[1] == search::kUcumSystem)
        unit = search::UcumCanonicalOf(parts[2]);
      // As written too: the rows stored before the reindex that adds the base-unit rows (and a
      // quantity whose unit, not code, is the one asked).
      plain.push_back(v);
      if (unit) canonical.emplace_back(v, *unit);
    }
    if (!canonical.empty()) {
      b.Add("((" + ParamIs(p, b.out.bindings) + " AND (");
      for (size_t i = 0; i < plain.size(); ++i) {
        if (i) b.Add(" OR ");
        FHIRSTONE_RETURN_IF_ERROR(ValueCondition(b, p, c.modifier, std::string(plain[i])));
      }
      b.Add(")) OR ");
      b.Add("(" + ParamIs(p, b.out.bindings, kUcum) + " AND (");
      for (size_t i = 0; i < canonical.size(); ++i) {
        if (i) b.Add(" OR ");
        std::string_view v = canonical[i].first;
        const search::UcumCanonical& unit = canonical[i].second;
        Prefix prefix = SplitPrefix(v);
        auto n = ParseNumber(Split(v, '|')[0]);
        if (!n) return std::move(n).error();
        double f = unit.factor;
        b.Add("(");
        FHIRSTONE_RETURN_IF_ERROR(OrderedCondition(b, prefix, n->first * f, n->second.first * f,
                                                   n->second.second * f, "low", "high"));
        b.Add(" AND system = ? AND code = ?)");
        b.Bind(std::string(search::kUcumSystem));
        b.Bind(std::string(unit.code));
      }
      b.Add(")))");
      return Ok();
    }
  }
  if (with_param)
    b.Add(ParamIs(p, b.out.bindings, c.modifier == "of-type" ? kOfType : "") + " AND ");
  b.Add("(");
  for (size_t i = 0; i < c.values.size(); ++i) {
    if (i) b.Add(" OR ");
    FHIRSTONE_RETURN_IF_ERROR(ValueCondition(b, p, c.modifier, c.values[i]));
  }
  b.Add(")");
  return Ok();
}

// The condition that row `alias` of `c.type` satisfies the tested parameter of `c`.
Status TestSql(Builder& b, const Criterion& c, const std::string& alias) {
  const SearchParam& p = *c.param;
  if (p.code == "_id") {
    if (c.modifier == "missing") {
      b.Add(c.values[0] == "true" ? "1 = 0" : "1 = 1");
      return Ok();
    }
    b.Add(std::string(c.modifier == "not" ? "NOT " : "") + alias + ".id IN (");
    for (size_t i = 0; i < c.values.size(); ++i) {
      b.Add(i ? ", ?" : "?");
      b.Bind(c.values[i]);
    }
    b.Add(")");
    return Ok();
  }
  if (p.code == "_lastUpdated") {
    if (c.modifier == "missing") {  // every resource has one
      b.Add(c.values[0] == "true" ? "1 = 0" : "1 = 1");
      return Ok();
    }
    b.Add("(");
    for (size_t i = 0; i < c.values.size(); ++i) {
      if (i) b.Add(" OR ");
      std::string_view v = c.values[i];
      Prefix prefix = SplitPrefix(v);
      auto r = ParseDate(v);
      if (!r) return std::move(r).error();
      // lastUpdated is an instant stored to the microsecond, shown to the millisecond.
      std::string lu = alias + ".last_updated";
      DateCondition(b, prefix, r->low, r->high, lu, "(" + lu + " + 1)");
    }
    b.Add(")");
    return Ok();
  }
  if (search::IsFullText(p)) return FullTextSql(b, c, alias);
  std::string table = TableFor(p.type);
  // A filter on rows found another way is a correlated EXISTS (one index probe per row); the
  // driving criterion is an IN subquery, which SQLite turns into the access path.
  bool exists = b.filter && alias == "r";
  std::string yes = exists
                        ? "EXISTS (SELECT 1 FROM " + table + " WHERE rid = " + alias + ".rowid AND "
                        : RowOf(b, alias) + " IN (SELECT rid FROM " + table + " WHERE ";
  std::string no =
      exists ? "NOT " + yes : RowOf(b, alias) + " NOT IN (SELECT rid FROM " + table + " WHERE ";
  // The searched rows' own index rows are in their shard (a chained target's may not be).
  bool sharded = b.shard && alias == "r";
  if (sharded) {
    yes += "shard_key = ? AND ";
    no += "shard_key = ? AND ";
  }
  if (c.modifier == "missing") {
    if (sharded) b.Bind(*b.shard);
    b.Add((c.values[0] == "true" ? no : yes) + ParamIs(p, b.out.bindings) + ")");
    return Ok();
  }
  if ((c.modifier == "in" || c.modifier == "not-in") && c.values.empty()) {
    b.Add(c.modifier == "in" ? "1 = 0" : "1 = 1");  // a value set without codes
    return Ok();
  }
  bool negate = c.modifier == "not" || c.modifier == kNotCodes;
  b.Add(negate ? no : yes);
  if (sharded) b.Bind(*b.shard);
  FHIRSTONE_RETURN_IF_ERROR(ValuesSql(b, c));
  b.Add(")");
  return Ok();
}

// Chain links from `index` on, over row `alias`.
// Whether TestSql's condition on a row finds it by row id (`IN (SELECT rid ...)` over index
// rows), rather than testing the row's own columns (_id, _lastUpdated) or negating (:missing,
// :not, :not-in): for those, the rows of the type are read through the primary key (type, id),
// which the `+type` of a row-id-driven subquery keeps SQLite from choosing.
bool TestByRowIds(const Criterion& c) {
  const SearchParam& p = *c.param;
  return p.code != "_id" && p.code != "_lastUpdated" && c.modifier != "missing" &&
         c.modifier != "not" && c.modifier != kNotCodes && c.modifier != "not-in";
}

Status ChainSql(Builder& b, const Criterion& c, size_t index, const std::string& alias,
                int& counter);

// The row ids of the resources whose link `index` of chain `c` (from row `alias`) leads to
// resources that match the rest: "SELECT rid FROM idx_reference WHERE ...".
// `alias.rowid IN (...) AND ...`: the conditions that row `alias`, of type `type`, is one that
// `confined` lets a chain or reverse chain read, each followed by AND. Nothing when null.
Status ConfineSql(Builder& b, const search::Confinement* confined, const std::string& alias,
                  const std::string& type, int& counter) {
  if (!confined) return Ok();
  if (!confined->patient.empty()) {
    if (type == "Patient") {
      b.Add(alias + ".id = ? AND ");
      b.Bind(confined->patient);
    } else if (confined->compartment.empty()) {
      b.Add("1 = 0 AND ");
    } else {
      std::vector<std::string> keys;
      for (const SearchParam* p : confined->compartment)
        for (std::string& key : StoredKeys(*p)) keys.push_back(std::move(key));
      b.Add(alias + ".rowid IN (SELECT rid FROM idx_reference WHERE param IN (");
      for (size_t i = 0; i < keys.size(); ++i) {
        b.Add(i ? ", ?" : "?");
        b.Bind(std::move(keys[i]));
      }
      b.Add(") AND target_type = 'Patient' AND target_id = ?) AND ");
      b.Bind(confined->patient);
    }
  }
  for (const Criterion& c : confined->criteria) {
    auto sql = CriterionSql(c, alias, counter, b.local_base, type, /*filter=*/true, b.dialect);
    if (!sql) return std::move(sql).error();
    b.Add("(" + sql->text + ") AND ");
    for (Binding& binding : sql->bindings) b.Bind(std::move(binding));
  }
  return Ok();
}

Status LinkRidsSql(Builder& b, const Criterion& c, size_t index, const std::string& alias,
                   int& counter) {
  const Criterion::Link& link = c.chain[index];
  std::string next = "c" + std::to_string(++counter);
  const char* by_type = index + 1 == c.chain.size() && !TestByRowIds(c) ? "" : "+";
  bool sharded = b.shard && alias == "r";
  b.Add(std::string("SELECT rid FROM idx_reference WHERE ") +
        (sharded ? "shard_key = ? AND " : ""));
  if (sharded) b.Bind(*b.shard);
  b.Add(ParamIs(*link.param, b.out.bindings) + " AND target_type = ? AND target_id IN (SELECT " +
        next + ".id FROM resource " + next + " WHERE " + by_type + next + ".type = ? AND " + next +
        ".deleted = 0 AND ");
  b.Bind(link.target_type);
  b.Bind(link.target_type);
  FHIRSTONE_RETURN_IF_ERROR(ConfineSql(b, link.confined.get(), next, link.target_type, counter));
  FHIRSTONE_RETURN_IF_ERROR(ChainSql(b, c, index + 1, next, counter));
  b.Add(")");
  return Ok();
}

Status ChainSql(Builder& b, const Criterion& c, size_t index, const std::string& alias,
                int& counter) {
  if (index == c.chain.size()) return TestSql(b, c, alias);
  b.Add(alias + ".rowid IN (");
  FHIRSTONE_RETURN_IF_ERROR(LinkRidsSql(b, c, index, alias, counter));
  b.Add(")");
  return Ok();
}

// Reverse chains from `index` on: resources of has[index].type that refer to row `alias`, whose
// type is `alias_type` when known (then the subquery is not correlated and drives by rowid).
Status HasSql(Builder& b, const Criterion& c, size_t index, const std::string& alias,
              const std::optional<std::string>& alias_type, int& counter) {
  if (index == c.has.size()) return ChainSql(b, c, 0, alias, counter);
  const Criterion::Has& has = c.has[index];
  if (!alias_type) {
    // The row's type unknown (a system search, or several types): one branch per type the
    // reference parameter may point to, each a subquery that runs once, not one correlated with
    // every resource row (a system search read every row and, for each, the references).
    const std::vector<std::string>& targets = has.reference->targets;
    if (targets.empty())
      return Error::Invalid("_has:" + has.type + ":" + has.reference->code +
                            " may refer to any type: search one type, or name them in _type");
    b.Add("(");
    for (size_t i = 0; i < targets.size(); ++i) {
      b.Add(std::string(i ? " OR " : "") + "(" + alias + ".type = ? AND ");
      b.Bind(targets[i]);
      FHIRSTONE_RETURN_IF_ERROR(HasSql(b, c, index, alias, targets[i], counter));
      b.Add(")");
    }
    b.Add(")");
    return Ok();
  }
  // The last link's resources are tested by their index rows alone when the criterion is a
  // positive one on a parameter of that type: index rows exist for live resources only and
  // their key names the type, so the resource rows need not be read.
  const search::SearchParam& p = *c.param;
  // (Not when the resources read are confined: their rows' conditions need the resource row.)
  bool direct = index + 1 == c.has.size() && c.chain.empty() && !has.confined &&
                p.base == has.type && p.code != "_id" && p.code != "_lastUpdated" &&
                !search::IsFullText(p) && p.type != ParamType::kSpecial && c.modifier != "not" &&
                c.modifier != "missing" && c.modifier != kNotCodes && c.modifier != "not-in" &&
                c.modifier != "in";
  std::string next = "h" + std::to_string(++counter);
  if (direct && has.shard && p.type == ParamType::kToken && alias_type == "Patient") {
    // The resources that refer to a patient through their shard parameter carry its shard key
    // (docs/scale-out.md), and idx_token_value (param, code, shard_key) holds every token row's
    // key: the patients are those of the distinct keys of the matching token rows (one index
    // range, read in order), found through resource_patient_shard; each is then checked
    // exactly, through the reference of one matching row of its shard. The general form below
    // looks up the reference of every matching resource (22,248 lookups for a common LOINC code
    // over 1,120 patients).
    // (Without statistics SQLite would read every patient by the primary key's type instead.)
    std::string t = "t" + std::to_string(++counter);
    b.Add(alias + ".rowid IN (SELECT " + t + ".rowid FROM resource " + t +
          (b.dialect == db::Dialect::kSqlite ? " INDEXED BY resource_patient_shard" : "") +
          " WHERE " + t + ".type = 'Patient' AND " + t +
          ".shard_key IN (SELECT shard_key FROM idx_token WHERE ");
    FHIRSTONE_RETURN_IF_ERROR(ValuesSql(b, c));
    b.Add(") AND EXISTS (SELECT 1 FROM idx_token " + next + " WHERE " + next + ".shard_key = " + t +
          ".shard_key AND ");
    FHIRSTONE_RETURN_IF_ERROR(ValuesSql(b, c));
    b.Add(" AND EXISTS (SELECT 1 FROM idx_reference WHERE rid = " + next + ".rid AND " +
          ParamIs(*has.reference, b.out.bindings) +
          " AND target_type = 'Patient' AND target_id = " + t + ".id)))");
    return Ok();
  }
  std::vector<Binding> reference_keys;
  std::string inner =
      "SELECT target_id FROM idx_reference WHERE " + ParamIs(*has.reference, reference_keys) +
      " AND target_type = " + std::string(alias_type ? "?" : alias + ".type") + " AND ";
  if (!direct) {
    bool last = index + 1 == c.has.size() && c.chain.empty();
    inner += "rid IN (SELECT " + next + ".rowid FROM resource " + next + " WHERE " +
             (last && !TestByRowIds(c) ? "" : "+") + next + ".type = ? AND " + next +
             ".deleted = 0 AND ";
  }
  if (alias_type) {
    std::string t = "t" + std::to_string(++counter);
    b.Add(alias + ".rowid IN (SELECT " + t + ".rowid FROM resource " + t + " WHERE " + t +
          ".type = ? AND " + t + ".id IN (" + inner);
    b.Bind(*alias_type);
  } else {
    b.Add(alias + ".id IN (" + inner);
  }
  for (Binding& key : reference_keys) b.Bind(std::move(key));
  if (alias_type) b.Bind(*alias_type);
  if (direct) {
    Builder tested = b;  // the same output, with the index row's rid as the tested row
    tested.row = "rid";
    FHIRSTONE_RETURN_IF_ERROR(TestSql(tested, c, next));
    b.out = std::move(tested.out);
  } else {
    b.Bind(has.type);
    FHIRSTONE_RETURN_IF_ERROR(ConfineSql(b, has.confined.get(), next, has.type, counter));
    FHIRSTONE_RETURN_IF_ERROR(HasSql(b, c, index + 1, next, has.type, counter));
    b.Add(")");
  }
  b.Add(alias_type ? "))" : ")");
  return Ok();
}

}  // namespace

Result<Sql> DateValueSql(std::string_view value, const std::string& low_column,
                         const std::string& high_column) {
  Builder b;
  Prefix prefix = SplitPrefix(value);
  auto r = ParseDate(value);
  if (!r) return std::move(r).error();
  DateCondition(b, prefix, r->low, r->high, low_column, high_column);
  return std::move(b.out);
}

std::string ParamKey(const SearchParam& p) { return p.base + "." + p.code; }

std::vector<std::string> StoredKeys(const SearchParam& p) {
  if (p.stored_as.empty()) return {ParamKey(p)};
  std::vector<std::string> keys;
  for (const SearchParam* q : p.stored_as) keys.push_back(ParamKey(*q));
  return keys;
}

std::string ParamIs(const SearchParam& p, std::vector<Binding>& bindings, std::string_view suffix,
                    std::string_view column) {
  std::vector<std::string> keys = StoredKeys(p);
  std::string out(column);
  out += keys.size() == 1 ? " = ?" : " IN (";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys.size() > 1) out += i ? ", ?" : "?";
    bindings.push_back(keys[i] + std::string(suffix));
  }
  if (keys.size() > 1) out += ")";
  return out;
}

std::optional<std::string> PatientsColumn(const search::Registry& registry, std::string_view type,
                                          std::string_view id,
                                          const search::IndexEntries& entries) {
  if (type == "Patient") {
    if (id.find(' ') != std::string_view::npos) return std::nullopt;
    return std::string(id);
  }
  const std::vector<const SearchParam*>& params = registry.CompartmentParams("Patient", type);
  std::vector<std::string_view> found;
  if (!params.empty()) {
    std::vector<std::string> keys;
    for (const SearchParam* p : params) keys.push_back(ParamKey(*p));
    for (const search::ReferenceEntry& e : entries.references) {
      if (e.target_type != "Patient" || e.target_id.empty() || !e.param) continue;
      if (std::find(found.begin(), found.end(), e.target_id) != found.end()) continue;
      if (std::find(keys.begin(), keys.end(), ParamKey(*e.param)) == keys.end()) continue;
      if (e.target_id.find(' ') != std::string::npos) return std::nullopt;
      found.push_back(e.target_id);
    }
  }
  std::string out;
  for (std::string_view p : found) {
    if (!out.empty()) out += ' ';
    out += p;
  }
  return out;
}

namespace {
std::shared_ptr<const std::vector<std::string>> ParsePatients(std::string_view text) {
  auto out = std::make_shared<std::vector<std::string>>();
  for (std::string_view rest = text; !rest.empty();) {
    size_t space = rest.find(' ');
    out->emplace_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  return out;
}
}  // namespace

std::shared_ptr<const std::vector<std::string>> ReadPatientsColumn(db::Statement& s, int column) {
  if (s.ColumnIsNull(column)) return nullptr;
  return ParsePatients(s.ColumnText(column));
}

std::shared_ptr<const std::vector<std::string>> PatientsColumnReader::Read(db::Statement& s,
                                                                           int column) {
  std::optional<std::string_view> value = s.ColumnTextOrNull(column);
  if (!value) return nullptr;
  std::string_view text = *value;
  if (!last_ || text != text_) {
    last_ = ParsePatients(text);
    text_.assign(text);
  }
  return last_;
}

int Selectivity(const Criterion& c) {
  if (c.modifier == "missing" || c.modifier == "not" || c.modifier == kNotCodes) return 0;
  if (!c.has.empty()) return 2;
  if (!c.chain.empty()) return 3;
  switch (c.param->type) {
    case ParamType::kReference:
      return c.modifier == "identifier" ? 8 : 9;
    case ParamType::kToken:
      if (c.param->code == "_id") return 10;
      return c.modifier == "text" ? 4 : 7;
    case ParamType::kComposite:
      return 6;
    case ParamType::kUri:
      return 6;
    case ParamType::kString:
      if (search::IsFullText(*c.param)) return 4;
      return c.modifier == "contains" ? 1 : 5;
    case ParamType::kNumber:
    case ParamType::kQuantity:
      return 3;
    case ParamType::kDate:
      return c.param->code == "_lastUpdated" ? 1 : 2;
    default:
      return 1;
  }
}

Result<Sql> CriterionSql(const Criterion& c, const std::string& alias, int& alias_counter,
                         std::string_view local_base, const std::optional<std::string>& alias_type,
                         bool filter, db::Dialect dialect, std::optional<int64_t> shard) {
  Builder b;
  b.local_base = local_base;
  b.shard = shard;
  b.dialect = dialect;
  b.filter = filter && c.chain.empty() && c.has.empty();
  if (c.any_of.empty()) {
    FHIRSTONE_RETURN_IF_ERROR(HasSql(b, c, 0, alias, alias_type, alias_counter));
    return std::move(b.out);
  }
  // A chain through a reference to several types: the rows any of its paths finds. Without
  // _has, one row id subquery of their union (an access path, as one path's is); with it, each
  // path's condition.
  if (c.has.empty()) {
    b.Add(alias + ".rowid IN (");
    for (size_t i = 0; i < c.any_of.size(); ++i) {
      if (i) b.Add(" UNION ALL ");
      FHIRSTONE_RETURN_IF_ERROR(LinkRidsSql(b, c.any_of[i], 0, alias, alias_counter));
    }
    b.Add(")");
    return std::move(b.out);
  }
  b.Add("(");
  for (size_t i = 0; i < c.any_of.size(); ++i) {
    if (i) b.Add(" OR ");
    b.Add("(");
    FHIRSTONE_RETURN_IF_ERROR(HasSql(b, c.any_of[i], 0, alias, alias_type, alias_counter));
    b.Add(")");
  }
  b.Add(")");
  return std::move(b.out);
}

Result<Sql> ValuesConditionSql(const Criterion& c, bool with_param) {
  Builder b;
  FHIRSTONE_RETURN_IF_ERROR(ValuesSql(b, c, with_param));
  return std::move(b.out);
}

Sql SortSql(const search::SortKey& key, const std::string& alias, std::optional<int64_t> shard) {
  const SearchParam& p = *key.param;
  Sql sql;
  if (p.code == "_id") {
    sql.text = alias + ".id";
  } else if (p.code == "_lastUpdated") {
    sql.text = alias + ".last_updated";
  } else {
    const char* agg = key.descending ? "MAX" : "MIN";
    std::string column;
    switch (p.type) {
      case ParamType::kString:
        column = "norm";
        break;
      case ParamType::kToken:
        column = "code";
        break;
      case ParamType::kReference:
        column = "coalesce(target_id, url)";
        break;
      case ParamType::kDate:
        column = key.descending ? "high" : "low";
        break;
      case ParamType::kNumber:
        column = "value";
        break;
      case ParamType::kQuantity:
        column = key.descending ? "high" : "low";
        break;
      case ParamType::kUri:
        column = "uri";
        break;
      default:
        column = "NULL";
        break;
    }
    sql.text = "(SELECT " + std::string(agg) + "(" + column + ") FROM " + TableFor(p.type) +
               " WHERE rid = " + alias + ".rowid AND " + (shard ? "shard_key = ? AND " : "");
    if (shard) sql.bindings.push_back(*shard);
    sql.text += ParamIs(p, sql.bindings) + ")";
  }
  return sql;
}

void Bind(db::Statement& s, int& index, const std::vector<Binding>& bindings) {
  for (const Binding& b : bindings) {
    if (const auto* i = std::get_if<int64_t>(&b)) {
      s.BindInt(index++, *i);
    } else if (const auto* d = std::get_if<double>(&b)) {
      s.BindDouble(index++, *d);
    } else if (const auto* text = std::get_if<std::string>(&b)) {
      s.BindText(index++, *text);
    } else {
      s.BindNull(index++);
    }
  }
}

Status ReadRowIds(db::Connection& conn, const Sql& sql, std::vector<int64_t>& out) {
  auto stmt = conn.Prepare(sql.text);
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  int index = 1;
  Bind(s, index, sql.bindings);
  while (true) {
    auto row = s.Step();
    if (!row) {
      s.Reset();
      return std::move(row).error();
    }
    if (!*row) break;
    out.push_back(s.ColumnInt(0));
  }
  s.Reset();
  return Ok();
}

const std::vector<std::pair<const char*, const char*>>& UnionRowsDropped() {
  static const std::vector<std::pair<const char*, const char*>> kRows = {
      {"idx_token", "Observation.combo-code"},
      {"idx_token", "Observation.combo-value-concept"},
      {"idx_token", "Observation.combo-data-absent-reason"},
      {"idx_quantity", "Observation.combo-value-quantity"},
      {"idx_composite", "Observation.combo-code-value-quantity"},
      {"idx_composite", "Observation.combo-code-value-concept"},
      {"idx_token", "CapabilityStatement.version"},
      {"idx_string", "Patient.phonetic"},
      {"idx_string", "Person.phonetic"},
      {"idx_string", "Practitioner.phonetic"},
      {"idx_string", "RelatedPerson.phonetic"},
  };
  return kRows;
}

const char* IndexSchema() {
  return "CREATE TABLE idx_string (rid INTEGER NOT NULL, param TEXT NOT NULL, norm TEXT NOT NULL,"
         "  exact TEXT NOT NULL);"
         "CREATE INDEX idx_string_value ON idx_string (param, norm);"
         "CREATE INDEX idx_string_rid ON idx_string (rid);"
         "CREATE TABLE idx_token (rid INTEGER NOT NULL, param TEXT NOT NULL, system TEXT NOT NULL,"
         "  code TEXT NOT NULL, text TEXT NOT NULL);"
         "CREATE INDEX idx_token_value ON idx_token (param, code, system);"
         "CREATE INDEX idx_token_rid ON idx_token (rid);"
         "CREATE TABLE idx_reference (rid INTEGER NOT NULL, param TEXT NOT NULL,"
         "  target_type TEXT NOT NULL, target_id TEXT NOT NULL, version TEXT NOT NULL,"
         "  url TEXT NOT NULL, id_system TEXT NOT NULL, id_value TEXT NOT NULL);"
         "CREATE INDEX idx_reference_target ON idx_reference (param, target_id, target_type);"
         "CREATE INDEX idx_reference_url ON idx_reference (param, url);"
         "CREATE INDEX idx_reference_rid ON idx_reference (rid);"
         "CREATE TABLE idx_date (rid INTEGER NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL,"
         "  high INTEGER NOT NULL);"
         "CREATE INDEX idx_date_low ON idx_date (param, low);"
         "CREATE INDEX idx_date_rid ON idx_date (rid);"
         "CREATE TABLE idx_number (rid INTEGER NOT NULL, param TEXT NOT NULL, value REAL NOT NULL);"
         "CREATE INDEX idx_number_value ON idx_number (param, value);"
         "CREATE INDEX idx_number_rid ON idx_number (rid);"
         "CREATE TABLE idx_quantity (rid INTEGER NOT NULL, param TEXT NOT NULL, low REAL NOT NULL,"
         "  high REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL);"
         "CREATE INDEX idx_quantity_value ON idx_quantity (param, low);"
         "CREATE INDEX idx_quantity_rid ON idx_quantity (rid);"
         "CREATE TABLE idx_uri (rid INTEGER NOT NULL, param TEXT NOT NULL, uri TEXT NOT NULL);"
         "CREATE INDEX idx_uri_value ON idx_uri (param, uri);"
         "CREATE INDEX idx_uri_rid ON idx_uri (rid);"
         "CREATE TABLE idx_composite (rid INTEGER NOT NULL, param TEXT NOT NULL,"
         "  a_system TEXT NOT NULL, a_code TEXT NOT NULL, b_system TEXT NOT NULL,"
         "  b_code TEXT NOT NULL, b_text TEXT NOT NULL, b_low REAL NOT NULL, b_high REAL NOT NULL,"
         "  b_date_low INTEGER NOT NULL, b_date_high INTEGER NOT NULL, c_low REAL NOT NULL,"
         "  c_high REAL NOT NULL);"
         "CREATE INDEX idx_composite_value ON idx_composite (param, a_code);"
         "CREATE INDEX idx_composite_rid ON idx_composite (rid);";
}

namespace {

struct IndexTable {
  const char* name;
  const char* columns;     // the value columns with their types, as migration 2 made them
  const char* key;         // the primary key after (rid, param): the value columns, most
                           // selective first
  const char* indexes[2];  // value indexes: name, then columns (nullptr when none)
  const char* indexes2[2];
};

constexpr IndexTable kIndexTables[] = {
    {"idx_string",
     "norm TEXT NOT NULL, exact TEXT NOT NULL",
     "norm, exact",
     {"idx_string_value", "param, norm"},
     {nullptr, nullptr}},
    {"idx_token",
     "system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL",
     "code, system, text",
     {"idx_token_value", "param, code, shard_key"},
     {nullptr, nullptr}},
    {"idx_reference",
     "target_type TEXT NOT NULL, target_id TEXT NOT NULL, version TEXT NOT NULL, url TEXT NOT "
     "NULL, id_system TEXT NOT NULL, id_value TEXT NOT NULL",
     "target_id, target_type, version, url, id_system, id_value",
     {"idx_reference_target", "param, target_id, target_type"},
     {"idx_reference_url", "param, url"}},
    {"idx_date",
     "low INTEGER NOT NULL, high INTEGER NOT NULL",
     "low, high",
     {"idx_date_low", "param, low"},
     {nullptr, nullptr}},
    {"idx_number",
     "value REAL NOT NULL",
     "value",
     {"idx_number_value", "param, value"},
     {nullptr, nullptr}},
    {"idx_quantity",
     "low REAL NOT NULL, high REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT "
     "NOT NULL",
     "low, high, code, system, unit",
     {"idx_quantity_value", "param, low"},
     {nullptr, nullptr}},
    {"idx_uri", "uri TEXT NOT NULL", "uri", {"idx_uri_value", "param, uri"}, {nullptr, nullptr}},
    {"idx_composite",
     "a_system TEXT NOT NULL, a_code TEXT NOT NULL, b_system TEXT NOT NULL, b_code TEXT NOT NULL, "
     "b_text TEXT NOT NULL, b_low REAL NOT NULL, b_high REAL NOT NULL, b_date_low INTEGER NOT "
     "NULL, b_date_high INTEGER NOT NULL, c_low REAL NOT NULL, c_high REAL NOT NULL",
     "a_code, a_system, b_code, b_system, b_text, b_low, b_high, b_date_low, b_date_high, c_low, "
     "c_high",
     {"idx_composite_value", "param, a_code"},
     {nullptr, nullptr}},
};

// The names of `columns` ("norm TEXT NOT NULL, exact TEXT NOT NULL" -> "norm, exact").
std::string ColumnNames(std::string_view columns) {
  std::string out;
  for (std::string_view column : Split(columns, ',')) {
    column = Trim(column);
    if (!out.empty()) out += ", ";
    out += column.substr(0, column.find(' '));
  }
  return out;
}

}  // namespace

const std::vector<const char*>& IndexTables() {
  static const std::vector<const char*> names = [] {
    std::vector<const char*> out;
    for (const IndexTable& t : kIndexTables) out.push_back(t.name);
    return out;
  }();
  return names;
}

const std::string& ClusteredIndexSchema() {
  static const std::string sql = [] {
    std::string out;
    for (const IndexTable& t : kIndexTables) {
      std::string names = ColumnNames(t.columns);
      std::string name = t.name, next = name + "_clustered";
      out += "CREATE TABLE " + next + " (rid INTEGER NOT NULL, param TEXT NOT NULL, " + t.columns +
             ", shard_key INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (rid, param, " + t.key +
             ")) WITHOUT ROWID;";
      // Rows repeated in full (two equal codings...) say nothing more: one is kept.
      out += "INSERT OR IGNORE INTO " + next + " (rid, param, " + names +
             ", shard_key) SELECT rid, param, " + names + ", shard_key FROM " + name + ";";
      out += "DROP TABLE " + name + ";";
      out += "ALTER TABLE " + next + " RENAME TO " + name + ";";
      for (const char* const* index : {t.indexes, t.indexes2})
        if (index[0])
          out += std::string("CREATE INDEX ") + index[0] + " ON " + name + " (" + index[1] + ");";
    }
    // The planner's statistics of the tables dropped went with them: sampled again (quickly).
    out += "PRAGMA analysis_limit = 1000;";
    for (const IndexTable& t : kIndexTables) out += std::string("ANALYZE ") + t.name + ";";
    return out;
  }();
  return sql;
}

const std::string& RowIdParamIndexesPostgres() {
  static const std::string sql = [] {
    std::string out;
    for (const IndexTable& t : kIndexTables) {
      std::string name = t.name;
      out += "DROP INDEX " + name + "_rid;";
      out += "CREATE INDEX " + name + "_rid ON " + name + " (rid, param);";
    }
    return out;
  }();
  return sql;
}

namespace {

// Writes index rows: queued (db::Connection::QueueRow, keyed), for one COPY per table on
// PostgreSQL and for INSERTs sorted by value at the commit on SQLite (each table's columns are
// named in its value index's order), else with one prepared INSERT each.
class IndexWriter {
 public:
  IndexWriter(db::Connection& conn, int64_t rid, int64_t shard_key)
      : conn_(conn), rid_(rid), shard_key_(shard_key) {}

  // One row of `table`: rid, param, then `rest` (as `columns` names them), then shard_key.
  Status Row(const char* table, const char* columns, const search::SearchParam& param,
             std::initializer_list<db::Value> rest, std::string_view key_suffix = {}) {
    if (!param.stored_as.empty()) return Ok();  // its rows are those of the parameters it unites
    std::string key = ParamKey(param);
    key += key_suffix;
    values_.clear();
    values_.emplace_back(rid_);
    values_.emplace_back(std::string_view(key));
    values_.insert(values_.end(), rest.begin(), rest.end());
    values_.emplace_back(shard_key_);
    // The column list and INSERT of each table, made once per thread (`table` is a literal).
    thread_local std::unordered_map<const char*, std::pair<std::string, std::string>> texts[2];
    bool sqlite = conn_.dialect() == db::Dialect::kSqlite;
    auto& [all_columns, sql] = texts[sqlite ? 1 : 0][table];
    if (all_columns.empty()) {
      all_columns = std::string("rid, param, ") + columns + ", shard_key";
      // SQLite's tables are keyed by every column: a row repeated in full is kept once.
      sql = std::string(sqlite ? "INSERT OR IGNORE INTO " : "INSERT INTO ") + table + " (" +
            all_columns + ") VALUES (?";
      for (size_t i = 1; i < values_.size(); ++i) sql += ", ?";
      sql += ")";
    }
    // Queued: PostgreSQL sends them by COPY; SQLite inserts them at the commit (or before a
    // statement that reads their table), sorted for the locality of the value indexes.
    if (conn_.QueueRow(table, all_columns, values_, /*keyed=*/true)) return Ok();
    auto stmt = conn_.Prepare(sql);
    if (!stmt) return std::move(stmt).error();
    (*stmt)->BindValues(values_);
    auto done = (*stmt)->Run();
    if (!done) return std::move(done).error();
    return Ok();
  }

 private:
  db::Connection& conn_;
  int64_t rid_, shard_key_;
  std::vector<db::Value> values_;
};

}  // namespace

Status NoteShardOwner(db::Connection& conn, int64_t shard_key, std::string_view owner) {
  // An owner seen before changes nothing: no row is written.
  auto note = conn.Prepare(
      "INSERT INTO shard_owner (shard_key, owner) VALUES (?, ?) ON CONFLICT (shard_key) DO "
      "UPDATE SET owner = '' WHERE shard_owner.owner <> excluded.owner AND shard_owner.owner <> "
      "''");
  if (!note) return std::move(note).error();
  (*note)->BindInt(1, shard_key);
  (*note)->BindText(2, owner);
  auto done = (*note)->Run();
  if (!done) return std::move(done).error();
  return Ok();
}

namespace {

// The leading 60 bits of an id, in its order: of a UUID, its first fifteen hex digits but the
// version (the 13th); of another id, its first ten characters, six bits each in the order of their
// codes (an id's characters are '-', '.', digits and letters: 64 in all; others count as '-').
uint64_t IdPlace(std::string_view id) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  uint64_t place = 0;
  bool uuid = id.size() == 36 && id[8] == '-' && id[13] == '-';
  for (size_t i = 0; uuid && i < 18; ++i) {
    if (i == 8 || i == 13 || i == 14) continue;  // dashes, version
    int digit = hex(id[i]);
    if (digit < 0) {
      uuid = false;
      break;
    }
    place = (place << 4) | static_cast<uint64_t>(digit);
  }
  if (uuid) return place;
  place = 0;
  for (size_t i = 0; i < 10; ++i) {
    unsigned char c = i < id.size() ? static_cast<unsigned char>(id[i]) : 0;
    unsigned code = 0;
    if (c == '.') {
      code = 1;
    } else if (c >= '0' && c <= '9') {
      code = 2 + (c - '0');
    } else if (c >= 'A' && c <= 'Z') {
      code = 12 + (c - 'A');
    } else if (c >= 'a' && c <= 'z') {
      code = 38 + (c - 'a');
    }
    place = (place << 6) | code;
  }
  return place;
}

}  // namespace

ReferenceKey ReferenceKeyOf(std::string_view param_key, std::string_view target_type,
                            std::string_view target_id) {
  // "param\0type\0id": none of the three holds a NUL, so two different triples never make the
  // same text.
  thread_local std::string text;
  text.assign(param_key);
  text += '\0';
  text += target_type;
  size_t kind_size = text.size();
  text += '\0';
  text += target_id;
  uint64_t kind = XXH3_64bits(text.data(), kind_size) & 7;
  return {static_cast<int64_t>((IdPlace(target_id) << 3) | kind),
          static_cast<int64_t>(XXH3_64bits(text.data(), text.size()))};
}

namespace {

// Whether an index row of idx_reference has a key row: one with a target type and id.
bool HasReferenceKey(std::string_view target_type, std::string_view target_id) {
  return !target_type.empty() && !target_id.empty();
}

// Removes the key rows of resource `rid`'s reference rows (before those rows go).
// Calls `each` with the row id and key of every idx_reference row with a target (of resource
// `rid` alone, when given).
Status ReadReferenceKeys(db::Connection& conn, std::optional<int64_t> rid,
                         const std::function<void(int64_t, const ReferenceKey&)>& each) {
  auto read = conn.Prepare(std::string("SELECT rid, param, target_type, target_id FROM "
                                       "idx_reference WHERE ") +
                           (rid ? "rid = ? AND " : "") + "target_id <> ''");
  if (!read) return std::move(read).error();
  db::Statement& s = **read;
  if (rid) s.BindInt(1, *rid);
  while (true) {
    auto row = s.Step();
    if (!row) {
      s.Reset();
      return std::move(row).error();
    }
    if (!*row) break;
    if (HasReferenceKey(s.ColumnText(2), s.ColumnText(3)))
      each(s.ColumnInt(0), ReferenceKeyOf(s.ColumnText(1), s.ColumnText(2), s.ColumnText(3)));
  }
  s.Reset();
  return Ok();
}

Status DeleteReferenceKeys(db::Connection& conn, int64_t rid) {
  std::vector<ReferenceKey> keys;
  FHIRSTONE_RETURN_IF_ERROR(
      ReadReferenceKeys(conn, rid, [&](int64_t, const ReferenceKey& key) { keys.push_back(key); }));
  if (keys.empty()) return Ok();
  auto del = conn.Prepare("DELETE FROM idx_reference_key WHERE k0 = ? AND k1 = ? AND rid = ?");
  if (!del) return std::move(del).error();
  for (const ReferenceKey& key : keys) {
    (*del)->BindInt(1, key.place);
    (*del)->BindInt(2, key.hash);
    (*del)->BindInt(3, rid);
    auto done = (*del)->Run();
    if (!done) return std::move(done).error();
  }
  return Ok();
}

// Adds the key row of one reference row of `rid` (queued with the index rows, keyed: a repeated
// one is kept once).
Status AddReferenceKey(db::Connection& conn, int64_t rid, const ReferenceKey& key) {
  const db::Value row[] = {rid, key.place, key.hash};
  if (conn.QueueRow("idx_reference_key", "rid, k0, k1", row, /*keyed=*/true)) return Ok();
  auto insert =
      conn.Prepare("INSERT OR IGNORE INTO idx_reference_key (rid, k0, k1) VALUES (?, ?, ?)");
  if (!insert) return std::move(insert).error();
  (*insert)->BindValues(row);
  auto done = (*insert)->Run();
  if (!done) return std::move(done).error();
  return Ok();
}

}  // namespace

Status BackfillReferenceKeys(db::Connection& conn) {
  auto tx = db::Transaction::Begin(conn, /*write=*/true);
  if (!tx) return std::move(tx).error();
  // Done meanwhile by another process that opened the store: nothing left to do.
  auto pending = conn.Prepare("SELECT 1 FROM store_state WHERE name = 'reference_keys'");
  if (!pending) return std::move(pending).error();
  auto found = (*pending)->Step();
  (*pending)->Reset();
  if (!found) return std::move(found).error();
  if (!*found) return Ok();
  struct Row {
    ReferenceKey key;
    int64_t rid;
  };
  std::vector<Row> rows;
  {
    // Reserved at their number: 24 bytes a row, 31 MB for the search benchmark's 1.3 million.
    auto count = conn.Prepare("SELECT count(*) FROM idx_reference WHERE target_id <> ''");
    if (!count) return std::move(count).error();
    auto row = (*count)->Step();
    if (!row) return std::move(row).error();
    rows.reserve(static_cast<size_t>((*count)->ColumnInt(0)));
    (*count)->Reset();
  }
  FHIRSTONE_RETURN_IF_ERROR(
      ReadReferenceKeys(conn, std::nullopt, [&](int64_t rid, const ReferenceKey& key) {
        rows.push_back({key, rid});
      }));
  // In the table's order: each insert lands next to the last.
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.key.place, a.key.hash, a.rid) < std::tie(b.key.place, b.key.hash, b.rid);
  });
  FHIRSTONE_RETURN_IF_ERROR(conn.Execute("DELETE FROM idx_reference_key"));
  auto insert =
      conn.Prepare("INSERT OR IGNORE INTO idx_reference_key (k0, k1, rid) VALUES (?, ?, ?)");
  if (!insert) return std::move(insert).error();
  for (const Row& r : rows) {
    (*insert)->BindInt(1, r.key.place);
    (*insert)->BindInt(2, r.key.hash);
    (*insert)->BindInt(3, r.rid);
    auto done = (*insert)->Run();
    if (!done) return std::move(done).error();
  }
  FHIRSTONE_RETURN_IF_ERROR(conn.Execute("DELETE FROM store_state WHERE name = 'reference_keys'"));
  return tx->Commit();
}

Status WriteIndex(db::Connection& conn, int64_t rid, const search::IndexEntries* entries,
                  int64_t shard_key, bool fresh) {
  bool postgres = conn.dialect() == db::Dialect::kPostgres;
  if (!fresh) {  // a new row has no index rows yet
    if (!postgres) FHIRSTONE_RETURN_IF_ERROR(DeleteReferenceKeys(conn, rid));
    for (const char* table : IndexTables()) {
      auto del = conn.Prepare(std::string("DELETE FROM ") + table + " WHERE rid = ?");
      if (!del) return std::move(del).error();
      (*del)->BindInt(1, rid);
      auto done = (*del)->Run();
      if (!done) return std::move(done).error();
    }
    auto del = conn.Prepare(postgres ? "DELETE FROM idx_fulltext WHERE rid = ?"
                                     : "DELETE FROM idx_fulltext WHERE rowid = ?");
    if (!del) return std::move(del).error();
    (*del)->BindInt(1, rid);
    auto done = (*del)->Run();
    if (!done) return std::move(done).error();
  }
  if (!entries) return Ok();
  // SQLite: queued (db::Connection::QueueRow), so that FTS5 takes the words of all the writes of
  // a group commit at its commit, as one index segment, instead of one per write's savepoint.
  const db::Value text_row[] = {rid, std::string_view(entries->text.narrative),
                                std::string_view(entries->text.content)};
  if (!entries->text.content.empty() &&
      (postgres || !conn.QueueRow("idx_fulltext", "rowid, narrative, content", text_row))) {
    auto insert = conn.Prepare(
        postgres ? "INSERT INTO idx_fulltext (rid, narrative, content, shard_key) VALUES "
                   "(?, to_tsvector('simple', ?), to_tsvector('simple', ?), ?)"
                 : "INSERT INTO idx_fulltext (rowid, narrative, content) VALUES (?, ?, ?)");
    if (!insert) return std::move(insert).error();
    (*insert)->BindInt(1, rid);
    (*insert)->BindText(2, entries->text.narrative);
    (*insert)->BindText(3, entries->text.content);
    if (postgres) (*insert)->BindInt(4, shard_key);
    auto done = (*insert)->Run();
    if (!done) return std::move(done).error();
  }
  IndexWriter w(conn, rid, shard_key);
  for (const auto& e : entries->strings)
    FHIRSTONE_RETURN_IF_ERROR(w.Row("idx_string", "norm, exact", *e.param,
                                    {std::string_view(e.normalized), std::string_view(e.exact)}));
  for (const auto& e : entries->tokens)
    FHIRSTONE_RETURN_IF_ERROR(
        w.Row("idx_token", "code, system, text", *e.param,
              {std::string_view(e.code), std::string_view(e.system), std::string_view(e.text)},
              e.of_type ? kOfType : std::string_view()));
  for (const auto& e : entries->references) {
    FHIRSTONE_RETURN_IF_ERROR(w.Row(
        "idx_reference", "target_id, target_type, version, url, id_system, id_value", *e.param,
        {std::string_view(e.target_id), std::string_view(e.target_type),
         std::string_view(e.version), std::string_view(e.url),
         std::string_view(e.identifier_system), std::string_view(e.identifier_value)}));
    // Its key row, where it has a row (IndexWriter::Row) and a target.
    if (!postgres && e.param->stored_as.empty() && HasReferenceKey(e.target_type, e.target_id))
      FHIRSTONE_RETURN_IF_ERROR(AddReferenceKey(
          conn, rid, ReferenceKeyOf(ParamKey(*e.param), e.target_type, e.target_id)));
  }
  for (const auto& e : entries->dates)
    FHIRSTONE_RETURN_IF_ERROR(w.Row("idx_date", "low, high", *e.param, {e.low, e.high}));
  for (const auto& e : entries->numbers)
    FHIRSTONE_RETURN_IF_ERROR(w.Row("idx_number", "value", *e.param, {e.value}));
  for (const auto& e : entries->quantities)
    FHIRSTONE_RETURN_IF_ERROR(w.Row("idx_quantity", "low, high, system, code, unit", *e.param,
                                    {e.low, e.high, std::string_view(e.system),
                                     std::string_view(e.code), std::string_view(e.unit)},
                                    e.canonical ? kUcum : std::string_view()));
  for (const auto& e : entries->composites)
    FHIRSTONE_RETURN_IF_ERROR(
        w.Row("idx_composite",
              "a_code, a_system, b_system, b_code, b_text, b_low, b_high, b_date_low, b_date_high, "
              "c_low, c_high",
              *e.param,
              {std::string_view(e.a_code), std::string_view(e.a_system),
               std::string_view(e.b_system), std::string_view(e.b_code), std::string_view(e.b_text),
               e.b_low, e.b_high, e.b_date_low, e.b_date_high, e.c_low, e.c_high}));
  for (const auto& e : entries->uris)
    FHIRSTONE_RETURN_IF_ERROR(w.Row("idx_uri", "uri", *e.param, {std::string_view(e.uri)}));
  return Ok();
}

namespace {

// The stored resource of `type` (ValueSet, CodeSystem) that `reference` names: a canonical URL
// (optionally |version), or Type/id (relative, or absolute under this server's base).
Result<json::Value> FindCanonical(db::Connection& conn, const std::string& type,
                                  std::string_view reference, std::string_view local_base) {
  std::string_view id;
  std::string prefix = type + "/";
  if (reference.starts_with(prefix)) {
    id = reference.substr(prefix.size());
  } else if (!local_base.empty() && reference.starts_with(local_base) &&
             reference.substr(local_base.size()).starts_with("/" + prefix)) {
    id = reference.substr(local_base.size() + 1 + prefix.size());
  }
  std::vector<std::string> bodies;
  std::string_view version;
  if (!id.empty()) {
    auto stmt = conn.Prepare("SELECT body FROM resource WHERE type = ? AND id = ? AND deleted = 0");
    if (!stmt) return std::move(stmt).error();
    (*stmt)->BindText(1, type);
    (*stmt)->BindText(2, id);
    auto row = (*stmt)->Step();
    if (row && *row) bodies.emplace_back((*stmt)->ColumnText(0));
    (*stmt)->Reset();
    if (!row) return std::move(row).error();
  } else {
    std::string_view url = reference;
    if (size_t bar = url.find('|'); bar != std::string_view::npos) {
      version = url.substr(bar + 1);
      url = url.substr(0, bar);
    }
    auto stmt = conn.Prepare(
        "SELECT r.body FROM resource r WHERE r.type = ? AND r.deleted = 0 AND r.rowid IN "
        "(SELECT rid FROM idx_uri WHERE param = ? AND uri = ?) ORDER BY r.last_updated DESC "
        "LIMIT 20");
    if (!stmt) return std::move(stmt).error();
    (*stmt)->BindText(1, type);
    (*stmt)->BindText(2, type + ".url");
    (*stmt)->BindText(3, url);
    while (true) {
      auto row = (*stmt)->Step();
      if (!row) {
        (*stmt)->Reset();
        return std::move(row).error();
      }
      if (!*row) break;
      bodies.emplace_back((*stmt)->ColumnText(0));
    }
    (*stmt)->Reset();
  }
  for (const auto& body : bodies) {
    auto vs = json::Parse(body);
    if (!vs) continue;
    if (!version.empty() && vs->GetString("version") != version) continue;
    return std::move(vs).value();
  }
  return Error::Invalid("No " + std::string(type == "ValueSet" ? "value set" : "code system") +
                        " '" + std::string(reference) +
                        "' is stored on this server (store it as a " + type + " resource first)");
}

}  // namespace

Status ExpandValueSets(db::Connection& conn, std::vector<search::Criterion>& criteria,
                       std::string_view local_base) {
  constexpr size_t kMaxCodes = 1000;  // per criterion, all its values together
  for (search::Criterion& c : criteria) {
    if (!c.any_of.empty()) {  // its paths', then the first's values for its own fields
      FHIRSTONE_RETURN_IF_ERROR(ExpandValueSets(conn, c.any_of, local_base));
      c.modifier = c.any_of[0].modifier;
      c.values = c.any_of[0].values;
      continue;
    }
    bool subsumption = (c.modifier == "above" || c.modifier == "below") && c.param &&
                       c.param->type == ParamType::kToken;
    if (!subsumption && c.modifier != "in" && c.modifier != "not-in") continue;
    std::vector<std::string> values;
    std::unordered_set<std::string> seen;
    auto add = [&](std::string v) -> Status {
      if (!seen.insert(v).second) return Ok();
      values.push_back(std::move(v));
      if (values.size() > kMaxCodes)
        return Error::Invalid(":" + c.modifier + " names more than " + std::to_string(kMaxCodes) +
                              " codes in all: too many to search");
      return Ok();
    };
    for (const std::string& value : c.values) {
      if (subsumption) {
        // system|code: the codes of the stored CodeSystem `system` below (or above) `code`.
        size_t bar = value.find('|');
        if (bar == std::string::npos || bar == 0 || bar + 1 == value.size())
          return Error::Invalid(":" + c.modifier + " on a token takes system|code, not '" + value +
                                "'");
        std::string system = value.substr(0, bar);
        auto cs = FindCanonical(conn, "CodeSystem", system, local_base);
        if (!cs) return std::move(cs).error();
        auto codes =
            search::SubsumedCodes(*cs, value.substr(bar + 1), c.modifier == "below", kMaxCodes);
        if (!codes) return std::move(codes).error();
        for (const auto& code : *codes) FHIRSTONE_RETURN_IF_ERROR(add(system + "|" + code));
        continue;
      }
      auto vs = FindCanonical(conn, "ValueSet", value, local_base);
      if (!vs) return std::move(vs).error();
      auto codes = search::ExpandValueSet(
          *vs,
          [&](std::string_view url) { return FindCanonical(conn, "ValueSet", url, local_base); },
          kMaxCodes);
      if (!codes) return std::move(codes).error();
      // system|code, or system| for a whole code system.
      for (const auto& code : *codes) FHIRSTONE_RETURN_IF_ERROR(add(code.system + "|" + code.code));
    }
    if (values.empty()) {
      c.values.clear();  // TestSql: nothing (in) or everything (not-in)
      continue;
    }
    // kCodes / kNotCodes (ValueCondition): a code matches with its system, or without one (a
    // `code` element, indexed with no system, whose binding is the value set).
    c.modifier = c.modifier == "not-in" ? std::string(kNotCodes) : std::string(kCodes);
    c.values = std::move(values);
  }
  return Ok();
}

}  // namespace fhirstone::store::internal
