// bench_ceiling_server: this machine's ceilings for the read benchmark. The same HTTP server
// library (Beast, the same threads and options) answering every request with the same bytes, no
// routing, no database; or, given a database, with the body of a raw SQLite point lookup of the
// id that ends the request's path (one connection and one prepared statement per I/O thread, the
// same driver and query as bench_sqlite_lookup): a trivial server that reads by id. Other paths
// (the scripts' readiness probe, /fhir/metadata) get the file's bytes.
// Usage: bench_ceiling_server PORT THREADS BODY_FILE [sqlite:PATH]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "db/database.h"
#include "http/server.h"

namespace {

// The stored body of Patient/`id`, or "" when there is none.
std::string Lookup(fhirstone::db::Database& db, std::string_view id) {
  thread_local std::optional<fhirstone::db::Lease> lease;
  thread_local fhirstone::db::Statement* stmt = nullptr;
  if (!stmt) {
    auto acquired = db.Acquire();
    if (!acquired) return "";
    lease.emplace(std::move(acquired).value());
    auto prepared = (*lease)->Prepare(
        "SELECT version, last_updated, deleted, body FROM resource WHERE type = ? AND id = ?");
    if (!prepared) return "";
    stmt = *prepared;
  }
  stmt->BindText(1, "Patient");
  stmt->BindText(2, id);
  std::string body;
  auto row = stmt->Step();
  if (row && *row) body = stmt->ColumnText(3);
  stmt->Reset();
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: bench_ceiling_server PORT THREADS BODY_FILE [sqlite:PATH]\n");
    return 2;
  }
  std::ifstream in(argv[3]);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string body = buffer.str();
  std::unique_ptr<fhirstone::db::Database> db;
  if (argc == 5) {
    auto opened = fhirstone::db::Database::Open(argv[4]);
    if (!opened) {
      std::fprintf(stderr, "%s\n", opened.error().message().c_str());
      return 1;
    }
    db = std::move(opened).value();
  }
  fhirstone::http::ServerOptions options;
  options.port = static_cast<uint16_t>(std::atoi(argv[1]));
  options.threads = std::atoi(argv[2]);
  auto server = fhirstone::http::Server::Start(
      options,
      [&body, &db](fhirstone::http::Request& request) {
        fhirstone::http::Response response;
        response.SetHeader("Content-Type", "application/fhir+json;charset=utf-8");
        response.SetHeader("ETag", "W/\"1\"");
        std::string_view path = request.Path();
        if (db && path.starts_with("/fhir/Patient/")) {
          response.body = Lookup(*db, path.substr(path.rfind('/') + 1));
          if (response.body.empty()) response.status = 404;
        } else {
          response.body = body;
        }
        return response;
      },
      [](int status, std::string_view) {
        fhirstone::http::Response response;
        response.status = status;
        return response;
      });
  if (!server) {
    std::fprintf(stderr, "%s\n", server.error().message().c_str());
    return 1;
  }
  (*server)->WaitForSignal();
  (*server)->Stop();
  return 0;
}
