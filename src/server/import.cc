#include "server/import.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/json.h"
#include "common/strings.h"
#include "db/database.h"
#include "store/resource_store.h"

namespace fhirstone::server {
namespace {

namespace fs = std::filesystem;

constexpr size_t kNdjsonBatch = 500;
constexpr size_t kMaxDocumentBytes = 1024ull * 1024 * 1024;

const std::vector<db::Migration>& LedgerMigrations() {
  static const std::vector<db::Migration> kMigrations = {
      {1001, "import ledger",
       "CREATE TABLE import_ledger (hash TEXT PRIMARY KEY, name TEXT NOT NULL, resources INTEGER "
       "NOT NULL, loaded_at TEXT NOT NULL)"}};
  return kMigrations;
}

// Records a document as loaded (nothing when it is already; `inserted`, when given, says which).
// REQUIRES: a write transaction.
Status InsertLedgerRow(db::Connection& conn, const std::string& key, const std::string& name,
                       int64_t resources, bool* inserted = nullptr) {
  auto insert = conn.Prepare(
      "INSERT INTO import_ledger (hash, name, resources, loaded_at) VALUES (?, ?, ?, "
      "CURRENT_TIMESTAMP) ON CONFLICT DO NOTHING");
  if (!insert) return std::move(insert).error();
  (*insert)->BindText(1, key);
  (*insert)->BindText(2, name);
  (*insert)->BindInt(3, resources);
  auto changed = (*insert)->Run();
  if (!changed) return std::move(changed).error();
  if (inserted) *inserted = *changed > 0;
  return Ok();
}

// FNV-1a 64 of the content, with its length: the identity of a document in the ledger.
std::string ContentKey(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%016llx-%zu", static_cast<unsigned long long>(h), data.size());
  return buf;
}

bool IsInfoFile(std::string_view name) {
  return name.find("hospitalInformation") != std::string_view::npos ||
         name.find("practitionerInformation") != std::string_view::npos;
}

bool IsDataName(std::string_view name) {
  return name.ends_with(".json") || name.ends_with(".ndjson") || name.ends_with(".json.bz2") ||
         name.ends_with(".json.gz") || name.ends_with(".ndjson.gz") ||
         name.ends_with(".ndjson.bz2");
}

bool IsArchiveName(std::string_view name) {
  return name.ends_with(".tar") || name.ends_with(".tar.xz") || name.ends_with(".tar.gz") ||
         name.ends_with(".tgz") || name.ends_with(".tar.bz2");
}

// Reads every regular entry of `path` (an archive, or a possibly compressed single file) and
// calls `visit(entry_name, content)` for those whose name `want` accepts.
Status ReadArchive(const std::string& path, const std::function<bool(std::string_view)>& want,
                   const std::function<void(const std::string&, std::string)>& visit) {
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  bool tar = IsArchiveName(path);
  if (tar) {
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
  } else {
    archive_read_support_format_raw(a);
  }
  if (archive_read_open_filename(a, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    std::string m = archive_error_string(a) ? archive_error_string(a) : "cannot open";
    archive_read_free(a);
    return Error::Invalid(path + ": " + m);
  }
  struct archive_entry* entry;
  Status status = Ok();
  while (true) {
    int rc = archive_read_next_header(a, &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      status = Error::Invalid(path + ": " +
                              (archive_error_string(a) ? archive_error_string(a) : "read error"));
      break;
    }
    std::string name = tar ? archive_entry_pathname(entry) : fs::path(path).filename().string();
    if (tar && (archive_entry_filetype(entry) != AE_IFREG || !want(name))) {
      archive_read_data_skip(a);
      continue;
    }
    if (!tar && !want(name)) break;
    std::string content;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
      content.append(buf, static_cast<size_t>(n));
      if (content.size() > kMaxDocumentBytes) break;
    }
    if (n < 0) {
      status = Error::Invalid(path + ":" + name + ": " +
                              (archive_error_string(a) ? archive_error_string(a) : "read error"));
      break;
    }
    visit(tar ? path + ":" + name : path, std::move(content));
  }
  archive_read_free(a);
  return status;
}

}  // namespace

Status MigrateImportLedger(db::Database& db) { return db.Migrate(LedgerMigrations()); }

Result<std::unique_ptr<Importer>> Importer::Create(db::Database& db, api::FhirApi& api) {
  FHIRSTONE_RETURN_IF_ERROR(db.Migrate(LedgerMigrations()));
  return std::unique_ptr<Importer>(new Importer(db, api));
}

ImportSummary Importer::Run(const std::vector<std::string>& paths,
                            const std::function<void(const ImportProgress&)>& on_progress) {
  ImportSummary summary;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p, ec))
        if (e.is_regular_file() &&
            (IsDataName(e.path().string()) || IsArchiveName(e.path().string())))
          files.push_back(e.path().string());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      summary.failed++;
      summary.errors.push_back(p + ": no such file or folder");
    }
  }
  std::sort(files.begin(), files.end());
  // Synthea's hospital and practitioner files first.
  std::stable_partition(files.begin(), files.end(), [](const std::string& f) {
    return IsInfoFile(fs::path(f).filename().string());
  });
  ImportProgress progress;
  progress.documents_total = static_cast<int64_t>(files.size());
  std::mutex mu;  // guards summary and progress, and serializes on_progress

  auto report_locked = [&] {
    progress.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_progress) on_progress(progress);
  };

  // Content keys of the documents being loaded (guarded by mu): a copy of one waits for it to
  // finish, then finds it among those loaded.
  std::set<std::string> loading;

  // The ledger's rows are inserted by a thread of their own. Inserting one waits for the write
  // lock, which the store's writer holds while it writes the next documents: the workers waited
  // in SQLite's busy handler (sleeping up to 100 ms at a time) instead of preparing documents.
  // The documents loaded by this run are also kept here (`recorded`, guarded by mu) until their
  // row is in the ledger.
  struct LedgerRow {
    std::string key, name;
    int64_t resources = 0;
  };
  std::deque<LedgerRow> ledger_rows;
  std::set<std::string> recorded;
  bool ledger_closing = false;
  std::condition_variable ledger_changed;
  std::thread ledger_writer([&] {
    std::unique_lock lock(mu);
    while (true) {
      ledger_changed.wait(lock, [&] { return ledger_closing || !ledger_rows.empty(); });
      if (ledger_rows.empty()) return;
      LedgerRow row = std::move(ledger_rows.front());
      ledger_rows.pop_front();
      lock.unlock();
      // A write transaction: it queues for the write lock with the store's writes (in-process),
      // where a statement on its own would poll SQLite's busy handler against a writer that
      // holds the lock almost all the time.
      auto record = [&]() -> Status {
        auto lease = db_.Acquire();
        if (!lease) return std::move(lease).error();
        auto tx = db::Transaction::Begin(**lease, /*write=*/true);
        if (!tx) return std::move(tx).error();
        FHIRSTONE_RETURN_IF_ERROR(InsertLedgerRow(**lease, row.key, row.name, row.resources));
        return tx->Commit();
      };
      Status recorded_row = record();
      lock.lock();
      // Not in the ledger: a later run would load the document again, so the run failed.
      if (!recorded_row) {
        summary.failed++;
        summary.errors.push_back(
            row.name + ": loaded, but not recorded as loaded: " + recorded_row.error().message());
      }
    }
  });
  std::condition_variable loaded;

  // Loads one document; called by the workers at once (api_ and db_ are thread-safe).
  auto load = [&](const std::string& name, std::string content) {
    std::string key = ContentKey(content);
    {
      std::unique_lock lock(mu);
      loaded.wait(lock, [&] { return !loading.contains(key); });
      loading.insert(key);
    }
    struct Done {
      std::mutex& mu;
      std::set<std::string>& loading;
      std::condition_variable& loaded;
      const std::string& key;
      ~Done() {
        std::lock_guard lock(mu);
        loading.erase(key);
        loaded.notify_all();
      }
    } done{mu, loading, loaded, key};
    // Loaded already: by this run (its ledger row may still be on its way), or by an earlier one.
    bool loaded_before = false;
    {
      std::lock_guard lock(mu);
      loaded_before = recorded.contains(key);
    }
    if (!loaded_before) {
      if (auto lease = db_.Acquire(); lease) {
        auto seen = (*lease)->Prepare("SELECT 1 FROM import_ledger WHERE hash = ?");
        if (seen) {
          (*seen)->BindText(1, key);
          auto row = (*seen)->Step();
          (*seen)->Reset();
          loaded_before = row && *row;
        }
      }
    }
    auto skip = [&] {  // loaded already
      std::lock_guard lock(mu);
      summary.skipped++;
      progress.documents_done++;
      report_locked();
    };
    if (loaded_before) return skip();
    int64_t written = 0;
    std::string error;
    bool recorded_with_it = false;  // its ledger row committed with its resources
    bool loaded_meanwhile = false;  // another run recorded it after the check above
    auto post = [&](std::string body) {
      http::Request request;
      request.method = "POST";
      request.target = "/fhir";
      request.headers.emplace_back("Content-Type", "application/fhir+json");
      request.headers.emplace_back("Prefer", "return=minimal");
      request.body = std::move(body);
      http::Response response = api_.Handle(request);
      if (response.status != 200) {
        auto outcome = json::Parse(response.body);
        std::string why =
            outcome
                ? std::string(outcome->Find("issue") && outcome->Find("issue")->is_array() &&
                                      !outcome->Find("issue")->as_array().empty()
                                  ? outcome->Find("issue")->as_array()[0].GetString("diagnostics")
                                  : std::string_view())
                : response.body.substr(0, 200);
        error = "HTTP " + std::to_string(response.status) + ": " + why;
        return;
      }
      auto answer = json::Parse(response.body);
      if (!answer) return;
      const json::Value* entries = answer->Find("entry");
      if (!entries || !entries->is_array()) return;
      for (const auto& e : entries->as_array()) {
        const json::Value* r = e.Find("response");
        std::string_view status = r ? r->GetString("status") : std::string_view();
        if (status.starts_with("2")) {
          ++written;
        } else if (error.empty()) {
          error = "an entry failed with " + std::string(status);
        }
      }
    };
    std::string_view trimmed = Trim(content);
    if (name.find(".ndjson") != std::string::npos) {
      std::string batch;
      size_t count = 0;
      auto flush = [&] {
        if (count == 0) return;
        post("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[" + batch + "]}");
        batch.clear();
        count = 0;
      };
      for (auto line : Split(trimmed, '\n')) {
        line = Trim(line);
        if (line.empty()) continue;
        auto resource = json::Parse(line);
        if (!resource || !resource->is_object()) {
          error = "a line is not a JSON resource";
          continue;
        }
        std::string type(resource->GetString("resourceType"));
        std::string id(resource->GetString("id"));
        if (count) batch += ",";
        batch += "{\"resource\":" + std::string(line) + ",\"request\":{\"method\":\"" +
                 (id.empty() ? "POST\",\"url\":\"" + type : "PUT\",\"url\":\"" + type + "/" + id) +
                 "\"}}";
        if (++count == kNdjsonBatch) flush();
      }
      flush();
    } else {
      auto document = json::Parse(trimmed);
      if (!document) {
        error = document.error().message();
      } else if (document->GetString("resourceType") == "Bundle" &&
                 document->GetString("type") == "transaction") {
        // One write transaction: the document's ledger row goes in it, so that a run stopped
        // between the commit and the row can neither load the document twice (its POST entries
        // would make duplicates) nor skip it unloaded.
        const json::Value* entries = document->Find("entry");
        int64_t count =
            entries && entries->is_array() ? static_cast<int64_t>(entries->as_array().size()) : 0;
        // Another run (a second process, another node) may have loaded it since the check above:
        // its row is then there, and this transaction rolls back instead of storing it twice.
        store::WriteAddendum ledger([&](db::Connection& conn) -> Status {
          bool inserted = false;
          FHIRSTONE_RETURN_IF_ERROR(InsertLedgerRow(conn, key, name, count, &inserted));
          if (inserted) return Ok();
          loaded_meanwhile = true;
          return Error::Conflict("Loaded meanwhile by another run");
        });
        post(std::string(trimmed));
        recorded_with_it = ledger.committed();
      } else if (document->GetString("resourceType") == "Bundle" &&
                 document->GetString("type") == "batch") {
        post(std::string(trimmed));
      } else if (document->is_object() && !document->GetString("resourceType").empty()) {
        std::string type(document->GetString("resourceType"));
        std::string id(document->GetString("id"));
        post("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"resource\":" +
             std::string(trimmed) + ",\"request\":{\"method\":\"" +
             (id.empty() ? "POST\",\"url\":\"" + type : "PUT\",\"url\":\"" + type + "/" + id) +
             "\"}}]}");
      } else {
        error = "not a FHIR resource or Bundle";
      }
    }
    if (loaded_meanwhile && !recorded_with_it) return skip();
    {
      std::lock_guard lock(mu);
      progress.documents_done++;
      progress.resources += written;
      summary.resources += written;
      if (!error.empty()) {
        summary.failed++;
        summary.errors.push_back(name + ": " + error);
      } else {
        summary.documents++;
      }
      report_locked();
    }
    if (!error.empty()) return;
    std::lock_guard lock(mu);
    recorded.insert(key);
    if (recorded_with_it) return;
    ledger_rows.push_back({key, name, written});
    ledger_changed.notify_one();
  };

  // A reader thread decompresses and reads the documents ahead (a few at a time) while two
  // workers load them: a transaction is prepared (parsed, its references resolved, validated,
  // indexed) before its write, so one worker prepares while the other writes (36 Synthea bundles:
  // 6.7-6.9 s against 7.1-7.2 s with one worker; the one writer is the limit: with three or four
  // workers, whose preparation takes the writer's core, 40 bundles loaded 9-16% slower). Synthea's
  // hospital and practitioner documents (read first) are loaded one at a time before any other
  // starts, since the others refer to them.
  struct Document {
    std::string name, content;
    bool info = false;
  };
  constexpr size_t kAhead = 4;
  constexpr int kWorkers = 2;
  std::deque<Document> queue;
  bool reading_done = false;
  int in_flight = 0;       // documents taken and not yet loaded
  int info_in_flight = 0;  // of which info documents
  std::condition_variable changed;
  auto push = [&](Document d) {
    std::unique_lock lock(mu);
    changed.wait(lock, [&] { return queue.size() < kAhead; });
    queue.push_back(std::move(d));
    changed.notify_all();
  };
  std::thread reader([&] {
    for (const auto& file : files) {
      if (IsArchiveName(file)) {
        {
          std::lock_guard lock(mu);
          progress.documents_total--;  // the archive counts by the documents inside
        }
        // Two passes: the info files inside the archive first, then the rest.
        for (bool info_pass : {true, false}) {
          auto status = ReadArchive(
              file,
              [&](std::string_view n) {
                std::string base = fs::path(std::string(n)).filename().string();
                return IsDataName(base) && IsInfoFile(base) == info_pass;
              },
              [&](const std::string& name, std::string content) {
                {
                  std::lock_guard lock(mu);
                  progress.documents_total++;
                }
                push({name, std::move(content), info_pass});
              });
          if (!status) {
            std::lock_guard lock(mu);
            summary.failed++;
            summary.errors.push_back(status.error().message());
            break;
          }
        }
        continue;
      }
      bool info = IsInfoFile(fs::path(file).filename().string());
      auto status = ReadArchive(
          file, [](std::string_view) { return true; },
          [&](const std::string& name, std::string content) {
            push({name, std::move(content), info});
          });
      if (!status) {
        std::lock_guard lock(mu);
        summary.failed++;
        summary.errors.push_back(status.error().message());
        progress.documents_done++;
        report_locked();
      }
    }
    std::lock_guard lock(mu);
    reading_done = true;
    changed.notify_all();
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (true) {
        Document d;
        {
          std::unique_lock lock(mu);
          // An info document loads alone, in order: nothing starts while one is loading.
          changed.wait(lock, [&] {
            if (queue.empty()) return reading_done;
            return info_in_flight == 0 && (!queue.front().info || in_flight == 0);
          });
          if (queue.empty()) return;
          d = std::move(queue.front());
          queue.pop_front();
          ++in_flight;
          if (d.info) ++info_in_flight;
          changed.notify_all();
        }
        load(d.name, std::move(d.content));
        std::lock_guard lock(mu);
        --in_flight;
        if (d.info) --info_in_flight;
        changed.notify_all();
      }
    });
  }
  reader.join();
  for (auto& w : workers) w.join();
  {
    std::lock_guard lock(mu);
    ledger_closing = true;
    ledger_changed.notify_one();
  }
  ledger_writer.join();
  // Fresh statistics for SQLite's planner (which index drives a search) after a bulk load.
  if (summary.documents > 0) {
    if (auto lease = db_.Acquire(); lease) (void)(*lease)->Execute("ANALYZE");
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace fhirstone::server
