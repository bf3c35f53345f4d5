// The one mapping from Error to HTTP: status code, and an OperationOutcome body listing every
// issue with its severity, code (https://hl7.org/fhir/R4/valueset-issue-type.html), diagnostics and
// FHIRPath expression. Thread-safe (pure functions).
#pragma once

#include <string>

#include "common/error.h"
#include "common/json.h"
#include "http/message.h"

namespace fhirstone::api {

int HttpStatus(ErrorCode code);
json::Value OperationOutcome(const Error& error);
// An OperationOutcome with one informational issue (e.g. for Prefer: return=OperationOutcome).
json::Value InformationOutcome(const std::string& message);
// The full response: status, Content-Type application/fhir+json and the OperationOutcome.
http::Response ErrorResponse(const Error& error, bool pretty = false);

}  // namespace fhirstone::api
