// Request-target parsing with Boost.URL (percent-decoding and query splitting, RFC 3986).
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url_view.hpp>

#include "api/internal/request.h"

namespace fhirstone::api {

Result<Target> ParseTarget(std::string_view target) {
  auto parsed = boost::urls::parse_origin_form(target);
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

}  // namespace fhirstone::api
