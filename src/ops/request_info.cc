#include "ops/request_info.h"

#include <algorithm>
#include <vector>

#include "common/strings.h"
#include "fhir/model.h"

namespace fhirstone::ops {
namespace {

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  for (std::string_view s : Split(path, '/')) {
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

bool IsGet(std::string_view method) { return method == "GET" || method == "HEAD"; }

std::string_view Type(std::string_view segment) {
  return fhir::IsResourceType(segment) ? segment : std::string_view();
}

RequestLabels ClassifyFhir(std::string_view method, std::vector<std::string_view> s) {
  // s: the segments after "fhir".
  auto op = [](std::string_view x) { return x.starts_with('$'); };
  if (s.empty()) {
    if (IsGet(method)) return {"search-system", ""};
    if (method == "POST") return {"batch-transaction", ""};
    return {"other", ""};
  }
  if (s.size() == 1) {
    if (s[0] == "metadata") return {"capabilities", ""};
    if (s[0] == "_history") return {"history-system", ""};
    if (s[0] == "_search") return {"search-system", ""};
    if (op(s[0])) return {"operation", ""};
    std::string_view type = Type(s[0]);
    if (type.empty()) return {"other", ""};
    if (IsGet(method)) return {"search-type", type};
    if (method == "POST") return {"create", type};
    if (method == "PUT") return {"update", type};
    if (method == "DELETE") return {"delete", type};
    if (method == "PATCH") return {"patch", type};
    return {"other", type};
  }
  std::string_view type = Type(s[0]);
  if (type.empty()) return {"other", ""};
  if (s.size() == 2) {
    if (s[1] == "_search") return {"search-type", type};
    if (s[1] == "_history") return {"history-type", type};
    if (op(s[1])) return {"operation", type};
    if (IsGet(method)) return {"read", type};
    if (method == "PUT") return {"update", type};
    if (method == "DELETE") return {"delete", type};
    if (method == "PATCH") return {"patch", type};
    return {"other", type};
  }
  if (s.size() == 3) {
    if (s[2] == "_history") return {"history-instance", type};
    if (op(s[2])) return {"operation", type};
    // Compartment search: [type]/[id]/[compartment type] or /*.
    if (s[2] == "*") return {"search-type", ""};
    std::string_view inner = Type(s[2]);
    if (!inner.empty()) return {"search-type", inner};
    return {"other", type};
  }
  if (s.size() == 4 && s[2] == "_history") return {"vread", type};
  if (s.size() == 4 && s[3] == "_search") {
    std::string_view inner = Type(s[2]);
    return {"search-type", inner};
  }
  return {"other", type};
}

RequestLabels ClassifyAuth(std::string_view path) {
  static constexpr std::string_view kNamed[] = {"authorize", "token",   "introspect", "revoke",
                                                "login",     "consent", "launch",     "jwks"};
  std::string_view rest = path.substr(6);  // after "/auth/"
  for (std::string_view name : kNamed) {
    if (rest == name) return {name, ""};
  }
  return {"auth", ""};
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding ('+' is a space); malformed escapes stay as sent.
std::string Decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = Hex(s[i + 1]), lo = Hex(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

bool ExpensiveParameter(std::string_view raw_name, std::string_view raw_value) {
  std::string name = Decode(raw_name);
  std::string_view n = name;
  std::string_view base = n.substr(0, n.find(':'));
  static constexpr std::string_view kCostly[] = {"_include", "_revinclude", "_has",  "_text",
                                                 "_content", "_filter",     "_query"};
  for (std::string_view c : kCostly) {
    if (base == c) return true;
  }
  if (n.find('.') != std::string_view::npos) return true;  // a chain
  if (size_t colon = n.find(':'); colon != std::string_view::npos) {
    std::string_view modifier = n.substr(colon + 1);
    static constexpr std::string_view kModifiers[] = {"contains", "text", "above",
                                                      "below",    "in",   "not-in"};
    for (std::string_view m : kModifiers) {
      if (modifier == m) return true;
    }
  }
  if (base == "_total") return EqualsIgnoreCase(Trim(Decode(raw_value)), "accurate");
  if (base == "_count") {
    auto count = ParseInt64(Trim(Decode(raw_value)));
    return !count || *count > 100;
  }
  return false;
}

bool AnyExpensive(std::string_view query) {
  for (std::string_view part : Split(query, '&')) {
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string_view name = part.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    if (ExpensiveParameter(name, value)) return true;
  }
  return false;
}

bool IsAddress(std::string_view s) {
  if (s.empty() || s.size() > 45) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
           c == ':';
  });
}

}  // namespace

RequestLabels ClassifyRequest(std::string_view method, std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path == "/fhir/.well-known/smart-configuration" ||
      path == "/fhir/.well-known/openid-configuration")
    return {"smart-configuration", ""};
  if (path == "/fhir" || path.starts_with("/fhir/")) {
    std::vector<std::string_view> segments = Segments(path.substr(5));
    return ClassifyFhir(method, std::move(segments));
  }
  if (path.starts_with("/auth/")) return ClassifyAuth(path);
  if (path.starts_with("/bulk/")) return {"bulk", ""};
  if (path == "/apps" || path.starts_with("/apps/")) return {"apps", ""};
  if (path == "/" || path == "/launcher" || path.starts_with("/launcher/")) return {"sandbox", ""};
  if (path.starts_with("/static/")) return {"static", ""};
  if (path == "/metrics") return {"metrics", ""};
  if (path == "/healthz" || path == "/readyz") return {"health", ""};
  return {"other", ""};
}

bool IsExpensiveSearch(std::string_view method, std::string_view target,
                       std::string_view form_body) {
  RequestLabels labels = ClassifyRequest(method, target);
  if (labels.interaction == "search-system") return true;
  if (labels.interaction != "search-type") return false;
  size_t q = target.find('?');
  if (q != std::string_view::npos && AnyExpensive(target.substr(q + 1))) return true;
  return method == "POST" && AnyExpensive(form_body);
}

std::string_view ClientAddress(const http::Request& request,
                               std::span<const std::string> trusted_proxies) {
  auto trusted = [&](std::string_view address) {
    return std::find(trusted_proxies.begin(), trusted_proxies.end(), address) !=
           trusted_proxies.end();
  };
  std::string_view current = request.remote_address;
  if (!trusted(current)) return current;
  // Every X-Forwarded-For line, in order, is one list; walk it from the right.
  std::vector<std::string_view> hops;
  for (const auto& [name, value] : request.headers) {
    if (!EqualsIgnoreCase(name, "X-Forwarded-For")) continue;
    for (std::string_view hop : Split(value, ',')) hops.push_back(Trim(hop));
  }
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!IsAddress(*it)) return current;
    current = *it;
    if (!trusted(current)) return current;
  }
  return current;
}

}  // namespace fhirstone::ops
