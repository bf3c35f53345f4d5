// http::Get: a small outbound HTTP/1.1 client for the server's own needs (fetching a client's
// JWKS from its jwks_uri): http and https (TLS 1.2+, the system's CA store, host name checked),
// one request per connection, a deadline for the whole exchange and a limit on the body size.
// Free function; thread-safe (each call has its own io_context).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"
#include "http/message.h"

namespace fhirstone::http {

struct FetchOptions {
  std::chrono::milliseconds timeout{5000};
  size_t max_body_bytes = 1024 * 1024;
  std::string accept = "application/json";
  // https: a PEM file of further CAs to trust besides the system's (e.g. a test's own CA).
  std::string ca_file;
};

// GETs `url` (http:// or https://). Error::Unavailable when the server cannot be reached, answers
// too slowly or too much, or TLS fails; Error::Invalid for a malformed URL or an unusable
// options.ca_file. Any status is returned as a Response.
Result<Response> Get(std::string_view url, const FetchOptions& options = {});

}  // namespace fhirstone::http
