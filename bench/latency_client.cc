// bench_latency URL SECONDS [N]: one client on one keep-alive connection, each request sent once
// the previous answer is read whole, for SECONDS. With N, the first "{i}" of the URL's path is
// replaced in each request by an integer drawn uniformly from 1..N (reads by random id). Prints one
// line in the form of bench/wrk/report.lua's (requests/s, p50 and p99 in microseconds, errors) and
// the tail beyond it:
//   RESULT rps=... p50=... p99=... errors=... p999=... max=... over1ms=... over5ms=...
// Each latency is the time from before the request is written to after the last byte of the
// answer is read (CLOCK_MONOTONIC). The latencies at one connection are measured with this client
// rather than with wrk: docs/decisions/0013-latency-client.md says why.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Target {
  std::string host, port, path;
};

bool ParseUrl(std::string_view url, Target& t) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return false;
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  t.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  size_t colon = authority.rfind(':');
  t.host = std::string(authority.substr(0, colon));
  t.port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  return !t.host.empty();
}

int Connect(const Target& t) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval limit{10, 0};  // a server that stalls: an error after 10 s, as wrk counts a timeout
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }
  return fd;
}

// The outcome of one exchange.
struct Answer {
  bool ok = false;     // a whole answer was read
  int status = 0;      // its HTTP status
  bool close = false;  // the server closes the connection after it
};

// Reads one answer from `fd`; `buffer` keeps what was read past it (none, with one request in
// flight). Bodies framed by Content-Length or chunked (without trailers), what the server sends;
// an answer framed otherwise (by the end of the connection) is counted as an error.
Answer ReadAnswer(int fd, std::string& buffer) {
  Answer a;
  auto fill = [&]() {
    char chunk[65536];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  };
  size_t end;
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return a;
  std::string head = buffer.substr(0, end + 2);
  buffer.erase(0, end + 4);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (head.size() < 12 || !head.starts_with("http/1.")) return a;
  a.status = std::atoi(head.c_str() + 9);
  if (size_t at = head.find("\r\nconnection:"); at != std::string::npos)
    a.close = head.substr(at + 13, head.find("\r\n", at + 13) - at - 13).find("close") !=
              std::string::npos;
  size_t length_at = head.find("\r\ncontent-length:");
  if (length_at != std::string::npos) {
    size_t length = std::strtoull(head.c_str() + length_at + 17, nullptr, 10);
    while (buffer.size() < length)
      if (!fill()) return a;
    buffer.erase(0, length);
    a.ok = true;
    return a;
  }
  if (head.find("\r\ntransfer-encoding: chunked") == std::string::npos) return a;
  while (true) {
    size_t line;
    while ((line = buffer.find("\r\n")) == std::string::npos)
      if (!fill()) return a;
    char* end_of_size = nullptr;
    size_t size = std::strtoull(buffer.c_str(), &end_of_size, 16);
    if (end_of_size == buffer.c_str()) return a;  // no chunk size
    buffer.erase(0, line + 2);
    while (buffer.size() < size + 2)
      if (!fill()) return a;
    buffer.erase(0, size + 2);
    if (size == 0) break;  // (no trailers: the server sends none)
  }
  a.ok = true;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Target target;
  long long ids = 0;
  if (argc == 4) {
    char* end = nullptr;
    errno = 0;
    ids = std::strtoll(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0' || errno != 0) ids = -1;  // refused below
  }
  if ((argc != 3 && argc != 4) || !ParseUrl(argv[1], target) || std::atof(argv[2]) <= 0 ||
      (argc == 4 && (ids < 1 || target.path.find("{i}") == std::string::npos))) {
    std::fprintf(stderr,
                 "usage: bench_latency http://HOST:PORT/PATH SECONDS [N, with {i} in PATH]\n");
    return 2;
  }
  const auto duration = std::chrono::duration<double>(std::atof(argv[2]));
  const std::string tail = " HTTP/1.1\r\nHost: " + target.host + ":" + target.port + "\r\n\r\n";
  const size_t slot = target.path.find("{i}");
  std::mt19937_64 random(static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<long long> draw(1, std::max(ids, 1LL));
  std::string request = "GET " + target.path + tail;
  std::vector<double> latencies;  // microseconds
  latencies.reserve(1 << 20);
  long errors = 0;
  int fd = -1;
  std::string buffer;
  const auto start = Clock::now();
  while (Clock::now() - start < duration) {
    if (fd < 0) {
      fd = Connect(target);
      buffer.clear();
      if (fd < 0) {
        std::fprintf(stderr, "bench_latency: cannot connect to %s:%s\n", target.host.c_str(),
                     target.port.c_str());
        if (latencies.empty() && errors == 0) return 1;  // never connected
        ++errors;  // the server went away during the run: what was measured is reported
        break;
      }
    }
    if (ids > 0)
      request = "GET " + target.path.substr(0, slot) + std::to_string(draw(random)) +
                target.path.substr(slot + 3) + tail;
    auto before = Clock::now();
    bool sent = send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(request.size());
    Answer a = sent ? ReadAnswer(fd, buffer) : Answer{};
    auto after = Clock::now();
    if (!a.ok || a.status < 200 || a.status > 399) ++errors;
    if (a.ok)
      latencies.push_back(std::chrono::duration<double, std::micro>(after - before).count());
    if (!a.ok || a.close) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (latencies.empty()) {
    std::printf("RESULT rps=0 p50=0 p99=0 errors=%ld p999=0 max=0 over1ms=0 over5ms=0\n", errors);
    return 0;
  }
  long over1 = std::count_if(latencies.begin(), latencies.end(), [](double v) { return v > 1000; });
  long over5 = std::count_if(latencies.begin(), latencies.end(), [](double v) { return v > 5000; });
  std::sort(latencies.begin(), latencies.end());
  auto at = [&](double p) {  // the nearest-rank percentile
    size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(latencies.size()) + 0.999999);
    return latencies[std::clamp<size_t>(rank, 1, latencies.size()) - 1];
  };
  std::printf(
      "RESULT rps=%.0f p50=%.0f p99=%.0f errors=%ld p999=%.0f max=%.0f over1ms=%ld over5ms=%ld\n",
      static_cast<double>(latencies.size()) / seconds, at(50), at(99), errors, at(99.9),
      latencies.back(), over1, over5);
  return 0;
}
