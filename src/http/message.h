// http::Request and http::Response: plain HTTP/1.1 messages as the layers above see them, free of
// Beast so that api/ and server/ compile without it. Header names compare case-insensitively.
// Value types; thread-compatible.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fhirstone::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The value of the first header named `name` (case-insensitive), or "" when absent.
std::string_view FindHeader(const Headers& headers, std::string_view name);
bool HasHeader(const Headers& headers, std::string_view name);

struct Request {
  std::string method;  // "GET", "POST", ... as sent
  std::string target;  // the request target as sent: path and query, still percent-encoded
  Headers headers;
  std::string body;
  std::string remote_address;  // peer IP, for logs and limits
  std::string request_id;      // set by the server for logs, audit and X-Request-Id

  std::string_view Header(std::string_view name) const { return FindHeader(headers, name); }
  // The target before '?', and after it ("" when absent).
  std::string_view Path() const;
  std::string_view Query() const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  void SetHeader(std::string name, std::string value);
  std::string_view Header(std::string_view name) const { return FindHeader(headers, name); }
};

// Answers one request. Called on a server I/O thread, concurrently from several threads.
using Handler = std::function<Response(Request&)>;

// Builds the answer for a request the transport refuses before any handler sees it: 400 for a
// malformed request, 408 for a timeout, 413 for a body over the limit, 431 for headers too large.
using TransportErrorRenderer = std::function<Response(int status, std::string_view message)>;

}  // namespace fhirstone::http
