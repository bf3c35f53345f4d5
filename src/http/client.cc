#include "http/client.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <optional>

namespace fhirstone::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;
};

std::optional<Url> ParseUrl(std::string_view url) {
  Url u;
  if (url.starts_with("https://")) {
    u.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (size_t hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    u.port = std::string(authority.substr(colon + 1));
  } else {
    u.host = std::string(authority);
    u.port = u.tls ? "443" : "80";
  }
  if (u.host.size() > 2 && u.host.front() == '[' && u.host.back() == ']')
    u.host = u.host.substr(1, u.host.size() - 2);
  for (char c : u.port)
    if (c < '0' || c > '9') return std::nullopt;
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  return u;
}

template <typename Stream>
void Exchange(Stream& stream, beast::tcp_stream& tcp_layer, const Url& u,
              const FetchOptions& options, beast::error_code& ec, Response& out) {
  namespace bhttp = beast::http;
  // The request outlives this function: the write completes later, inside io_context::run.
  auto req = std::make_shared<bhttp::request<bhttp::empty_body>>(bhttp::verb::get, u.target, 11);
  req->set(bhttp::field::host, u.host);
  req->set(bhttp::field::user_agent, "Fhirstone");
  req->set(bhttp::field::accept, options.accept);
  req->set(bhttp::field::connection, "close");
  tcp_layer.expires_after(options.timeout);
  bhttp::async_write(
      stream, *req, [&stream, &ec, &out, &options, req](beast::error_code e, size_t) {
        if (e) {
          ec = e;
          return;
        }
        auto buffer = std::make_shared<beast::flat_buffer>();
        auto parser = std::make_shared<bhttp::response_parser<bhttp::string_body>>();
        parser->body_limit(options.max_body_bytes);
        bhttp::async_read(stream, *buffer, *parser,
                          [&ec, &out, buffer, parser](beast::error_code e2, size_t) {
                            if (e2) {
                              ec = e2;
                              return;
                            }
                            auto& res = parser->get();
                            out.status = static_cast<int>(res.result_int());
                            for (const auto& field : res)
                              out.headers.emplace_back(std::string(field.name_string()),
                                                       std::string(field.value()));
                            out.body = std::move(res.body());
                          });
      });
}

}  // namespace

Result<Response> Get(std::string_view url, const FetchOptions& options) {
  auto u = ParseUrl(url);
  if (!u) return Error::Invalid("Not an http(s) URL: '" + std::string(url) + "'");
  asio::io_context ioc;
  beast::error_code ec;
  Response out;
  tcp::resolver resolver(ioc);
  std::optional<asio::ssl::context> ssl;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  std::unique_ptr<beast::tcp_stream> plain;
  if (u->tls) {
    ssl.emplace(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ssl->native_handle(), TLS1_2_VERSION);
    ssl->set_default_verify_paths();
    if (!options.ca_file.empty()) {
      ssl->load_verify_file(options.ca_file, ec);
      if (ec) {
        return Error::Invalid("TLS: cannot load the CA file '" + options.ca_file +
                              "': " + ec.message());
      }
    }
    ssl->set_verify_mode(asio::ssl::verify_peer);
    tls_stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, *ssl);
    // SNI carries host names only (RFC 6066 3), never an IP address literal.
    beast::error_code not_an_address;
    asio::ip::make_address(u->host, not_an_address);
    if (not_an_address && !SSL_set_tlsext_host_name(tls_stream->native_handle(), u->host.c_str()))
      return Error::Unavailable("TLS: the host name cannot be sent");
    tls_stream->set_verify_callback(asio::ssl::host_name_verification(u->host));
  } else {
    plain = std::make_unique<beast::tcp_stream>(ioc);
  }
  beast::tcp_stream& tcp_layer = u->tls ? beast::get_lowest_layer(*tls_stream) : *plain;
  tcp_layer.expires_after(options.timeout);
  resolver.async_resolve(u->host, u->port, [&](beast::error_code e, tcp::resolver::results_type r) {
    if (e) {
      ec = e;
      return;
    }
    tcp_layer.async_connect(r, [&](beast::error_code e2, const tcp::endpoint&) {
      if (e2) {
        ec = e2;
        return;
      }
      if (!u->tls) {
        Exchange(*plain, tcp_layer, *u, options, ec, out);
        return;
      }
      tls_stream->async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e3) {
        if (e3) {
          ec = e3;
          return;
        }
        Exchange(*tls_stream, tcp_layer, *u, options, ec, out);
      });
    });
  });
  ioc.run_for(options.timeout + std::chrono::milliseconds(500));
  if (ec) return Error::Unavailable("GET " + std::string(url) + ": " + ec.message());
  if (out.status == 0) return Error::Unavailable("GET " + std::string(url) + ": no answer in time");
  return out;
}

}  // namespace fhirstone::http
