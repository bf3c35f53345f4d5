// http::Server over TLS (--tls-cert/--tls-key) and the plain-HTTP-on-public-address refusal.
// Certificates are made at test time with the OpenSSL C API; a raw blocking OpenSSL client checks
// what http::Get cannot (protocol versions, cipher suites, pipelining, close_notify).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/server.h"
#include "support/http_client.h"

namespace fhirstone::http {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr char kHost[] = "127.0.0.1";
constexpr char kHsts[] = "max-age=31536000";

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, X509Free>;

std::string ToPem(int (*write)(BIO*, void*), void* object) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (write(bio, object) == 1) {
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<size_t>(size));
  }
  BIO_free(bio);
  return pem;
}

std::string KeyPem(EVP_PKEY* key) {
  return ToPem(
      [](BIO* bio, void* k) {
        return PEM_write_bio_PrivateKey(bio, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0,
                                        nullptr, nullptr);
      },
      key);
}

std::string EncryptedKeyPem(EVP_PKEY* key) {
  return ToPem(
      [](BIO* bio, void* k) {
        static const char kPassphrase[] = "secret";
        return PEM_write_bio_PKCS8PrivateKey(bio, static_cast<EVP_PKEY*>(k), EVP_aes_256_cbc(),
                                             kPassphrase, sizeof(kPassphrase) - 1, nullptr,
                                             nullptr);
      },
      key);
}

std::string CertPem(X509* cert) {
  return ToPem([](BIO* bio, void* c) { return PEM_write_bio_X509(bio, static_cast<X509*>(c)); },
               cert);
}

// A self-signed server certificate for 127.0.0.1 and localhost, valid from an hour ago for a day.
CertPtr SelfSigned(EVP_PKEY* key) {
  CertPtr cert(X509_new());
  X509* x = cert.get();
  X509_set_version(x, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  const std::pair<int, const char*> extensions[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
  };
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (extension == nullptr) return nullptr;
    X509_add_ext(x, extension, -1);
    X509_EXTENSION_free(extension);
  }
  if (X509_sign(x, key, EVP_sha256()) == 0) return nullptr;
  return cert;
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// PEM files made once for the whole suite, in a temporary folder removed at the end.
struct Files {
  fs::path dir;
  std::string cert;           // EC P-256, self-signed (also the CA file of the clients)
  std::string key;            // its key
  std::string other_key;      // another EC key: does not match `cert`
  std::string rsa_cert;       // RSA 2048, self-signed
  std::string rsa_key;        // its key: does not match `cert` either
  std::string encrypted_key;  // `key`, encrypted with a passphrase
  std::string garbage;        // not PEM at all
  std::string missing;        // does not exist
};

Files* files = nullptr;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/fhirstone-tls-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    files = new Files;
    files->dir = pattern;
    KeyPtr ec(EVP_EC_gen("P-256"));
    KeyPtr other(EVP_EC_gen("P-256"));
    KeyPtr rsa(EVP_RSA_gen(2048));
    ASSERT_TRUE(ec && other && rsa);
    CertPtr ec_cert = SelfSigned(ec.get());
    CertPtr rsa_cert = SelfSigned(rsa.get());
    ASSERT_TRUE(ec_cert && rsa_cert);
    auto put = [](const char* name, const std::string& text) {
      fs::path path = files->dir / name;
      WriteFile(path, text);
      return path.string();
    };
    files->cert = put("cert.pem", CertPem(ec_cert.get()));
    files->key = put("key.pem", KeyPem(ec.get()));
    files->other_key = put("other-key.pem", KeyPem(other.get()));
    files->rsa_cert = put("rsa-cert.pem", CertPem(rsa_cert.get()));
    files->rsa_key = put("rsa-key.pem", KeyPem(rsa.get()));
    files->encrypted_key = put("encrypted-key.pem", EncryptedKeyPem(ec.get()));
    files->garbage = put("garbage.pem", "this is not a key\n");
    files->missing = (files->dir / "missing.pem").string();
  }

  static void TearDownTestSuite() {
    if (files == nullptr) return;
    std::error_code ignored;
    fs::remove_all(files->dir, ignored);
    delete files;
    files = nullptr;
  }
};

ServerOptions TlsOptions() {
  ServerOptions options;
  options.host = kHost;
  options.port = 0;
  options.threads = 2;
  options.read_timeout = 300ms;
  options.idle_timeout = 2000ms;
  options.shutdown_grace = 8000ms;
  options.tls_cert_file = files->cert;
  options.tls_key_file = files->key;
  return options;
}

Response Render(int status, std::string_view message) {
  Response response;
  response.status = status;
  response.SetHeader("Content-Type", "text/plain");
  response.body = "rendered " + std::to_string(status) + ": " + std::string(message);
  return response;
}

Response Echo(Request& request) {
  Response response;
  response.SetHeader("Content-Type", "text/plain");
  response.body = request.method + " " + std::string(request.Path()) + " body=" + request.body;
  return response;
}

std::unique_ptr<Server> StartOrDie(const ServerOptions& options, Handler handler = Echo) {
  auto server = Server::Start(options, std::move(handler), Render);
  if (!server) ADD_FAILURE() << "Start failed: " << server.error().message();
  return server ? std::move(server).value() : nullptr;
}

std::string Url(const Server& server, std::string_view host, std::string_view path) {
  return "https://" + std::string(host) + ":" + std::to_string(server.port()) + std::string(path);
}

int CountHeaders(const Response& response, std::string_view name) {
  int count = 0;
  for (const auto& [n, v] : response.headers) {
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) ++count;
  }
  return count;
}

// A blocking OpenSSL client on a socket with 5 s send and receive timeouts. It verifies the
// server against the suite's certificate when `verify` is set.
struct RawTlsOptions {
  int min_version = 0;  // 0: the library's default
  int max_version = 0;
  std::string ciphers;        // TLS 1.2 and below; empty: default
  bool allow_legacy = false;  // security level 0, so that the client offers TLS 1.0/1.1 at all
  bool verify = true;
  std::string ca_file;  // empty: the suite's EC certificate
};

class RawTlsClient {
 public:
  RawTlsClient(uint16_t port, const RawTlsOptions& options) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (options.allow_legacy) SSL_CTX_set_security_level(ctx_, 0);
    if (options.min_version) SSL_CTX_set_min_proto_version(ctx_, options.min_version);
    if (options.max_version) SSL_CTX_set_max_proto_version(ctx_, options.max_version);
    if (!options.ciphers.empty()) {
      std::string list = options.ciphers + (options.allow_legacy ? ":@SECLEVEL=0" : "");
      SSL_CTX_set_cipher_list(ctx_, list.c_str());
    }
    if (options.verify) {
      const std::string& ca = options.ca_file.empty() ? files->cert : options.ca_file;
      SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    inet_pton(AF_INET, kHost, &address.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      error_ = "connect failed";
      return;
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, kHost);
    ERR_clear_error();
    if (SSL_connect(ssl_) == 1) {
      connected_ = true;
    } else {
      error_reason_ = ERR_GET_REASON(ERR_peek_last_error());
      char text[256] = "";
      ERR_error_string_n(ERR_peek_last_error(), text, sizeof(text));
      error_ = text;
      ERR_clear_error();
    }
  }
  ~RawTlsClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) close(fd_);
    SSL_CTX_free(ctx_);
  }
  RawTlsClient(const RawTlsClient&) = delete;
  RawTlsClient& operator=(const RawTlsClient&) = delete;

  bool connected() const { return connected_; }
  int error_reason() const { return error_reason_; }  // the handshake's OpenSSL reason code
  const std::string& error() const { return error_; }
  int version() const { return SSL_version(ssl_); }
  std::string cipher() const { return SSL_get_cipher_name(ssl_); }

  bool Write(const std::string& bytes) {
    return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) ==
           static_cast<int>(bytes.size());
  }
  // Reads until the server closes (or the receive timeout); `clean` tells whether the server
  // ended the TLS session with close_notify.
  std::string ReadAll(bool* clean = nullptr) {
    std::string out;
    char buffer[4096];
    for (;;) {
      int n = SSL_read(ssl_, buffer, sizeof(buffer));
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    if (clean != nullptr) *clean = (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
    ERR_clear_error();
    return out;
  }
  // Reads until `count` complete responses arrived, without waiting for a close.
  std::vector<Response> ReadResponses(size_t count) {
    std::string raw;
    char buffer[4096];
    while (test::ParseResponses(raw).size() < count) {
      int n = SSL_read(ssl_, buffer, sizeof(buffer));
      if (n <= 0) break;
      raw.append(buffer, static_cast<size_t>(n));
    }
    ERR_clear_error();
    return test::ParseResponses(raw);
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  int error_reason_ = 0;
  std::string error_;
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

TEST_F(TlsTest, HttpsGetIsVerifiedAndCarriesHsts) {
  auto server = StartOrDie(TlsOptions());
  ASSERT_NE(server, nullptr);
  FetchOptions trusted;
  trusted.ca_file = files->cert;
  auto got = Get(Url(*server, kHost, "/Patient/1"), trusted);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "GET /Patient/1 body=");
  EXPECT_EQ(got->Header("Strict-Transport-Security"), kHsts);
  EXPECT_EQ(CountHeaders(*got, "Strict-Transport-Security"), 1);

  // The DNS name in the certificate works too.
  auto by_name = Get(Url(*server, "localhost", "/by-name"), trusted);
  ASSERT_TRUE(by_name) << by_name.error().message();
  EXPECT_EQ(by_name->body, "GET /by-name body=");

  // Without the CA file the certificate is not trusted.
  auto untrusted = Get(Url(*server, kHost, "/"));
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code(), ErrorCode::kUnavailable);

  // A CA file that cannot be read is the caller's mistake.
  FetchOptions broken;
  broken.ca_file = files->missing;
  auto bad_ca = Get(Url(*server, kHost, "/"), broken);
  ASSERT_FALSE(bad_ca);
  EXPECT_EQ(bad_ca.error().code(), ErrorCode::kInvalid);
}

TEST_F(TlsTest, HstsFromTheHandlerIsKeptAndPlainHttpHasNone) {
  auto handler = [](Request& request) {
    Response response = Echo(request);
    if (request.Path() == "/own") {
      response.SetHeader("Strict-Transport-Security", "max-age=60; includeSubDomains");
    }
    return response;
  };
  auto server = StartOrDie(TlsOptions(), handler);
  ASSERT_NE(server, nullptr);
  FetchOptions trusted;
  trusted.ca_file = files->cert;
  auto own = Get(Url(*server, kHost, "/own"), trusted);
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_EQ(own->Header("Strict-Transport-Security"), "max-age=60; includeSubDomains");
  EXPECT_EQ(CountHeaders(*own, "Strict-Transport-Security"), 1);

  ServerOptions plain = TlsOptions();
  plain.tls_cert_file.clear();
  plain.tls_key_file.clear();
  auto plain_server = StartOrDie(plain, handler);
  ASSERT_NE(plain_server, nullptr);
  auto got = test::Fetch(kHost, plain_server->port(), test::MakeRequest("GET", "/"));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(CountHeaders(*got, "Strict-Transport-Security"), 0);
}

TEST_F(TlsTest, KeepAlivePipeliningAndACleanCloseOverTls) {
  ServerOptions options = TlsOptions();
  options.blocking_threads = 1;  // the POST runs on the blocking pool
  auto server = StartOrDie(options);
  ASSERT_NE(server, nullptr);
  RawTlsClient client(server->port(), {});
  ASSERT_TRUE(client.connected()) << client.error();
  EXPECT_EQ(client.version(), TLS1_3_VERSION);

  ASSERT_TRUE(client.Write("GET /one HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto first = client.ReadResponses(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].body, "GET /one body=");

  // Two pipelined requests on the same connection, the last asking for the close.
  ASSERT_TRUE(
      client.Write("POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                   "GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  bool clean = false;
  auto start = std::chrono::steady_clock::now();
  auto rest = test::ParseResponses(client.ReadAll(&clean));
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 1.5);  // closed, not timed out
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].body, "POST /two body=abc");
  EXPECT_EQ(rest[1].body, "GET /three body=");
  EXPECT_EQ(rest[1].Header("Connection"), "close");
  for (const auto& response : rest) {
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.Header("Strict-Transport-Security"), kHsts);
  }
  EXPECT_TRUE(clean) << "the server closed without close_notify";
}

TEST_F(TlsTest, OnlyTls12AndUpAreAccepted) {
  auto server = StartOrDie(TlsOptions());
  ASSERT_NE(server, nullptr);

  for (int legacy : {TLS1_1_VERSION, TLS1_VERSION}) {
    RawTlsOptions old;
    old.min_version = legacy;
    old.max_version = legacy;
    old.allow_legacy = true;
    old.ciphers = "DEFAULT";
    RawTlsClient client(server->port(), old);
    EXPECT_FALSE(client.connected()) << legacy;
    // The refusal comes from the server (a protocol_version alert), not from the client itself.
    EXPECT_EQ(client.error_reason(), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
        << legacy << ": " << client.error();
  }

  RawTlsOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  RawTlsClient client12(server->port(), tls12);
  ASSERT_TRUE(client12.connected()) << client12.error();
  EXPECT_EQ(client12.version(), TLS1_2_VERSION);
  EXPECT_EQ(client12.cipher(), "ECDHE-ECDSA-AES128-GCM-SHA256");  // the server's preference

  RawTlsClient client13(server->port(), {});
  ASSERT_TRUE(client13.connected()) << client13.error();
  EXPECT_EQ(client13.version(), TLS1_3_VERSION);
}

TEST_F(TlsTest, OnlyForwardSecretAeadCiphersInTls12) {
  auto ec_server = StartOrDie(TlsOptions());
  ASSERT_NE(ec_server, nullptr);
  ServerOptions rsa_options = TlsOptions();
  rsa_options.tls_cert_file = files->rsa_cert;
  rsa_options.tls_key_file = files->rsa_key;
  auto rsa_server = StartOrDie(rsa_options);
  ASSERT_NE(rsa_server, nullptr);

  struct Case {
    Server* server;
    const char* ciphers;
    bool accepted;
  };
  const Case cases[] = {
      {ec_server.get(), "ECDHE-ECDSA-CHACHA20-POLY1305", true},
      {ec_server.get(), "ECDHE-ECDSA-AES256-GCM-SHA384", true},
      {ec_server.get(), "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA", false},  // CBC
      {rsa_server.get(), "ECDHE-RSA-AES128-GCM-SHA256", true},
      {rsa_server.get(), "AES128-GCM-SHA256:AES256-GCM-SHA384", false},  // no forward secrecy
      {rsa_server.get(), "DHE-RSA-AES128-GCM-SHA256", false},            // finite-field DH
      {rsa_server.get(), "ECDHE-RSA-AES128-SHA:AES128-SHA", false},
  };
  for (const Case& c : cases) {
    RawTlsOptions options;
    options.max_version = TLS1_2_VERSION;
    options.ciphers = c.ciphers;
    if (c.server == rsa_server.get()) options.ca_file = files->rsa_cert;
    RawTlsClient client(c.server->port(), options);
    EXPECT_EQ(client.connected(), c.accepted) << c.ciphers << ": " << client.error();
    if (c.accepted && client.connected()) {
      EXPECT_EQ(client.cipher(), c.ciphers);
    }
    if (!c.accepted) {
      // Refused by the server for want of a common cipher (a handshake_failure alert).
      EXPECT_EQ(client.error_reason(), SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)
          << c.ciphers << ": " << client.error();
    }
  }
}

TEST_F(TlsTest, PlainHttpToTheTlsPortIsRefused) {
  std::atomic<int> calls{0};
  auto server = StartOrDie(TlsOptions(), [&](Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  auto start = std::chrono::steady_clock::now();
  std::string raw = test::SendRaw(kHost, server->port(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 5s);
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 3.0);
  auto responses = test::ParseResponses(raw);
  ASSERT_EQ(responses.size(), 1u) << raw;
  EXPECT_EQ(responses[0].status, 400);
  EXPECT_NE(responses[0].body.find("HTTPS"), std::string::npos) << responses[0].body;
  EXPECT_EQ(responses[0].Header("Strict-Transport-Security"), "");
  EXPECT_EQ(calls.load(), 0);

  // The server still serves TLS afterwards.
  RawTlsClient client(server->port(), {});
  EXPECT_TRUE(client.connected()) << client.error();
}

TEST_F(TlsTest, HandshakeAndRequestsAreBoundByTheReadTimeout) {
  auto server = StartOrDie(TlsOptions());
  ASSERT_NE(server, nullptr);

  // Connects and says nothing; then begins a ClientHello and stops.
  for (std::string bytes : {std::string(), std::string("\x16\x03\x01\x02\x00", 5)}) {
    auto start = std::chrono::steady_clock::now();
    std::string raw = test::SendRaw(kHost, server->port(), bytes, 10s);
    double elapsed = Seconds(std::chrono::steady_clock::now() - start);
    EXPECT_GE(elapsed, 0.25);
    EXPECT_LT(elapsed, 4.0);  // closed by the server, not by the client's 10 s deadline
    EXPECT_EQ(raw, "");
  }

  // Half a request over TLS: 408, like plain HTTP.
  RawTlsClient client(server->port(), {});
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_TRUE(client.Write("GET /slow HTTP/1.1\r\nHost: t\r\n"));
  auto start = std::chrono::steady_clock::now();
  auto responses = test::ParseResponses(client.ReadAll());
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 4.0);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 408);
  EXPECT_EQ(responses[0].Header("Strict-Transport-Security"), kHsts);
}

TEST_F(TlsTest, StopClosesIdleTlsConnectionsAtOnce) {
  ServerOptions options = TlsOptions();
  options.idle_timeout = 8000ms;
  auto server = StartOrDie(options);
  ASSERT_NE(server, nullptr);
  RawTlsClient idle(server->port(), {});
  ASSERT_TRUE(idle.connected()) << idle.error();
  ASSERT_TRUE(idle.Write("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(idle.ReadResponses(1).size(), 1u);
  RawTlsClient handshaken_only(server->port(), {});
  ASSERT_TRUE(handshaken_only.connected());
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 2.5);
}

TEST_F(TlsTest, ConcurrentHttpsClients) {
  auto server = StartOrDie(TlsOptions());
  ASSERT_NE(server, nullptr);
  FetchOptions trusted;
  trusted.ca_file = files->cert;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
        auto got = Get(Url(*server, kHost, path), trusted);
        if (got && got->status == 200 && got->body == "GET " + path + " body=") ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 32);
}

TEST_F(TlsTest, UnusableTlsFilesFailStartNamingTheFile) {
  struct Case {
    std::string cert, key, expected;
  };
  const Case cases[] = {
      {files->cert, files->other_key, "does not match the certificate"},
      {files->cert, files->rsa_key, "does not match the certificate"},
      {files->rsa_cert, files->key, "does not match the certificate"},
      {files->missing, files->key, "certificate chain"},
      {files->garbage, files->key, "certificate chain"},
      {files->cert, files->missing, "private key"},
      {files->cert, files->garbage, "private key"},
      {files->cert, files->encrypted_key, "private key"},  // fails; never asks for a passphrase
      {files->cert, "", "both"},
      {"", files->key, "both"},
  };
  for (const Case& c : cases) {
    ServerOptions options = TlsOptions();
    options.tls_cert_file = c.cert;
    options.tls_key_file = c.key;
    auto server = Server::Start(options, Echo, Render);
    ASSERT_FALSE(server) << c.cert << " " << c.key;
    EXPECT_EQ(server.error().code(), ErrorCode::kInvalid);
    const std::string& message = server.error().message();
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
    // The file at fault is named (the key for a mismatch or a bad key, else the certificate).
    const std::string& culprit =
        c.expected == "certificate chain" ? c.cert : (c.key.empty() ? c.cert : c.key);
    if (c.expected != "both") {
      EXPECT_NE(message.find(culprit), std::string::npos) << message;
    }
  }
}

TEST_F(TlsTest, PlainHttpIsRefusedOnPublicAddressesUnlessAllowed) {
  ServerOptions options = TlsOptions();
  options.tls_cert_file.clear();
  options.tls_key_file.clear();
  for (const char* host : {"0.0.0.0", "::", "[::]"}) {
    options.host = host;
    auto refused = Server::Start(options, Echo, Render);
    ASSERT_FALSE(refused) << host;
    EXPECT_EQ(refused.error().code(), ErrorCode::kInvalid);
    EXPECT_EQ(refused.error().message(),
              "refusing to serve plain HTTP on " + std::string(host) +
                  ": give --tls-cert/--tls-key, or --insecure-http to allow it");
  }

  // Explicitly allowed: serves on every address, loopback included.
  options.host = "0.0.0.0";
  options.allow_plain_http_on_public = true;
  auto allowed = StartOrDie(options);
  ASSERT_NE(allowed, nullptr);
  auto got = test::Fetch(kHost, allowed->port(), test::MakeRequest("GET", "/open"));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->status, 200);
  allowed->Stop();

  // With TLS no permission is needed.
  ServerOptions tls = TlsOptions();
  tls.host = "0.0.0.0";
  auto secure = StartOrDie(tls);
  ASSERT_NE(secure, nullptr);
  FetchOptions trusted;
  trusted.ca_file = files->cert;
  auto over_tls = Get(Url(*secure, kHost, "/"), trusted);
  ASSERT_TRUE(over_tls) << over_tls.error().message();
  EXPECT_EQ(over_tls->status, 200);
}

TEST_F(TlsTest, PlainHttpOnLoopbackNeedsNoPermission) {
  ServerOptions options = TlsOptions();
  options.tls_cert_file.clear();
  options.tls_key_file.clear();
  for (const char* host : {"127.0.0.1", "127.0.0.2", "localhost"}) {
    options.host = host;
    auto server = StartOrDie(options);
    ASSERT_NE(server, nullptr) << host;
    std::string address = std::string(host) == "127.0.0.2" ? "127.0.0.2" : kHost;
    auto got = test::Fetch(address, server->port(), test::MakeRequest("GET", "/"));
    ASSERT_TRUE(got) << host << ": " << got.error().message();
    EXPECT_EQ(got->status, 200);
  }
  options.host = "::1";
  auto v6 = Server::Start(options, Echo, Render);
  if (v6) {
    auto got = test::Fetch("::1", (*v6)->port(), test::MakeRequest("GET", "/"));
    ASSERT_TRUE(got) << got.error().message();
  } else {
    // No IPv6 loopback here: then binding fails, but the refusal must not be the reason.
    EXPECT_EQ(v6.error().code(), ErrorCode::kUnavailable) << v6.error().message();
  }
}

}  // namespace
}  // namespace fhirstone::http
