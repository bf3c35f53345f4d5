#include "support/http_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <exception>
#include <limits>
#include <optional>
#include <utility>

namespace fhirstone::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }

// Runs `task` on `ioc` until it and everything it started are done.
void RunTask(asio::io_context& ioc, asio::awaitable<void> task) {
  std::exception_ptr error;
  asio::co_spawn(ioc, std::move(task), [&error](std::exception_ptr e) { error = e; });
  ioc.restart();
  ioc.run();
  if (error) std::rethrow_exception(error);
}

bhttp::request<bhttp::string_body> ToMessage(http::Request& request, const std::string& host,
                                             uint16_t port) {
  bhttp::request<bhttp::string_body> message;
  message.version(11);
  message.method_string(request.method.empty() ? "GET" : request.method);
  message.target(request.target.empty() ? "/" : request.target);
  for (const auto& [name, value] : request.headers) message.insert(name, value);
  if (!http::HasHeader(request.headers, "Host")) {
    message.set(bhttp::field::host, host + ":" + std::to_string(port));
  }
  bool needs_length = !request.body.empty() || request.method == "POST" ||
                      request.method == "PUT" || request.method == "PATCH";
  if (needs_length && !http::HasHeader(request.headers, "Content-Length") &&
      !http::HasHeader(request.headers, "Transfer-Encoding")) {
    message.set(bhttp::field::content_length, std::to_string(request.body.size()));
  }
  message.body() = std::move(request.body);
  return message;
}

http::Response FromMessage(bhttp::response<bhttp::string_body>&& message) {
  http::Response response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    response.headers.emplace_back(ToString(field.name_string()), ToString(field.value()));
  }
  response.body = std::move(message.body());
  return response;
}

asio::awaitable<void> Connect(beast::tcp_stream& stream, const std::string& host, uint16_t port,
                              std::chrono::milliseconds timeout, beast::error_code& out) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto [ec, endpoints] = co_await resolver.async_resolve(host, std::to_string(port), kNoThrow);
  if (ec) {
    out = ec;
    co_return;
  }
  stream.expires_after(timeout);
  auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, kNoThrow);
  out = connect_ec;
}

// Writes one request and reads its final answer (skipping 1xx interim answers).
asio::awaitable<void> Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                               bhttp::request<bhttp::string_body>& message,
                               std::chrono::milliseconds timeout,
                               std::optional<Result<http::Response>>& out, bool& keep_alive) {
  keep_alive = false;
  stream.expires_after(timeout);
  auto [write_ec, written] = co_await bhttp::async_write(stream, message, kNoThrow);
  // A server may answer before it has read the whole request (413 on a Content-Length over its
  // limit) and close: as other clients do, its answer is read all the same.
  bool answered_early =
      write_ec == asio::error::broken_pipe || write_ec == asio::error::connection_reset;
  if (write_ec && !answered_early) {
    out = Error::Unavailable("test client: cannot send the request: " + write_ec.message());
    co_return;
  }
  for (;;) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (message.method() == bhttp::verb::head) parser.skip(true);
    auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
    if (read_ec) {
      out = Error::Unavailable(std::string("test client: cannot ") +
                               (write_ec ? "send the request: " + write_ec.message()
                                         : "read the answer: " + read_ec.message()));
      co_return;
    }
    if (parser.get().result_int() >= 100 && parser.get().result_int() < 200) continue;
    keep_alive = parser.get().keep_alive();
    out = FromMessage(parser.release());
    co_return;
  }
}

asio::awaitable<void> WriteAll(tcp::socket& socket, const std::string& bytes, bool half_close) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), kNoThrow);
  if (!ec && half_close) {
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  }
}

// `timer` closes `socket` and sets `expired` at the deadline; all three outlive the io_context run.
asio::awaitable<void> RawExchange(tcp::socket& socket, asio::steady_timer& timer, bool& expired,
                                  const std::string& host, uint16_t port, const std::string& bytes,
                                  bool half_close, std::string& received) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolve_ec, endpoints] =
      co_await resolver.async_resolve(host, std::to_string(port), kNoThrow);
  if (resolve_ec) co_return;
  auto [connect_ec, endpoint] = co_await asio::async_connect(socket, endpoints, kNoThrow);
  if (connect_ec || expired) co_return;  // (a socket closed before it was opened stays open)
  asio::co_spawn(executor, WriteAll(socket, bytes, half_close), asio::detached);
  char chunk[16 * 1024];
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), kNoThrow);
    received.append(chunk, n);
    if (ec) break;
  }
  timer.cancel();
  beast::error_code ignored;
  socket.close(ignored);
}

}  // namespace

Result<http::Response> Fetch(const std::string& host, uint16_t port, http::Request request,
                             std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  beast::error_code ec;
  RunTask(ioc, Connect(stream, host, port, timeout, ec));
  if (ec) return Error::Unavailable("test client: cannot connect: " + ec.message());
  auto message = ToMessage(request, host, port);
  std::optional<Result<http::Response>> out;
  bool keep_alive = false;
  RunTask(ioc, Exchange(stream, buffer, message, timeout, out, keep_alive));
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  return std::move(*out);
}

struct Client::Impl {
  Impl(std::string host_in, uint16_t port_in, std::chrono::milliseconds timeout_in)
      : host(std::move(host_in)), port(port_in), timeout(timeout_in) {}

  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  int connections_opened = 0;
};

Client::Client(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(std::move(host), port, timeout)) {}

Client::~Client() = default;

Result<http::Response> Client::Send(http::Request request) {
  Impl& c = *impl_;
  if (!c.stream) {
    c.stream.emplace(c.ioc);
    c.buffer.clear();
    beast::error_code ec;
    RunTask(c.ioc, Connect(*c.stream, c.host, c.port, c.timeout, ec));
    if (ec) {
      c.stream.reset();
      return Error::Unavailable("test client: cannot connect: " + ec.message());
    }
    ++c.connections_opened;
  }
  auto message = ToMessage(request, c.host, c.port);
  std::optional<Result<http::Response>> out;
  bool keep_alive = false;
  RunTask(c.ioc, Exchange(*c.stream, c.buffer, message, c.timeout, out, keep_alive));
  if (!out->has_value() || !keep_alive) c.stream.reset();
  return std::move(*out);
}

int Client::connections_opened() const { return impl_->connections_opened; }

bool Client::is_open() const { return impl_->stream.has_value(); }

std::string SendRaw(const std::string& host, uint16_t port, std::string bytes,
                    std::chrono::milliseconds timeout, bool half_close_after_send) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  asio::steady_timer timer(ioc, timeout);
  bool expired = false;
  timer.async_wait([&socket, &expired](const beast::error_code& ec) {
    if (ec) return;
    expired = true;
    beast::error_code ignored;
    socket.close(ignored);
  });
  std::string received;
  RunTask(ioc,
          RawExchange(socket, timer, expired, host, port, bytes, half_close_after_send, received));
  return received;
}

std::vector<http::Response> ParseResponses(std::string_view raw) {
  std::vector<http::Response> out;
  size_t offset = 0;
  while (offset < raw.size()) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.eager(true);
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    while (!parser.is_done()) {
      beast::error_code ec;
      size_t n = parser.put(asio::buffer(raw.data() + offset, raw.size() - offset), ec);
      offset += n;
      if (ec && ec != bhttp::error::need_more) return out;  // malformed
      if (n == 0 && !parser.is_done()) {
        // The input is exhausted: complete only when the body runs to the end of the stream.
        if (!parser.is_header_done() || !parser.need_eof()) return out;
        parser.put_eof(ec);
        if (ec) return out;
      }
    }
    out.push_back(FromMessage(parser.release()));
  }
  return out;
}

bool CanConnect(const std::string& host, uint16_t port) {
  asio::io_context ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return false;
  tcp::socket socket(ioc);
  asio::connect(socket, endpoints, ec);
  if (ec) return false;
  socket.close(ec);
  return true;
}

http::Request MakeRequest(std::string method, std::string target, std::string body) {
  http::Request request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.body = std::move(body);
  return request;
}

}  // namespace fhirstone::test
