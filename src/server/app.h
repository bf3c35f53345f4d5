// App: the composition root. Builds every object of a running server from a ServeConfig (the
// database from its URL, the store, the FHIR API, the HTTP server) and owns them; nothing else
// constructs them. Used by main and by tests that start a server in-process on port 0.
// Start/Stop/WaitForSignal are called from one controlling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "server/demo.h"
#include "store/audit.h"

namespace fhirstone::store {
class ResourceStore;
}
namespace fhirstone::search {
class RegistryHolder;
}

namespace fhirstone::server {

struct ServeConfig {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free port
  std::string base_url;                   // public origin; default http://HOST:PORT
  std::string db = "sqlite:var/fhirstone.db";
  int threads = 0;  // 0: one per core
  // Run writes (parse, validate, index), which then wait for their group commit. The more writes
  // wait at once, the larger the groups: 64 concurrent creates gave groups of 8.6 writes with 16
  // threads (10% fewer creates/s, 20% fewer small transactions/s than with 64).
  int write_threads = 64;
  // Database connections a node opens at most (0: the I/O threads, as many again for the long
  // searches' threads, the write threads, at most 16 of them, + 8 for the background jobs; a write
  // waits for the store's one writer, which holds one connection); a request that finds them all
  // busy for 5 s gets 503.
  int db_connections = 0;
  size_t max_body_bytes = 16 * 1024 * 1024;
  int read_timeout_ms = 30000;
  int idle_timeout_ms = 60000;
  // Development mode: the FHIR API answers without access tokens. Secure is the default.
  bool open = false;
  // PKCE for every client, confidential ones too (public clients always need it).
  bool require_pkce = false;
  // The sandbox: demo data, demo users, the sample app and the launcher.
  bool demo = false;
  int demo_patients = 100;
  // TLS: with both set the server speaks only HTTPS (TLS 1.2+). Plain HTTP is refused on a
  // non-loopback address unless insecure_http says so explicitly.
  std::string tls_cert;
  std::string tls_key;
  bool insecure_http = false;
  // Rate limits ("RATE/s|RATE/min:BURST" or "off"): per OAuth client, per user and, for callers
  // without a token, per address; per-client overrides as CLIENT_ID=LIMIT. Off by default.
  std::string rate_limit_client = "off";
  std::string rate_limit_user = "off";
  std::string rate_limit_ip = "off";
  std::vector<std::string> rate_limit_overrides;
  // Several nodes on one database share their buckets through it, approximately
  // (server/shared_rate_limits.h): "on", "off", or "auto" (on for PostgreSQL).
  std::string share_rate_limits = "auto";
  // Expensive searches (_include, chains, _has...) in flight at once, overall and per caller.
  int max_expensive_searches = 8;
  int max_expensive_searches_per_caller = 2;
  // FHIR and bulk requests in flight at once, overall and per caller (client, or address without
  // a token); 0: no limit (the default).
  int max_concurrent_requests = 0;
  int max_concurrent_requests_per_caller = 0;
  // Access log: JSON lines to stdout ("-"), a file, or "off".
  std::string access_log = "-";
  // Bulk export files: where they are written and how long they stay after completion.
  std::string bulk_dir = "var/bulk";
  int64_t bulk_expire_seconds = 3600;
  // The audit log: an AuditEvent for every access and security event. On unless turned off
  // explicitly; reads and security events are appended within audit_delay_ms (writes with their
  // data).
  bool audit = true;
  int audit_delay_ms = 1000;
  // Several nodes on one database: how often signing keys and token revocations written by
  // the others are reloaded (a revocation takes effect everywhere within this delay), and how
  // often rate-limit usage is exchanged.
  int sync_interval_ms = 1000;
  // A search taking at least this long is logged with its plan (SQL without values).
  int slow_search_ms = 200;
};

class App {
 public:
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Opens the database (migrating it), starts listening and returns once requests are served.
  // `clock` and `ids` default to the system clock and random ids; when given they outlive the App.
  static Result<std::unique_ptr<App>> Start(const ServeConfig& config, Clock* clock = nullptr,
                                            IdGenerator* ids = nullptr);

  uint16_t port() const;
  const std::string& base_url() const;
  // Demo mode: the demo accounts (username, password, role), empty otherwise.
  const std::vector<DemoAccount>& demo_accounts() const;
  // Blocks until SIGINT or SIGTERM.
  void WaitForSignal();
  // Returns once every audit record queued so far is in the audit log.
  void FlushAudit();
  // Finishes in-flight requests, stops the server and closes the database. Idempotent.
  void Stop();

 private:
  App();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Loads the SearchParameter resources of `store` into a new registry in `holder` (those that
// cannot be used are logged and left out).
Status LoadCustomSearchParameters(store::ResourceStore& store, search::RegistryHolder& holder);
// Loads custom parameters, notes in the database that they were loaded (servers on it load them
// too: SearchParametersMark), then rebuilds the search index of every resource (fhirstone
// reindex, POST /fhir/$reindex). Writes go on meanwhile.
Result<int64_t> ReindexAll(db::Database& db, store::ResourceStore& store,
                           search::RegistryHolder& holder);
// What the last reindex noted (store_state `search_parameters`), "" when none has run: a server
// whose registry is older loads the SearchParameters again (its sync loop).
Result<std::string> SearchParametersMark(db::Database& db);

// fhirstone migrate: applies every schema migration (resources, search index, audit log,
// authorization, bulk export, import ledger) to the database at `db_url`; returns the number of
// migrations recorded. `serve` does the same at start.
Result<int64_t> Migrate(const std::string& db_url);

// fhirstone audit verify: checks the hash chain of the audit log in the database at `db_url`.
Result<store::AuditVerification> VerifyAudit(const std::string& db_url);
// The SQL and the database's plan of the page query of `search` ("Observation?patient=1&...",
// a leading /fhir/ allowed), for diagnosing a slow search.
Result<std::string> ExplainSearch(const std::string& db_url, const std::string& search);

// fhirstone reindex: opens the database at `db_url`, then ReindexAll. `base_url` is the server's
// public URL, as `serve --base-url` (references under it are local).
Result<int64_t> Reindex(const std::string& db_url, std::string base_url);

struct ImportSummary;
struct ImportProgress;
// fhirstone import: the store and API on `db_url` (without an HTTP server), then Importer::Run.
Result<ImportSummary> RunImport(const std::string& db_url, std::string base_url,
                                const std::vector<std::string>& paths,
                                const std::function<void(const ImportProgress&)>& on_progress);

// "HOST:PORT" or "[V6]:PORT" split; nullopt-like Error when malformed.
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen);

}  // namespace fhirstone::server
