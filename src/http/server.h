// http::Server: an HTTP/1.1 server (Boost.Beast, C++20 coroutines) that runs a Handler for each
// request on a pool of I/O threads. It owns its io_context and threads. Keep-alive, pipelining-safe
// sequential processing per connection, limits (body size, header size, idle and read timeouts),
// and a graceful Stop(): stop accepting, let in-flight requests finish, then join the threads.
// It speaks either plain HTTP or, given a certificate and key, only HTTPS (TLS 1.2+, with HSTS);
// plain HTTP is refused on any address but loopback unless explicitly allowed.
// Start/Stop are called from one controlling thread; the handler runs concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/message.h"

namespace fhirstone::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see Server::port())
  int threads = 2;
  // Threads that run the handler for requests other than GET and HEAD (writes, which may wait for
  // a group commit) so that they neither block the I/O threads nor limit how many writes are in
  // flight to `threads`. 0: every handler runs on the I/O thread.
  int blocking_threads = 0;
  // Requests that `offload` picks (long ones: a search that takes milliseconds would hold an I/O
  // thread, and every connection it serves, that long) run on `offload_threads` threads of their
  // own, one at a time on each, in the order they came; the I/O threads go on with the others.
  // 0 threads or no predicate: they run as any other request.
  int offload_threads = 0;
  std::function<bool(const Request&)> offload;
  size_t max_body_bytes = 16 * 1024 * 1024;
  size_t max_header_bytes = 64 * 1024;
  std::chrono::milliseconds read_timeout{30000};    // to receive a whole request once started
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for the next request
  std::chrono::milliseconds shutdown_grace{10000};  // how long Stop() waits for in-flight work
  std::string server_header = "Fhirstone";

  // TLS (--tls-cert, --tls-key): PEM files with the certificate chain (leaf first) and its
  // unencrypted private key. When both are set the server speaks only HTTPS: TLS 1.2 and 1.3,
  // forward-secret AEAD ciphers, and Strict-Transport-Security on every answer unless the handler
  // sets its own. Setting only one of them is an error. The files are read once, by Start().
  std::string tls_cert_file;
  std::string tls_key_file;
  // Without TLS, Start() refuses a host that is not a loopback address (127.0.0.0/8, ::1,
  // "localhost"; 0.0.0.0 and :: are public) unless this is set (--insecure-http, e.g. behind a
  // proxy that terminates TLS).
  bool allow_plain_http_on_public = false;
};

class Server {
 public:
  virtual ~Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the TLS certificate and key (if any), binds, listens and starts the I/O threads; returns
  // once the port is open. Error::Invalid for unusable TLS files (naming the file) and for plain
  // HTTP on a public address; Error::Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler,
                                               TransportErrorRenderer render_error);

  // The bound port (useful when options.port was 0).
  virtual uint16_t port() const = 0;
  // Stops accepting, waits (up to shutdown_grace) for in-flight requests, closes idle
  // connections and joins the threads. Idempotent.
  virtual void Stop() = 0;
  // Blocks until SIGINT or SIGTERM arrives (handled on the server's own io_context).
  virtual void WaitForSignal() = 0;

 protected:
  Server() = default;
};

}  // namespace fhirstone::http
