// Error: the one failure type of Fhirstone. A small code set (after the HTTP/FHIR outcomes it maps
// to) with named factories, a human message and, where it applies, the FHIRPath expression of the
// element at fault. Further issues may be attached so that one Error can report several problems.
// Value type; thread-compatible.
#pragma once

#include <string>
#include <vector>

namespace fhirstone {

enum class ErrorCode {
  kInvalid,               // 400: the request is malformed
  kUnauthorized,          // 401
  kForbidden,             // 403
  kNotFound,              // 404
  kMethodNotAllowed,      // 405
  kNotAcceptable,         // 406: no representation the client accepts
  kConflict,              // 409
  kGone,                  // 410: deleted
  kPreconditionFailed,    // 412
  kTooLarge,              // 413
  kUnsupportedMediaType,  // 415
  kUnprocessable,         // 422: well-formed but fails validation
  kTooManyRequests,       // 429
  kNotSupported,          // 501: the server does not implement this
  kUnavailable,           // 503
  kInternal,              // 500
};

// One problem: what went wrong and where (a FHIRPath expression, may be empty).
struct Issue {
  std::string message;
  std::string expression;
};

class Error {
 public:
  Error(ErrorCode code, std::string message, std::string expression = {});

  static Error Invalid(std::string message, std::string expression = {});
  static Error Unauthorized(std::string message);
  static Error Forbidden(std::string message);
  static Error NotFound(std::string message);
  static Error MethodNotAllowed(std::string message);
  static Error NotAcceptable(std::string message);
  static Error Conflict(std::string message);
  static Error Gone(std::string message);
  static Error PreconditionFailed(std::string message);
  static Error TooLarge(std::string message);
  static Error UnsupportedMediaType(std::string message);
  static Error Unprocessable(std::string message, std::string expression = {});
  static Error TooManyRequests(std::string message);
  static Error NotSupported(std::string message);
  static Error Unavailable(std::string message);
  static Error Internal(std::string message);

  ErrorCode code() const { return code_; }
  // The first issue's message.
  const std::string& message() const { return issues_.front().message; }
  const std::vector<Issue>& issues() const { return issues_; }
  void AddIssue(std::string message, std::string expression = {});

 private:
  ErrorCode code_;
  std::vector<Issue> issues_;  // never empty
};

}  // namespace fhirstone
