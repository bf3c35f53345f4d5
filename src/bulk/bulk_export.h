// BulkExport: FHIR Bulk Data Access 2.0 export (https://hl7.org/fhir/uv/bulkdata/STU2/export.html)
// for the system, all patients and a Group: the asynchronous kick-off (`$export` with
// `Prefer: respond-async`), a status endpoint (202 with X-Progress and Retry-After while running,
// 200 with the manifest when done, DELETE cancels), and the NDJSON files, split by type and by
// size, served only to the client that asked (gzip when accepted).
// Jobs are rows in the database (they survive a restart: a job interrupted by a stop runs again
// from the start); one worker thread runs them, streaming each from one consistent snapshot of
// the store to files on disk, so memory stays bounded whatever the size. Files expire.
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "api/access.h"
#include "common/clock.h"
#include "common/result.h"
#include "http/message.h"

namespace fhirstone::db {
class Database;
}
namespace fhirstone::store {
class ResourceStore;
}
namespace fhirstone::search {
class RegistryHolder;
}

namespace fhirstone::bulk {

struct BulkOptions {
  std::string base_url;                // public origin, e.g. http://localhost:8080
  std::string directory = "var/bulk";  // where export files are written
  size_t max_file_bytes = 64 * 1024 * 1024;
  int64_t expire_seconds = 3600;  // files and manifests live this long after completion
  int retry_after_seconds = 2;
};

class BulkExport {
 public:
  // Applies the schema of the export jobs (fhirstone migrate; Create does it too).
  static Status MigrateSchema(db::Database& db);
  // Applies the schema, re-queues jobs interrupted by a stop and starts the worker.
  static Result<std::unique_ptr<BulkExport>> Create(db::Database& db, store::ResourceStore& store,
                                                    const search::RegistryHolder& registry,
                                                    Clock& clock, BulkOptions options);
  // Stops the worker (a running job is interrupted and runs again at the next start).
  ~BulkExport();
  BulkExport(const BulkExport&) = delete;
  BulkExport& operator=(const BulkExport&) = delete;

  // /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export and /bulk/...
  static bool Handles(std::string_view path);
  // `access`: what the caller's token allows (null: open mode); `client_id` owns the job.
  http::Response Handle(http::Request& request, const api::AccessContext* access);

 private:
  BulkExport();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhirstone::bulk
