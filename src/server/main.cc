// fhirstone: the command line. `fhirstone serve` runs the server; `fhirstone --version`.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>

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
                   "Database URL: sqlite:PATH (an embedded SQLite file, created if absent)")
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

  std::string reindex_db = "sqlite:var/fhirstone.db";
  CLI::App* reindex = cli.add_subcommand(
      "reindex",
      "Load the SearchParameter resources stored in the database and rebuild the search index of "
      "every resource (in short batches: a server on the same database keeps serving writes; a "
      "running server can also be asked with POST /fhir/$reindex)");
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

  CLI11_PARSE(cli, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (serve->parsed()) {
    EnsureDatabaseFolder(config.db);
    auto app = fhirstone::server::App::Start(config);
    if (!app) {
      spdlog::error("cannot start: {}", app.error().message());
      return 1;
    }
    spdlog::info("Fhirstone {} listening; FHIR base {}/fhir", FHIRSTONE_VERSION,
                 (*app)->base_url());
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
