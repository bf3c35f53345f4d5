#include "api/error_response.h"

namespace fhirstone::api {
namespace {

const char* IssueCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kUnauthorized:
      return "login";
    case ErrorCode::kForbidden:
      return "forbidden";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kMethodNotAllowed:
      return "not-supported";
    case ErrorCode::kNotAcceptable:
      return "not-supported";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kGone:
      return "deleted";
    case ErrorCode::kPreconditionFailed:
      return "conflict";
    case ErrorCode::kTooLarge:
      return "too-long";
    case ErrorCode::kUnsupportedMediaType:
      return "not-supported";
    case ErrorCode::kUnprocessable:
      return "processing";
    case ErrorCode::kTooManyRequests:
      return "throttled";
    case ErrorCode::kNotSupported:
      return "not-supported";
    case ErrorCode::kUnavailable:
      return "transient";
    case ErrorCode::kInternal:
      return "exception";
  }
  return "exception";
}

}  // namespace

int HttpStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalid:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kMethodNotAllowed:
      return 405;
    case ErrorCode::kNotAcceptable:
      return 406;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kGone:
      return 410;
    case ErrorCode::kPreconditionFailed:
      return 412;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kUnsupportedMediaType:
      return 415;
    case ErrorCode::kUnprocessable:
      return 422;
    case ErrorCode::kTooManyRequests:
      return 429;
    case ErrorCode::kNotSupported:
      return 501;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

json::Value OperationOutcome(const Error& error) {
  json::Array issues;
  const char* severity = error.code() == ErrorCode::kInternal ? "fatal" : "error";
  for (const Issue& i : error.issues()) {
    json::Value issue = json::Value::EmptyObject();
    issue.Set("severity", severity);
    issue.Set("code", IssueCode(error.code()));
    issue.Set("diagnostics", i.message);
    if (!i.expression.empty()) issue.Set("expression", json::Array{json::Value(i.expression)});
    issues.push_back(std::move(issue));
  }
  json::Value oo = json::Value::EmptyObject();
  oo.Set("resourceType", "OperationOutcome");
  oo.Set("issue", std::move(issues));
  return oo;
}

json::Value InformationOutcome(const std::string& message) {
  json::Value issue = json::Value::EmptyObject();
  issue.Set("severity", "information");
  issue.Set("code", "informational");
  issue.Set("diagnostics", message);
  json::Value oo = json::Value::EmptyObject();
  oo.Set("resourceType", "OperationOutcome");
  oo.Set("issue", json::Array{std::move(issue)});
  return oo;
}

http::Response ErrorResponse(const Error& error, bool pretty) {
  http::Response response;
  response.status = HttpStatus(error.code());
  response.SetHeader("Content-Type", "application/fhir+json;charset=utf-8");
  response.body = json::Write(OperationOutcome(error), {.pretty = pretty});
  return response;
}

}  // namespace fhirstone::api
