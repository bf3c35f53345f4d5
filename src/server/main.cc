// fhirstone: the command line. `fhirstone serve` runs the server; `fhirstone --version`.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/time.h"
#include "generate/generator.h"
#include "server/admin.h"
#include "server/app.h"
#include "server/import.h"

#ifndef FHIRSTONE_VERSION
#define FHIRSTONE_VERSION "0.0.0"
#endif

namespace {

// Creates the folder of a sqlite:PATH database so that `make run` works from a fresh clone.
void EnsureDatabaseFolder(const std::string& url) {
  if (!url.starts_with("sqlite:") || url == "sqlite::memory:") return;
  std::filesystem::path path(url.substr(7));
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // glibc's allocator gives the memory at the top of a thread's heap back to the system as soon
  // as 128 KiB are free there (and maps blocks over 128 KiB, at first, on their own). A request
  // that allocates and frees a few hundred KiB (SQLite's temporary b-trees and sorters) then
  // faulted every page in again: a search of ten Patients by id ran at 4,100-5,100/s without the
  // audit log (whose records kept those heaps in use) and at 13,300/s with these settings.
  // Up to 64 MiB stay free on each heap; blocks under 32 MiB come from the heaps.
  // (This applies to builds with glibc's allocator, -DFHIRSTONE_MIMALLOC=OFF. mimalloc, the
  // default, ignores these settings and keeps freed pages for reuse itself: the same search ran
  // at 13,133/13,743/s with glibc and these settings, 15,107/15,805/s with mimalloc;
  // docs/decisions/0012-allocator.md.)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 1 << 20);
  CLI::App cli{"Fhirstone: a SMART on FHIR server (FHIR R4)"};
  cli.set_version_flag("--version", std::string("fhirstone ") + FHIRSTONE_VERSION);
  cli.set_config("--config", "", "Read options from a TOML or INI file ([serve] section)");
  cli.require_subcommand(1);

  fhirstone::server::ServeConfig config;
  std::string log_level = "info";
  CLI::App* serve = cli.add_subcommand("serve", "Run the FHIR server");
  serve
      ->add_option("--listen", config.listen,
                   "Address to listen on, HOST:PORT (port 0 picks a free port)")
      ->capture_default_str();
  serve->add_option("--base-url", config.base_url,
                    "Public URL of this server as clients see it (default http://HOST:PORT); "
                    "the FHIR base is BASE-URL/fhir");
  serve
      ->add_option("--db", config.db,
                   "Database URL: sqlite:PATH (an embedded SQLite file, created if absent) or "
                   "postgres://USER@HOST[:PORT]/DB (any libpq URL)")
      ->capture_default_str();
  serve->add_option("--threads", config.threads, "I/O threads (0: one per core)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  serve
      ->add_option("--write-threads", config.write_threads,
                   "Threads that run writes (POST, PUT, PATCH, DELETE), which share commits "
                   "(group commit); reads run on the I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  serve
      ->add_option(
          "--db-connections", config.db_connections,
          "Database connections this node opens at most (0: twice the I/O threads + the write "
          "threads, at most 16, + 8 for background jobs); a request that finds all of them busy "
          "for 5 s gets 503")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  serve
      ->add_option("--max-body-bytes", config.max_body_bytes,
                   "Largest request body accepted; larger ones get 413")
      ->capture_default_str();
  serve
      ->add_option("--read-timeout-ms", config.read_timeout_ms,
                   "Time allowed to receive a whole request; slower ones get 408")
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout-ms", config.idle_timeout_ms,
                   "How long an idle keep-alive connection stays open")
      ->capture_default_str();
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  serve->add_flag("--open", config.open,
                  "Development only: answer FHIR requests without access tokens (secure, "
                  "token-checked access is the default)");
  serve->add_flag("--demo", config.demo,
                  "Sandbox mode: on first start load synthetic demo patients, create demo users "
                  "(their passwords are printed and shown on the home page) and register the "
                  "sample app; enables the launcher");
  serve->add_option("--demo-patients", config.demo_patients, "Patients in the demo data set")
      ->capture_default_str()
      ->check(CLI::Range(2, 100000));
  serve->add_option("--tls-cert", config.tls_cert,
                    "PEM certificate chain: with --tls-key the server speaks only HTTPS (TLS 1.2+, "
                    "HSTS)");
  serve->add_option("--tls-key", config.tls_key, "PEM private key of --tls-cert (unencrypted)");
  serve->add_flag("--insecure-http", config.insecure_http,
                  "Allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy)");
  serve
      ->add_option("--rate-limit-client", config.rate_limit_client,
                   "Requests per OAuth client: RATE/s or RATE/min, then :BURST (e.g. 600/min:100), "
                   "or off")
      ->capture_default_str();
  serve->add_option("--rate-limit-user", config.rate_limit_user, "Requests per user, as above")
      ->capture_default_str();
  serve
      ->add_option("--rate-limit-ip", config.rate_limit_ip,
                   "Requests per address for callers without a token, as above")
      ->capture_default_str();
  serve->add_option("--rate-limit-override", config.rate_limit_overrides,
                    "A client's own limit, CLIENT_ID=LIMIT (repeat for several)");
  serve
      ->add_option("--share-rate-limits", config.share_rate_limits,
                   "Nodes on one database share their rate-limit buckets through it, within a "
                   "sync interval: on, off, or auto (on for PostgreSQL)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  serve
      ->add_option("--max-expensive-searches", config.max_expensive_searches,
                   "Expensive searches (_include, chains, _has...) running at once (0: no limit)")
      ->capture_default_str();
  serve
      ->add_option("--max-concurrent-requests", config.max_concurrent_requests,
                   "FHIR and bulk requests in flight at once (0: no limit); beyond, 429")
      ->capture_default_str();
  serve
      ->add_option("--max-concurrent-requests-per-caller",
                   config.max_concurrent_requests_per_caller,
                   "Requests in flight at once per client (or address without a token); 0: no "
                   "limit")
      ->capture_default_str();
  serve
      ->add_option("--access-log", config.access_log,
                   "Access log as JSON lines: - (stdout), a file, or off")
      ->capture_default_str();
  serve->add_option("--bulk-dir", config.bulk_dir, "Where bulk export ($export) files are written")
      ->capture_default_str();
  serve
      ->add_option("--bulk-expire-seconds", config.bulk_expire_seconds,
                   "How long bulk export files stay available after the export completes")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{60}, int64_t{30LL * 24 * 3600}));
  serve->add_flag("--require-pkce", config.require_pkce,
                  "Require PKCE of confidential clients too (public clients always need it)");
  bool no_audit = false;
  serve->add_flag("--no-audit", no_audit,
                  "Do not record accesses in the audit log (benchmarks and development only)");
  serve
      ->add_option("--audit-delay-ms", config.audit_delay_ms,
                   "Longest delay before a read or security event is in the audit log")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));

  serve
      ->add_option("--slow-search-ms", config.slow_search_ms,
                   "Log a search taking at least this long (milliseconds) with its SQL "
                   "(placeholders, not the values searched); 0 logs every search")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  serve
      ->add_option("--sync-interval-ms", config.sync_interval_ms,
                   "With several nodes on one database: how often signing keys and token "
                   "revocations written by the others are reloaded, and rate-limit usage "
                   "exchanged")
      ->capture_default_str()
      ->check(CLI::Range(10, 60000));

  // fhirstone migrate: the schema alone (serve applies it at start too).
  CLI::App* migrate = cli.add_subcommand(
      "migrate", "Apply the database schema migrations and exit (serve applies them at start)");
  std::string migrate_db = "sqlite:var/fhirstone.db";
  migrate->add_option("--db", migrate_db, "Database URL: sqlite:PATH or postgres://USER@HOST/DB")
      ->capture_default_str();

  // fhirstone audit verify: checks the audit log's hash chain.
  CLI::App* audit = cli.add_subcommand("audit", "Inspect the audit log");
  audit->require_subcommand(1);
  CLI::App* audit_verify = audit->add_subcommand(
      "verify",
      "Check the audit log's hash chain: report every changed or removed record (exit 1 then)");
  std::string audit_db = "sqlite:var/fhirstone.db";
  audit_verify->add_option("--db", audit_db, "Database URL: sqlite:PATH")->capture_default_str();

  // fhirstone explain: how the database runs a search.
  CLI::App* explain = cli.add_subcommand(
      "explain", "Show the SQL and the database's plan of a search, to diagnose a slow one");
  std::string explain_db = "sqlite:var/fhirstone.db", explain_search;
  explain->add_option("--db", explain_db, "Database URL: sqlite:PATH or postgres://USER@HOST/DB")
      ->capture_default_str();
  explain->add_option("search", explain_search, "TYPE?QUERY, e.g. 'Observation?patient=123'")
      ->required();

  // fhirstone client add|list, user add, keys rotate, launch: the authorization server's state.
  std::string admin_db = "sqlite:var/fhirstone.db";
  CLI::App* client = cli.add_subcommand("client", "Manage the registered SMART apps");
  client->require_subcommand(1);
  fhirstone::server::ClientSpec client_spec;
  client_spec.scopes =
      "openid fhirUser profile launch launch/patient launch/encounter offline_access "
      "online_access patient/*.cruds user/*.cruds";
  bool client_json = false;
  CLI::App* client_add = client->add_subcommand(
      "add", "Register an app; prints its client_id (and its client_secret, shown only once)");
  client_add->add_option("--db", admin_db, "Database URL: sqlite:PATH")->capture_default_str();
  client_add->add_option("--name", client_spec.name, "The app's name, shown to users")->required();
  client_add
      ->add_option("--type", client_spec.type,
                   "public, confidential-symmetric (a client secret) or confidential-asymmetric "
                   "(private_key_jwt with the keys of --jwks)")
      ->capture_default_str();
  client_add->add_option("--redirect-uri", client_spec.redirect_uris,
                         "A redirect URI, matched exactly (repeat for several)");
  client_add->add_option("--scopes", client_spec.scopes, "The scopes the app may be granted")
      ->capture_default_str();
  client_add->add_option("--jwks", client_spec.jwks_file,
                         "A JWKS file with the client's public keys (confidential-asymmetric)");
  client_add->add_option("--jwks-uri", client_spec.jwks_uri,
                         "Where the server fetches the client's public keys (https; cached)");
  client_add->add_option("--launch-uri", client_spec.launch_uri, "The app's launch URL");
  client_add->add_option("--client-id", client_spec.client_id,
                         "A chosen client_id (default: random)");
  client_add->add_flag("--require-pkce", client_spec.require_pkce,
                       "Require PKCE even though the client is confidential");
  client_add->add_flag("--json", client_json, "Print the registration as JSON");
  CLI::App* client_list = client->add_subcommand("list", "List the registered apps");
  client_list->add_option("--db", admin_db, "Database URL: sqlite:PATH")->capture_default_str();

  std::string user_name, user_password, user_fhir_user, user_display;
  CLI::App* user = cli.add_subcommand("user", "Manage the users who sign in");
  user->require_subcommand(1);
  CLI::App* user_add = user->add_subcommand(
      "add",
      "Add a user (the password is stored as an Argon2id hash; give it with --password or "
      "the FHIRSTONE_PASSWORD environment variable)");
  user_add->add_option("--db", admin_db, "Database URL: sqlite:PATH")->capture_default_str();
  user_add->add_option("--username", user_name, "The sign-in name")->required();
  user_add->add_option("--password", user_password, "The password (at least 8 characters)");
  user_add
      ->add_option("--fhir-user", user_fhir_user,
                   "Who the user is in FHIR: Patient/ID, Practitioner/ID, RelatedPerson/ID or "
                   "Person/ID")
      ->required();
  user_add->add_option("--display", user_display, "The user's name as pages show it");

  std::string keys_base = "http://127.0.0.1:8080";
  CLI::App* keys = cli.add_subcommand("keys", "Manage the token signing keys");
  keys->require_subcommand(1);
  CLI::App* keys_rotate = keys->add_subcommand(
      "rotate",
      "Make a new signing key current; tokens signed before stay valid until they expire");
  keys_rotate->add_option("--db", admin_db, "Database URL: sqlite:PATH")->capture_default_str();
  keys_rotate->add_option("--base-url", keys_base, "The server's public URL")
      ->capture_default_str();

  std::string launch_user, launch_patient, launch_encounter;
  CLI::App* launch = cli.add_subcommand(
      "launch", "Create a single-use EHR launch value (valid 5 minutes) for a user and a patient");
  launch->add_option("--db", admin_db, "Database URL: sqlite:PATH")->capture_default_str();
  launch->add_option("--user", launch_user, "The username of the EHR user")->required();
  launch->add_option("--patient", launch_patient, "The patient id in context");
  launch->add_option("--encounter", launch_encounter, "The encounter id in context");

  std::string reindex_db = "sqlite:var/fhirstone.db";
  CLI::App* reindex = cli.add_subcommand(
      "reindex",
      "Load the SearchParameter resources stored in the database and rebuild the search index of "
      "every resource (in short batches: a server on the same database keeps serving writes and "
      "loads the parameters within its sync interval; a running server can also be asked with "
      "POST /fhir/$reindex)");
  reindex->add_option("--db", reindex_db, "Database URL: sqlite:PATH")->capture_default_str();
  std::string reindex_base = "http://127.0.0.1:8080";
  reindex
      ->add_option("--base-url", reindex_base,
                   "The server's public URL, as given to serve (absolute references under it "
                   "are indexed as local resources)")
      ->capture_default_str();

  std::string import_db = "sqlite:var/fhirstone.db";
  std::string import_base = "http://127.0.0.1:8080";
  std::vector<std::string> import_paths;
  CLI::App* import = cli.add_subcommand(
      "import",
      "Load FHIR data: transaction/batch Bundles (.json, .json.bz2, .json.gz, .tar.xz archives of "
      "them) and NDJSON; Synthea hospital and practitioner files first; documents loaded before "
      "are skipped");
  import->add_option("--db", import_db, "Database URL: sqlite:PATH")->capture_default_str();
  import
      ->add_option("--base-url", import_base,
                   "The server's public URL, as given to serve (references under it are local)")
      ->capture_default_str();
  import->add_option("paths", import_paths, "Files or folders to load")->required();

  fhirstone::generate::GenerateOptions generate_options;
  std::string generate_today;
  std::string generate_out;
  bool generate_load = false;
  std::string generate_db = "sqlite:var/fhirstone.db";
  std::string generate_base = "http://127.0.0.1:8080";
  CLI::App* generate = cli.add_subcommand(
      "generate",
      "Generate realistic synthetic patients, deterministically (the same options give the same "
      "bytes): a batch Bundle of organizations and practitioners, then one transaction Bundle per "
      "patient, written to --out DIR or loaded into --db through import");
  generate->add_option("--patients", generate_options.patients, "Number of patients")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  generate->add_option("--seed", generate_options.seed, "Random seed")->capture_default_str();
  generate->add_option("--years", generate_options.years_of_history, "Years of history")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  generate->add_option("--today", generate_today,
                       "The data set's today, YYYY-MM-DD (default 2025-01-01, so that the same "
                       "seed gives the same bytes on any day)");
  CLI::Option* generate_out_option =
      generate->add_option("--out", generate_out, "Write one .json file per Bundle to this folder");
  generate->add_flag("--load", generate_load, "Load the Bundles into --db (as import does)")
      ->excludes(generate_out_option);
  generate->add_option("--db", generate_db, "Database URL for --load: sqlite:PATH")
      ->capture_default_str();
  generate
      ->add_option("--base-url", generate_base,
                   "The server's public URL, as given to serve (references under it are local)")
      ->capture_default_str();

  CLI11_PARSE(cli, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (serve->parsed()) {
    // A closed standard output (the access log's) or peer fails its write with EPIPE instead of
    // ending the process.
    std::signal(SIGPIPE, SIG_IGN);
    config.audit = !no_audit;
    EnsureDatabaseFolder(config.db);
    auto app = fhirstone::server::App::Start(config);
    if (!app) {
      spdlog::error("cannot start: {}", app.error().message());
      return 1;
    }
    spdlog::info("Fhirstone {} listening; FHIR base {}/fhir", FHIRSTONE_VERSION,
                 (*app)->base_url());
    if (config.demo) {
      std::printf(
          "\nFhirstone sandbox: %s/\n  launcher: %s/launcher\n  sample app: "
          "%s/apps/vitals/launch.html\n\nDemo users (password):\n",
          (*app)->base_url().c_str(), (*app)->base_url().c_str(), (*app)->base_url().c_str());
      for (const auto& a : (*app)->demo_accounts())
        std::printf("  %-13s %-14s %-13s %s (%s)\n", a.username.c_str(), a.password.c_str(),
                    a.role.c_str(), a.display.c_str(), a.fhir_user.c_str());
      std::printf("\n");
      std::fflush(stdout);
    }
    (*app)->WaitForSignal();
    spdlog::info("shutting down: finishing in-flight requests");
    (*app)->Stop();
    spdlog::info("stopped");
  }
  if (import->parsed()) {
    EnsureDatabaseFolder(import_db);
    bool terminal = isatty(STDERR_FILENO);
    auto summary = fhirstone::server::RunImport(
        import_db, import_base, import_paths,
        [terminal](const fhirstone::server::ImportProgress& p) {
          if (!terminal) return;
          double rate = p.seconds > 0 ? p.resources / p.seconds : 0;
          double eta = p.documents_done > 0 && p.documents_total > p.documents_done
                           ? p.seconds / p.documents_done * (p.documents_total - p.documents_done)
                           : 0;
          int width = 30;
          int filled = p.documents_total > 0
                           ? static_cast<int>(width * p.documents_done / p.documents_total)
                           : 0;
          std::fprintf(
              stderr,
              "\r[%-*s] %lld/%lld documents, %lld resources, %.0f resources/s, ETA %.0f s   ",
              width, std::string(std::min(filled, width), '#').c_str(),
              static_cast<long long>(p.documents_done), static_cast<long long>(p.documents_total),
              static_cast<long long>(p.resources), rate, eta);
        });
    if (terminal) std::fprintf(stderr, "\n");
    if (!summary) {
      spdlog::error("import failed: {}", summary.error().message());
      return 1;
    }
    for (const auto& e : summary->errors) std::fprintf(stderr, "error: %s\n", e.c_str());
    std::printf(
        "imported %lld documents (%lld resources) in %.1f s, %.0f resources/s; %lld skipped as "
        "already loaded, %lld failed\n",
        static_cast<long long>(summary->documents), static_cast<long long>(summary->resources),
        summary->seconds, summary->seconds > 0 ? summary->resources / summary->seconds : 0.0,
        static_cast<long long>(summary->skipped), static_cast<long long>(summary->failed));
    return summary->failed == 0 ? 0 : 1;
  }
  if (generate->parsed()) {
    namespace fs = std::filesystem;
    if (!generate_today.empty()) {
      auto day = fhirstone::ParseFhirDateTime(generate_today);
      if (!day || generate_today.size() != 10) {
        spdlog::error("--today must be a date, YYYY-MM-DD");
        return 1;
      }
      generate_options.now_micros = day->low;
    }
    if (generate_out.empty() && !generate_load) {
      spdlog::error("generate needs --out DIR or --load");
      return 1;
    }
    // --load writes the Bundles to a temporary folder and imports it every kChunk patients, so
    // that they are validated, indexed and recorded in the import ledger like any import.
    constexpr int kChunk = 500;
    fs::path folder = generate_load ? fs::temp_directory_path() /
                                          ("fhirstone-generate-" + std::to_string(getpid()))
                                    : fs::path(generate_out);
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) {
      spdlog::error("cannot create {}: {}", folder.string(), ec.message());
      return 1;
    }
    if (generate_load) EnsureDatabaseFolder(generate_db);
    int pending = 0;
    int64_t bundles = 0, resources = 0, failed = 0;
    auto load_pending = [&]() -> fhirstone::Status {
      if (!generate_load || pending == 0) return fhirstone::Ok();
      auto summary =
          fhirstone::server::RunImport(generate_db, generate_base, {folder.string()}, nullptr);
      fs::remove_all(folder, ec);
      fs::create_directories(folder, ec);
      pending = 0;
      if (!summary) return std::move(summary).error();
      for (const auto& e : summary->errors) std::fprintf(stderr, "error: %s\n", e.c_str());
      resources += summary->resources;
      failed += summary->failed;
      return fhirstone::Ok();
    };
    auto status = fhirstone::generate::Generate(
        generate_options, [&](std::string_view name, std::string bundle) -> fhirstone::Status {
          fs::path path = folder / (std::string(name) + ".json");
          std::ofstream file(path, std::ios::binary);
          file << bundle;
          file.close();
          if (!file) return fhirstone::Error::Unavailable("cannot write " + path.string());
          ++bundles;
          if (++pending >= kChunk) return load_pending();
          return fhirstone::Ok();
        });
    if (status) status = load_pending();
    if (generate_load) fs::remove_all(folder, ec);
    if (!status) {
      spdlog::error("generate failed: {}", status.error().message());
      return 1;
    }
    if (generate_load) {
      std::printf("generated %d patients, loaded %lld resources into %s; %lld bundles failed\n",
                  generate_options.patients, static_cast<long long>(resources), generate_db.c_str(),
                  static_cast<long long>(failed));
      return failed == 0 ? 0 : 1;
    }
    std::printf("generated %d patients: %lld bundles in %s\n", generate_options.patients,
                static_cast<long long>(bundles), generate_out.c_str());
  }
  if (client_add->parsed()) {
    EnsureDatabaseFolder(admin_db);
    auto registered = fhirstone::server::AddClient(admin_db, client_spec);
    if (!registered) {
      spdlog::error("client add failed: {}", registered.error().message());
      return 1;
    }
    if (client_json) {
      std::printf("{\"client_id\":\"%s\"%s%s%s}\n", registered->client_id.c_str(),
                  registered->client_secret.empty() ? "" : ",\"client_secret\":\"",
                  registered->client_secret.c_str(), registered->client_secret.empty() ? "" : "\"");
    } else {
      std::printf("client_id: %s\n", registered->client_id.c_str());
      if (!registered->client_secret.empty())
        std::printf("client_secret: %s\n(shown only now: it is stored hashed)\n",
                    registered->client_secret.c_str());
    }
  }
  if (client_list->parsed()) {
    auto clients = fhirstone::server::ListClients(admin_db);
    if (!clients) {
      spdlog::error("client list failed: {}", clients.error().message());
      return 1;
    }
    for (const auto& c : *clients)
      std::printf("%s\t%s\t%s\t%s\n", c.client_id.c_str(),
                  std::string(fhirstone::oauth::ClientTypeName(c.type)).c_str(), c.name.c_str(),
                  c.allowed_scopes.c_str());
  }
  if (user_add->parsed()) {
    EnsureDatabaseFolder(admin_db);
    if (user_password.empty()) {
      const char* env = std::getenv("FHIRSTONE_PASSWORD");
      if (env) user_password = env;
    }
    auto id = fhirstone::server::AddUser(admin_db, user_name, user_password, user_fhir_user,
                                         user_display);
    if (!id) {
      spdlog::error("user add failed: {}", id.error().message());
      return 1;
    }
    std::printf("user %s added (%s)\n", user_name.c_str(), user_fhir_user.c_str());
  }
  if (keys_rotate->parsed()) {
    auto rotated = fhirstone::server::RotateKeys(admin_db, keys_base);
    if (!rotated) {
      spdlog::error("keys rotate failed: {}", rotated.error().message());
      return 1;
    }
    std::printf("a new signing key is current\n");
  }
  if (launch->parsed()) {
    auto value = fhirstone::server::CreateLaunch(admin_db, launch_user, launch_patient,
                                                 launch_encounter, 300);
    if (!value) {
      spdlog::error("launch failed: {}", value.error().message());
      return 1;
    }
    std::printf("%s\n", value->c_str());
  }
  if (migrate->parsed()) {
    EnsureDatabaseFolder(migrate_db);
    auto applied = fhirstone::server::Migrate(migrate_db);
    if (!applied) {
      spdlog::error("migrate failed: {}", applied.error().message());
      return 1;
    }
    std::printf("schema up to date: %lld migrations applied\n", static_cast<long long>(*applied));
    return 0;
  }
  if (explain->parsed()) {
    auto plan = fhirstone::server::ExplainSearch(explain_db, explain_search);
    if (!plan) {
      spdlog::error("explain failed: {}", plan.error().message());
      return 1;
    }
    std::printf("%s", plan->c_str());
    return 0;
  }
  if (audit_verify->parsed()) {
    auto report = fhirstone::server::VerifyAudit(audit_db);
    if (!report) {
      spdlog::error("audit verify failed: {}", report.error().message());
      return 2;
    }
    for (const auto& problem : report->problems) std::printf("TAMPERED: %s\n", problem.c_str());
    std::printf("%lld audit records, head %s: %s\n", static_cast<long long>(report->records),
                report->head.c_str(), report->problems.empty() ? "intact" : "NOT intact");
    return report->problems.empty() ? 0 : 1;
  }
  if (reindex->parsed()) {
    auto count = fhirstone::server::Reindex(reindex_db, reindex_base);
    if (!count) {
      spdlog::error("reindex failed: {}", count.error().message());
      return 1;
    }
    std::printf("reindexed %lld resources\n", static_cast<long long>(*count));
  }
  return 0;
}
