// ResourceStore: versioned FHIR resources (https://hl7.org/fhir/R4/http.html): create, read,
// vread, update (also as create), logical delete and history, each write one transaction that
// assigns meta.versionId and meta.lastUpdated. Bodies are stored as compact JSON with meta
// filled in, so that a read returns stored bytes without re-serializing.
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/result.h"
#include "common/time.h"
#include "search/query.h"
#include "store/audit.h"

namespace fhirstone::db {
class Connection;
}  // namespace fhirstone::db

namespace fhirstone::store {

enum class Method { kCreate, kUpdate, kDelete };

// One version of one resource.
struct ResourceVersion {
  std::string type;
  std::string id;
  int64_t version = 0;
  int64_t last_updated = 0;  // microseconds since the epoch
  Method method = Method::kCreate;
  bool deleted = false;
  std::string body;  // compact JSON with meta; empty when deleted
  // The ids of the patients whose data this is (Patient compartment), when the store found them
  // already (search results, from the index); the audit log then need not look in the body.
  // Null when not known. Shared: the rows of one search that name the same patients share one list.
  std::shared_ptr<const std::vector<std::string>> patients;
};

struct UpdateResult {
  ResourceVersion resource;
  bool created = false;  // no live version existed before (201 rather than 200)
};

struct DeleteResult {
  // The delete version, or nullopt when there was nothing live to delete.
  std::optional<ResourceVersion> deleted;
};

// History of the system (type and id empty), of a type (id empty) or of one resource.
struct HistoryQuery {
  std::string type;
  std::string id;
  std::optional<int64_t> since;   // only versions with last_updated >= since
  std::optional<TimeRange> at;    // only versions current at some time during `at`
  int count = 50;                 // page size
  std::optional<int64_t> cursor;  // continue after this position (from HistoryPage::next)
};

struct HistoryPage {
  std::vector<ResourceVersion> entries;  // newest first
  std::optional<int64_t> next;           // cursor of the next page, if any
  std::optional<int64_t> total;          // number of matching versions, for instance history
};

// One page of search results (https://hl7.org/fhir/R4/search.html).
struct SearchResult {
  std::vector<ResourceVersion> matches;
  std::vector<ResourceVersion> included;  // _include / _revinclude
  std::optional<int64_t> total;
  std::optional<std::string> next_page;  // opaque _page values for the links
  std::optional<std::string> previous_page;
  std::string plan;  // the SQL chosen, for diagnosing slow queries
  // Why `included` may not hold every resource the _include/_revinclude parameters reach (its
  // bound of resources or of :iterate rounds); empty when it does.
  std::string included_cut;
};

// A resource's search index extracted ahead of its write (ResourceStore::PrepareIndex), outside
// the write transaction: writes share one writer, and time spent in it holds up the writes queued
// behind. Opaque. The store extracts again at the write if its search parameters changed since;
// the resource written must be the one prepared.
class PreparedIndex {
 public:
  virtual ~PreparedIndex() = default;
};

// The operations of one write transaction: they see each other's writes and commit or roll
// back together (batches, transactions, conditional operations). Used by one thread. When the
// transaction was opened with an audit record, each version written appends that record to the
// audit log (with the resource, its version and its patients) in the same transaction.
// AuditEvent resources are the audit log: a create appends to it, updates and deletes are refused.
class StoreTransaction {
 public:
  virtual ~StoreTransaction() = default;
  virtual Result<ResourceVersion> Read(std::string_view type, std::string_view id) = 0;
  // With a non-empty `id` (assigned beforehand, e.g. for a transaction's urn:uuid references),
  // else a new server-assigned one. `index`: the resource's, prepared ahead, or nullptr.
  virtual Result<ResourceVersion> Create(json::Value resource, std::string id,
                                         const PreparedIndex* index) = 0;
  Result<ResourceVersion> Create(json::Value resource, std::string id) {
    return Create(std::move(resource), std::move(id), nullptr);
  }
  virtual Result<UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match,
                                      const PreparedIndex* index) = 0;
  Result<UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match) {
    return Update(std::move(resource), if_match, nullptr);
  }
  virtual Result<DeleteResult> Delete(std::string_view type, std::string_view id,
                                      std::optional<int64_t> if_match) = 0;
  virtual Result<SearchResult> Search(const search::SearchQuery& query) = 0;
};

// What a bulk export reads (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).
struct ExportQuery {
  std::vector<std::string> types;  // the resource types to export
  std::optional<int64_t> since;    // only resources changed after this time (microseconds)
  // When non-empty: only resources in the compartments of these patients (Patient: these ids);
  // types outside the Patient compartment are skipped.
  std::vector<std::string> patients;
  // _typeFilter: a type listed here exports only the resources matching one of its searches
  // (their criteria; the other search parameters are ignored).
  std::vector<std::pair<std::string, search::SearchQuery>> filters;
};

// One row of an export, valid only during the callback that receives it.
struct ExportRow {
  std::string_view type;
  std::string_view id;
  std::string_view body;  // compact JSON; for a deletion, the last version before it
  int64_t version = 0;
  int64_t last_updated = 0;
  bool deleted = false;
};

// Work that the writes of the thread that made it also run, in their transaction and after their
// own work, while it lives and until one of them commits with it (committed() then): what must be
// written with whatever an in-process call writes, such as the import ledger's row of the
// transaction Bundle it loads, so that a document is never stored without being recorded as
// loaded, nor recorded without being stored. A write whose addendum fails fails and rolls back.
// Scoped to its thread; the innermost one applies.
class WriteAddendum {
 public:
  explicit WriteAddendum(std::function<Status(db::Connection&)> work);
  ~WriteAddendum();
  WriteAddendum(const WriteAddendum&) = delete;
  WriteAddendum& operator=(const WriteAddendum&) = delete;

  bool committed() const { return committed_; }

  // For stores: the calling thread's addendum that has not committed yet, or null; its work; and
  // the note that a write ran it and committed.
  static WriteAddendum* Pending();
  Status Run(db::Connection& conn) const { return work_(conn); }
  void MarkCommitted() { committed_ = true; }

 private:
  std::function<Status(db::Connection&)> work_;
  WriteAddendum* outer_;
  bool committed_ = false;
};

class ResourceStore {
 public:
  virtual ~ResourceStore() = default;
  ResourceStore(const ResourceStore&) = delete;
  ResourceStore& operator=(const ResourceStore&) = delete;

  // The current version; NotFound if never created, Gone if deleted.
  virtual Result<ResourceVersion> Read(std::string_view type, std::string_view id) = 0;
  // One version; NotFound if absent, Gone if that version is a deletion.
  virtual Result<ResourceVersion> VRead(std::string_view type, std::string_view id,
                                        int64_t version) = 0;
  // Stores `resource` (REQUIRES: valid, with resourceType) under a new server-assigned id.
  // With `audit` (who asks, how), the write appends an audit record in its own transaction: one
  // per patient whose data it is. An AuditEvent is appended to the audit log instead.
  virtual Result<ResourceVersion> Create(json::Value resource, const AuditRecord* audit) = 0;
  Result<ResourceVersion> Create(json::Value resource) { return Create(std::move(resource), {}); }
  // Stores a new version of resource.id (creating it if absent or deleted). With if_match,
  // fails with PreconditionFailed unless the current live version is exactly that.
  virtual Result<UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match,
                                      const AuditRecord* audit) = 0;
  Result<UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match) {
    return Update(std::move(resource), if_match, {});
  }
  // Logical delete; with if_match as for Update.
  virtual Result<DeleteResult> Delete(std::string_view type, std::string_view id,
                                      std::optional<int64_t> if_match,
                                      const AuditRecord* audit) = 0;
  Result<DeleteResult> Delete(std::string_view type, std::string_view id,
                              std::optional<int64_t> if_match) {
    return Delete(type, id, if_match, {});
  }
  virtual Result<HistoryPage> History(const HistoryQuery& query) = 0;
  // Runs a parsed search. Pages are stable while writes happen: a match never repeats and is
  // never skipped between pages (see docs/decisions/0004-search.md).
  virtual Result<SearchResult> Search(const search::SearchQuery& query) = 0;
  // How the database would run the page query of `query`: its SQL, then the database's plan
  // (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite), for diagnosing slow queries.
  virtual Result<std::string> ExplainSearch(const search::SearchQuery& query) = 0;
  // Runs `work` in one write transaction, which commits when `work` succeeds and rolls back
  // entirely otherwise. Writers are serialized, so a search inside sees no concurrent change
  // (conditional operations are safe under concurrency). With `audit`, every version written
  // appends an audit record, as Create does.
  virtual Status InTransaction(const std::function<Status(StoreTransaction&)>& work,
                               const AuditRecord* audit) = 0;
  Status InTransaction(const std::function<Status(StoreTransaction&)>& work) {
    return InTransaction(work, {});
  }
  // The search index of `resource`, for a StoreTransaction's Create or Update of it.
  virtual std::unique_ptr<PreparedIndex> PrepareIndex(const json::Value& resource) = 0;
  // The current version of every live resource of `type` (for small types such as
  // SearchParameter).
  virtual Result<std::vector<json::Value>> ListCurrent(std::string_view type) = 0;
  // Streams what `query` selects from one consistent snapshot (a single read transaction):
  // `emit` gets each current resource (in storage order, or type by type with a patient
  // filter), and, with `since`, each
  // resource deleted after it (deleted = true, body = its last version before the deletion, so
  // that the caller can tell whose it was). `*snapshot_time` is the time of the newest change the
  // snapshot holds (the export's transactionTime). Memory stays bounded; `emit` may stop the
  // scan by returning an error.
  virtual Status Export(const ExportQuery& query,
                        const std::function<Status(const ExportRow&)>& emit,
                        int64_t* snapshot_time) = 0;
  // Rebuilds the search index of every resource with the registry now in force, in batches of
  // short write transactions so that writes go on meanwhile; returns the resources reindexed.
  virtual Result<int64_t> Reindex() = 0;

  // Appends `records` to the audit log in one write (group-committed with other writes). A
  // record with `resources` becomes one record per distinct patient of those resources (one
  // without a patient when some belong to none): `records` is rewritten so (and numbered); after
  // a failure it can be passed again as it is.
  virtual Status AppendAudit(std::vector<AuditRecord>& records) = 0;
  // Checks the audit log's hash chain from its first record to its head.
  virtual Result<AuditVerification> VerifyAudit() = 0;

  // Called after each operation with its kind ("read", "search", "history", "write") and the
  // time it took in the database (a write: until its group committed). Set once, before the
  // store is shared between threads; `observer` must be thread-safe.
  using TimeObserver = std::function<void(std::string_view operation, int64_t micros)>;
  virtual void ObserveTime(TimeObserver observer) = 0;

 protected:
  ResourceStore() = default;
};

}  // namespace fhirstone::store
