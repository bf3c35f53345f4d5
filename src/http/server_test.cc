#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"

namespace fhirstone::http {
namespace {

using namespace std::chrono_literals;
using test::Client;
using test::Fetch;
using test::MakeRequest;
using test::ParseResponses;
using test::SendRaw;

constexpr char kHost[] = "127.0.0.1";

ServerOptions TestOptions() {
  ServerOptions options;
  options.host = kHost;
  options.port = 0;
  options.threads = 2;
  options.max_body_bytes = 1024;
  options.max_header_bytes = 1024;
  options.read_timeout = 200ms;
  options.idle_timeout = 500ms;
  options.shutdown_grace = 8000ms;
  return options;
}

Response Render(int status, std::string_view message) {
  Response response;
  response.status = status;
  response.SetHeader("Content-Type", "text/plain");
  response.SetHeader("X-Rendered", "yes");
  response.body = "rendered " + std::to_string(status) + ": " + std::string(message);
  return response;
}

// Answers "<method> <path> q=<query> from=<peer> body=<body>" and echoes X-Test as X-Echo.
// A blocking socket connected to the server on 127.0.0.1:`port`, whose reads give up after 5 s
// (-1 on failure); `receive_buffer`: its size, when not 0.
int ConnectPlain(uint16_t port, int receive_buffer = 0) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  timeval wait{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

Response Echo(Request& request) {
  Response response;
  response.SetHeader("Content-Type", "text/plain");
  response.SetHeader("X-Echo", std::string(request.Header("x-test")));
  response.body = request.method + " " + std::string(request.Path()) +
                  " q=" + std::string(request.Query()) + " from=" + request.remote_address +
                  " body=" + request.body;
  return response;
}

std::unique_ptr<Server> StartOrDie(const ServerOptions& options, Handler handler) {
  auto server = Server::Start(options, std::move(handler), Render);
  if (!server) ADD_FAILURE() << "Start failed: " << server.error().message();
  return server ? std::move(server).value() : nullptr;
}

std::string Get(std::string_view path, std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

TEST(ServerTest, PortZeroPicksAFreePort) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->port(), 0);
  EXPECT_TRUE(test::CanConnect(kHost, server->port()));
}

TEST(ServerTest, GetAndPostRoundTrip) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);

  Request get = MakeRequest("GET", "/Patient/1?_format=json&x=%20");
  get.headers.emplace_back("X-Test", "hello");
  auto got = Fetch(kHost, server->port(), get);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "GET /Patient/1 q=_format=json&x=%20 from=127.0.0.1 body=");
  EXPECT_EQ(got->Header("x-echo"), "hello");
  EXPECT_EQ(got->Header("Server"), "Fhirstone");
  EXPECT_EQ(got->Header("Content-Length"), std::to_string(got->body.size()));
  EXPECT_FALSE(got->Header("Date").empty());

  Request post = MakeRequest("POST", "/Patient", "{\"resourceType\":\"Patient\"}");
  post.headers.emplace_back("Content-Type", "application/fhir+json");
  auto posted = Fetch(kHost, server->port(), post);
  ASSERT_TRUE(posted) << posted.error().message();
  EXPECT_EQ(posted->status, 200);
  EXPECT_EQ(posted->body, "POST /Patient q= from=127.0.0.1 body={\"resourceType\":\"Patient\"}");
}

TEST(ServerTest, ServerHeaderComesFromOptionsUnlessTheHandlerSetsOne) {
  ServerOptions options = TestOptions();
  options.server_header = "Test/1.0";
  auto server = StartOrDie(options, [](Request& request) {
    Response response;
    if (request.Path() == "/own") response.SetHeader("Server", "Own");
    return response;
  });
  ASSERT_NE(server, nullptr);
  auto a = Fetch(kHost, server->port(), MakeRequest("GET", "/"));
  auto b = Fetch(kHost, server->port(), MakeRequest("GET", "/own"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->Header("Server"), "Test/1.0");
  EXPECT_EQ(b->Header("Server"), "Own");
  EXPECT_EQ(a->Header("Content-Length"), "0");
}

TEST(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  Client client(kHost, server->port());
  auto first = client.Send(MakeRequest("GET", "/one"));
  auto second = client.Send(MakeRequest("POST", "/two", "body"));
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, "GET /one q= from=127.0.0.1 body=");
  EXPECT_EQ(second->body, "POST /two q= from=127.0.0.1 body=body");
  EXPECT_EQ(client.connections_opened(), 1);
  EXPECT_TRUE(client.is_open());
}

TEST(ServerTest, ConnectionCloseFromClientOrHandlerIsHonoured) {
  ServerOptions options = TestOptions();
  options.idle_timeout = 8000ms;
  auto server = StartOrDie(options, [](Request& request) {
    Response response = Echo(request);
    if (request.Path() == "/bye") response.SetHeader("Connection", "close");
    return response;
  });
  ASSERT_NE(server, nullptr);

  Client client(kHost, server->port());
  ASSERT_TRUE(client.Send(MakeRequest("GET", "/bye")));
  EXPECT_FALSE(client.is_open());
  ASSERT_TRUE(client.Send(MakeRequest("GET", "/again")));
  EXPECT_EQ(client.connections_opened(), 2);

  // The server closes after answering a request that asked for it, long before the idle timeout.
  auto start = std::chrono::steady_clock::now();
  std::string raw = SendRaw(kHost, server->port(), Get("/x", "Connection: close\r\n"), 10s);
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 4.0);
  auto responses = ParseResponses(raw);
  ASSERT_EQ(responses.size(), 1u) << raw;
  EXPECT_EQ(responses[0].Header("Connection"), "close");
}

TEST(ServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  auto start = std::chrono::steady_clock::now();
  std::string raw = SendRaw(kHost, server->port(), Get("/x"), 10s);
  double elapsed = Seconds(std::chrono::steady_clock::now() - start);
  EXPECT_GE(elapsed, 0.45);
  EXPECT_LT(elapsed, 4.0);  // closed by the server, not by the client's 10 s deadline
  EXPECT_EQ(ParseResponses(raw).size(), 1u) << raw;
}

TEST(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  std::string bytes = Get("/one") +
                      "POST /two HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc" +
                      Get("/three", "Connection: close\r\n");
  auto responses = ParseResponses(SendRaw(kHost, server->port(), bytes, 3s));
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[0].body, "GET /one q= from=127.0.0.1 body=");
  EXPECT_EQ(responses[1].body, "POST /two q= from=127.0.0.1 body=abc");
  EXPECT_EQ(responses[2].body, "GET /three q= from=127.0.0.1 body=");
}

TEST(ServerTest, HeadSendsNoBodyButTheLengthOfIt) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  const std::string get_body = "GET /x q= from=127.0.0.1 body=";
  const std::string head_body = "HEAD /x q= from=127.0.0.1 body=";

  auto head = Fetch(kHost, server->port(), MakeRequest("HEAD", "/x"));
  ASSERT_TRUE(head) << head.error().message();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  EXPECT_EQ(head->Header("Content-Length"), std::to_string(head_body.size()));

  // On the wire: the header block and nothing after it, then the next answer.
  std::string raw =
      SendRaw(kHost, server->port(),
              "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/x", "Connection: close\r\n"), 3s);
  size_t end_of_head = raw.find("\r\n\r\n");
  ASSERT_NE(end_of_head, std::string::npos);
  EXPECT_EQ(raw.substr(end_of_head + 4, 9), "HTTP/1.1 ") << raw;
  EXPECT_EQ(raw.substr(raw.size() - get_body.size()), get_body);
}

TEST(ServerTest, BodyOverTheLimitIs413FromTheRenderer) {
  std::atomic<int> calls{0};
  auto server = StartOrDie(TestOptions(), [&](Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);

  std::string body(4096, 'x');
  std::string bytes = "POST /Patient HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + body;
  auto responses = ParseResponses(SendRaw(kHost, server->port(), bytes, 3s));
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 413);
  EXPECT_EQ(responses[0].Header("X-Rendered"), "yes");
  EXPECT_EQ(responses[0].body.rfind("rendered 413: ", 0), 0u) << responses[0].body;
  EXPECT_EQ(responses[0].Header("Connection"), "close");

  // A chunked body is counted as it arrives.
  std::string chunked = "POST /Patient HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  responses = ParseResponses(SendRaw(kHost, server->port(), chunked, 3s));
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 413);

  // The limit itself is fine.
  auto ok = Fetch(kHost, server->port(), MakeRequest("POST", "/", std::string(1024, 'z')));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ServerTest, Expect100ContinueGetsAnInterimAnswer) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  // A client that waits for the interim answer before it sends the body (plain sockets: the
  // exchange has to pause in the middle).
  int fd = ConnectPlain(server->port());
  ASSERT_GE(fd, 0);
  auto send_all = [fd](std::string_view bytes) {
    return send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  };
  std::string received;
  auto receive_until = [&](std::string_view end) {
    char chunk[4096];
    while (received.find(end) == std::string::npos) {
      ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      received.append(chunk, static_cast<size_t>(n));
    }
    return true;
  };
  ASSERT_TRUE(
      send_all("POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
               "Connection: close\r\n\r\n"));
  ASSERT_TRUE(receive_until("\r\n\r\n"));
  EXPECT_TRUE(received.starts_with("HTTP/1.1 100")) << received;
  ASSERT_TRUE(send_all("hi"));
  receive_until("no end: until the server closes");
  close(fd);
  auto responses = ParseResponses(received);
  ASSERT_EQ(responses.size(), 2u) << received;
  EXPECT_EQ(responses[0].status, 100);
  EXPECT_EQ(responses[1].status, 200);
  EXPECT_EQ(responses[1].body, "POST /p q= from=127.0.0.1 body=hi");

  // The body sent with the header: the final answer alone (a server may omit the interim one
  // once it has the body, RFC 9110 section 10.1.1).
  responses = ParseResponses(SendRaw(kHost, server->port(),
                                     "POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                                     "Content-Length: 2\r\nConnection: close\r\n\r\nhi",
                                     3s));
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[0].body, "POST /p q= from=127.0.0.1 body=hi");
}

TEST(ServerTest, HeadersOverTheLimitAre431) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  std::string bytes = Get("/", "X-Big: " + std::string(2000, 'a') + "\r\n");
  auto responses = ParseResponses(SendRaw(kHost, server->port(), bytes, 3s));
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 431);
  EXPECT_EQ(responses[0].body.rfind("rendered 431: ", 0), 0u);
}

TEST(ServerTest, MalformedRequestsAre400) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  const std::string tls_hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15);
  for (const std::string& garbage :
       {std::string("THIS IS NOT HTTP\r\n\r\n"), std::string("GET /\r\n\r\n"),
        std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), tls_hello}) {
    auto responses = ParseResponses(SendRaw(kHost, server->port(), garbage, 3s));
    ASSERT_EQ(responses.size(), 1u) << garbage;
    EXPECT_EQ(responses[0].status, 400) << garbage;
    EXPECT_EQ(responses[0].body.rfind("rendered 400: ", 0), 0u);
  }
}

TEST(ServerTest, SlowClientGets408AndIsClosed) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  auto start = std::chrono::steady_clock::now();
  std::string raw = SendRaw(kHost, server->port(), "GET /slow HTTP/1.1\r\nHost: t\r\n", 10s);
  double elapsed = Seconds(std::chrono::steady_clock::now() - start);
  EXPECT_GE(elapsed, 0.19);
  EXPECT_LT(elapsed, 4.0);  // closed by the server, not by the client's 10 s deadline
  auto responses = ParseResponses(raw);
  ASSERT_EQ(responses.size(), 1u) << raw;
  EXPECT_EQ(responses[0].status, 408);
  EXPECT_EQ(responses[0].body.rfind("rendered 408: ", 0), 0u);

  // A body that stops half way is the same.
  raw = SendRaw(kHost, server->port(),
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 3s);
  responses = ParseResponses(raw);
  ASSERT_EQ(responses.size(), 1u) << raw;
  EXPECT_EQ(responses[0].status, 408);
}

// A client that asks for a large answer and never reads it: the answer is written as far as the
// socket takes it, then under the write deadline, which closes the connection; the server answers
// others meanwhile.
TEST(ServerTest, ClientThatDoesNotReadItsAnswerIsCutOff) {
  auto large = [](Request& request) {
    if (request.Path() != "/large") return Echo(request);
    Response response;
    response.status = 200;
    response.body.assign(32 << 20, 'x');
    return response;
  };
  auto server = StartOrDie(TestOptions(), large);
  ASSERT_NE(server, nullptr);
  int fd = ConnectPlain(server->port(), /*receive_buffer=*/4096);
  ASSERT_GE(fd, 0);
  std::string request = "GET /large HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(100ms);
  auto other = Fetch(kHost, server->port(), MakeRequest("GET", "/other"));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  std::this_thread::sleep_for(600ms);  // past the 200 ms write deadline
  // What the server managed to send, then the end of the connection: never the whole answer.
  size_t received = 0;
  char chunk[65536];
  while (true) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    received += static_cast<size_t>(n);
  }
  close(fd);
  EXPECT_LT(received, size_t{32} << 20);
}

TEST(ServerTest, PeerThatHalfClosesStillGetsItsAnswer) {
  ServerOptions options = TestOptions();
  options.idle_timeout = 8000ms;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  auto start = std::chrono::steady_clock::now();
  auto responses = ParseResponses(SendRaw(kHost, server->port(), Get("/x"), 10s, true));
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 4.0);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 200);

  // Half a request, then end of stream: refused as incomplete.
  responses = ParseResponses(SendRaw(kHost, server->port(), "GET / HTTP/1.1\r\nHo", 3s, true));
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 400);

  // Peers that vanish at any point leave the server serving.
  EXPECT_EQ(SendRaw(kHost, server->port(), "", 3s, true), "");
  SendRaw(kHost, server->port(), "GET / HTTP/1.1\r\n", 10ms);
  SendRaw(kHost, server->port(), Get("/x"), 0ms);
  auto ok = Fetch(kHost, server->port(), MakeRequest("GET", "/"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(ServerTest, HandlerExceptionIs500FromTheRendererAndTheConnectionLives) {
  auto server = StartOrDie(TestOptions(), [](Request& request) -> Response {
    if (request.Path() == "/throw") throw std::runtime_error("boom");
    if (request.Path() == "/int") throw 42;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  Client client(kHost, server->port());
  auto thrown = client.Send(MakeRequest("GET", "/throw"));
  ASSERT_TRUE(thrown);
  EXPECT_EQ(thrown->status, 500);
  EXPECT_EQ(thrown->body.rfind("rendered 500: ", 0), 0u);
  EXPECT_EQ(thrown->body.find("boom"), std::string::npos);  // internals stay inside
  auto thrown_int = client.Send(MakeRequest("GET", "/int"));
  ASSERT_TRUE(thrown_int);
  EXPECT_EQ(thrown_int->status, 500);
  auto fine = client.Send(MakeRequest("GET", "/fine"));
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200);
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(ServerTest, RendererThatThrowsStillYieldsAnAnswer) {
  auto server = Server::Start(
      TestOptions(), [](Request&) -> Response { throw std::runtime_error("x"); },
      [](int, std::string_view) -> Response { throw std::runtime_error("y"); });
  ASSERT_TRUE(server);
  auto got = Fetch(kHost, (*server)->port(), MakeRequest("GET", "/"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 500);
}

TEST(ServerTest, HeaderValuesCannotSplitTheResponse) {
  auto server = StartOrDie(TestOptions(), [](Request&) {
    Response response;
    response.SetHeader("X-Injected", "a\r\nSet-Cookie: evil=1");
    response.SetHeader("Bad Name", "dropped");
    response.SetHeader("Content-Length", "999");
    response.body = "ok";
    return response;
  });
  ASSERT_NE(server, nullptr);
  auto got = Fetch(kHost, server->port(), MakeRequest("GET", "/"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->Header("Set-Cookie"), "");
  EXPECT_EQ(got->Header("X-Injected"), "a  Set-Cookie: evil=1");
  EXPECT_EQ(got->Header("Bad Name"), "");
  EXPECT_EQ(got->Header("Content-Length"), "2");
  EXPECT_EQ(got->body, "ok");
}

TEST(ServerTest, NoContentHasNoBody) {
  auto server = StartOrDie(TestOptions(), [](Request&) {
    Response response;
    response.status = 204;
    response.body = "ignored";
    return response;
  });
  ASSERT_NE(server, nullptr);
  Client client(kHost, server->port());
  auto first = client.Send(MakeRequest("DELETE", "/Patient/1"));
  auto second = client.Send(MakeRequest("DELETE", "/Patient/2"));
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 204);
  EXPECT_EQ(first->body, "");
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(ServerTest, ConcurrentClients) {
  std::atomic<int> calls{0};
  auto server = StartOrDie(TestOptions(), [&](Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  constexpr int kThreads = 6;
  constexpr int kRequests = 30;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client client(kHost, server->port());
      for (int i = 0; i < kRequests; ++i) {
        std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
        auto got = client.Send(MakeRequest("POST", path, path));
        if (got && got->status == 200 &&
            got->body == "POST " + path + " q= from=127.0.0.1 body=" + path) {
          ++ok;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  EXPECT_EQ(calls.load(), kThreads * kRequests);
}

TEST(ServerTest, StopLetsAnInFlightRequestFinish) {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  const std::string big(200 * 1024, 'b');
  auto server = StartOrDie(TestOptions(), [&](Request& request) {
    Response response;
    if (request.Path() == "/slow") {
      entered.set_value();
      released.wait();
      response.body = big;
    }
    return response;
  });
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port();

  Client idle(kHost, port);  // an idle keep-alive connection must not hold Stop() up
  ASSERT_TRUE(idle.Send(MakeRequest("GET", "/")));

  auto slow = std::async(std::launch::async,
                         [&] { return Fetch(kHost, port, MakeRequest("GET", "/slow")); });
  entered.get_future().wait();
  auto stopper = std::async(std::launch::async, [&] { server->Stop(); });

  // Stop() closes the listener first; once it refuses connections, Stop() is waiting.
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (test::CanConnect(kHost, port) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_FALSE(test::CanConnect(kHost, port));
  EXPECT_EQ(stopper.wait_for(0s), std::future_status::timeout);
  release.set_value();

  auto start = std::chrono::steady_clock::now();
  stopper.get();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 2.5);  // well within the grace
  auto got = slow.get();
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, big);
  EXPECT_EQ(got->Header("Connection"), "close");
  server->Stop();  // idempotent
}

// A request that `offload` picks runs on a thread of its own: while it waits, the one I/O thread
// goes on answering the others (without offload_threads, the fast request waits for the slow one).
TEST(ServerTest, OffloadedRequestsLeaveTheIoThreadsFree) {
  for (int offload_threads : {1, 0}) {
    SCOPED_TRACE(offload_threads);
    ServerOptions options = TestOptions();
    options.threads = 1;
    options.read_timeout = 5000ms;
    options.offload_threads = offload_threads;
    options.offload = [](const Request& request) { return request.Path() == "/slow"; };
    std::promise<void> fast_answered;
    std::shared_future<void> fast = fast_answered.get_future().share();
    std::atomic<bool> slow_on_io_thread{false};
    std::thread::id io_thread;
    std::mutex mu;
    auto server = StartOrDie(options, [&](Request& request) {
      Response response;
      if (request.Path() == "/slow") {
        bool released = fast.wait_for(1500ms) == std::future_status::ready;
        response.body = released ? "released" : "waited alone";
        std::lock_guard lock(mu);
        slow_on_io_thread = std::this_thread::get_id() == io_thread;
      } else {
        {
          std::lock_guard lock(mu);
          io_thread = std::this_thread::get_id();
        }
        response.body = "fast";
        fast_answered.set_value();
      }
      return response;
    });
    ASSERT_NE(server, nullptr);
    auto slow = std::async(std::launch::async, [&] {
      return Fetch(kHost, server->port(), MakeRequest("GET", "/slow"));
    });
    std::this_thread::sleep_for(200ms);  // the slow request is in its handler
    auto quick = Fetch(kHost, server->port(), MakeRequest("GET", "/fast"));
    ASSERT_TRUE(quick) << quick.error().message();
    EXPECT_EQ(quick->body, "fast");
    auto waited = slow.get();
    ASSERT_TRUE(waited) << waited.error().message();
    if (offload_threads > 0) {
      EXPECT_EQ(waited->body, "released");
      EXPECT_FALSE(slow_on_io_thread);
    } else {
      EXPECT_EQ(waited->body, "waited alone");
    }
  }
}

// Offloaded requests still queued when the grace period ends are dropped with their connections.
TEST(ServerTest, StopDropsQueuedOffloadedRequests) {
  ServerOptions options = TestOptions();
  options.read_timeout = 5000ms;
  options.shutdown_grace = 100ms;
  options.offload_threads = 1;
  options.offload = [](const Request&) { return true; };
  auto server = StartOrDie(options, [](Request&) {
    std::this_thread::sleep_for(300ms);
    return Response{};
  });
  ASSERT_NE(server, nullptr);
  std::vector<int> sockets;
  for (int i = 0; i < 4; ++i) {  // sent, not waited for
    int fd = ConnectPlain(server->port());
    ASSERT_GE(fd, 0);
    std::string request = Get("/slow");
    ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    sockets.push_back(fd);
  }
  std::this_thread::sleep_for(100ms);  // one runs, three wait in the pool's queue
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 2.0);
  server.reset();
  for (int fd : sockets) close(fd);
}

TEST(ServerTest, StopWithIdleConnectionsReturnsAtOnce) {
  ServerOptions options = TestOptions();
  options.idle_timeout = 8000ms;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  Client client(kHost, server->port());
  ASSERT_TRUE(client.Send(MakeRequest("GET", "/")));
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - start), 2.5);
  EXPECT_FALSE(client.Send(MakeRequest("GET", "/")));
}

TEST(ServerTest, DestructorStopsAServerThatWasNeverStopped) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  Client client(kHost, server->port());
  ASSERT_TRUE(client.Send(MakeRequest("GET", "/")));
  server.reset();
}

TEST(ServerTest, BindingATakenPortFails) {
  auto first = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(first, nullptr);
  ServerOptions options = TestOptions();
  options.port = first->port();
  auto second = Server::Start(options, Echo, Render);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message().find(std::to_string(first->port())), std::string::npos);

  options.host = "no-such-host.invalid";
  options.port = 0;
  EXPECT_FALSE(Server::Start(options, Echo, Render));
}

TEST(ServerTest, LocalhostAndIpv6Hosts) {
  ServerOptions options = TestOptions();
  options.host = "localhost";
  auto local = StartOrDie(options, Echo);
  ASSERT_NE(local, nullptr);
  auto got = Fetch(kHost, local->port(), MakeRequest("GET", "/"));
  ASSERT_TRUE(got) << got.error().message();

  options.host = "::1";
  auto v6 = Server::Start(options, Echo, Render);
  if (!v6) GTEST_SKIP() << "no IPv6 loopback here: " << v6.error().message();
  got = Fetch("::1", (*v6)->port(), MakeRequest("GET", "/"));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->body, "GET / q= from=::1 body=");
}

TEST(ServerTest, WaitForSignalReturnsOnSigtermOrStop) {
  auto server = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(server, nullptr);
  // Ignored until the server's signal_set takes SIGTERM over, so that early signals are harmless.
  struct sigaction old_action {};
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGTERM, &ignore, &old_action);
  auto waiter = std::async(std::launch::async, [&] { server->WaitForSignal(); });
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (waiter.wait_for(10ms) != std::future_status::ready &&
         std::chrono::steady_clock::now() < deadline) {
    kill(getpid(), SIGTERM);
  }
  EXPECT_EQ(waiter.wait_for(0s), std::future_status::ready);
  waiter.get();
  server->Stop();
  sigaction(SIGTERM, &old_action, nullptr);

  auto other = StartOrDie(TestOptions(), Echo);
  ASSERT_NE(other, nullptr);
  auto blocked = std::async(std::launch::async, [&] { other->WaitForSignal(); });
  EXPECT_EQ(blocked.wait_for(50ms), std::future_status::timeout);
  other->Stop();
  EXPECT_EQ(blocked.wait_for(2s), std::future_status::ready);
}

}  // namespace
}  // namespace fhirstone::http
