// fhirstone import: loads FHIR data files into the store through the FHIR API itself, so that
// everything imported is validated, indexed and versioned like any write. Reads transaction and
// batch Bundles as .json, .json.bz2, .json.gz and .tar(.xz|.gz|.bz2) archives of them (libarchive),
// and NDJSON (one resource per line). Synthea's hospital and practitioner files load first (the
// patients' conditional references point at them). Every document loaded is recorded by its
// content hash, so that a second run skips it; an error in one document is reported and the rest
// still load. Single-threaded; the FhirApi it drives must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/fhir_api.h"
#include "common/result.h"
#include "db/database.h"

namespace fhirstone::server {

struct ImportProgress {
  int64_t documents_done = 0;
  int64_t documents_total = 0;  // known up front for plain files; archives count as they go
  int64_t resources = 0;
  double seconds = 0;
};

struct ImportSummary {
  int64_t documents = 0;  // loaded now
  int64_t skipped = 0;    // loaded by an earlier run
  int64_t failed = 0;
  int64_t resources = 0;  // written now
  double seconds = 0;
  std::vector<std::string> errors;  // "file: what went wrong", one per failed document
};

// Applies the schema of the import ledger (fhirstone migrate; Importer::Create does it too).
Status MigrateImportLedger(db::Database& db);

class Importer {
 public:
  // `db` holds the import ledger (created if absent); `api` receives the writes.
  static Result<std::unique_ptr<Importer>> Create(db::Database& db, api::FhirApi& api);

  // Loads `paths` (files or folders, searched recursively). `on_progress` is called after each
  // document.
  ImportSummary Run(const std::vector<std::string>& paths,
                    const std::function<void(const ImportProgress&)>& on_progress);

 private:
  Importer(db::Database& db, api::FhirApi& api) : db_(db), api_(api) {}
  db::Database& db_;
  api::FhirApi& api_;
};

}  // namespace fhirstone::server
