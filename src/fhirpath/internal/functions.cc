// The FHIRPath functions (http://hl7.org/fhirpath/N1/#functions) and the FHIR additions
// (https://hl7.org/fhir/R4/fhirpath.html#functions): the function part of Evaluator.
#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <utility>

#include "common/clock.h"
#include "fhirpath/internal/eval.h"

namespace fhirstone::fhirpath::internal {
namespace {

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Byte offsets of the code points of `s`, and s.size() at the end.
std::vector<size_t> CharOffsets(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsContinuation(s[i])) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

size_t CharCount(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !IsContinuation(c); }));
}

std::string AsciiCase(std::string_view s, bool upper) {
  std::string out(s);
  for (char& c : out) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// FHIRPath number syntax for string conversion: [+-]?digits(.digits)?
bool IsNumberText(std::string_view s, bool allow_fraction) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == digits) return false;
  if (i < s.size() && s[i] == '.' && allow_fraction) {
    size_t frac = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == frac) return false;
  }
  return i == s.size();
}

// The JSON text of a number written `text` (FHIRPath syntax, IsNumberText): as written unless
// JSON would refuse it ("+1", "007").
std::string NumberText(std::string_view text, double d) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  std::string_view digits = !text.empty() && text[0] == '-' ? text.substr(1) : text;
  if (digits.size() > 1 && digits[0] == '0' && digits[1] != '.') return FormatDecimal(d);
  return std::string(text);
}

std::optional<Val> ToBooleanVal(const Prim& p) {
  switch (p.type) {
    case SysType::kBoolean:
      return Val::Boolean(p.b);
    case SysType::kInteger:
      if (p.i == 0 || p.i == 1) return Val::Boolean(p.i == 1);
      return std::nullopt;
    case SysType::kDecimal:
      if (p.d == 0 || p.d == 1) return Val::Boolean(p.d == 1);
      return std::nullopt;
    case SysType::kString: {
      std::string s = AsciiCase(p.text, false);
      if (s == "true" || s == "t" || s == "yes" || s == "y" || s == "1" || s == "1.0") {
        return Val::Boolean(true);
      }
      if (s == "false" || s == "f" || s == "no" || s == "n" || s == "0" || s == "0.0") {
        return Val::Boolean(false);
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

std::optional<Val> ToIntegerVal(const Prim& p) {
  switch (p.type) {
    case SysType::kInteger:
      return Val::Integer(p.i);
    case SysType::kBoolean:
      return Val::Integer(p.b ? 1 : 0);
    case SysType::kString:
      if (!IsNumberText(p.text, false)) return std::nullopt;
      if (auto i = ParseInteger(p.text)) return Val::Integer(*i);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::optional<Val> ToDecimalVal(const Prim& p) {
  switch (p.type) {
    case SysType::kInteger:
      return Val::DecimalFrom(static_cast<double>(p.i));
    case SysType::kDecimal:
      return Val::Decimal(p.d, std::string(p.text));
    case SysType::kBoolean:
      return Val::Decimal(p.b ? 1 : 0, p.b ? "1.0" : "0.0");
    case SysType::kString: {
      if (!IsNumberText(p.text, true)) return std::nullopt;
      auto d = ParseDecimal(p.text);
      if (!d) return std::nullopt;
      return Val::Decimal(*d, NumberText(p.text, *d));
    }
    default:
      return std::nullopt;
  }
}

std::optional<Val> ToTemporalVal(const Prim& p, SysType target) {
  if (p.type == target) return Val::Temporal(target, std::string(p.text));
  if (target == SysType::kDate && p.type == SysType::kDateTime) {
    std::optional<DateTime> dt = ParseTemporal(p.type, p.text);
    if (!dt) return std::nullopt;
    dt->precision = std::min(dt->precision, Precision::kDay);
    return Val::Temporal(target, FormatTemporal(target, *dt));
  }
  if (target == SysType::kDateTime && p.type == SysType::kDate) {
    return Val::Temporal(target, std::string(p.text));
  }
  if (p.type != SysType::kString) return std::nullopt;
  std::optional<DateTime> dt = ParseTemporal(target, p.text);
  if (!dt && target == SysType::kDate) {
    dt = ParseTemporal(SysType::kDateTime, p.text);
    if (dt) dt->precision = std::min(dt->precision, Precision::kDay);
  }
  if (!dt) return std::nullopt;
  return Val::Temporal(target, FormatTemporal(target, *dt));
}

std::optional<Val> ToQuantityVal(const Prim& p) {
  switch (p.type) {
    case SysType::kQuantity:
      return Val::Quantity(p.d, std::string(p.text), std::string(p.unit));
    case SysType::kInteger:
      return Val::Quantity(static_cast<double>(p.i), std::to_string(p.i), "1");
    case SysType::kDecimal:
      return Val::Quantity(p.d, std::string(p.text), "1");
    case SysType::kBoolean:
      return Val::Quantity(p.b ? 1 : 0, p.b ? "1.0" : "0.0", "1");
    case SysType::kString: {
      // "number", "number 'unit'" or "number calendar-keyword".
      std::string_view s = TrimSpaces(p.text);
      size_t space = s.find(' ');
      std::string_view number = s.substr(0, space);
      std::string_view unit = space == std::string_view::npos ? "" : TrimSpaces(s.substr(space));
      if (!IsNumberText(number, true)) return std::nullopt;
      auto d = ParseDecimal(number);
      if (!d) return std::nullopt;
      if (unit.size() >= 2 && unit.front() == '\'' && unit.back() == '\'') {
        unit = unit.substr(1, unit.size() - 2);
      } else if (!unit.empty()) {
        static constexpr std::string_view kCalendar[] = {
            "year",   "years",   "month",       "months",      "week",   "weeks",
            "day",    "days",    "hour",        "hours",       "minute", "minutes",
            "second", "seconds", "millisecond", "milliseconds"};
        if (std::find(std::begin(kCalendar), std::end(kCalendar), unit) == std::end(kCalendar)) {
          return std::nullopt;
        }
      }
      return Val::Quantity(*d, NumberText(number, *d), unit.empty() ? "1" : std::string(unit));
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

Result<Coll> Evaluator::Arg(const Node& n, uint32_t k, const Env& env) {
  return Eval(p_.args[n.first_arg + k], env);
}

Result<Coll> Evaluator::Lambda(const Node& n, uint32_t k, const Val& item, int64_t index,
                               const Env& env) {
  Env inner;
  inner.focus = std::span<const Val>(&item, 1);
  inner.index = index;
  inner.total = env.total;
  return Eval(p_.args[n.first_arg + k], inner);
}

Result<std::optional<int64_t>> Evaluator::IntegerArg(const Node& n, uint32_t k, const Env& env) {
  Result<Coll> c = Arg(n, k, env);
  if (!c) return std::move(c).error();
  Result<const Val*> v = Single(n, *c);
  if (!v) return std::move(v).error();
  if (*v == nullptr) return std::optional<int64_t>();
  Prim p = GetPrim(**v);
  if (p.type != SysType::kInteger) return Fail(n, "expected an Integer argument");
  return std::optional<int64_t>(p.i);
}

Result<std::optional<std::string>> Evaluator::StringArg(const Node& n, uint32_t k, const Env& env) {
  Result<Coll> c = Arg(n, k, env);
  if (!c) return std::move(c).error();
  Result<const Val*> v = Single(n, *c);
  if (!v) return std::move(v).error();
  if (*v == nullptr) return std::optional<std::string>();
  Prim p = GetPrim(**v);
  if (p.type != SysType::kString) return Fail(n, "expected a String argument");
  return std::optional<std::string>(std::string(p.text));
}

const Val& Evaluator::Now() {
  if (!now_) {
    int64_t micros = 0;
    if (options_.clock != nullptr) {
      micros = options_.clock->NowMicros();
    } else {
      SystemClock clock;
      micros = clock.NowMicros();
    }
    // 1970-01-01T00:00:00.000Z plus micros, as a DateTime value.
    DateTime dt;
    dt.year = 1970;
    dt.precision = Precision::kMillisecond;
    dt.has_tz = true;
    std::optional<DateTime> r = AddDuration(dt, static_cast<double>(micros / 1000), "ms");
    now_ = Val::Temporal(SysType::kDateTime, FormatTemporal(SysType::kDateTime, r ? *r : dt));
  }
  return *now_;
}

Result<Coll> Evaluator::EvalFunction(const Node& n, const Env& env) {
  auto f = static_cast<Function>(n.op);
  Coll storage;
  std::span<const Val> input = env.focus;
  if (n.lhs >= 0) {
    Result<Coll> r = Eval(n.lhs, env);
    if (!r) return r;
    storage = std::move(*r);
    input = storage;
  }
  switch (f) {
    case Function::kEmpty:
    case Function::kExists:
    case Function::kAll:
    case Function::kAllTrue:
    case Function::kAnyTrue:
    case Function::kAllFalse:
    case Function::kAnyFalse:
    case Function::kSubsetOf:
    case Function::kSupersetOf:
    case Function::kCount:
    case Function::kDistinct:
    case Function::kIsDistinct:
    case Function::kWhere:
    case Function::kSelect:
    case Function::kRepeat:
    case Function::kOfType:
    case Function::kAggregate:
      return EvalExistence(n, f, input, env);
    case Function::kSingle:
    case Function::kFirst:
    case Function::kLast:
    case Function::kTail:
    case Function::kSkip:
    case Function::kTake:
    case Function::kIntersect:
    case Function::kExclude:
    case Function::kUnion:
    case Function::kCombine:
      return EvalSubsetting(n, f, input, env);
    case Function::kToBoolean:
    case Function::kConvertsToBoolean:
    case Function::kToInteger:
    case Function::kConvertsToInteger:
    case Function::kToDecimal:
    case Function::kConvertsToDecimal:
    case Function::kToString:
    case Function::kConvertsToString:
    case Function::kToDate:
    case Function::kConvertsToDate:
    case Function::kToDateTime:
    case Function::kConvertsToDateTime:
    case Function::kToTime:
    case Function::kConvertsToTime:
    case Function::kToQuantity:
    case Function::kConvertsToQuantity: {
      if (n.arg_count > 0) {
        // toQuantity(unit): without UCUM conversion, only to the unit the value has.
        Result<std::optional<std::string>> unit = StringArg(n, 0, env);
        if (!unit) return std::move(unit).error();
        Result<Coll> q = EvalConversion(n, Function::kToQuantity, input);
        if (!q) return q;
        bool ok = !q->empty() && *unit && (*q)[0].unit == **unit;
        if (f == Function::kConvertsToQuantity) {
          if (input.empty()) return Coll();
          return Coll{Val::Boolean(ok)};
        }
        if (!ok) return Coll();
        return q;
      }
      return EvalConversion(n, f, input);
    }
    case Function::kIndexOf:
    case Function::kSubstring:
    case Function::kStartsWith:
    case Function::kEndsWith:
    case Function::kContains:
    case Function::kUpper:
    case Function::kLower:
    case Function::kReplace:
    case Function::kMatches:
    case Function::kReplaceMatches:
    case Function::kLength:
    case Function::kToChars:
    case Function::kTrim:
    case Function::kSplit:
    case Function::kJoin:
      return EvalString(n, f, input, env);
    case Function::kAbs:
    case Function::kCeiling:
    case Function::kExp:
    case Function::kFloor:
    case Function::kLn:
    case Function::kLog:
    case Function::kPower:
    case Function::kRound:
    case Function::kSqrt:
    case Function::kTruncate:
      return EvalMath(n, f, input, env);
    default:
      return EvalFhir(n, f, input, env);
  }
}

Result<Coll> Evaluator::EvalExistence(const Node& n, Function f, std::span<const Val> input,
                                      const Env& env) {
  Coll out;
  switch (f) {
    case Function::kEmpty:
      out.push_back(Val::Boolean(input.empty()));
      return out;
    case Function::kExists:
      if (n.arg_count == 0) {
        out.push_back(Val::Boolean(!input.empty()));
        return out;
      }
      [[fallthrough]];
    case Function::kAll: {
      bool want = f == Function::kExists;
      bool result = !want;
      for (size_t i = 0; i < input.size() && result != want; ++i) {
        Result<Coll> c = Lambda(n, 0, input[i], static_cast<int64_t>(i), env);
        if (!c) return c;
        Result<std::optional<bool>> t = Truth(n, *c);
        if (!t) return std::move(t).error();
        bool holds = t->value_or(false);
        if (want ? holds : !holds) result = want;
      }
      out.push_back(Val::Boolean(result));
      return out;
    }
    case Function::kAllTrue:
    case Function::kAnyTrue:
    case Function::kAllFalse:
    case Function::kAnyFalse: {
      bool all = f == Function::kAllTrue || f == Function::kAllFalse;
      bool target = f == Function::kAllTrue || f == Function::kAnyTrue;
      bool result = all;
      for (const Val& v : input) {
        Prim p = GetPrim(v);
        if (p.type != SysType::kBoolean) return Fail(n, "expected Boolean items");
        if (all && p.b != target) result = false;
        if (!all && p.b == target) result = true;
      }
      out.push_back(Val::Boolean(result));
      return out;
    }
    case Function::kSubsetOf:
    case Function::kSupersetOf: {
      Result<Coll> other = Arg(n, 0, env);
      if (!other) return other;
      std::span<const Val> sub = f == Function::kSubsetOf ? input : std::span<const Val>(*other);
      std::span<const Val> super = f == Function::kSubsetOf ? std::span<const Val>(*other) : input;
      if (Status s = ChargeQuadratic(n, sub.size(), super.size()); !s) return std::move(s).error();
      bool result = true;
      for (const Val& v : sub) {
        if (!ContainsEqual(super, v)) {
          result = false;
          break;
        }
      }
      out.push_back(Val::Boolean(result));
      return out;
    }
    case Function::kCount:
      out.push_back(Val::Integer(static_cast<int64_t>(input.size())));
      return out;
    case Function::kDistinct:
      if (Status s = ChargeQuadratic(n, input.size(), input.size()); !s) {
        return std::move(s).error();
      }
      AddDistinct(input, out);
      return out;
    case Function::kIsDistinct: {
      if (Status s = ChargeQuadratic(n, input.size(), input.size()); !s) {
        return std::move(s).error();
      }
      Coll distinct;
      AddDistinct(input, distinct);
      out.push_back(Val::Boolean(distinct.size() == input.size()));
      return out;
    }
    case Function::kWhere:
      for (size_t i = 0; i < input.size(); ++i) {
        Result<Coll> c = Lambda(n, 0, input[i], static_cast<int64_t>(i), env);
        if (!c) return c;
        Result<std::optional<bool>> t = Truth(n, *c);
        if (!t) return std::move(t).error();
        if (t->value_or(false)) out.push_back(input[i]);
      }
      return out;
    case Function::kSelect:
      for (size_t i = 0; i < input.size(); ++i) {
        Result<Coll> c = Lambda(n, 0, input[i], static_cast<int64_t>(i), env);
        if (!c) return c;
        if (out.empty()) {
          out = std::move(*c);
        } else {
          out.insert(out.end(), std::make_move_iterator(c->begin()),
                     std::make_move_iterator(c->end()));
        }
      }
      return out;
    case Function::kRepeat: {
      // Breadth first; an item already in the output (the same element, or an equal computed
      // value) is not added nor expanded again.
      Coll queue(input.begin(), input.end());
      std::unordered_set<const json::Value*> seen_nodes;
      std::vector<size_t> computed;  // indexes in `out` of computed values
      for (size_t next = 0; next < queue.size(); ++next) {
        Result<Coll> c = Lambda(n, 0, queue[next], static_cast<int64_t>(next), env);
        if (!c) return c;
        for (Val& v : *c) {
          if (v.is_node()) {
            if (!seen_nodes.insert(v.node != nullptr ? v.node : v.ext).second) continue;
          } else {
            bool seen = std::any_of(computed.begin(), computed.end(),
                                    [&](size_t i) { return SameItem(out[i], v); });
            if (seen) continue;
            if (Status s = Charge(n, computed.size()); !s) return std::move(s).error();
            computed.push_back(out.size());
          }
          if (Status s = Charge(n, 1); !s) return std::move(s).error();
          out.push_back(v);
          queue.push_back(std::move(v));
        }
      }
      return out;
    }
    case Function::kOfType: {
      const TypeSpec& type = p_.types[n.data];
      for (const Val& v : input) {
        if (IsType(v, type)) out.push_back(v);
      }
      return out;
    }
    case Function::kAggregate: {
      Coll total;
      if (n.arg_count > 1) {
        Result<Coll> init = Arg(n, 1, env);
        if (!init) return init;
        total = std::move(*init);
      }
      for (size_t i = 0; i < input.size(); ++i) {
        Env inner;
        inner.focus = input.subspan(i, 1);
        inner.index = static_cast<int64_t>(i);
        inner.total = &total;
        Result<Coll> c = Eval(p_.args[n.first_arg], inner);
        if (!c) return c;
        total = std::move(*c);
      }
      return total;
    }
    default:
      return Fail(n, "unsupported function");
  }
}

Result<Coll> Evaluator::EvalSubsetting(const Node& n, Function f, std::span<const Val> input,
                                       const Env& env) {
  Coll out;
  switch (f) {
    case Function::kSingle: {
      Result<const Val*> v = Single(n, input);
      if (!v) return std::move(v).error();
      if (*v != nullptr) out.push_back(**v);
      return out;
    }
    case Function::kFirst:
      if (!input.empty()) out.push_back(input.front());
      return out;
    case Function::kLast:
      if (!input.empty()) out.push_back(input.back());
      return out;
    case Function::kTail:
      if (input.size() > 1) out.assign(input.begin() + 1, input.end());
      return out;
    case Function::kSkip:
    case Function::kTake: {
      Result<std::optional<int64_t>> k = IntegerArg(n, 0, env);
      if (!k) return std::move(k).error();
      if (!*k) return Fail(n, "skip() and take() need a number");
      size_t count = static_cast<size_t>(std::clamp<int64_t>(**k, 0, int64_t(input.size())));
      if (f == Function::kSkip) {
        out.assign(input.begin() + count, input.end());
      } else {
        out.assign(input.begin(), input.begin() + count);
      }
      return out;
    }
    default:
      break;
  }
  Result<Coll> other = Arg(n, 0, env);
  if (!other) return other;
  if (f != Function::kCombine) {
    size_t total = input.size() + other->size();
    if (Status s = ChargeQuadratic(n, total, total); !s) return std::move(s).error();
  }
  switch (f) {
    case Function::kIntersect:
      for (const Val& v : input) {
        if (ContainsEqual(*other, v) && !ContainsEqual(out, v)) out.push_back(v);
      }
      return out;
    case Function::kExclude:
      for (const Val& v : input) {
        if (!ContainsEqual(*other, v)) out.push_back(v);
      }
      return out;
    case Function::kUnion:
      AddDistinct(input, out);
      AddDistinct(*other, out);
      return out;
    case Function::kCombine:
      out.assign(input.begin(), input.end());
      out.insert(out.end(), std::make_move_iterator(other->begin()),
                 std::make_move_iterator(other->end()));
      return out;
    default:
      return Fail(n, "unsupported function");
  }
}

Result<Coll> Evaluator::EvalConversion(const Node& n, Function f, std::span<const Val> input) {
  Coll out;
  Result<const Val*> v = Single(n, input);
  if (!v) return std::move(v).error();
  if (*v == nullptr) return out;
  Prim p = GetPrim(**v);
  std::optional<Val> r;
  switch (f) {
    case Function::kToBoolean:
    case Function::kConvertsToBoolean:
      r = ToBooleanVal(p);
      break;
    case Function::kToInteger:
    case Function::kConvertsToInteger:
      r = ToIntegerVal(p);
      break;
    case Function::kToDecimal:
    case Function::kConvertsToDecimal:
      r = ToDecimalVal(p);
      break;
    case Function::kToString:
    case Function::kConvertsToString:
      if (auto s = ToText(**v)) r = Val::String(std::move(*s));
      break;
    case Function::kToDate:
    case Function::kConvertsToDate:
      r = ToTemporalVal(p, SysType::kDate);
      break;
    case Function::kToDateTime:
    case Function::kConvertsToDateTime:
      r = ToTemporalVal(p, SysType::kDateTime);
      break;
    case Function::kToTime:
    case Function::kConvertsToTime:
      r = ToTemporalVal(p, SysType::kTime);
      break;
    case Function::kToQuantity:
    case Function::kConvertsToQuantity:
      r = ToQuantityVal(p);
      break;
    default:
      return Fail(n, "unsupported function");
  }
  bool converts = f == Function::kConvertsToBoolean || f == Function::kConvertsToInteger ||
                  f == Function::kConvertsToDecimal || f == Function::kConvertsToString ||
                  f == Function::kConvertsToDate || f == Function::kConvertsToDateTime ||
                  f == Function::kConvertsToTime || f == Function::kConvertsToQuantity;
  if (converts) {
    out.push_back(Val::Boolean(r.has_value()));
  } else if (r) {
    out.push_back(std::move(*r));
  }
  return out;
}

Result<Coll> Evaluator::EvalString(const Node& n, Function f, std::span<const Val> input,
                                   const Env& env) {
  Coll out;
  if (f == Function::kJoin) {
    std::string separator;
    if (n.arg_count > 0) {
      Result<std::optional<std::string>> s = StringArg(n, 0, env);
      if (!s) return std::move(s).error();
      separator = s->value_or("");
    }
    std::string joined;
    for (size_t i = 0; i < input.size(); ++i) {
      Prim p = GetPrim(input[i]);
      if (p.type != SysType::kString) return Fail(n, "join() needs strings");
      if (i > 0) joined += separator;
      joined += p.text;
      if (joined.size() > kMaxStringLength) return Fail(n, "string too long");
    }
    out.push_back(Val::String(std::move(joined)));
    return out;
  }
  Result<const Val*> v = Single(n, input);
  if (!v) return std::move(v).error();
  if (*v == nullptr) return out;
  Prim p = GetPrim(**v);
  if (p.type != SysType::kString) {
    return Fail(n, std::string(GetFunctionInfo(f).name) + "() needs a String");
  }
  std::string_view s = p.text;
  // The string arguments (all functions here take Strings but substring()).
  std::optional<std::string> a0, a1;
  if (f != Function::kSubstring && n.arg_count > 0) {
    Result<std::optional<std::string>> r = StringArg(n, 0, env);
    if (!r) return std::move(r).error();
    if (!*r) return out;
    a0 = std::move(*r);
    if (n.arg_count > 1) {
      Result<std::optional<std::string>> r1 = StringArg(n, 1, env);
      if (!r1) return std::move(r1).error();
      if (!*r1) return out;
      a1 = std::move(*r1);
    }
  }
  switch (f) {
    case Function::kIndexOf: {
      size_t at = s.find(*a0);
      out.push_back(Val::Integer(
          at == std::string_view::npos ? -1 : static_cast<int64_t>(CharCount(s.substr(0, at)))));
      return out;
    }
    case Function::kSubstring: {
      Result<std::optional<int64_t>> start = IntegerArg(n, 0, env);
      if (!start) return std::move(start).error();
      std::optional<int64_t> length;
      if (n.arg_count > 1) {
        Result<std::optional<int64_t>> l = IntegerArg(n, 1, env);
        if (!l) return std::move(l).error();
        length = *l;
      }
      std::vector<size_t> offsets = CharOffsets(s);
      int64_t chars = static_cast<int64_t>(offsets.size()) - 1;
      if (!*start || **start < 0 || **start >= chars) return out;
      int64_t end = chars;
      if (length)
        end = std::clamp<int64_t>(**start + std::max<int64_t>(*length, 0), **start, chars);
      size_t from = offsets[static_cast<size_t>(**start)];
      size_t to = offsets[static_cast<size_t>(end)];
      out.push_back(Val::String(std::string(s.substr(from, to - from))));
      return out;
    }
    case Function::kStartsWith:
      out.push_back(Val::Boolean(s.substr(0, a0->size()) == *a0));
      return out;
    case Function::kEndsWith:
      out.push_back(Val::Boolean(s.size() >= a0->size() && s.substr(s.size() - a0->size()) == *a0));
      return out;
    case Function::kContains:
      out.push_back(Val::Boolean(s.find(*a0) != std::string_view::npos));
      return out;
    case Function::kUpper:
    case Function::kLower:
      out.push_back(Val::String(AsciiCase(s, f == Function::kUpper)));
      return out;
    case Function::kReplace: {
      std::string r;
      const std::string& pattern = *a0;
      const std::string& substitution = *a1;
      if (pattern.empty()) {
        // Between every character, and at both ends.
        std::vector<size_t> offsets = CharOffsets(s);
        r = substitution;
        for (size_t i = 0; i + 1 < offsets.size(); ++i) {
          r += s.substr(offsets[i], offsets[i + 1] - offsets[i]);
          r += substitution;
          if (r.size() > kMaxStringLength) return Fail(n, "string too long");
        }
      } else {
        size_t pos = 0;
        while (true) {
          size_t at = s.find(pattern, pos);
          if (at == std::string_view::npos) break;
          r += s.substr(pos, at - pos);
          r += substitution;
          pos = at + pattern.size();
          if (r.size() > kMaxStringLength) return Fail(n, "string too long");
        }
        r += s.substr(pos);
      }
      if (r.size() > kMaxStringLength) return Fail(n, "string too long");
      out.push_back(Val::String(std::move(r)));
      return out;
    }
    case Function::kMatches:
    case Function::kReplaceMatches: {
      std::unique_ptr<const Regex> compiled;
      const Regex* re = nullptr;
      if (n.data > 0) {
        re = p_.regexes[n.data - 1].get();
      } else {
        Result<std::unique_ptr<const Regex>> c = Regex::Compile(*a0);
        if (!c) return Fail(n, c.error().message());
        compiled = std::move(*c);
        re = compiled.get();
      }
      if (f == Function::kMatches) {
        Result<bool> m = re->Search(s);
        if (!m) return Fail(n, m.error().message());
        out.push_back(Val::Boolean(*m));
      } else {
        Result<std::string> r = re->Replace(s, *a1);
        if (!r) return Fail(n, r.error().message());
        if (r->size() > kMaxStringLength) return Fail(n, "string too long");
        out.push_back(Val::String(std::move(*r)));
      }
      return out;
    }
    case Function::kLength:
      out.push_back(Val::Integer(static_cast<int64_t>(CharCount(s))));
      return out;
    case Function::kToChars: {
      std::vector<size_t> offsets = CharOffsets(s);
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        out.push_back(Val::String(std::string(s.substr(offsets[i], offsets[i + 1] - offsets[i]))));
      }
      return out;
    }
    case Function::kTrim:
      out.push_back(Val::String(std::string(TrimSpaces(s))));
      return out;
    case Function::kSplit: {
      const std::string& sep = *a0;
      if (sep.empty()) {
        out.push_back(Val::String(std::string(s)));
        return out;
      }
      size_t pos = 0;
      while (true) {
        size_t at = s.find(sep, pos);
        out.push_back(Val::String(std::string(
            s.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos))));
        if (at == std::string_view::npos) break;
        pos = at + sep.size();
      }
      return out;
    }
    default:
      return Fail(n, "unsupported function");
  }
}

Result<Coll> Evaluator::EvalMath(const Node& n, Function f, std::span<const Val> input,
                                 const Env& env) {
  Coll out;
  Result<const Val*> v = Single(n, input);
  if (!v) return std::move(v).error();
  if (*v == nullptr) return out;
  Prim p = GetPrim(**v);
  bool integer = p.type == SysType::kInteger;
  if (!integer && p.type != SysType::kDecimal &&
      !(f == Function::kAbs && p.type == SysType::kQuantity)) {
    return Fail(n, std::string(GetFunctionInfo(f).name) + "() needs a number");
  }
  double x = integer ? static_cast<double>(p.i) : p.d;
  auto push_decimal = [&out](double d) {
    if (auto r = Val::DecimalFrom(d)) out.push_back(std::move(*r));
  };
  auto push_integer = [&out](double d) {
    if (std::isfinite(d) && std::fabs(d) < 9.2e18) out.push_back(Val::Integer(int64_t(d)));
  };
  switch (f) {
    case Function::kAbs:
      if (p.type == SysType::kQuantity) {
        out.push_back(
            Val::Quantity(std::fabs(p.d), FormatDecimal(std::fabs(p.d)), std::string(p.unit)));
      } else if (integer) {
        if (p.i != INT64_MIN) out.push_back(Val::Integer(p.i < 0 ? -p.i : p.i));
      } else {
        push_decimal(std::fabs(x));
      }
      return out;
    case Function::kCeiling:
      push_integer(std::ceil(x));
      return out;
    case Function::kFloor:
      push_integer(std::floor(x));
      return out;
    case Function::kTruncate:
      push_integer(std::trunc(x));
      return out;
    case Function::kExp:
      push_decimal(std::exp(x));
      return out;
    case Function::kLn:
      if (x > 0) push_decimal(std::log(x));
      return out;
    case Function::kSqrt:
      if (x >= 0) push_decimal(std::sqrt(x));
      return out;
    case Function::kLog:
    case Function::kPower: {
      Result<Coll> a = Arg(n, 0, env);
      if (!a) return a;
      Result<const Val*> av = Single(n, *a);
      if (!av) return std::move(av).error();
      if (*av == nullptr) return out;
      Prim q = GetPrim(**av);
      if (q.type != SysType::kInteger && q.type != SysType::kDecimal) {
        return Fail(n, "expected a number argument");
      }
      double y = q.type == SysType::kInteger ? static_cast<double>(q.i) : q.d;
      if (f == Function::kLog) {
        if (x > 0 && y > 0 && y != 1) push_decimal(std::log(x) / std::log(y));
        return out;
      }
      double r = std::pow(x, y);
      if (integer && q.type == SysType::kInteger && q.i >= 0) {
        push_integer(r);
      } else {
        push_decimal(r);
      }
      return out;
    }
    case Function::kRound: {
      int64_t digits = 0;
      if (n.arg_count > 0) {
        Result<std::optional<int64_t>> d = IntegerArg(n, 0, env);
        if (!d) return std::move(d).error();
        if (!*d) return out;
        if (**d < 0) return Fail(n, "round() needs a non-negative precision");
        digits = std::min<int64_t>(**d, 15);
      }
      double scale = std::pow(10.0, static_cast<double>(digits));
      push_decimal(std::round(x * scale) / scale);
      return out;
    }
    default:
      return Fail(n, "unsupported function");
  }
}

Result<Coll> Evaluator::EvalFhir(const Node& n, Function f, std::span<const Val> input,
                                 const Env& env) {
  Coll out;
  switch (f) {
    case Function::kIif: {
      if (input.size() > 1) return Fail(n, "iif() needs at most one input item");
      Env inner = env;
      inner.focus = input;
      Result<Coll> c = Arg(n, 0, inner);
      if (!c) return c;
      Result<std::optional<bool>> t = Truth(n, *c);
      if (!t) return std::move(t).error();
      if (t->value_or(false)) return Arg(n, 1, inner);
      if (n.arg_count > 2) return Arg(n, 2, inner);
      return out;
    }
    case Function::kNot: {
      Result<std::optional<bool>> t = Truth(n, Coll(input.begin(), input.end()));
      if (!t) return std::move(t).error();
      if (*t) out.push_back(Val::Boolean(!**t));
      return out;
    }
    case Function::kIs: {
      Result<const Val*> v = Single(n, input);
      if (!v) return std::move(v).error();
      if (*v != nullptr) out.push_back(Val::Boolean(IsType(**v, p_.types[n.data])));
      return out;
    }
    case Function::kAs:
      for (const Val& v : input) {
        if (IsType(v, p_.types[n.data])) out.push_back(v);
      }
      return out;
    case Function::kChildren:
      for (const Val& v : input) AllChildren(v, out);
      return out;
    case Function::kDescendants: {
      for (const Val& v : input) AllChildren(v, out);
      for (size_t i = 0; i < out.size(); ++i) {
        if (Status s = Charge(n, 1); !s) return std::move(s).error();
        AllChildren(Val(out[i]), out);
      }
      return out;
    }
    case Function::kTrace:
      out.assign(input.begin(), input.end());
      return out;
    case Function::kNow:
      out.push_back(Now());
      return out;
    case Function::kToday:
    case Function::kTimeOfDay: {
      std::optional<DateTime> dt = ParseTemporal(SysType::kDateTime, Now().Text());
      if (!dt) return out;
      if (f == Function::kToday) {
        dt->precision = Precision::kDay;
        out.push_back(Val::Temporal(SysType::kDate, FormatTemporal(SysType::kDate, *dt)));
      } else {
        dt->time_only = true;
        out.push_back(Val::Temporal(SysType::kTime, FormatTemporal(SysType::kTime, *dt)));
      }
      return out;
    }
    case Function::kExtension: {
      Result<std::optional<std::string>> url = StringArg(n, 0, env);
      if (!url) return std::move(url).error();
      if (!*url) return out;
      Coll extensions;
      for (const Val& v : input) Children(v, "extension", extensions);
      for (Val& e : extensions) {
        if (e.node != nullptr && e.node->is_object() && e.node->GetString("url") == **url) {
          out.push_back(std::move(e));
        }
      }
      return out;
    }
    case Function::kResolve:
      for (const Val& v : input) {
        std::string_view ref;
        if (v.is_node() && v.node != nullptr && v.node->is_object()) {
          ref = v.node->GetString("reference");
        } else {
          Prim p = GetPrim(v);
          if (p.type == SysType::kString) ref = p.text;
        }
        if (ref.empty()) continue;
        if (ref[0] == '#') {
          const json::Value* container = resource_.node;
          if (container == nullptr) continue;
          if (ref.size() == 1) {
            out.push_back(resource_);
            continue;
          }
          const json::Value* contained = container->Find("contained");
          if (contained == nullptr || !contained->is_array()) continue;
          for (const json::Value& r : contained->as_array()) {
            if (r.is_object() && r.GetString("id") == ref.substr(1)) {
              out.push_back(Val::Node(&r, nullptr, ResourceTypeOf(r)));
              break;
            }
          }
          continue;
        }
        if (!options_.resolver) continue;
        const json::Value* r = options_.resolver(ref);
        if (r != nullptr) out.push_back(Val::Node(r, nullptr, ResourceTypeOf(*r)));
      }
      return out;
    case Function::kHasValue: {
      bool has =
          input.size() == 1 && input[0].is_node() && input[0].node != nullptr &&
          (input[0].fhir == nullptr ? !input[0].node->is_object() && !input[0].node->is_array()
                                    : input[0].fhir->is_primitive());
      out.push_back(Val::Boolean(has));
      return out;
    }
    case Function::kGetValue: {
      if (input.size() != 1 || !input[0].is_node()) return out;
      Prim p = GetPrim(input[0]);
      switch (p.type) {
        case SysType::kNode:
        case SysType::kQuantity:
          break;
        case SysType::kBoolean:
          out.push_back(Val::Boolean(p.b));
          break;
        case SysType::kInteger:
          out.push_back(Val::Integer(p.i));
          break;
        case SysType::kDecimal:
          out.push_back(Val::Decimal(p.d, std::string(p.text)));
          break;
        case SysType::kString:
          out.push_back(Val::String(std::string(p.text)));
          break;
        default:
          out.push_back(Val::Temporal(p.type, std::string(p.text)));
          break;
      }
      return out;
    }
    case Function::kHtmlChecks: {
      // The narrative rules of R4 (txt-1, txt-2) reduced to what a server can check cheaply:
      // the XHTML is a <div> and has no script.
      bool ok = true;
      for (const Val& v : input) {
        Prim p = GetPrim(v);
        if (p.type != SysType::kString) continue;
        std::string_view s = TrimSpaces(p.text);
        std::string lower = AsciiCase(s, false);
        if (s.substr(0, 4) != "<div" || lower.find("<script") != std::string::npos) ok = false;
      }
      out.push_back(Val::Boolean(ok));
      return out;
    }
    default:
      return Fail(n, "unsupported function");
  }
}

}  // namespace fhirstone::fhirpath::internal
