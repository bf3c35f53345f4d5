// bench_tokens: tokens issued per second by the authorization server, per grant, beside this
// machine's ceiling measured in the same run (a trivial request on the same server, sent by the
// same client code from the same number of threads).
//
// Starts the server in-process (server::App on 127.0.0.1:0, a fresh SQLite database in WORKDIR),
// registers a public SMART app and a confidential-symmetric backend client, signs one browser in
// (Argon2id, paid once) and consents once, so that the consent is remembered. Then, for each
// client-thread count, runs ITERATIONS operations (split over the threads, each thread with its
// own keep-alive connection) of:
//   ceiling             GET /fhir/.well-known/smart-configuration
//   authorization_code  GET /auth/authorize (session cookie, PKCE S256) -> 302 with a code,
//                       then POST /auth/token -> access token (+ id_token, refresh token)
//   refresh_token       POST /auth/token grant_type=refresh_token, rotating (one chain per thread)
//   client_credentials  POST /auth/token with HTTP Basic client_id:client_secret
// The ceiling runs just before and just after each grant, so every ratio compares runs seconds
// apart.
//
// Usage: bench_tokens WORKDIR ITERATIONS THREADS[,THREADS...] SERVER_THREADS
// Prints one line per run:
//   RESULT workload=W threads=T ops=N seconds=S per_s=R p50=US p99=US errors=E ceiling_per_s=C
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "auth/jose/jose.h"
#include "common/json.h"
#include "common/strings.h"
#include "server/admin.h"
#include "server/app.h"
#include "support/http_client.h"

namespace fs = std::filesystem;
using namespace fhirstone;
using Params = std::vector<std::pair<std::string, std::string>>;
using Steady = std::chrono::steady_clock;

namespace {

constexpr char kScope[] = "launch/patient openid fhirUser offline_access patient/*.rs";
constexpr char kRedirect[] = "https://bench.example/cb";
constexpr char kVerifier[] = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bench_tokens: %s\n", message.c_str());
  std::exit(1);
}

std::string Encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Form(const Params& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += Encode(k) + "=" + Encode(v);
  }
  return out;
}

// The (percent-decoded) value of query parameter `name` in a URL; no regex: this runs in the
// measured loop, on the same cores as the server.
std::string QueryValue(std::string_view url, std::string_view name) {
  for (size_t at = url.find('?'); at != std::string_view::npos; at = url.find('&', at + 1)) {
    std::string_view rest = url.substr(at + 1);
    if (!rest.starts_with(name) || rest.size() <= name.size() || rest[name.size()] != '=') continue;
    rest = rest.substr(name.size() + 1);
    rest = rest.substr(0, rest.find_first_of("&#"));
    std::string out;
    for (size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] == '%' && i + 2 < rest.size()) {
        out += static_cast<char>(std::stoi(std::string(rest.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += rest[i] == '+' ? ' ' : rest[i];
      }
    }
    return out;
  }
  return "";
}

std::string HiddenInput(const std::string& html, const std::string& name) {
  std::string key = "name=\"" + name + "\" value=\"";
  size_t at = html.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return html.substr(at, html.find('"', at) - at);
}

std::string JsonString(const std::string& body, std::string_view name) {
  auto v = json::Parse(body);
  return v ? std::string(v->GetString(name)) : std::string();
}

std::string Basic(const std::string& id, const std::string& secret) {
  std::string b64 = jose::Base64UrlEncode(id + ":" + secret);
  for (char& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (b64.size() % 4) b64 += '=';
  return "Basic " + b64;
}

http::Request Get(const std::string& target, const std::string& cookie = "") {
  http::Request r = test::MakeRequest("GET", target);
  if (!cookie.empty()) r.headers.emplace_back("Cookie", cookie);
  return r;
}

http::Request PostForm(const std::string& target, const Params& form, http::Headers headers = {}) {
  http::Request r = test::MakeRequest("POST", target, Form(form));
  r.headers = std::move(headers);
  r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  return r;
}

// The session cookie a response sets, or `current`.
std::string Absorb(const http::Response& r, std::string current) {
  for (const auto& [k, v] : r.headers) {
    if (AsciiLower(k) != "set-cookie") continue;
    std::string c = v.substr(0, v.find(';'));
    if (!c.ends_with("=")) current = c;
  }
  return current;
}

struct Bench {
  std::unique_ptr<server::App> app;
  uint16_t port = 0;
  std::string fhir;
  std::string authorize_url;
  std::string cookie;  // a signed-in browser that has consented once
  std::string secret;  // of the backend client

  http::Response Send(test::Client& client, http::Request request) {
    auto r = client.Send(std::move(request));
    if (!r) Die(r.error().message());
    return std::move(r).value();
  }

  // One authorize round trip with the remembered consent: the code, "" on failure.
  std::string Code(test::Client& client) {
    auto r = Send(client, Get(authorize_url, cookie));
    if (r.status != 302) return "";
    return QueryValue(r.Header("Location"), "code");
  }

  http::Response Exchange(test::Client& client, const std::string& code) {
    return Send(client, PostForm("/auth/token", {{"grant_type", "authorization_code"},
                                                 {"code", code},
                                                 {"redirect_uri", kRedirect},
                                                 {"client_id", "app"},
                                                 {"code_verifier", kVerifier}}));
  }

  void SignIn() {
    test::Client client("127.0.0.1", port);
    auto login = Send(client, Get(authorize_url));
    cookie = Absorb(login, cookie);
    if (login.status != 200 || login.body.find("name=\"password\"") == std::string::npos)
      Die("no login page: " + std::to_string(login.status) + " " + login.body);
    auto consent = Send(client, PostForm("/auth/login",
                                         {{"csrf", HiddenInput(login.body, "csrf")},
                                          {"request", HiddenInput(login.body, "request")},
                                          {"username", "ada"},
                                          {"password", "ada-password-1"}},
                                         {{"Cookie", cookie}}));
    cookie = Absorb(consent, cookie);
    if (consent.body.find("name=\"decision\"") == std::string::npos)
      Die("no consent page: " + std::to_string(consent.status) + " " + consent.body);
    Params form{{"csrf", HiddenInput(consent.body, "csrf")},
                {"request", HiddenInput(consent.body, "request")},
                {"decision", "allow"}};
    std::string needle = "name=\"scope\" value=\"";
    for (size_t at = consent.body.find(needle); at != std::string::npos;
         at = consent.body.find(needle, at + 1)) {
      size_t from = at + needle.size();
      form.emplace_back("scope", consent.body.substr(from, consent.body.find('"', from) - from));
    }
    auto done = Send(client, PostForm("/auth/consent", form, {{"Cookie", cookie}}));
    cookie = Absorb(done, cookie);
    if (done.status != 302 || QueryValue(done.Header("Location"), "code").empty())
      Die("consent did not give a code: " + std::to_string(done.status) + " " + done.body);
    // Remembered: the next authorize answers with a code at once.
    std::string code = Code(client);
    if (code.empty()) Die("the consent is not remembered");
    auto token = Exchange(client, code);
    if (token.status != 200 || JsonString(token.body, "refresh_token").empty())
      Die("code exchange failed: " + token.body);
  }
};

struct Run {
  double seconds = 0;
  int ops = 0;
  int errors = 0;
  std::vector<double> micros;  // per operation
};

// Runs `iterations` calls of op(thread, client) -> ok over `threads` threads, each with its own
// keep-alive connection; `setup` runs per thread before the clock starts.
Run Measure(Bench& b, int iterations, int threads,
            const std::function<bool(int, test::Client&)>& op,
            const std::function<void(int, test::Client&)>& setup = nullptr) {
  std::vector<std::vector<double>> micros(threads);
  std::atomic<int> errors{0};
  std::barrier start(threads + 1), stop(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      test::Client client("127.0.0.1", b.port);
      if (setup) setup(t, client);
      int n = iterations / threads + (t < iterations % threads ? 1 : 0);
      micros[t].reserve(n);
      start.arrive_and_wait();
      for (int i = 0; i < n; ++i) {
        auto t0 = Steady::now();
        bool ok = op(t, client);
        micros[t].push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
        if (!ok) errors.fetch_add(1);
      }
      stop.arrive_and_wait();
    });
  }
  start.arrive_and_wait();
  auto t0 = Steady::now();
  stop.arrive_and_wait();
  Run run;
  run.seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  for (auto& th : pool) th.join();
  for (auto& m : micros) run.micros.insert(run.micros.end(), m.begin(), m.end());
  run.ops = static_cast<int>(run.micros.size());
  run.errors = errors.load();
  std::sort(run.micros.begin(), run.micros.end());
  return run;
}

double Percentile(const Run& r, double p) {
  if (r.micros.empty()) return 0;
  return r.micros[std::min(r.micros.size() - 1, static_cast<size_t>(p * r.micros.size()))];
}

void Report(const std::string& workload, int threads, const Run& r, double ceiling_per_s) {
  double per_s = r.ops / r.seconds;
  std::printf(
      "RESULT workload=%s threads=%d ops=%d seconds=%.2f per_s=%.0f p50=%.0f p99=%.0f errors=%d "
      "ceiling_per_s=%.0f\n",
      workload.c_str(), threads, r.ops, r.seconds, per_s, Percentile(r, 0.5), Percentile(r, 0.99),
      r.errors, ceiling_per_s);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: bench_tokens WORKDIR ITERATIONS THREADS[,THREADS...] SERVER_THREADS\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  fs::path dir = argv[1];
  int iterations = std::atoi(argv[2]);
  std::vector<int> thread_counts;
  for (std::string_view list = argv[3]; !list.empty();) {
    size_t comma = list.find(',');
    thread_counts.push_back(std::atoi(std::string(list.substr(0, comma)).c_str()));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  fs::create_directories(dir);
  fs::path file = dir / "tokens.db";
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
  std::string db = "sqlite:" + file.string();

  Bench b;
  server::ServeConfig config;
  config.listen = "127.0.0.1:0";
  config.db = db;
  config.threads = std::atoi(argv[4]);
  auto app = server::App::Start(config);
  if (!app) Die(app.error().message());
  b.app = std::move(app).value();
  b.port = b.app->port();
  b.fhir = b.app->base_url() + "/fhir";

  server::ClientSpec smart;
  smart.client_id = "app";
  smart.name = "Bench app";
  smart.type = "public";
  smart.redirect_uris = {kRedirect};
  smart.scopes = kScope;
  if (auto r = server::AddClient(db, smart); !r) Die(r.error().message());
  server::ClientSpec backend;
  backend.client_id = "bench";
  backend.name = "Bench backend";
  backend.type = "confidential-symmetric";
  backend.redirect_uris = {kRedirect};
  backend.scopes = "system/*.rs";
  auto reg = server::AddClient(db, backend);
  if (!reg) Die(reg.error().message());
  b.secret = reg->client_secret;
  if (auto r = server::AddUser(db, "ada", "ada-password-1", "Patient/pa", "Ada Lovelace"); !r)
    Die(r.error().message());

  b.authorize_url =
      "/auth/authorize?" + Form({{"response_type", "code"},
                                 {"client_id", "app"},
                                 {"redirect_uri", kRedirect},
                                 {"scope", kScope},
                                 {"state", "bench-state"},
                                 {"aud", b.fhir},
                                 {"code_challenge", jose::Base64UrlEncode(jose::Sha256(kVerifier))},
                                 {"code_challenge_method", "S256"},
                                 {"nonce", "bench-nonce"}});
  b.SignIn();
  const std::string basic = Basic("bench", b.secret);

  auto ceiling = [&](int, test::Client& c) {
    auto r = b.Send(c, Get("/fhir/.well-known/smart-configuration"));
    return r.status == 200;
  };
  auto code_grant = [&](int, test::Client& c) {
    std::string code = b.Code(c);
    if (code.empty()) return false;
    auto r = b.Exchange(c, code);
    return r.status == 200 && r.body.find("\"access_token\"") != std::string::npos;
  };
  auto client_credentials = [&](int, test::Client& c) {
    auto r = b.Send(
        c, PostForm("/auth/token", {{"grant_type", "client_credentials"}, {"scope", "system/*.rs"}},
                    {{"Authorization", basic}}));
    return r.status == 200 && r.body.find("\"access_token\"") != std::string::npos;
  };

  // Warm-up (unmeasured): connections, statement caches, the page cache.
  Measure(b, 200, 2, ceiling);
  Measure(b, 50, 2, code_grant);

  for (int threads : thread_counts) {
    // The ceiling runs just before and just after each grant: their combined rate.
    auto bracketed = [&](const std::string& workload, auto&& op, auto&& setup) {
      Run before = Measure(b, iterations, threads, ceiling);
      Run run = Measure(b, iterations, threads, op, setup);
      Run after = Measure(b, iterations, threads, ceiling);
      Report(workload, threads, run, (before.ops + after.ops) / (before.seconds + after.seconds));
    };
    Run alone = Measure(b, iterations, threads, ceiling);
    Report("ceiling", threads, alone, alone.ops / alone.seconds);

    bracketed("authorization_code", code_grant, nullptr);

    // One rotating chain per thread, started (unmeasured) from a code of the shared session.
    std::vector<std::string> chains(threads);
    auto refresh_setup = [&](int t, test::Client& c) {
      std::string code = b.Code(c);
      chains[t] = JsonString(b.Exchange(c, code).body, "refresh_token");
      if (chains[t].empty()) Die("no refresh token to start a chain");
    };
    auto refresh = [&](int t, test::Client& c) {
      auto r = b.Send(c, PostForm("/auth/token", {{"grant_type", "refresh_token"},
                                                  {"refresh_token", chains[t]},
                                                  {"client_id", "app"}}));
      if (r.status != 200) return false;
      std::string next = JsonString(r.body, "refresh_token");
      if (next.empty()) return false;
      chains[t] = std::move(next);
      return true;
    };
    bracketed("refresh_token", refresh, refresh_setup);

    bracketed("client_credentials", client_credentials, nullptr);
  }
  b.app->Stop();
  return 0;
}
