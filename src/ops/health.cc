#include "ops/health.h"

#include <string>

#include "common/json.h"

namespace fhirstone::ops {
namespace {

http::Response Json(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.SetHeader("Content-Type", "application/json");
  response.SetHeader("Cache-Control", "no-store");
  response.body = std::move(body);
  return response;
}

}  // namespace

http::Response Healthz() { return Json(200, R"({"status":"ok"})"); }

http::Response Readyz(const std::function<Status()>& ping) {
  Status status = Error::Unavailable("The server is starting");
  if (ping) {
    try {
      status = ping();
    } catch (...) {  // a readiness probe answers whatever the check does
      status = Error::Unavailable("The readiness check failed");
    }
  }
  if (status) return Json(200, R"({"status":"ready"})");
  std::string body = R"({"status":"unavailable","reason":)";
  json::WriteString(status.error().message(), body);
  body += '}';
  http::Response response = Json(503, std::move(body));
  response.SetHeader("Retry-After", "5");
  return response;
}

}  // namespace fhirstone::ops
