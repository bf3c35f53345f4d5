#include "common/error.h"

#include <utility>

namespace fhirstone {

Error::Error(ErrorCode code, std::string message, std::string expression) : code_(code) {
  issues_.push_back({std::move(message), std::move(expression)});
}

Error Error::Invalid(std::string m, std::string e) {
  return {ErrorCode::kInvalid, std::move(m), std::move(e)};
}
Error Error::Unauthorized(std::string m) { return {ErrorCode::kUnauthorized, std::move(m)}; }
Error Error::Forbidden(std::string m) { return {ErrorCode::kForbidden, std::move(m)}; }
Error Error::NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
Error Error::MethodNotAllowed(std::string m) {
  return {ErrorCode::kMethodNotAllowed, std::move(m)};
}
Error Error::NotAcceptable(std::string m) { return {ErrorCode::kNotAcceptable, std::move(m)}; }
Error Error::Conflict(std::string m) { return {ErrorCode::kConflict, std::move(m)}; }
Error Error::Gone(std::string m) { return {ErrorCode::kGone, std::move(m)}; }
Error Error::PreconditionFailed(std::string m) {
  return {ErrorCode::kPreconditionFailed, std::move(m)};
}
Error Error::TooLarge(std::string m) { return {ErrorCode::kTooLarge, std::move(m)}; }
Error Error::UnsupportedMediaType(std::string m) {
  return {ErrorCode::kUnsupportedMediaType, std::move(m)};
}
Error Error::Unprocessable(std::string m, std::string e) {
  return {ErrorCode::kUnprocessable, std::move(m), std::move(e)};
}
Error Error::TooManyRequests(std::string m) { return {ErrorCode::kTooManyRequests, std::move(m)}; }
Error Error::NotSupported(std::string m) { return {ErrorCode::kNotSupported, std::move(m)}; }
Error Error::Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
Error Error::Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

void Error::AddIssue(std::string message, std::string expression) {
  issues_.push_back({std::move(message), std::move(expression)});
}

}  // namespace fhirstone
