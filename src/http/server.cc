// The Beast/Asio implementation of http::Server.
//
// One io_context runs on options.threads threads. Every connection is one C++20 coroutine on its
// own strand, so a connection's state is only ever touched by one thread at a time; the handler is
// called inline on that strand (requests of one connection are answered strictly in order, which
// makes pipelining safe). A connection goes through three phases per request:
//   idle     waiting for the first byte of the next request: tcp_stream deadline idle_timeout,
//            expiry closes silently; Stop() closes idle connections at once.
//   reading  from the first byte until the request is complete: a separate timer (read_timeout)
//            cancels the read without closing the socket, so that a 408 can still be written.
//            This is also the span counted as "in flight" (until the response is written).
//   writing  tcp_stream deadline read_timeout (there is no separate write timeout option).
// Refused requests (400/408/413/431) are answered through the TransportErrorRenderer and the
// connection is then closed gracefully: shut down our side, discard what the peer still sends for
// a short while (so the kernel does not reset the connection before the peer read the answer).
//
// TLS: the connection logic is written once, as templates over the stream type (a plain
// beast::tcp_stream or a beast::ssl_stream over one); the TLS variant first reads the client's
// first bytes (a plain HTTP request gets a 400 in clear text and the close), then completes the
// handshake, both within read_timeout, then runs the same Serve loop. Timeouts, cancellation and
// closing always act on the TCP layer underneath. A graceful TLS close sends close_notify first.
#include "http/server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/thread.h"

namespace fhirstone::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Parser = bhttp::request_parser<bhttp::string_body>;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
template <typename Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;
using namespace std::chrono_literals;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
// Buffers grown beyond this by a large request are given back before the connection idles.
constexpr size_t kKeepBufferBytes = 64 * 1024;
// A graceful close discards at most this much of what the peer still sends.
constexpr size_t kMaxDrainBytes = 1024 * 1024;
constexpr std::chrono::milliseconds kMaxLinger = 1000ms;
// HSTS (RFC 6797): one year, this host only (subdomains may be other services).
constexpr char kHstsValue[] = "max-age=31536000";
// TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers only. TLS 1.3 keeps
// OpenSSL's default suites (all AEAD).
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kTlsGroups[] = "X25519:P-256:P-384";

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }

bool ContainsCloseToken(std::string_view value) {
  // Connection is a comma-separated token list; "close" is the only token that matters here.
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find(',', pos);
    if (end == std::string_view::npos) end = value.size();
    std::string_view token = value.substr(pos, end - pos);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (beast::iequals(beast::string_view(token.data(), token.size()), "close")) return true;
    pos = end + 1;
  }
  return false;
}

// RFC 7230 token characters, the only ones allowed in a field name.
bool IsFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// A field value must not split the header: CR, LF and NUL become spaces.
void SanitizeFieldValue(std::string& value) {
  for (char& c : value) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
}

// The IMF-fixdate of now (RFC 7231 7.1.1.1), formatted at most once a second per thread.
const std::string& HttpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  thread_local std::time_t cached_second = -1;
  thread_local std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char text[40];
    std::snprintf(text, sizeof(text), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                  tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    cached = text;
    cached_second = now;
  }
  return cached;
}

std::string PeerAddress(const tcp::socket& socket) {
  beast::error_code ec;
  tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return {};
  asio::ip::address address = peer.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

Request ToRequest(bhttp::request<bhttp::string_body>&& message, const std::string& remote_address) {
  Request request;
  request.method = ToString(message.method_string());
  request.target = ToString(message.target());
  for (const auto& field : message) {
    request.headers.emplace_back(ToString(field.name_string()), ToString(field.value()));
  }
  request.body = std::move(message.body());
  request.remote_address = remote_address;
  return request;
}

bool ExpectsContinue(const bhttp::request<bhttp::string_body>& message) {
  auto it = message.find(bhttp::field::expect);
  return message.version() >= 11 && it != message.end() &&
         beast::iequals(it->value(), "100-continue");
}

// What Stop() needs of a connection of either kind.
class ConnectionBase : public std::enable_shared_from_this<ConnectionBase> {
 public:
  virtual ~ConnectionBase() = default;
  // Thread-safe: closes the connection on its strand if it is waiting for a next request.
  virtual void CloseIfIdle() = 0;
};

// `socket`, whose synchronous writes (WriteResponse) return would_block instead of waiting.
tcp::socket NonBlocking(tcp::socket socket) {
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  return socket;
}

// One accepted connection over a PlainStream or a TlsStream. Only touched on its strand (the
// stream's executor), except CloseIfIdle().
template <typename Stream>
struct Connection final : ConnectionBase {
  // `extra`: the ssl::context for a TlsStream.
  template <typename... Extra>
  explicit Connection(tcp::socket socket, Extra&... extra)
      : remote_address(PeerAddress(socket)),
        stream(NonBlocking(std::move(socket)), extra...),
        read_timer(stream.get_executor()) {}

  // The TCP layer: deadlines, cancellation, shutdown and close act here.
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }
  tcp::socket& socket() { return tcp().socket(); }

  void CloseIfIdle() override {
    asio::post(stream.get_executor(), [self = shared_from_this(), this] {
      if (!idle) return;
      beast::error_code ignored;
      socket().close(ignored);
    });
  }

  std::string remote_address;
  Stream stream;
  asio::steady_timer read_timer;
  beast::flat_buffer buffer;
  bool idle = false;             // waiting for the next request; Stop() may close it
  bool timed_out = false;        // the read deadline of the current request passed
  uint64_t read_generation = 0;  // identifies the armed read deadline
  bool reading = false;
};

// How reading one request ended.
struct ReadOutcome {
  int status = 0;  // 0: a complete request; else the status of the refusal to send
  std::string message;
  bool peer_gone = false;  // nothing to answer: close quietly
};

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& options, Handler handler, TransportErrorRenderer render_error)
      : options_(options),
        handler_(std::move(handler)),
        render_error_(std::move(render_error)),
        ioc_(std::make_unique<asio::io_context>(std::max(1, options.threads))),
        blocking_pool_(options.blocking_threads > 0
                           ? std::make_unique<asio::thread_pool>(options.blocking_threads)
                           : nullptr),
        offload_pool_(options.offload_threads > 0 && options.offload
                          ? std::make_unique<asio::thread_pool>(options.offload_threads)
                          : nullptr),
        accept_strand_(asio::make_strand(*ioc_)) {}

  ~ServerImpl() override { Stop(); }

  Status ConfigureTls();
  Status Listen();
  void Run();

  uint16_t port() const override { return port_; }
  void Stop() override;
  void WaitForSignal() override;

 private:
  // Counts a request as in flight for Stop() while alive.
  class InFlight {
   public:
    explicit InFlight(ServerImpl& server) : server_(&server) {
      std::lock_guard lock(server.active_mu_);
      ++server.active_;
    }
    ~InFlight() { Release(); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    void Release() {
      if (server_ == nullptr) return;
      std::lock_guard lock(server_->active_mu_);
      if (--server_->active_ == 0) server_->active_cv_.notify_all();
      server_ = nullptr;
    }

   private:
    ServerImpl* server_;
  };

  // Keeps a connection known to Stop() while its coroutine lives.
  class Registration {
   public:
    Registration(ServerImpl& server, std::shared_ptr<ConnectionBase> connection)
        : server_(server), connection_(std::move(connection)) {
      std::lock_guard lock(server_.connections_mu_);
      server_.connections_.insert(connection_);
    }
    ~Registration() {
      std::lock_guard lock(server_.connections_mu_);
      server_.connections_.erase(connection_);
    }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    ServerImpl& server_;
    std::shared_ptr<ConnectionBase> connection_;
  };

  asio::awaitable<void> Accept();
  template <typename Stream>
  asio::awaitable<void> Session(std::shared_ptr<Connection<Stream>> c);
  asio::awaitable<bool> Handshake(Connection<TlsStream>& c);
  template <typename Stream>
  asio::awaitable<void> Serve(std::shared_ptr<Connection<Stream>> c);
  template <typename Stream>
  asio::awaitable<ReadOutcome> ReadRequest(std::shared_ptr<Connection<Stream>> c, Parser& parser);
  template <typename Stream>
  asio::awaitable<bool> WriteResponse(Connection<Stream>& c, Response response, unsigned version,
                                      bool head, bool keep_alive);
  template <typename Stream>
  asio::awaitable<void> CloseGracefully(Connection<Stream>& c);
  template <typename Stream>
  asio::awaitable<void> Drain(Connection<Stream>& c);
  bhttp::response<bhttp::string_body> ToMessage(Response response, unsigned version, bool head,
                                                bool keep_alive, bool secure) const;
  ReadOutcome Refusal(const beast::error_code& ec, bool timed_out) const;
  Response CallHandler(Request& request);
  Response RenderError(int status, std::string_view message);
  void RunThread();
  std::chrono::milliseconds LingerTime() const {
    return std::min<std::chrono::milliseconds>(options_.read_timeout, kMaxLinger);
  }

  const ServerOptions options_;
  const Handler handler_;
  const TransportErrorRenderer render_error_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};

  std::mutex stop_mu_;  // serializes Stop()
  bool stopped_ = false;

  std::mutex active_mu_;
  std::condition_variable active_cv_;
  int active_ = 0;  // requests in flight

  std::mutex connections_mu_;
  std::unordered_set<std::shared_ptr<ConnectionBase>> connections_;

  std::mutex signal_mu_;
  std::condition_variable signal_cv_;
  bool signalled_ = false;
  bool stop_requested_ = false;

  // Null without TLS. Outlives the connections' streams (destroyed with ioc_, declared below).
  std::unique_ptr<asio::ssl::context> tls_;

  // Declared last: destroyed (by Stop) before anything the coroutines refer to.
  std::unique_ptr<asio::io_context> ioc_;
  std::unique_ptr<asio::thread_pool> blocking_pool_;  // null when options.blocking_threads == 0
  std::unique_ptr<asio::thread_pool> offload_pool_;   // null without offload_threads and offload
  // A strand must not outlive its io_context: reset just before ioc_.
  std::optional<asio::strand<asio::io_context::executor_type>> accept_strand_;
  std::unique_ptr<tcp::acceptor> acceptor_;    // used on accept_strand_ only
  std::unique_ptr<asio::signal_set> signals_;  // guarded by signal_mu_
  std::vector<std::thread> threads_;
};

Result<asio::ip::address> ResolveHost(asio::io_context& ioc, std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) return address;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, "", ec);
  if (ec || results.empty()) {
    return Error::Invalid("http: cannot resolve host '" + host +
                          "': " + (ec ? ec.message() : std::string("no address")));
  }
  // Prefer IPv4 ("localhost" then means 127.0.0.1, which is what clients try first).
  for (const auto& entry : results) {
    if (entry.endpoint().address().is_v4()) return entry.endpoint().address();
  }
  return results.begin()->endpoint().address();
}

bool IsLoopback(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback();
  }
  return address.is_loopback();  // 127.0.0.0/8 or ::1
}

// The OpenSSL error queue as text (the first, innermost reason first), then clears it.
std::string OpenSslErrors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    const char* reason = ERR_SYSTEM_ERROR(code) ? std::strerror(ERR_GET_REASON(code))
                                                : ERR_reason_error_string(code);
    std::string part = reason != nullptr ? reason : "";
    if (part.empty()) {
      char buffer[256];
      ERR_error_string_n(code, buffer, sizeof(buffer));
      part = buffer;
    }
    if (text.find(part) != std::string::npos) continue;
    if (!text.empty()) text += "; ";
    text += part;
  }
  return text.empty() ? "unknown error" : text;
}

// Refuses to ask for a passphrase on the terminal: an encrypted key fails to load instead.
int NoPassphrase(char*, int, int, void*) { return 0; }

Status ServerImpl::ConfigureTls() {
  const std::string& cert = options_.tls_cert_file;
  const std::string& key = options_.tls_key_file;
  if (cert.empty() && key.empty()) return Ok();
  if (cert.empty() || key.empty()) {
    return Error::Invalid(
        "http: TLS needs both a certificate chain file and a private key file (--tls-cert and "
        "--tls-key)");
  }
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  auto fail = [](std::string what) {
    return Error::Invalid("http: " + what + ": " + OpenSslErrors());
  };
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return fail("cannot require TLS 1.2");
  }
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle keep-alive connections give their read and write buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) return fail("cannot set the TLS ciphers");
  if (SSL_CTX_set1_groups_list(ctx, kTlsGroups) != 1) return fail("cannot set the TLS groups");
  SSL_CTX_set_default_passwd_cb(ctx, NoPassphrase);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    return fail("cannot load the TLS certificate chain from '" + cert + "'");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    unsigned long last = ERR_peek_last_error();
    if (ERR_GET_LIB(last) == ERR_LIB_X509 && ERR_GET_REASON(last) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return Error::Invalid("http: the TLS private key in '" + key +
                            "' does not match the certificate in '" + cert + "'");
    }
    return fail("cannot load the TLS private key (PEM, not encrypted) from '" + key + "'");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return Error::Invalid("http: the TLS private key in '" + key +
                          "' does not match the certificate in '" + cert + "'");
  }
  tls_ = std::move(context);
  return Ok();
}

Status ServerImpl::Listen() {
  auto address = ResolveHost(*ioc_, options_.host);
  if (!address) return address.error();
  if (!tls_ && !options_.allow_plain_http_on_public && !IsLoopback(*address)) {
    return Error::Invalid("refusing to serve plain HTTP on " + options_.host +
                          ": give --tls-cert/--tls-key, or --insecure-http to allow it");
  }
  tcp::endpoint endpoint(*address, options_.port);
  auto fail = [&](const char* what, const beast::error_code& ec) {
    return Error::Unavailable("http: cannot " + std::string(what) + " " +
                              endpoint.address().to_string() + " port " +
                              std::to_string(options_.port) + ": " + ec.message());
  };
  acceptor_ = std::make_unique<tcp::acceptor>(*accept_strand_);
  beast::error_code ec;
  acceptor_->open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for", ec);
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("set SO_REUSEADDR on", ec);
  acceptor_->bind(endpoint, ec);
  if (ec) return fail("bind", ec);
  acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on", ec);
  port_ = acceptor_->local_endpoint(ec).port();
  if (ec) return fail("read the port of", ec);
  return Ok();
}

void ServerImpl::Run() {
  asio::co_spawn(*accept_strand_, Accept(), asio::detached);
  int threads = std::max(1, options_.threads);
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this] {
      NameThisThread("fs-http");
      RunThread();
    });
}

void ServerImpl::RunThread() {
  for (;;) {
    try {
      ioc_->run();
      return;
    } catch (...) {
      // Nothing should escape a completion handler; if something does, keep serving.
    }
  }
}

asio::awaitable<void> ServerImpl::Accept() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_->async_accept(asio::make_strand(*ioc_), kNoThrow);
    if (stopping_.load() || !acceptor_->is_open()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of descriptors or a connection aborted before accept: back off instead of spinning.
      asio::steady_timer pause(co_await asio::this_coro::executor, 20ms);
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (tls_) {
      auto connection = std::make_shared<Connection<TlsStream>>(std::move(socket), *tls_);
      auto executor = connection->stream.get_executor();
      asio::co_spawn(executor, Session(std::move(connection)), asio::detached);
    } else {
      auto connection = std::make_shared<Connection<PlainStream>>(std::move(socket));
      auto executor = connection->stream.get_executor();
      asio::co_spawn(executor, Session(std::move(connection)), asio::detached);
    }
  }
}

template <typename Stream>
asio::awaitable<void> ServerImpl::Session(std::shared_ptr<Connection<Stream>> c) {
  Registration registration(*this, c);
  try {
    bool ready = true;
    if constexpr (kIsTls<Stream>) ready = co_await Handshake(*c);
    if (ready) co_await Serve(c);
  } catch (...) {
    // Only allocation failure can get here; the connection is dropped below.
  }
  beast::error_code ignored;
  c->read_timer.cancel();
  c->socket().shutdown(tcp::socket::shutdown_both, ignored);
  c->socket().close(ignored);
}

asio::awaitable<bool> ServerImpl::Handshake(Connection<TlsStream>& c) {
  // The client speaks first. A TLS record starts with 0x16 (handshake); anything else is most
  // likely plain HTTP sent to the HTTPS port, which gets a clear answer instead of a reset.
  c.tcp().expires_after(options_.read_timeout);
  auto [detect_ec, is_tls] = co_await beast::async_detect_ssl(c.tcp(), c.buffer, kNoThrow);
  if (detect_ec) co_return false;
  if (!is_tls) {
    auto message = ToMessage(
        RenderError(400, "this port speaks HTTPS only: the request must be sent over TLS"), 11,
        false, false, /*secure=*/false);
    auto [write_ec, written] = co_await bhttp::async_write(c.tcp(), message, kNoThrow);
    if (!write_ec) {
      c.tcp().expires_after(LingerTime());
      co_await Drain(c);
    }
    co_return false;
  }
  auto [ec, used] =
      co_await c.stream.async_handshake(asio::ssl::stream_base::server, c.buffer.data(), kNoThrow);
  c.tcp().expires_never();
  if (ec) co_return false;
  c.buffer.consume(used);
  // The engine takes all it was given (at most one read); were anything left, it would be
  // ciphertext that Serve must not mistake for a request.
  co_return c.buffer.size() == 0;
}

template <typename Stream>
asio::awaitable<void> ServerImpl::Serve(std::shared_ptr<Connection<Stream>> c) {
  for (;;) {
    if (c->buffer.size() == 0) {
      if (c->buffer.capacity() > kKeepBufferBytes) c->buffer.shrink_to_fit();
      if (stopping_.load()) co_return;
      c->idle = true;
      c->tcp().expires_after(options_.idle_timeout);
      auto [ec, n] = co_await c->stream.async_read_some(c->buffer.prepare(kReadChunk), kNoThrow);
      c->idle = false;
      if (ec) co_return;  // idle timeout, the peer closed, or Stop()
      c->buffer.commit(n);
    }
    c->idle = false;
    InFlight in_flight(*this);

    Parser parser;
    parser.body_limit(options_.max_body_bytes);
    parser.header_limit(static_cast<uint32_t>(
        std::min<size_t>(options_.max_header_bytes, std::numeric_limits<uint32_t>::max())));
    ReadOutcome outcome = co_await ReadRequest(c, parser);
    if (outcome.peer_gone) co_return;

    Response response;
    unsigned version = 11;
    bool head = false;
    bool keep_alive = false;
    if (outcome.status != 0) {
      response = RenderError(outcome.status, outcome.message);
    } else {
      version = parser.get().version();
      head = parser.get().method() == bhttp::verb::head;
      keep_alive = parser.get().keep_alive();
      Request request = ToRequest(parser.release(), c->remote_address);
      asio::thread_pool* pool = nullptr;  // null: the handler runs on this I/O thread
      if (offload_pool_ && options_.offload(request)) {
        pool = offload_pool_.get();
      } else if (request.method != "GET" && request.method != "HEAD") {
        pool = blocking_pool_.get();
      }
      if (pool) {
        // Run on the pool; the coroutine resumes on its strand afterwards.
        const char* name = pool == offload_pool_.get() ? "fs-offload" : "fs-blocking";
        response = co_await asio::co_spawn(
            pool->get_executor(),
            [this, &request, name]() -> asio::awaitable<Response> {
              thread_local bool named = false;
              if (!named) NameThisThread(name);
              named = true;
              co_return CallHandler(request);
            },
            asio::use_awaitable);
      } else {
        response = CallHandler(request);
      }
      if (ContainsCloseToken(response.Header("Connection"))) keep_alive = false;
    }
    if (stopping_.load()) keep_alive = false;
    bool written = co_await WriteResponse(*c, std::move(response), version, head, keep_alive);
    in_flight.Release();
    if (!written) co_return;
    // Lets the other connections' work run before this one's next request.
    co_await asio::post(c->stream.get_executor(), asio::use_awaitable);
    if (!keep_alive) {
      co_await CloseGracefully(*c);
      co_return;
    }
  }
}

template <typename Stream>
asio::awaitable<ReadOutcome> ServerImpl::ReadRequest(std::shared_ptr<Connection<Stream>> c,
                                                     Parser& parser) {
  // A request already whole in the buffer (a small request, taken by the idle read) is parsed
  // there, without arming the read timer: three timer updates (system calls) fewer per request.
  if (c->buffer.size() > 0) {
    parser.eager(true);
    beast::error_code ec;
    size_t used = parser.put(c->buffer.data(), ec);
    c->buffer.consume(used);
    if (ec && ec != bhttp::error::need_more) co_return Refusal(ec, false);
    if (parser.is_done()) co_return ReadOutcome{};
  }
  c->tcp().expires_never();
  c->timed_out = false;
  c->reading = true;
  uint64_t generation = ++c->read_generation;
  c->read_timer.expires_after(options_.read_timeout);
  c->read_timer.async_wait([c, generation](const beast::error_code& ec) {
    if (ec || !c->reading || c->read_generation != generation) return;
    c->timed_out = true;
    beast::error_code ignored;
    c->socket().cancel(ignored);
  });

  auto [ec, n] = co_await bhttp::async_read_header(c->stream, c->buffer, parser, kNoThrow);
  if (!ec && !parser.is_done() && ExpectsContinue(parser.get())) {
    bhttp::response<bhttp::empty_body> proceed{bhttp::status::continue_, parser.get().version()};
    auto [write_ec, written] = co_await bhttp::async_write(c->stream, proceed, kNoThrow);
    ec = write_ec;
  }
  if (!ec && !parser.is_done()) {
    auto [read_ec, read] = co_await bhttp::async_read(c->stream, c->buffer, parser, kNoThrow);
    ec = read_ec;
  }
  c->reading = false;
  c->read_timer.cancel();
  if (!ec) co_return ReadOutcome{};
  co_return Refusal(ec, c->timed_out);
}

ReadOutcome ServerImpl::Refusal(const beast::error_code& ec, bool timed_out) const {
  ReadOutcome out;
  if (timed_out) {
    out.status = 408;
    out.message = "the request was not received within " +
                  std::to_string(options_.read_timeout.count()) + " ms";
  } else if (ec == bhttp::error::body_limit) {
    out.status = 413;
    out.message = "the request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes";
  } else if (ec == bhttp::error::header_limit) {
    out.status = 431;
    out.message = "the request line and headers exceed " +
                  std::to_string(options_.max_header_bytes) + " bytes";
  } else if (ec == bhttp::error::end_of_stream) {
    out.peer_gone = true;  // closed between requests
  } else if (ec == bhttp::error::partial_message) {
    out.status = 400;
    out.message = "the connection was closed before the request was complete";
  } else if (&ec.category() == &bhttp::make_error_code(bhttp::error::bad_method).category()) {
    out.status = 400;
    out.message = "malformed HTTP request: " + ec.message();
  } else {
    out.peer_gone = true;  // reset, aborted by Stop(), ...
  }
  return out;
}

Response ServerImpl::CallHandler(Request& request) {
  try {
    return handler_(request);
  } catch (...) {
    // The handler's own catch-all failed to catch: answer 500 rather than drop the connection.
  }
  return RenderError(500, "internal server error");
}

Response ServerImpl::RenderError(int status, std::string_view message) {
  try {
    if (render_error_) {
      Response response = render_error_(status, message);
      response.status = status;
      return response;
    }
  } catch (...) {
    // Fall through to the plain answer below.
  }
  Response response;
  response.status = status;
  response.SetHeader("Content-Type", "text/plain; charset=utf-8");
  response.body = std::string(message);
  return response;
}

bhttp::response<bhttp::string_body> ServerImpl::ToMessage(Response response, unsigned version,
                                                          bool head, bool keep_alive,
                                                          bool secure) const {
  bhttp::response<bhttp::string_body> message;
  message.version(version);
  int status = (response.status >= 100 && response.status <= 999) ? response.status : 500;
  message.result(static_cast<unsigned>(status));
  bool has_server = false;
  bool has_date = false;
  bool has_hsts = false;
  for (auto& [name, value] : response.headers) {
    if (!IsFieldName(name)) continue;
    bhttp::field field = bhttp::string_to_field(name);
    if (field == bhttp::field::content_length || field == bhttp::field::transfer_encoding ||
        field == bhttp::field::connection) {
      continue;  // framing belongs to the transport
    }
    has_server = has_server || field == bhttp::field::server;
    has_date = has_date || field == bhttp::field::date;
    has_hsts = has_hsts || field == bhttp::field::strict_transport_security;
    SanitizeFieldValue(value);
    message.insert(name, value);
  }
  if (!has_server && !options_.server_header.empty()) {
    message.set(bhttp::field::server, options_.server_header);
  }
  if (!has_date) message.set(bhttp::field::date, HttpDate());
  // Only over TLS: a browser ignores it on plain HTTP, where an attacker could forge it anyway.
  if (secure && !has_hsts) message.set(bhttp::field::strict_transport_security, kHstsValue);
  bool bodiless = status < 200 || status == 204 || status == 304;
  if (!bodiless) {
    // A HEAD answer announces the length of the body it does not send.
    message.set(bhttp::field::content_length, std::to_string(response.body.size()));
    if (!head) message.body() = std::move(response.body);
  }
  message.keep_alive(keep_alive);
  return message;
}

template <typename Stream>
asio::awaitable<bool> ServerImpl::WriteResponse(Connection<Stream>& c, Response response,
                                                unsigned version, bool head, bool keep_alive) {
  auto message = ToMessage(std::move(response), version, head, keep_alive, kIsTls<Stream>);
  bhttp::response_serializer<bhttp::string_body> serializer(message);
  if constexpr (!kIsTls<Stream>) {
    // Most answers fit the socket's send buffer: written at once (the socket is non-blocking),
    // without arming the write deadline (two timer updates); what does not fit is written with
    // it.
    beast::error_code ec;
    while (!ec && !serializer.is_done()) bhttp::write_some(c.socket(), serializer, ec);
    if (!ec) co_return true;
    if (ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
  }
  c.tcp().expires_after(options_.read_timeout);
  auto [ec, n] = co_await bhttp::async_write(c.stream, serializer, kNoThrow);
  c.tcp().expires_never();
  co_return !ec;
}

template <typename Stream>
asio::awaitable<void> ServerImpl::CloseGracefully(Connection<Stream>& c) {
  // One linger time for the TLS close_notify exchange and the drain together.
  c.tcp().expires_after(LingerTime());
  if constexpr (kIsTls<Stream>) co_await c.stream.async_shutdown(kNoThrow);
  co_await Drain(c);
}

template <typename Stream>
asio::awaitable<void> ServerImpl::Drain(Connection<Stream>& c) {
  // REQUIRES: a deadline is set on c.tcp().
  // Raw bytes on the TCP layer: with TLS, whatever the peer still sends is discarded unread.
  beast::error_code ignored;
  c.socket().shutdown(tcp::socket::shutdown_send, ignored);
  size_t drained = 0;
  while (drained < kMaxDrainBytes) {
    auto [ec, n] = co_await c.tcp().async_read_some(c.buffer.prepare(kReadChunk), kNoThrow);
    if (ec) break;
    drained += n;
  }
  c.socket().close(ignored);
}

void ServerImpl::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  {
    std::lock_guard lock(signal_mu_);
    stop_requested_ = true;
    signal_cv_.notify_all();
  }
  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;

  if (!threads_.empty()) {
    // Stop accepting. The acceptor belongs to its strand; wait (bounded) for the close to run.
    auto closed = std::make_shared<std::promise<void>>();
    asio::post(*accept_strand_, [this, closed] {
      beast::error_code ignored;
      acceptor_->close(ignored);
      closed->set_value();
    });
    closed->get_future().wait_until(deadline);

    // Close the connections that wait for a next request; busy ones close after their answer.
    std::vector<std::shared_ptr<ConnectionBase>> connections;
    {
      std::lock_guard lock(connections_mu_);
      connections.assign(connections_.begin(), connections_.end());
    }
    for (auto& connection : connections) connection->CloseIfIdle();

    std::unique_lock lock(active_mu_);
    active_cv_.wait_until(lock, deadline, [this] { return active_ == 0; });
  }

  ioc_->stop();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
  for (auto* pool : {blocking_pool_.get(), offload_pool_.get()}) {
    if (!pool) continue;
    pool->stop();
    pool->join();
  }
  // Handlers still queued on a pool (past the grace period) hold their connections' coroutines:
  // they are destroyed here, while the io_context their sockets and timers belong to still exists.
  blocking_pool_.reset();
  offload_pool_.reset();
  {
    std::lock_guard lock(connections_mu_);
    connections_.clear();
  }
  {
    std::lock_guard lock(signal_mu_);
    signals_.reset();
  }
  acceptor_.reset();
  accept_strand_.reset();
  // Destroys what is still pending (connections past the grace period), closing their sockets.
  ioc_.reset();
}

void ServerImpl::WaitForSignal() {
  std::unique_lock lock(signal_mu_);
  if (stop_requested_) return;
  if (!signals_) {
    signals_ = std::make_unique<asio::signal_set>(*ioc_, SIGINT, SIGTERM);
    signals_->async_wait([this](const beast::error_code& ec, int) {
      if (ec) return;
      std::lock_guard guard(signal_mu_);
      signalled_ = true;
      signal_cv_.notify_all();
    });
  }
  signal_cv_.wait(lock, [this] { return signalled_ || stop_requested_; });
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler,
                                              TransportErrorRenderer render_error) {
  auto server = std::make_unique<ServerImpl>(options, std::move(handler), std::move(render_error));
  FHIRSTONE_RETURN_IF_ERROR(server->ConfigureTls());
  FHIRSTONE_RETURN_IF_ERROR(server->Listen());
  server->Run();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace fhirstone::http
