// Request-target parsing with Boost.URL (percent-decoding and query splitting, RFC 3986).
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>

#include "api/internal/request.h"

namespace fhirstone::api {

namespace {

// Clients commonly send characters that RFC 3986 does not allow unencoded in a query (`|` in
// token searches, spaces, quotes): encode them before parsing, as lenient servers do.
std::string EncodeLoosely(std::string_view target) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  std::string out;
  out.reserve(target.size() + 16);
  for (size_t i = 0; i < target.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(target[i]);
    bool allowed = std::isalnum(c) ||
                   std::string_view("-._~!$&'()*+,;=:@/?").find(c) != std::string_view::npos ||
                   (c == '%' && i + 2 < target.size() && hex(target[i + 1]) && hex(target[i + 2]));
    if (allowed) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace

Result<Target> ParseTarget(std::string_view target) {
  std::string loose;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) {
    loose = EncodeLoosely(target);
    parsed = boost::urls::parse_origin_form(loose);
  }
  if (!parsed) return Error::Invalid("Malformed request target: " + parsed.error().message());
  Target out;
  for (auto segment : parsed->segments()) out.segments.emplace_back(segment);
  // A trailing slash yields an empty last segment: /fhir/Patient/ is /fhir/Patient.
  while (!out.segments.empty() && out.segments.back().empty()) out.segments.pop_back();
  for (auto param : parsed->params()) {
    out.params.emplace_back(param.key, param.has_value ? param.value : std::string());
  }
  return out;
}

std::string EncodeQueryValue(std::string_view value) {
  static constexpr auto kSafe = boost::urls::unreserved_chars;
  return boost::urls::encode(value, kSafe);
}

std::string WithQuery(std::string url, const Params& params) {
  char sep = '?';
  for (const auto& [key, value] : params) {
    url += sep;
    url += EncodeQueryValue(key);
    url += '=';
    url += EncodeQueryValue(value);
    sep = '&';
  }
  return url;
}

}  // namespace fhirstone::api
