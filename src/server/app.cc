#include "server/app.h"

#include <poll.h>
#include <spdlog/details/console_globals.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "api/error_response.h"
#include "api/fhir_api.h"
#include "apps/apps.h"
#include "auth/oauth/auth_store.h"
#include "auth/oauth/authorization_server.h"
#include "auth/oauth/tokens.h"
#include "bulk/bulk_export.h"
#include "common/strings.h"
#include "common/thread.h"
#include "db/database.h"
#include "fhir/model.h"
#include "http/server.h"
#include "ops/access_log.h"
#include "ops/health.h"
#include "ops/metrics.h"
#include "ops/rate_limit.h"
#include "ops/request_info.h"
#include "sandbox/sandbox.h"
#include "search/query.h"
#include "search/registry.h"
#include "server/import.h"
#include "server/shared_rate_limits.h"
#include "store/audit_queue.h"
#include "store/sql_resource_store.h"

#ifndef FHIRSTONE_VERSION
#define FHIRSTONE_VERSION "0.0.0"
#endif

namespace fhirstone::server {

struct App::Impl {
  std::unique_ptr<Clock> owned_clock;
  std::unique_ptr<IdGenerator> owned_ids;
  Clock* clock = nullptr;
  IdGenerator* ids = nullptr;
  std::unique_ptr<search::RegistryHolder> registry;
  std::mutex job_mu;
  std::thread reindex_job;
  // Other nodes (and the CLI) write signing keys and revocations to the database: reloaded
  // every sync_interval_ms.
  std::thread sync_job;
  std::condition_variable sync_cv;
  bool sync_stopping = false;
  // The SearchParametersMark the registry was loaded under (only the sync thread reads it after
  // start).
  std::string search_parameters_mark;
  std::atomic<bool> reindex_running{false};
  std::unique_ptr<db::Database> db;
  std::unique_ptr<store::ResourceStore> store;
  std::unique_ptr<store::AuditQueue> audit;  // null: auditing is off
  std::atomic<api::FhirApi*> api{nullptr};
  std::unique_ptr<api::FhirApi> api_owner;
  std::unique_ptr<oauth::AuthStore> auth_store;
  std::unique_ptr<oauth::TokenService> tokens;
  std::atomic<oauth::AuthorizationServer*> auth{nullptr};
  std::unique_ptr<oauth::AuthorizationServer> auth_owner;
  std::atomic<sandbox::Sandbox*> sandbox{nullptr};
  std::atomic<bulk::BulkExport*> bulk{nullptr};
  std::unique_ptr<bulk::BulkExport> bulk_owner;
  std::unique_ptr<sandbox::Sandbox> sandbox_owner;
  bool open = false;
  std::vector<DemoAccount> demo_accounts;
  ops::Registry metrics_registry;
  ops::ServerMetrics metrics{metrics_registry};
  std::unique_ptr<ops::RateLimiter> limiter;        // null: no rate limits
  std::unique_ptr<SharedRateLimits> shared_limits;  // null: buckets of this node alone
  std::unique_ptr<ops::ConcurrencyLimiter> search_limiter;
  std::unique_ptr<ops::ConcurrencyLimiter> request_limiter;  // null: no concurrency limit
  // The places a request holds among those in flight, given back when it is answered.
  struct Permits {
    std::optional<ops::ConcurrencyLimiter::Permit> request;
    std::optional<ops::ConcurrencyLimiter::Permit> search;
  };
  std::shared_ptr<spdlog::logger> access_log;  // null: off
  std::unique_ptr<http::Server> server;
  std::string base_url;
  bool stopped = false;

  // The embedded sample apps (src/apps), e.g. /apps/vitals/.
  static http::Response ServeApp(const http::Request& request, std::string_view path) {
    if (request.method != "GET" && request.method != "HEAD")
      return api::ErrorResponse(Error::MethodNotAllowed("The apps are static files: use GET"));
    std::string_view rest = path.size() > 6 ? path.substr(6) : std::string_view();
    if (!rest.empty() && rest.find('/') == std::string_view::npos &&
        apps::Find(std::string(rest) + "/")) {
      http::Response r;  // relative links need the trailing slash
      r.status = 301;
      r.SetHeader("Location", "/apps/" + std::string(rest) + "/");
      return r;
    }
    auto file = apps::Find(rest);
    if (!file) return api::ErrorResponse(Error::NotFound("No such file"));
    http::Response r;
    r.body = std::string(file->body);
    r.SetHeader("Content-Type", std::string(file->content_type));
    r.SetHeader(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'");
    r.SetHeader("X-Content-Type-Options", "nosniff");
    r.SetHeader("Referrer-Policy", "no-referrer");
    r.SetHeader("Cache-Control", rest.find("/vendor/") != std::string_view::npos
                                     ? "public, max-age=86400"
                                     : "no-cache");
    return r;
  }

  // CORS (https://fetch.spec.whatwg.org/#http-cors-protocol): browser apps on other origins
  // call the FHIR API with bearer tokens.
  static http::Response Preflight(const std::string& origin) {
    http::Response r;
    r.status = 204;
    if (!origin.empty()) r.SetHeader("Access-Control-Allow-Origin", origin);
    r.SetHeader("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE");
    r.SetHeader("Access-Control-Allow-Headers",
                "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, "
                "If-None-Exist, If-Modified-Since, X-Request-Id");
    r.SetHeader("Access-Control-Max-Age", "600");
    r.SetHeader("Vary", "Origin");
    return r;
  }

  // What the authorization server needs from the FHIR store.
  oauth::FhirHooks Hooks() {
    oauth::FhirHooks hooks;
    hooks.search_patients =
        [this](std::string_view text,
               int limit) -> Result<std::vector<oauth::FhirHooks::PatientSummary>> {
      search::QueryParams params{{"_count", std::to_string(limit)}, {"_sort", "family"}};
      if (!text.empty()) params.emplace_back("name", std::string(text));
      auto registry = this->registry->Get();
      auto query = search::ParseQuery(*registry, {"Patient"}, params, {});
      if (!query) return std::move(query).error();
      query->total = search::TotalMode::kNone;
      auto found = store->Search(*query);
      if (!found) return std::move(found).error();
      std::vector<oauth::FhirHooks::PatientSummary> out;
      for (const auto& v : found->matches) {
        auto parsed = json::Parse(v.body);
        if (!parsed) continue;
        out.push_back({v.id, PatientName(*parsed), std::string(parsed->GetString("birthDate")),
                       std::string(parsed->GetString("gender"))});
      }
      return out;
    };
    hooks.search_encounters =
        [this](std::string_view patient,
               int limit) -> Result<std::vector<oauth::FhirHooks::EncounterSummary>> {
      search::QueryParams params{{"_count", std::to_string(limit)},
                                 {"_sort", "-date"},
                                 {"patient", "Patient/" + std::string(patient)}};
      auto registry = this->registry->Get();
      auto query = search::ParseQuery(*registry, {"Encounter"}, params, {});
      if (!query) return std::move(query).error();
      query->total = search::TotalMode::kNone;
      auto found = store->Search(*query);
      if (!found) return std::move(found).error();
      std::vector<oauth::FhirHooks::EncounterSummary> out;
      for (const auto& v : found->matches) {
        auto e = json::Parse(v.body);
        if (!e) continue;
        std::string label;
        if (const json::Value* types = e->Find("type"); types && types->is_array())
          for (const auto& t : types->as_array()) {
            label = std::string(t.GetString("text"));
            if (const json::Value* codings = t.Find("coding");
                label.empty() && codings && codings->is_array() && !codings->as_array().empty())
              label = std::string(codings->as_array()[0].GetString("display"));
            if (!label.empty()) break;
          }
        if (label.empty())
          if (const json::Value* cls = e->Find("class"))
            label = std::string(!cls->GetString("display").empty() ? cls->GetString("display")
                                                                   : cls->GetString("code"));
        std::string start;
        if (const json::Value* period = e->Find("period")) start = period->GetString("start");
        out.push_back({v.id, label, start, std::string(e->GetString("status"))});
      }
      return out;
    };
    hooks.patient_name = [this](std::string_view id) -> Result<std::string> {
      auto v = store->Read("Patient", id);
      if (!v) return std::move(v).error();
      auto parsed = json::Parse(v->body);
      if (!parsed) return Error::Internal("unreadable Patient");
      return PatientName(*parsed);
    };
    hooks.write_consent = [this](const json::Value& consent) -> Result<std::string> {
      if (consent.GetString("id").empty()) {
        auto created = store->Create(consent);
        if (!created) return std::move(created).error();
        return created->id;
      }
      auto updated = store->Update(consent, std::nullopt);
      if (!updated) return std::move(updated).error();
      return updated->resource.id;
    };
    if (audit) {
      hooks.record_security_event = [this](const oauth::FhirHooks::SecurityEvent& e) {
        store::AuditRecord r;
        r.started = clock->NowMicros();
        r.type = e.kind == "login-failure" || e.kind == "token-refused"
                     ? store::AuditType::kSecurityAlert
                 : e.kind.starts_with("consent") ? store::AuditType::kSecurityAttributes
                                                 : store::AuditType::kUserAuthentication;
        r.subtype = e.kind;
        r.action = 'E';
        r.outcome = e.failure ? 4 : 0;
        r.outcome_desc = e.detail;
        r.user = e.user;
        r.user_name = e.user_name;
        r.client_id = e.client_id;
        r.address = e.address;
        r.request_id = e.request_id;
        r.patient = e.patient;
        audit->Submit(std::move(r));
      };
      hooks.patient_access_log =
          [this](std::string_view patient,
                 int limit) -> Result<std::vector<oauth::FhirHooks::AccessEntry>> {
        search::QueryParams params{{"_count", std::to_string(limit)},
                                   {"patient", std::string(patient)}};
        auto registry = this->registry->Get();
        auto query = search::ParseQuery(*registry, {"AuditEvent"}, params, {});
        if (!query) return std::move(query).error();
        query->total = search::TotalMode::kNone;
        auto found = store->Search(*query);
        if (!found) return std::move(found).error();
        std::vector<oauth::FhirHooks::AccessEntry> out;
        for (const auto& v : found->matches) {
          auto e = json::Parse(v.body);
          if (e) out.push_back(AccessEntryOf(*e));
        }
        return out;
      };
    }
    return hooks;
  }

  // One line of a patient's access page, from an AuditEvent.
  static oauth::FhirHooks::AccessEntry AccessEntryOf(const json::Value& event) {
    oauth::FhirHooks::AccessEntry out;
    out.when = event.GetString("recorded");
    out.refused = event.GetString("outcome") != "0";
    if (const json::Value* agents = event.Find("agent"); agents && agents->is_array()) {
      for (const auto& agent : agents->as_array()) {
        const json::Value* who = agent.Find("who");
        if (!who) continue;
        if (const json::Value* id = who->Find("identifier"); id && out.app.empty())
          out.app = id->GetString("value");
        const json::Value* requestor = agent.Find("requestor");
        bool asks = requestor && requestor->is_bool() && requestor->as_bool();
        if (asks && out.who.empty())
          out.who = !who->GetString("reference").empty() ? who->GetString("reference")
                                                         : who->GetString("display");
      }
    }
    if (out.who.empty()) out.who = out.app.empty() ? "(unknown)" : "Application " + out.app;
    // The interaction in words (http://hl7.org/fhir/restful-interaction), or the security
    // event's display.
    static const std::pair<std::string_view, std::string_view> kWords[] = {
        {"read", "Read"},
        {"vread", "Read a version of"},
        {"search-type", "Searched"},
        {"search-system", "Searched all data"},
        {"history-instance", "Read the history of"},
        {"history-type", "Read the history of"},
        {"history-system", "Read the history of all data"},
        {"create", "Created"},
        {"update", "Updated"},
        {"patch", "Updated"},
        {"delete", "Deleted"},
        {"operation", "Ran"},
        {"batch", "Sent a batch"},
        {"transaction", "Sent a transaction"},
        {"access-denied", "Asked for"},
    };
    std::string what;
    if (const json::Value* subtypes = event.Find("subtype");
        subtypes && subtypes->is_array() && !subtypes->as_array().empty()) {
      const json::Value& s = subtypes->as_array()[0];
      std::string_view code = s.GetString("code");
      what = !s.GetString("display").empty() ? s.GetString("display") : code;
      for (const auto& [c, words] : kWords)
        if (c == code) what = words;
    }
    if (const json::Value* entities = event.Find("entity"); entities && entities->is_array()) {
      for (const auto& entity : entities->as_array()) {
        std::string_view target;
        if (const json::Value* w = entity.Find("what")) target = w->GetString("reference");
        if (target.empty()) target = entity.GetString("name");
        if (target.empty() || (target.starts_with("Patient/") && !what.empty() &&
                               target.find("/_history/") == std::string_view::npos))
          continue;
        what += (what.empty() ? "" : " ") + std::string(target);
        break;
      }
    }
    out.what = what.empty() ? "(access)" : what;
    return out;
  }

  static std::string PatientName(const json::Value& patient) {
    const json::Value* names = patient.Find("name");
    if (!names || !names->is_array() || names->as_array().empty()) return "(no name)";
    const json::Value& n = names->as_array().front();
    if (!n.GetString("text").empty()) return std::string(n.GetString("text"));
    std::string out;
    if (const json::Value* given = n.Find("given"); given && given->is_array())
      for (const auto& g : given->as_array())
        if (g.is_string()) out += g.as_string() + " ";
    out += n.GetString("family");
    return std::string(Trim(out));
  }

  // The reindex job runs on its own thread, never on an I/O thread; one at a time.
  // `then` runs after a successful reindex.
  Status StartReindex(std::function<void()> then = {}) {
    std::lock_guard lock(job_mu);
    if (reindex_running) return Error::Conflict("A reindex is already running");
    if (reindex_job.joinable()) reindex_job.join();
    reindex_running = true;
    reindex_job = std::thread([this, then = std::move(then)] {
      NameThisThread("fs-reindex");
      auto result = ReindexAll(*db, *store, *registry);
      if (result) {
        spdlog::info("reindex done: {} resources", *result);
        if (then) then();
      } else {
        spdlog::error("reindex failed: {}", result.error().message());
      }
      reindex_running = false;
    });
    return Ok();
  }

  // Every request: health, readiness and metrics first; then Route; then the request id, the
  // metrics and one access log line (path without query values, no tokens, no bodies).
  http::Response Serve(http::Request& request) {
    auto started = std::chrono::steady_clock::now();
    int64_t started_micros = clock->NowMicros();
    std::string request_id = ops::NewRequestId();
    request.request_id = request_id;
    std::string_view path = request.Path();
    std::string client_id;
    http::Response response;
    if (path == "/healthz") {
      response = ops::Healthz();
    } else if (path == "/readyz") {
      response = ops::Readyz(
          [this]() -> Status { return db ? db->Ping() : Status(Error::Unavailable("starting")); });
    } else if (path == "/metrics") {
      metrics.audit_backlog.Set(audit ? static_cast<double>(audit->backlog()) : 0);
      response = ops::MetricsResponse(metrics_registry);
    } else {
      response = Route(request, &client_id);
    }
    response.SetHeader("X-Request-Id", request_id);
    int64_t micros = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
    ops::RequestLabels labels = ops::ClassifyRequest(request.method, request.target);
    metrics.RecordRequest(labels.interaction, labels.resource_type, response.status, micros);
    if (path == "/auth/token") CountToken(request, response);
    if (access_log) {
      ops::AccessLogEntry entry;
      entry.start_micros = started_micros;
      entry.request_id = request_id;
      entry.method = request.method;
      entry.target = request.target;
      entry.status = response.status;
      entry.duration_micros = micros;
      entry.client_id = client_id;
      entry.remote = request.remote_address;
      entry.response_bytes = static_cast<int64_t>(response.body.size());
      access_log->info(ops::AccessLogLine(entry));
    }
    return response;
  }

  void CountToken(const http::Request& request, const http::Response& response) {
    std::string_view grant = "other";
    for (std::string_view g : {"authorization_code", "refresh_token", "client_credentials"})
      if (request.body.find("grant_type=" + std::string(g)) != std::string::npos) grant = g;
    if (response.status == 200) {
      metrics.tokens_issued.Get(std::array<std::string_view, 1>{grant}).Inc();
    } else {
      std::string_view reason = "other";
      for (std::string_view e : {"invalid_request", "invalid_client", "invalid_grant",
                                 "unauthorized_client", "unsupported_grant_type", "invalid_scope"})
        if (response.body.find("\"" + std::string(e) + "\"") != std::string::npos) reason = e;
      metrics.tokens_refused.Get(std::array<std::string_view, 1>{reason}).Inc();
    }
  }

  // A FHIR or bulk request refused before it reached the API (no valid access token).
  void AuditRefused(const http::Request& request, const std::string& why) {
    if (!audit) return;
    store::AuditRecord r;
    r.started = clock->NowMicros();
    r.type = store::AuditType::kSecurityAlert;
    r.subtype = "access-denied";
    r.outcome = 4;
    r.outcome_desc = why;
    r.address = request.remote_address;
    r.request_id = request.request_id;
    ops::RequestLabels labels = ops::ClassifyRequest(request.method, request.target);
    r.entity = labels.resource_type;
    audit->Submit(std::move(r));
  }

  // A bulk data request (kick-off, status, download, cancel): the operation on the audit log.
  void AuditBulk(const http::Request& request, const api::AccessContext* access,
                 const http::Response& response) {
    if (!audit) return;
    store::AuditRecord r;
    r.started = clock->NowMicros();
    r.subtype = "operation";
    r.action = request.method == "DELETE" ? 'D' : 'E';
    r.outcome = response.status >= 500 ? 8 : response.status >= 400 ? 4 : 0;
    if (response.status >= 400) r.outcome_desc = "HTTP " + std::to_string(response.status);
    if (access) {
      r.user = access->fhir_user;
      r.client_id = access->client_id;
    }
    r.address = request.remote_address;
    r.request_id = request.request_id;
    std::string_view path = request.Path();
    r.entity = path.substr(path.find_last_of('/') + 1);  // $export, or the job or file id
    r.query = request.Query();
    audit->Submit(std::move(r));
  }

  // Rate limits, the limit on requests in flight and the expensive-search limit for one FHIR or
  // bulk request; an answer when refused.
  std::optional<http::Response> Limit(const http::Request& request,
                                      const api::AccessContext* access, Permits& permit,
                                      ops::Decision& decision) {
    std::string_view address = ops::ClientAddress(request, {});
    if (limiter) {
      decision = limiter->CheckCaller(
          {access ? std::string_view(access->client_id) : std::string_view(),
           access ? std::string_view(access->fhir_user) : std::string_view(), address});
      if (!decision.allowed) {
        metrics.rate_limited.Get(std::array<std::string_view, 1>{ops::KindName(decision.kind)})
            .Inc();
        return ops::ThrottledResponse(decision);
      }
    }
    std::string key = access && !access->client_id.empty() ? "client:" + access->client_id
                                                           : "ip:" + std::string(address);
    if (request_limiter) {
      permit.request = request_limiter->TryAcquire(key);
      if (!permit.request->granted()) {
        metrics.rate_limited.Get(std::array<std::string_view, 1>{"concurrent"}).Inc();
        return ops::BusyResponse(
            permit.request->refusal() == ops::ConcurrencyLimiter::Refusal::kPerKey
                ? "Too many of your requests are in flight: wait for one to finish"
                : "The server has too many requests in flight: retry shortly");
      }
    }
    if (search_limiter && ops::IsExpensiveSearch(request.method, request.target, request.body)) {
      permit.search = search_limiter->TryAcquire(key);
      if (!permit.search->granted()) {
        metrics.rate_limited.Get(std::array<std::string_view, 1>{"search"}).Inc();
        return ops::BusyResponse("Too many expensive searches are running: retry shortly");
      }
    }
    return std::nullopt;
  }

  http::Response Route(http::Request& request, std::string* client_id) {
    std::string_view path = request.Path();
    oauth::AuthorizationServer* authorization = auth.load(std::memory_order_acquire);
    if (authorization && authorization->Handles(path)) return authorization->Handle(request);
    if (bulk::BulkExport::Handles(path)) {
      bulk::BulkExport* exporter = bulk.load(std::memory_order_acquire);
      if (!exporter || (!open && !authorization))
        return api::ErrorResponse(Error::Unavailable("The server is starting"));
      Permits permit;
      ops::Decision decision;
      if (open) {
        if (auto refused = Limit(request, nullptr, permit, decision)) return *refused;
        http::Response response = exporter->Handle(request, nullptr);
        AuditBulk(request, nullptr, response);
        return response;
      }
      auto access = authorization->Authenticate(request);
      if (!access) {
        http::Response response = api::ErrorResponse(access.error());
        response.SetHeader("WWW-Authenticate", authorization->ChallengeFor(access.error()));
        AuditRefused(request, access.error().message());
        return response;
      }
      *client_id = (*access)->client_id;
      if (auto refused = Limit(request, access->get(), permit, decision)) return *refused;
      http::Response response = exporter->Handle(request, access->get());
      AuditBulk(request, access->get(), response);
      if (limiter) ops::AddHeaders(decision, response);
      return response;
    }
    if (path == "/fhir" || path.starts_with("/fhir/")) {
      api::FhirApi* fhir = api.load(std::memory_order_acquire);
      if (!fhir || (!open && !authorization))
        return api::ErrorResponse(Error::Unavailable("The server is starting"));
      std::string origin(request.Header("Origin"));
      if (request.method == "OPTIONS") return Preflight(origin);
      http::Response response;
      Permits permit;
      ops::Decision decision;
      if (open || path == "/fhir/metadata") {
        if (auto refused = Limit(request, nullptr, permit, decision)) {
          response = *refused;
        } else {
          response = fhir->Handle(request);
        }
      } else {
        auto access = authorization->Authenticate(request);
        if (access) *client_id = (*access)->client_id;
        std::optional<http::Response> refused;
        if (access) refused = Limit(request, access->get(), permit, decision);
        if (refused) {
          response = std::move(*refused);
        } else if (access) {
          response = fhir->Handle(request, access->get());
          // Patient data answered to a token must not be served from a cache to anyone else
          // (a browser would otherwise replay it to a later request without the token).
          response.SetHeader("Cache-Control", "no-store");
        } else {
          response = api::ErrorResponse(access.error());
          response.SetHeader("WWW-Authenticate", authorization->ChallengeFor(access.error()));
          AuditRefused(request, access.error().message());
        }
      }
      if (limiter && decision.limit > 0 && response.status != 429)
        ops::AddHeaders(decision, response);
      if (!origin.empty()) {
        response.SetHeader("Access-Control-Allow-Origin", origin);
        response.SetHeader("Vary", "Origin");
        response.SetHeader("Access-Control-Expose-Headers",
                           "Location, ETag, Last-Modified, Content-Location, WWW-Authenticate, "
                           "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
                           "Retry-After");
      }
      return response;
    }
    if (path.starts_with("/apps/") || path == "/apps") return ServeApp(request, path);
    if (sandbox::Sandbox* home = sandbox.load(std::memory_order_acquire);
        home && home->Handles(path))
      return home->Handle(request);
    if (path == "/" && (request.method == "GET" || request.method == "HEAD")) {
      http::Response response;
      response.status = 302;
      response.SetHeader("Location", "/fhir/metadata");
      return response;
    }
    return api::ErrorResponse(Error::NotFound("Nothing here: the FHIR API is under /fhir"));
  }
};

Status LoadCustomSearchParameters(store::ResourceStore& store, search::RegistryHolder& holder) {
  auto custom = store.ListCurrent("SearchParameter");
  if (!custom) return std::move(custom).error();
  if (custom->empty()) {  // none (any more): the built-in parameters alone
    if (!holder.Get()->HasCustom()) return Ok();
    auto builtin = search::Registry::Builtin();
    if (!builtin) return std::move(builtin).error();
    holder.Set(std::move(builtin).value());
    return Ok();
  }
  std::vector<std::string> skipped, now_stored;
  auto registry = search::Registry::WithCustom(*custom, &skipped, &now_stored);
  if (!registry) return std::move(registry).error();
  for (const auto& s : skipped) spdlog::warn("SearchParameter not used: {}", s);
  for (const auto& key : now_stored)
    spdlog::warn(
        "search parameter {} is no longer the union of others (a custom SearchParameter replaced "
        "one): its searches find what `fhirstone reindex` has indexed",
        key);
  holder.Set(std::move(registry).value());
  return Ok();
}

// How long a reindex waits between noting its parameters and rebuilding the index.
constexpr std::chrono::milliseconds kSearchParametersSettle{2000};

Result<std::string> SearchParametersMark(db::Database& db) {
  auto lease = db.Acquire();
  if (!lease) return std::move(lease).error();
  auto stmt = (*lease)->Prepare("SELECT value FROM store_state WHERE name = 'search_parameters'");
  if (!stmt) return std::move(stmt).error();
  auto row = (*stmt)->Step();
  if (!row) {
    (*stmt)->Reset();
    return std::move(row).error();
  }
  std::string mark = *row ? std::string((*stmt)->ColumnText(0)) : std::string();
  (*stmt)->Reset();
  return mark;
}

Result<int64_t> ReindexAll(db::Database& db, store::ResourceStore& store,
                           search::RegistryHolder& holder) {
  FHIRSTONE_RETURN_IF_ERROR(LoadCustomSearchParameters(store, holder));
  const std::string mark = ops::NewRequestId();
  const std::string note = "incomplete " + mark;
  {  // A new mark: the servers on this database load the parameters too, before the index is
     // rebuilt (their writes meanwhile are indexed with them). With it, in one transaction, a
     // note that a reindex is owed (unless one is already, say by an upgrade): should this one
     // not finish (an error, the process stopped), the next server to start runs it again
     // rather than leave the new parameters' searches finding part of their matches.
    auto lease = db.Acquire();
    if (!lease) return std::move(lease).error();
    auto tx = db::Transaction::Begin(**lease, /*write=*/true);
    if (!tx) return std::move(tx).error();
    auto stmt = (*lease)->Prepare(
        "INSERT INTO store_state (name, value) VALUES ('search_parameters', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    if (!stmt) return std::move(stmt).error();
    (*stmt)->BindText(1, mark);
    auto done = (*stmt)->Run();
    if (!done) return std::move(done).error();
    auto owed = (*lease)->Prepare(
        "INSERT INTO store_state (name, value) VALUES ('reindex', ?) ON CONFLICT (name) DO "
        "NOTHING");
    if (!owed) return std::move(owed).error();
    (*owed)->BindText(1, note);
    if (auto noted = (*owed)->Run(); !noted) return std::move(noted).error();
    FHIRSTONE_RETURN_IF_ERROR(tx->Commit());
  }
  // Twice the default sync interval: the servers have loaded the parameters before the index is
  // rebuilt, so that no write indexed without them lands behind the rebuild (it skips rows
  // rewritten meanwhile, as indexed by their write).
  std::this_thread::sleep_for(kSearchParametersSettle);
  auto reindexed = store.Reindex();
  if (!reindexed) return reindexed;
  {  // Done: this reindex's note goes (not an upgrade's, which a server clears with its base).
    auto lease = db.Acquire();
    if (!lease) return std::move(lease).error();
    auto tx = db::Transaction::Begin(**lease, /*write=*/true);
    if (!tx) return std::move(tx).error();
    auto clear = (*lease)->Prepare("DELETE FROM store_state WHERE name = 'reindex' AND value = ?");
    if (!clear) return std::move(clear).error();
    (*clear)->BindText(1, note);
    if (auto cleared = (*clear)->Run(); !cleared) return std::move(cleared).error();
    FHIRSTONE_RETURN_IF_ERROR(tx->Commit());
  }
  return reindexed;
}

namespace {

// Access log lines for standard output, gathered: written 32 KiB at a time or at a flush (every
// second, see OpenAccessLog; at shutdown) instead of one write per request. Lines still buffered
// when the process dies abnormally are lost. Writes hold spdlog's console mutex, as the
// diagnostics written to standard output do, so the two never interleave within a line.
class GatheredStdoutSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~GatheredStdoutSink() override { flush_(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    gathered_.append(line.data(), line.size());
    if (gathered_.size() >= kChunk) flush_();
  }
  void flush_() override {
    std::lock_guard console(spdlog::details::console_mutex::mutex());
    size_t done = 0;
    int waits = 0;
    while (done < gathered_.size()) {
      ssize_t n = ::write(STDOUT_FILENO, gathered_.data() + done, gathered_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waits++ < 10) {
        pollfd out{STDOUT_FILENO, POLLOUT, 0};
        (void)::poll(&out, 1, 100);  // a non-blocking output that is full: up to 1 s
        continue;
      }
      // Closed (EPIPE: SIGPIPE is ignored, see main) or stuck: these lines are lost, the server
      // goes on.
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    gathered_.clear();
  }

 private:
  static constexpr size_t kChunk = 32 * 1024;
  std::string gathered_;
};

// The access log: "-" (standard output) or a file. Lines reach it within a second (spdlog's
// periodic flush of every logger), not one write per request.
Result<std::shared_ptr<spdlog::logger>> OpenAccessLog(const std::string& where,
                                                      const std::string& name) {
  try {
    std::shared_ptr<spdlog::logger> log;
    if (where == "-") {
      log = std::make_shared<spdlog::logger>(name, std::make_shared<GatheredStdoutSink>());
      spdlog::register_logger(log);
    } else {
      log = spdlog::basic_logger_mt(name, where);
    }
    log->set_pattern("%v");
    log->set_level(spdlog::level::info);
    spdlog::flush_every(std::chrono::seconds(1));
    return log;
  } catch (const std::exception& e) {
    return Error::Invalid(std::string("--access-log: ") + e.what());
  }
}

// The database, registry and store of the offline commands (reindex, import), without HTTP.
struct OfflineStack {
  std::unique_ptr<db::Database> db;
  std::unique_ptr<search::RegistryHolder> holder;
  SystemClock clock;
  TimeOrderedIdGenerator ids;
  std::unique_ptr<store::ResourceStore> store;
  std::string base_url;
};

Result<std::unique_ptr<OfflineStack>> OpenOffline(const std::string& db_url, std::string base_url) {
  auto stack = std::make_unique<OfflineStack>();
  auto db = db::Database::Open(db_url);
  if (!db) return std::move(db).error();
  stack->db = std::move(db).value();
  auto builtin = search::Registry::Builtin();
  if (!builtin) return std::move(builtin).error();
  stack->holder = std::make_unique<search::RegistryHolder>(std::move(builtin).value());
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  stack->base_url = base_url;
  auto store = store::OpenSqlResourceStore(*stack->db, stack->clock, stack->ids,
                                           stack->holder.get(), base_url + "/fhir");
  if (!store) return std::move(store).error();
  stack->store = std::move(store).value();
  return stack;
}

}  // namespace

Result<int64_t> Migrate(const std::string& db_url) {
  auto stack = OpenOffline(db_url, "");  // the resource store's migrations
  if (!stack) return std::move(stack).error();
  db::Database& db = *(*stack)->db;
  auto auth = oauth::AuthStore::Open(db);
  if (!auth) return std::move(auth).error();
  FHIRSTONE_RETURN_IF_ERROR(bulk::BulkExport::MigrateSchema(db));
  FHIRSTONE_RETURN_IF_ERROR(MigrateImportLedger(db));
  auto lease = db.Acquire();
  if (!lease) return std::move(lease).error();
  auto count = (*lease)->Prepare("SELECT count(*) FROM schema_migrations");
  if (!count) return std::move(count).error();
  auto row = (*count)->Step();
  if (!row || !*row) return Error::Internal("schema_migrations could not be read");
  int64_t n = (*count)->ColumnInt(0);
  (*count)->Reset();
  return n;
}

Result<store::AuditVerification> VerifyAudit(const std::string& db_url) {
  auto stack = OpenOffline(db_url, "");
  if (!stack) return std::move(stack).error();
  return (*stack)->store->VerifyAudit();
}

namespace {

// %XX and '+' of a query component; nullopt when a % is not followed by two hex digits.
std::optional<std::string> DecodeQueryComponent(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%') {
      if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) return std::nullopt;
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

Result<std::string> ExplainSearch(const std::string& db_url, const std::string& search) {
  auto stack = OpenOffline(db_url, "");
  if (!stack) return std::move(stack).error();
  FHIRSTONE_RETURN_IF_ERROR(LoadCustomSearchParameters(*(*stack)->store, *(*stack)->holder));
  std::string_view text = search;
  if (text.starts_with("/")) text.remove_prefix(1);
  if (text.starts_with("fhir/")) text.remove_prefix(5);
  size_t question = text.find('?');
  std::string type(text.substr(0, question));
  if (!fhir::IsResourceType(type))
    return Error::Invalid("Not a search: '" + search +
                          "' (expected TYPE?QUERY, e.g. "
                          "Observation?patient=123&code=8867-4)");
  search::QueryParams params;
  if (question != std::string_view::npos) {
    for (std::string_view pair : Split(text.substr(question + 1), '&')) {
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      auto name = DecodeQueryComponent(pair.substr(0, eq));
      auto value = DecodeQueryComponent(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!name || !value) return Error::Invalid("Malformed percent-encoding in the query");
      params.emplace_back(std::move(*name), std::move(*value));
    }
  }
  auto query = search::ParseQuery(*(*stack)->holder->Get(), {type}, params, {});
  if (!query) return std::move(query).error();
  return (*stack)->store->ExplainSearch(*query);
}

Result<int64_t> Reindex(const std::string& db_url, std::string base_url) {
  auto stack = OpenOffline(db_url, std::move(base_url));
  if (!stack) return std::move(stack).error();
  return ReindexAll(*(*stack)->db, *(*stack)->store, *(*stack)->holder);
}

Result<ImportSummary> RunImport(const std::string& db_url, std::string base_url,
                                const std::vector<std::string>& paths,
                                const std::function<void(const ImportProgress&)>& on_progress) {
  auto opened = OpenOffline(db_url, std::move(base_url));
  if (!opened) return std::move(opened).error();
  OfflineStack& stack = **opened;
  FHIRSTONE_RETURN_IF_ERROR(LoadCustomSearchParameters(*stack.store, *stack.holder));
  api::ApiOptions options;
  options.base_url = stack.base_url;
  options.software_version = FHIRSTONE_VERSION;
  api::FhirApi api(*stack.store, stack.clock, stack.ids, *stack.holder, options);
  auto importer = Importer::Create(*stack.db, api);
  if (!importer) return std::move(importer).error();
  auto summary = (*importer)->Run(paths, on_progress);
  // One audit record for the import as a whole (the resources loaded are not accesses).
  store::AuditRecord r;
  r.started = stack.clock.NowMicros();
  r.subtype = "operation";
  r.action = 'C';
  r.entity = "import";
  r.user_name = "fhirstone import (command line)";
  r.outcome = summary.failed > 0 ? 4 : 0;
  r.outcome_desc = std::to_string(summary.resources) + " resources from " +
                   std::to_string(summary.documents) + " documents loaded, " +
                   std::to_string(summary.skipped) + " skipped, " + std::to_string(summary.failed) +
                   " failed";
  std::vector<store::AuditRecord> records{std::move(r)};
  if (auto appended = stack.store->AppendAudit(records); !appended)
    spdlog::warn("the import could not be recorded in the audit log: {}",
                 appended.error().message());
  return summary;
}

Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Error::Invalid("--listen must be HOST:PORT, not '" + listen + "'");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port = ParseInt64(std::string_view(listen).substr(colon + 1));
  if (!port || *port < 0 || *port > 65535)
    return Error::Invalid("--listen has an invalid port: '" + listen + "'");
  return std::make_pair(host, static_cast<uint16_t>(*port));
}

App::App() : impl_(std::make_unique<Impl>()) {}

App::~App() { Stop(); }

Result<std::unique_ptr<App>> App::Start(const ServeConfig& config, Clock* clock, IdGenerator* ids) {
  std::unique_ptr<App> app(new App());
  Impl& impl = *app->impl_;
  if (clock) {
    impl.clock = clock;
  } else {
    impl.owned_clock = std::make_unique<SystemClock>();
    impl.clock = impl.owned_clock.get();
  }
  if (ids) {
    impl.ids = ids;
  } else {
    impl.owned_ids = std::make_unique<TimeOrderedIdGenerator>();
    impl.ids = impl.owned_ids.get();
  }
  auto listen = ParseListen(config.listen);
  if (!listen) return std::move(listen).error();

  auto db = db::Database::Open(config.db);
  if (!db) return std::move(db).error();
  impl.db = std::move(db).value();
  auto builtin = search::Registry::Builtin();
  if (!builtin) return std::move(builtin).error();
  impl.registry = std::make_unique<search::RegistryHolder>(std::move(builtin).value());

  http::ServerOptions options;
  options.host = listen->first;
  options.port = listen->second;
  options.threads = config.threads > 0
                        ? config.threads
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.blocking_threads = config.write_threads;
  // Searches that may take milliseconds (_include, chains, _has, system-wide) run on threads of
  // their own, as many as the I/O threads, leaving these to the requests that take microseconds.
  options.offload_threads = options.threads;
  options.offload = [](const http::Request& request) {
    return ops::IsExpensiveSearch(request.method, request.target, request.body);
  };
  impl.db->LimitPool(config.db_connections > 0 ? config.db_connections
                                               : options.threads + options.offload_threads +
                                                     std::min(options.blocking_threads, 16) + 8,
                     std::chrono::milliseconds(5000));
  options.max_body_bytes = config.max_body_bytes;
  options.read_timeout = std::chrono::milliseconds(config.read_timeout_ms);
  options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  options.server_header = std::string("Fhirstone/") + FHIRSTONE_VERSION;
  options.tls_cert_file = config.tls_cert;
  options.tls_key_file = config.tls_key;
  options.allow_plain_http_on_public = config.insecure_http;
  Impl* raw = &impl;
  // Access log, rate limits and the expensive-search limit, from the configuration.
  if (config.access_log != "off") {
    auto log =
        OpenAccessLog(config.access_log,
                      "fhirstone-access-" + std::to_string(reinterpret_cast<uintptr_t>(&impl)));
    if (!log) return std::move(log).error();
    impl.access_log = std::move(log).value();
  }
  {
    ops::RateLimiterOptions limits;
    bool any = false;
    for (auto [text, target] : {std::pair{&config.rate_limit_client, &limits.client},
                                std::pair{&config.rate_limit_user, &limits.user},
                                std::pair{&config.rate_limit_ip, &limits.ip}}) {
      auto limit = ops::ParseLimit(*text);
      if (!limit) return Error::Invalid("rate limit '" + *text + "': " + limit.error().message());
      *target = *limit;
      any |= !limit->unlimited();
    }
    for (const auto& o : config.rate_limit_overrides) {
      size_t eq = o.find('=');
      if (eq == std::string::npos)
        return Error::Invalid("--rate-limit-override must be CLIENT_ID=LIMIT, not '" + o + "'");
      auto limit = ops::ParseLimit(std::string_view(o).substr(eq + 1));
      if (!limit) return Error::Invalid("rate limit '" + o + "': " + limit.error().message());
      limits.client_overrides[o.substr(0, eq)] = *limit;
      any = true;
    }
    if (any) impl.limiter = std::make_unique<ops::RateLimiter>(*impl.clock, limits);
    bool share = config.share_rate_limits == "on" || (config.share_rate_limits == "auto" &&
                                                      impl.db->dialect() == db::Dialect::kPostgres);
    if (impl.limiter && share) {
      auto shared = SharedRateLimits::Open(*impl.db, *impl.limiter, *impl.clock);
      if (!shared) return std::move(shared).error();
      impl.shared_limits = std::move(shared).value();
    }
    if (config.max_expensive_searches > 0) {
      ops::ConcurrencyOptions c;
      c.max_global = config.max_expensive_searches;
      c.max_per_key = config.max_expensive_searches_per_caller;
      impl.search_limiter = std::make_unique<ops::ConcurrencyLimiter>(c);
    }
    if (config.max_concurrent_requests > 0 || config.max_concurrent_requests_per_caller > 0) {
      ops::ConcurrencyOptions c;
      c.max_global = config.max_concurrent_requests;              // <= 0: unlimited
      c.max_per_key = config.max_concurrent_requests_per_caller;  // <= 0: unlimited
      impl.request_limiter = std::make_unique<ops::ConcurrencyLimiter>(c);
    }
  }
  auto server = http::Server::Start(
      options, [raw](http::Request& request) { return raw->Serve(request); },
      [](int status, std::string_view message) {
        ErrorCode code = status == 413 ? ErrorCode::kTooLarge : ErrorCode::kInvalid;
        http::Response response = api::ErrorResponse(Error(code, std::string(message)));
        response.status = status;
        return response;
      });
  if (!server) return std::move(server).error();
  impl.server = std::move(server).value();

  if (config.base_url.empty()) {
    std::string host = listen->first;
    if (host == "0.0.0.0" || host == "::") host = "localhost";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    impl.base_url = std::string(config.tls_cert.empty() ? "http://" : "https://") + host + ":" +
                    std::to_string(impl.server->port());
  } else {
    impl.base_url = config.base_url;
    while (!impl.base_url.empty() && impl.base_url.back() == '/') impl.base_url.pop_back();
  }
  // The store knows the FHIR base (absolute references under it are local), hence after listen.
  auto store = store::OpenSqlResourceStore(*impl.db, *impl.clock, *impl.ids, impl.registry.get(),
                                           impl.base_url + "/fhir");
  if (!store) return std::move(store).error();
  impl.store = std::move(store).value();
  {
    auto mark = SearchParametersMark(*impl.db);  // read first: a later reindex loads them again
    if (!mark) return std::move(mark).error();
    impl.search_parameters_mark = std::move(mark).value();
  }
  FHIRSTONE_RETURN_IF_ERROR(LoadCustomSearchParameters(*impl.store, *impl.registry));
  {  // A migration asked for the index to be extracted again (with this base and registry).
    auto lease = impl.db->Acquire();
    if (!lease) return std::move(lease).error();
    auto pending = (*lease)->Prepare("SELECT 1 FROM store_state WHERE name = 'reindex'");
    if (!pending) return std::move(pending).error();
    auto row = (*pending)->Step();
    bool reindex = row && *row;
    (*pending)->Reset();
    if (reindex) {
      spdlog::info(
          "a reindex is owed (an upgrade asked for one, or one did not finish): running in the "
          "background");
      db::Database* db = impl.db.get();
      FHIRSTONE_RETURN_IF_ERROR(impl.StartReindex([db] {
        auto lease = db->Acquire();
        if (!lease) return;
        auto tx = db::Transaction::Begin(**lease, /*write=*/true);
        if (!tx || !(*lease)->Execute("DELETE FROM store_state WHERE name = 'reindex'")) return;
        (void)tx->Commit();
      }));
    }
  }
  {
    ops::ServerMetrics* metrics = &impl.metrics;
    impl.store->ObserveTime([metrics](std::string_view operation, int64_t micros) {
      metrics->db_time.Get({operation}).ObserveMicros(micros);
    });
  }
  if (config.audit) {
    impl.audit = std::make_unique<store::AuditQueue>(*impl.store, config.audit_delay_ms);
  } else {
    spdlog::warn("AUDIT OFF: accesses to the FHIR API are not recorded in the audit log.");
  }
  impl.open = config.open;
  auto auth_store = oauth::AuthStore::Open(*impl.db);
  if (!auth_store) return std::move(auth_store).error();
  impl.auth_store = std::move(auth_store).value();
  oauth::TokenOptions token_options;
  token_options.issuer = impl.base_url + "/fhir";
  token_options.audience = impl.base_url + "/fhir";
  auto tokens = oauth::TokenService::Create(*impl.auth_store, *impl.clock, token_options);
  if (!tokens) return std::move(tokens).error();
  impl.tokens = std::move(tokens).value();
  {
    Impl* self = &impl;
    int interval = std::max(10, config.sync_interval_ms);
    impl.sync_job = std::thread([self, interval] {
      NameThisThread("fs-sync");
      std::unique_lock lock(self->job_mu);
      while (!self->sync_cv.wait_for(lock, std::chrono::milliseconds(interval),
                                     [self] { return self->sync_stopping; })) {
        lock.unlock();
        if (auto reloaded = self->tokens->Reload(); !reloaded)
          spdlog::warn("reloading keys and revocations failed: {}", reloaded.error().message());
        // A reindex elsewhere (the command line, another node) loaded SearchParameters: this
        // server loads them too, so that its writes are indexed and its searches know them.
        if (auto mark = SearchParametersMark(*self->db); !mark) {
          spdlog::warn("reading the search parameters' mark failed: {}", mark.error().message());
        } else if (*mark != self->search_parameters_mark) {
          if (auto loaded = LoadCustomSearchParameters(*self->store, *self->registry); !loaded) {
            spdlog::warn("loading the search parameters failed: {}", loaded.error().message());
          } else {
            spdlog::info("search parameters loaded again: a reindex ran");
            self->search_parameters_mark = *mark;
          }
        }
        if (self->shared_limits) {
          if (auto synced = self->shared_limits->Sync(); !synced)
            spdlog::warn("sharing rate-limit usage failed: {}", synced.error().message());
        }
        lock.lock();
      }
    });
  }
  oauth::AuthOptions auth_options;
  auth_options.base_url = impl.base_url;
  auth_options.require_pkce_for_all = config.require_pkce;
  auto authorization = oauth::AuthorizationServer::Create(*impl.auth_store, *impl.tokens,
                                                          *impl.clock, impl.Hooks(), auth_options);
  if (!authorization) return std::move(authorization).error();
  impl.auth_owner = std::move(authorization).value();
  if (config.open)
    spdlog::warn(
        "OPEN MODE: the FHIR API answers every request without an access token. "
        "Never use this with real patient data.");
  api::ApiOptions api_options;
  api_options.base_url = impl.base_url;
  api_options.software_version = FHIRSTONE_VERSION;
  if (!config.open) api_options.security = impl.auth_owner->CapabilitySecurity();
  api_options.start_reindex = [raw]() -> Status { return raw->StartReindex(); };
  api_options.slow_search_ms = config.slow_search_ms;
  if (config.demo) {  // the server loads its demo data: not an access to record
    api::FhirApi loader(*impl.store, *impl.clock, *impl.ids, *impl.registry, api_options);
    auto accounts =
        SetUpDemo(*impl.db, loader, *impl.auth_store, impl.base_url, config.demo_patients);
    if (!accounts) return std::move(accounts).error();
    impl.demo_accounts = std::move(accounts).value();
  }
  api_options.audit = impl.audit.get();
  impl.api_owner = std::make_unique<api::FhirApi>(*impl.store, *impl.clock, *impl.ids,
                                                  *impl.registry, api_options);
  sandbox::SandboxOptions sandbox_options;
  sandbox_options.base_url = impl.base_url;
  sandbox_options.software_version = FHIRSTONE_VERSION;
  sandbox_options.launcher_enabled = config.demo;
  for (const auto& a : impl.demo_accounts)
    sandbox_options.demo_users.push_back({a.username, a.password, a.display, a.fhir_user, a.role});
  impl.sandbox_owner = std::make_unique<sandbox::Sandbox>(
      *impl.auth_store, *impl.auth_owner, impl.Hooks(), *impl.clock, sandbox_options);
  bulk::BulkOptions bulk_options;
  bulk_options.base_url = impl.base_url;
  bulk_options.directory = config.bulk_dir;
  bulk_options.expire_seconds = config.bulk_expire_seconds;
  auto exporter =
      bulk::BulkExport::Create(*impl.db, *impl.store, *impl.registry, *impl.clock, bulk_options);
  if (!exporter) return std::move(exporter).error();
  impl.bulk_owner = std::move(exporter).value();
  impl.api.store(impl.api_owner.get(), std::memory_order_release);
  impl.auth.store(impl.auth_owner.get(), std::memory_order_release);
  impl.bulk.store(impl.bulk_owner.get(), std::memory_order_release);
  impl.sandbox.store(impl.sandbox_owner.get(), std::memory_order_release);
  return app;
}

uint16_t App::port() const { return impl_->server->port(); }

const std::string& App::base_url() const { return impl_->base_url; }

const std::vector<DemoAccount>& App::demo_accounts() const { return impl_->demo_accounts; }

void App::WaitForSignal() { impl_->server->WaitForSignal(); }

void App::FlushAudit() {
  if (impl_->audit) impl_->audit->Flush();
}

void App::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  if (impl_->server) impl_->server->Stop();
  if (impl_->reindex_job.joinable()) impl_->reindex_job.join();
  if (impl_->sync_job.joinable()) {
    {
      std::lock_guard lock(impl_->job_mu);
      impl_->sync_stopping = true;
    }
    impl_->sync_cv.notify_all();
    impl_->sync_job.join();
  }
  impl_->api.store(nullptr);
  impl_->auth.store(nullptr);
  impl_->sandbox.store(nullptr);
  impl_->bulk.store(nullptr);
  if (impl_->access_log) {
    impl_->access_log->flush();
    spdlog::drop(impl_->access_log->name());
  }
  impl_->bulk_owner.reset();  // stops the export worker before the store goes
  impl_->sandbox_owner.reset();
  impl_->api_owner.reset();
  impl_->auth_owner.reset();
  impl_->tokens.reset();
  impl_->auth_store.reset();
  impl_->audit.reset();  // appends what is still queued
  impl_->store.reset();
  impl_->db.reset();  // closes every connection: the WAL is checkpointed
}

}  // namespace fhirstone::server
