// Health endpoints for orchestrators and load balancers: GET /healthz says the process answers
// (liveness, never touches the database); GET /readyz says it can serve (readiness: the caller's
// `ping` reaches the database). JSON bodies, never cached. The ping's error message is shown to
// anyone who can reach /readyz: it must not carry secrets (say "database unreachable", log the
// details). Pure functions, thread-safe as far as `ping` is.
#pragma once

#include <functional>

#include "common/result.h"
#include "http/message.h"

namespace fhirstone::ops {

// 200 {"status":"ok"}.
http::Response Healthz();

// 200 {"status":"ready"} when `ping` succeeds; 503 {"status":"unavailable","reason":"..."} with
// Retry-After: 5 when it fails or is empty. `ping` should be quick (e.g. SELECT 1).
http::Response Readyz(const std::function<Status()>& ping);

}  // namespace fhirstone::ops
