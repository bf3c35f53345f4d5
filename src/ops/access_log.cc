#include "ops/access_log.h"

#include <algorithm>
#include <random>

#include "common/json.h"
#include "common/strings.h"
#include "common/time.h"

namespace fhirstone::ops {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr size_t kMaxPath = 1024;

// Printable ASCII stays; every other byte becomes %XX (so lines stay valid UTF-8, one line).
void AppendPrintable(std::string_view s, std::string& out) {
  for (unsigned char c : s) {
    if (c > 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
}

std::string Printable(std::string_view s, size_t max) {
  std::string out;
  AppendPrintable(s.substr(0, max), out);
  if (s.size() > max) out += "...";
  return out;
}

bool IsParameterName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-' || c == '$';
  });
}

bool IsRequestId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

void AppendField(std::string_view name, std::string_view value, std::string& out) {
  out += ",\"";
  out += name;
  out += "\":";
  json::WriteString(value, out);
}

}  // namespace

std::string NewRequestId() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  uint64_t v = rng();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i) {
    id[i] = kHex[v & 0xf];
    v >>= 4;
  }
  return id;
}

std::string RequestIdFor(const http::Request& request, bool trust_incoming) {
  if (trust_incoming) {
    std::string_view incoming = Trim(request.Header("X-Request-Id"));
    if (IsRequestId(incoming)) return std::string(incoming);
  }
  return NewRequestId();
}

std::string SafePath(std::string_view target) {
  target = target.substr(0, target.find('#'));
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string out;
  out.reserve(std::min(path.size(), kMaxPath) + 16);
  AppendPrintable(path.substr(0, kMaxPath), out);
  if (path.size() > kMaxPath) out += "...";
  if (q == std::string_view::npos) return out;
  bool first = true;
  for (std::string_view part : Split(target.substr(q + 1), '&')) {
    if (part.empty()) continue;
    out += first ? '?' : '&';
    first = false;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      out += '*';
      continue;
    }
    std::string_view name = part.substr(0, eq);
    out += IsParameterName(name) ? name : std::string_view("*");
    out += "=*";
  }
  return out;
}

std::string AccessLogLine(const AccessLogEntry& entry) {
  std::string out;
  out.reserve(256);
  out += "{\"ts\":";
  json::WriteString(FormatInstant(entry.start_micros), out);
  AppendField("request_id", Printable(entry.request_id, 64), out);
  AppendField("method", Printable(entry.method, 16), out);
  AppendField("path", SafePath(entry.target), out);
  out += ",\"status\":";
  out += std::to_string(entry.status);
  int64_t micros = std::max<int64_t>(0, entry.duration_micros);
  std::string fraction = std::to_string(micros % 1000);
  out += ",\"duration_ms\":";
  out += std::to_string(micros / 1000);
  out += '.';
  out.append(3 - fraction.size(), '0');
  out += fraction;
  if (entry.client_id.empty()) {
    out += ",\"client_id\":null";
  } else {
    AppendField("client_id", Printable(entry.client_id, 256), out);
  }
  AppendField("remote", Printable(entry.remote, 64), out);
  if (entry.response_bytes >= 0) {
    out += ",\"bytes\":";
    out += std::to_string(entry.response_bytes);
  }
  out += '}';
  return out;
}

}  // namespace fhirstone::ops
