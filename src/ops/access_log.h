// Access logs: one JSON line per answered request, with a request id that is also returned to
// the caller as X-Request-Id. A line holds the time, request id, method, a safe path, status,
// duration, client_id and remote address, and nothing else: never a header (so never a token or
// cookie), never a body, never a query value (values may be PHI, passwords, codes or tokens).
// Every string is reduced to printable ASCII (other bytes are %-escaped) and JSON-escaped, so a
// line is always one valid JSON document on one line.
// Pure functions (NewRequestId uses a per-thread generator), thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"

namespace fhirstone::ops {

// 16 lowercase hex digits (64 random bits from a per-thread generator seeded by the OS).
std::string NewRequestId();

// The request's id: its X-Request-Id when `trust_incoming` (set by a proxy in front of us) and
// well-formed (1 to 64 of A-Z a-z 0-9 . _ : -), else NewRequestId().
std::string RequestIdFor(const http::Request& request, bool trust_incoming);

// The target's path and the NAMES of its query parameters, every value replaced by "*":
// "/fhir/Patient?name=smith&birthdate=1970" -> "/fhir/Patient?name=*&birthdate=*". A part
// without '=' and a name that does not look like one (1 to 64 of A-Z a-z 0-9 _ . : - $) are
// shown as "*" too, since they may be a value. A path longer than 1024 bytes is cut and ends
// with "...". Bytes outside printable ASCII are %-escaped.
std::string SafePath(std::string_view target);

struct AccessLogEntry {
  int64_t start_micros = 0;  // when the request arrived (Unix µs): "ts"
  std::string request_id;
  std::string method;
  std::string target;  // as sent; logged only through SafePath
  int status = 0;
  int64_t duration_micros = 0;  // logged as "duration_ms" with three decimals
  std::string client_id;        // "" when anonymous: logged as null
  std::string remote;           // the client address
  int64_t response_bytes = -1;  // the body's size; omitted when < 0
};

// {"ts":"2026-11-29T02:08:02.123Z","request_id":"…","method":"GET","path":"/fhir/Patient?name=*",
//  "status":200,"duration_ms":12.345,"client_id":"app"|null,"remote":"10.0.0.1"[,"bytes":123]}
// without a trailing newline.
std::string AccessLogLine(const AccessLogEntry& entry);

}  // namespace fhirstone::ops
