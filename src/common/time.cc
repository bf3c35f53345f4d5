#include "common/time.h"

#include <chrono>
#include <cstdio>

namespace fhirstone {
namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;
constexpr const char* kWeekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct Civil {
  int year, month, day, hour, minute, second;
  int64_t micros;  // within the second
  int weekday;
};

Civil ToCivil(int64_t micros) {
  int64_t day_index =
      micros >= 0 ? micros / kMicrosPerDay : (micros - kMicrosPerDay + 1) / kMicrosPerDay;
  int64_t in_day = micros - day_index * kMicrosPerDay;
  sys_days sd{days{day_index}};
  year_month_day ymd{sd};
  std::chrono::weekday wd{sd};
  Civil c;
  c.year = static_cast<int>(ymd.year());
  c.month = static_cast<int>(static_cast<unsigned>(ymd.month()));
  c.day = static_cast<int>(static_cast<unsigned>(ymd.day()));
  int64_t secs = in_day / kMicrosPerSecond;
  c.hour = static_cast<int>(secs / 3600);
  c.minute = static_cast<int>(secs / 60 % 60);
  c.second = static_cast<int>(secs % 60);
  c.micros = in_day % kMicrosPerSecond;
  c.weekday = static_cast<int>(wd.c_encoding());
  return c;
}

std::optional<int64_t> DaysFromCivil(int y, int m, int d) {
  year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(m)},
                     std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days{ymd}.time_since_epoch().count();
}

bool Digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::string FormatInstant(int64_t micros) {
  Civil c = ToCivil(micros);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year, c.month, c.day,
                c.hour, c.minute, c.second, static_cast<int>(c.micros / 1000));
  return buf;
}

std::string FormatHttpDate(int64_t micros) {
  Civil c = ToCivil(micros);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kWeekdays[c.weekday], c.day,
                kMonths[c.month - 1], c.year, c.hour, c.minute, c.second);
  return buf;
}

std::optional<int64_t> ParseHttpDate(std::string_view s) {
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  if (s.size() != 29 || s[3] != ',' || s.substr(25) != " GMT") return std::nullopt;
  int day, year, hour, minute, second;
  if (!Digits(s, 5, 2, day) || !Digits(s, 12, 4, year) || !Digits(s, 17, 2, hour) ||
      !Digits(s, 20, 2, minute) || !Digits(s, 23, 2, second))
    return std::nullopt;
  int month = 0;
  for (int i = 0; i < 12; ++i)
    if (s.substr(8, 3) == kMonths[i]) month = i + 1;
  if (month == 0 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  auto d = DaysFromCivil(year, month, day);
  if (!d) return std::nullopt;
  return (*d * 86400 + hour * 3600 + minute * 60 + second) * kMicrosPerSecond;
}

std::optional<TimeRange> ParseFhirDateTime(std::string_view s) {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  if (!Digits(s, 0, 4, year)) return std::nullopt;
  if (s.size() == 4) {
    auto lo = DaysFromCivil(year, 1, 1), hi = DaysFromCivil(year + 1, 1, 1);
    return TimeRange{*lo * kMicrosPerDay, *hi * kMicrosPerDay};
  }
  if (s[4] != '-' || !Digits(s, 5, 2, month) || month < 1 || month > 12) return std::nullopt;
  if (s.size() == 7) {
    auto lo = DaysFromCivil(year, month, 1);
    auto hi = month == 12 ? DaysFromCivil(year + 1, 1, 1) : DaysFromCivil(year, month + 1, 1);
    return TimeRange{*lo * kMicrosPerDay, *hi * kMicrosPerDay};
  }
  if (s.size() < 10 || s[7] != '-' || !Digits(s, 8, 2, day)) return std::nullopt;
  auto d = DaysFromCivil(year, month, day);
  if (!d) return std::nullopt;
  if (s.size() == 10) return TimeRange{*d * kMicrosPerDay, (*d + 1) * kMicrosPerDay};
  if (s[10] != 'T' || s.size() < 16 || !Digits(s, 11, 2, hour) || s[13] != ':' ||
      !Digits(s, 14, 2, minute) || hour > 23 || minute > 59)
    return std::nullopt;
  size_t pos = 16;
  int64_t unit = 60 * kMicrosPerSecond;
  int64_t fraction = 0;
  if (pos < s.size() && s[pos] == ':') {
    if (!Digits(s, pos + 1, 2, second) || second > 60) return std::nullopt;
    pos += 3;
    unit = kMicrosPerSecond;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      size_t start = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (pos - start < 6) {
          fraction = fraction * 10 + (s[pos] - '0');
          unit /= 10;
        }
        ++pos;
      }
      if (pos == start) return std::nullopt;
      fraction *= unit;
    }
  }
  int64_t offset = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
    } else if ((s[pos] == '+' || s[pos] == '-') && s.size() == pos + 6 && s[pos + 3] == ':') {
      int oh, om;
      if (!Digits(s, pos + 1, 2, oh) || !Digits(s, pos + 4, 2, om) || oh > 14 || om > 59)
        return std::nullopt;
      offset = (oh * 3600 + om * 60) * kMicrosPerSecond * (s[pos] == '+' ? 1 : -1);
    } else {
      return std::nullopt;
    }
  }
  int64_t low = *d * kMicrosPerDay + (hour * 3600 + minute * 60 + second) * kMicrosPerSecond +
                fraction - offset;
  return TimeRange{low, low + unit};
}

}  // namespace fhirstone
