// A small synchronous HTTP/1.1 client for tests: Fetch() (one connection per call), Client (one
// keep-alive connection for repeated requests) and raw helpers for abuse tests (arbitrary bytes
// in, whatever comes back out). Every call has a deadline, so a misbehaving server fails a test
// instead of hanging it. Not for production use. Client is not thread-safe; the free functions are.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/message.h"

namespace fhirstone::test {

inline constexpr std::chrono::milliseconds kDefaultTimeout{5000};

// Sends `request` on a new connection and reads the answer. Adds Host (and Content-Length when a
// body is present or the method is POST/PUT/PATCH) unless the request has them. An error when the
// server cannot be reached, closes early, answers malformed or not within `timeout`.
Result<http::Response> Fetch(const std::string& host, uint16_t port, http::Request request,
                             std::chrono::milliseconds timeout = kDefaultTimeout);

// One keep-alive connection, opened on first use and reopened after the server closed it.
class Client {
 public:
  Client(std::string host, uint16_t port, std::chrono::milliseconds timeout = kDefaultTimeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<http::Response> Send(http::Request request);
  // How many connections this client has opened so far (1 after any number of requests on a
  // connection the server kept alive).
  int connections_opened() const;
  // Whether the last answer left the connection open.
  bool is_open() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Connects, writes `bytes`, optionally shuts down the sending side, then returns everything
// received until the server closes or `timeout` (from the start) passes. "" when the connection
// fails.
std::string SendRaw(const std::string& host, uint16_t port, std::string bytes,
                    std::chrono::milliseconds timeout, bool half_close_after_send = false);

// The complete responses at the start of `raw` (as returned by SendRaw), in order; parsing stops
// at the first incomplete or malformed one. Not for answers to HEAD requests.
std::vector<http::Response> ParseResponses(std::string_view raw);

// Whether a TCP connection to host:port can be opened right now (closed again at once).
bool CanConnect(const std::string& host, uint16_t port);

// A request with the given method, target and body (no headers).
http::Request MakeRequest(std::string method, std::string target, std::string body = {});

}  // namespace fhirstone::test
