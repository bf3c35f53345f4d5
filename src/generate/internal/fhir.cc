#include "generate/internal/fhir.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace fhirstone::generate::internal {
namespace {

struct Civil {
  int year, month, day, hour, minute, second;
};

int64_t DayIndex(int64_t micros) {
  return micros >= 0 ? micros / kDay : (micros - kDay + 1) / kDay;
}

Civil ToCivil(int64_t micros) {
  int64_t day_index = DayIndex(micros);
  int64_t secs = (micros - day_index * kDay) / kSecond;
  std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day_index}}};
  return {static_cast<int>(ymd.year()),
          static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day())),
          static_cast<int>(secs / 3600),
          static_cast<int>(secs / 60 % 60),
          static_cast<int>(secs % 60)};
}

// Accented letters of the name tables and what they fold to.
constexpr std::pair<std::string_view, std::string_view> kFolds[] = {
    {"á", "a"},  {"à", "a"}, {"â", "a"}, {"ä", "a"}, {"ã", "a"},  {"å", "a"}, {"ạ", "a"},
    {"ả", "a"},  {"ấ", "a"}, {"ầ", "a"}, {"ậ", "a"}, {"ặ", "a"},  {"Å", "a"}, {"ç", "c"},
    {"é", "e"},  {"è", "e"}, {"ê", "e"}, {"ë", "e"}, {"ễ", "e"},  {"í", "i"}, {"ì", "i"},
    {"î", "i"},  {"ï", "i"}, {"ñ", "n"}, {"ó", "o"}, {"ò", "o"},  {"ô", "o"}, {"ö", "o"},
    {"õ", "o"},  {"ø", "o"}, {"ơ", "o"}, {"ọ", "o"}, {"Ó", "o"},  {"ú", "u"}, {"ù", "u"},
    {"û", "u"},  {"ü", "u"}, {"ư", "u"}, {"ứ", "u"}, {"ł", "l"},  {"Ł", "l"}, {"ś", "s"},
    {"ß", "ss"}, {"đ", "d"}, {"Đ", "d"}, {"ý", "y"}, {"æ", "ae"},
};

}  // namespace

std::string AsciiLetters(std::string_view utf8) {
  std::string out;
  size_t i = 0;
  while (i < utf8.size()) {
    unsigned char c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      if (c >= 'A' && c <= 'Z') out += static_cast<char>(c - 'A' + 'a');
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out += static_cast<char>(c);
      ++i;
      continue;
    }
    bool folded = false;
    for (const auto& [from, to] : kFolds) {
      if (utf8.substr(i).starts_with(from)) {
        out += to;
        i += from.size();
        folded = true;
        break;
      }
    }
    if (folded) continue;
    ++i;  // skip the rest of an unknown sequence byte by byte
    while (i < utf8.size() && (static_cast<unsigned char>(utf8[i]) & 0xC0) == 0x80) ++i;
  }
  return out;
}

json::Value Coding(const Code& code) {
  Obj o;
  o.Add("system", code.system).Add("code", code.code);
  if (!code.display.empty()) o.Add("display", code.display);
  return o.Build();
}

json::Value Concept(const Code& code) {
  Obj o;
  o.Add("coding", List(Coding(code)));
  if (!code.display.empty()) o.Add("text", code.display);
  return o.Build();
}

json::Value ConceptNoText(const Code& code) {
  return Obj().Add("coding", List(Coding(code))).Build();
}

json::Value Ref(std::string_view reference) { return Obj().Add("reference", reference).Build(); }

json::Value Ref(std::string_view reference, std::string_view display) {
  return Obj().Add("reference", reference).Add("display", display).Build();
}

std::string FixedText(double value, int places) {
  int64_t scale = 1;
  for (int i = 0; i < places; ++i) scale *= 10;
  int64_t n = std::llround(value * static_cast<double>(scale));
  std::string out;
  if (n < 0) {
    out += '-';
    n = -n;
  }
  out += std::to_string(n / scale);
  if (places > 0) {
    std::string frac = std::to_string(n % scale);
    out += '.';
    out.append(static_cast<size_t>(places) - frac.size(), '0');
    out += frac;
  }
  return out;
}

json::Value Decimal(double value, int places) {
  return json::Value::NumberText(FixedText(value, places));
}

json::Value Integer(int64_t value) { return json::Value::Number(value); }

json::Value Quantity(double value, int places, std::string_view unit, std::string_view ucum) {
  return Obj()
      .Add("value", Decimal(value, places))
      .Add("unit", unit)
      .Add("system", kUcum)
      .Add("code", ucum)
      .Build();
}

json::Value Money(int64_t cents) {
  std::string fraction = std::to_string(cents % 100);
  std::string text = std::to_string(cents / 100) + (fraction.size() == 1 ? ".0" : ".") + fraction;
  return Obj().Add("value", json::Value::NumberText(text)).Add("currency", "USD").Build();
}

std::string FormatDate(int64_t micros) {
  Civil c = ToCivil(micros);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", c.year, c.month, c.day);
  return buf;
}

std::string FormatDateTime(int64_t micros) {
  Civil c = ToCivil(micros);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", c.year, c.month, c.day, c.hour,
                c.minute, c.second);
  return buf;
}

int MonthOf(int64_t micros) { return ToCivil(micros).month; }

int YearOf(int64_t micros) { return ToCivil(micros).year; }

int64_t StartOfDay(int64_t micros) { return DayIndex(micros) * kDay; }

}  // namespace fhirstone::generate::internal
