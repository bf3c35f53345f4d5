#include "store/sql_resource_store.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#include "common/time.h"
#include "search/extract.h"
#include "store/internal/audit_sql.h"
#include "store/internal/search_sql.h"

namespace fhirstone::store {
namespace {

const std::vector<db::Migration>& Migrations() {
  static const std::vector<db::Migration> kMigrations = {
      {1, "resources",
       "CREATE TABLE resource ("
       "  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,"
       "  last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, body BLOB,"
       "  PRIMARY KEY (type, id));"
       "CREATE TABLE resource_history ("
       "  txid INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL,"
       "  version INTEGER NOT NULL, last_updated INTEGER NOT NULL, method TEXT NOT NULL,"
       "  body BLOB, ended INTEGER);"
       "CREATE UNIQUE INDEX resource_history_version ON resource_history (type, id, version);"
       "CREATE INDEX resource_history_type ON resource_history (type, txid);"},
      {2, "search index", internal::IndexSchema()},
      {3, "audit log", internal::AuditSchema()},
  };
  return kMigrations;
}

char MethodCode(Method m) {
  switch (m) {
    case Method::kCreate:
      return 'C';
    case Method::kUpdate:
      return 'U';
    case Method::kDelete:
      return 'D';
  }
  return 'U';
}

Method MethodFromCode(std::string_view code) {
  if (code == "C") return Method::kCreate;
  if (code == "D") return Method::kDelete;
  return Method::kUpdate;
}

// Sets id and meta.versionId/lastUpdated, keeping resourceType, id and meta first.
void StampResource(json::Value& resource, const std::string& id, int64_t version,
                   int64_t last_updated) {
  json::Object& members = resource.as_object();
  auto position = [&](std::string_view key) {
    for (size_t i = 0; i < members.size(); ++i)
      if (members[i].first == key) return static_cast<int>(i);
    return -1;
  };
  int id_pos = position("id");
  if (id_pos < 0) {
    int rt = position("resourceType");
    members.insert(members.begin() + (rt + 1), {"id", json::Value(id)});
    id_pos = rt + 1;
  } else {
    members[id_pos].second = json::Value(id);
  }
  int meta_pos = position("meta");
  if (meta_pos < 0 || !members[meta_pos].second.is_object()) {
    if (meta_pos >= 0) members.erase(members.begin() + meta_pos);
    id_pos = position("id");
    members.insert(members.begin() + (id_pos + 1), {"meta", json::Value::EmptyObject()});
    meta_pos = id_pos + 1;
  }
  json::Value& meta = members[meta_pos].second;
  json::Object& meta_members = meta.as_object();
  // versionId and lastUpdated lead meta, in that order.
  std::erase_if(meta_members, [](const json::Member& m) {
    return m.first == "versionId" || m.first == "lastUpdated";
  });
  meta_members.insert(meta_members.begin(),
                      {{"versionId", json::Value(std::to_string(version))},
                       {"lastUpdated", json::Value(FormatInstant(last_updated))}});
}

class SqlResourceStore : public ResourceStore {
 public:
  SqlResourceStore(db::Database& db, Clock& clock, IdGenerator& ids,
                   const search::RegistryHolder* registry, std::string fhir_base)
      : db_(db), clock_(clock), ids_(ids), registry_(registry), fhir_base_(std::move(fhir_base)) {}

  void ObserveTime(TimeObserver observer) override { observer_ = std::move(observer); }

  Result<ResourceVersion> Read(std::string_view type, std::string_view id) override {
    Timer timer(*this, "read");
    if (type == kAuditEvent) return ReadAudit(id, 1);
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    return ReadIn(**lease, type, id);
  }

  Result<ResourceVersion> VRead(std::string_view type, std::string_view id,
                                int64_t version) override {
    Timer timer(*this, "read");
    if (type == kAuditEvent) return ReadAudit(id, version);
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    auto stmt = (*lease)->Prepare(
        "SELECT last_updated, method, body FROM resource_history "
        "WHERE type = ? AND id = ? AND version = ?");
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    s.BindText(1, type);
    s.BindText(2, id);
    s.BindInt(3, version);
    auto row = s.Step();
    if (!row) return Finish(s, std::move(row).error());
    if (!*row)
      return Finish(
          s, Error::NotFound("Version " + std::to_string(version) + " of " + std::string(type) +
                             "/" + std::string(id) + " is not known"));
    ResourceVersion v;
    v.type = type;
    v.id = id;
    v.version = version;
    v.last_updated = s.ColumnInt(0);
    v.method = MethodFromCode(s.ColumnText(1));
    v.deleted = v.method == Method::kDelete;
    if (v.deleted) return Finish(s, Gone(type, id, version));
    v.body = s.ColumnText(2);
    s.Reset();
    return v;
  }

  Result<ResourceVersion> Create(json::Value resource, const AuditRecord* audit) override {
    if (resource.GetString("resourceType") == kAuditEvent) {
      Result<ResourceVersion> out = Error::Internal("The write did not run");
      FHIRSTONE_RETURN_IF_ERROR(RunWrite([&](db::Connection& conn) -> Status {
        out = AppendAuditEventIn(conn, resource);
        return out ? Ok() : Status(out.error());
      }));
      return out;
    }
    search::IndexEntries entries;
    auto registry = Extract(resource, nullptr, entries);
    Result<ResourceVersion> out = Error::Internal("The write did not run");
    FHIRSTONE_RETURN_IF_ERROR(RunWrite([&](db::Connection& conn) -> Status {
      Extract(resource, &registry, entries);
      out = CreateIn(conn, std::move(resource), "", entries);
      if (!out) return out.error();
      return AuditWriteIn(conn, audit, *out, &entries, registry.get());
    }));
    return out;
  }

  Result<UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match,
                              const AuditRecord* audit) override {
    if (resource.GetString("resourceType") == kAuditEvent) return AuditEventImmutable();
    search::IndexEntries entries;
    auto registry = Extract(resource, nullptr, entries);
    Result<UpdateResult> out = Error::Internal("The write did not run");
    FHIRSTONE_RETURN_IF_ERROR(RunWrite([&](db::Connection& conn) -> Status {
      Extract(resource, &registry, entries);
      out = UpdateIn(conn, std::move(resource), if_match, entries);
      if (!out) return out.error();
      return AuditWriteIn(conn, audit, out->resource, &entries, registry.get());
    }));
    return out;
  }

  Result<DeleteResult> Delete(std::string_view type, std::string_view id,
                              std::optional<int64_t> if_match, const AuditRecord* audit) override {
    if (type == kAuditEvent) return AuditEventImmutable();
    Result<DeleteResult> out = Error::Internal("The write did not run");
    FHIRSTONE_RETURN_IF_ERROR(RunWrite([&](db::Connection& conn) -> Status {
      return AuditedDeleteIn(conn, type, id, if_match, audit, out);
    }));
    return out;
  }

  Status InTransaction(const std::function<Status(StoreTransaction&)>& work,
                       const AuditRecord* audit) override {
    return RunWrite([&](db::Connection& conn) -> Status {
      SqlStoreTransaction context(*this, conn, audit);
      return work(context);
    });
  }

  Status AppendAudit(std::vector<AuditRecord>& records) override {
    ExpandPerPatient(records);
    if (records.empty()) return Ok();
    return RunWrite([&](db::Connection& conn) -> Status {
      return internal::AppendAuditRecords(conn, clock_.NowMicros(), records);
    });
  }

  Result<AuditVerification> VerifyAudit() override {
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    return internal::VerifyAuditChain(**lease);
  }

  // Group commit. Concurrent writes share one SQLite transaction, each inside its own savepoint
  // (a failing write rolls back alone): the pages they touch go to the WAL once per group, not
  // once per write. The first waiting writer leads: it runs a group of queued writes, commits,
  // wakes their callers, and hands leadership on once its own write is done. A caller returns
  // only after the commit that holds its write.
  Status RunWrite(const std::function<Status(db::Connection&)>& work) {
    Timer timer(*this, "write");
    WriteJob job{&work, std::nullopt};
    std::unique_lock lock(group_mu_);
    queue_.push_back(&job);
    while (!job.result) {
      if (!leading_) {
        leading_ = true;
        while (!job.result) {
          std::vector<WriteJob*> group;
          while (!queue_.empty() && group.size() < kMaxGroup) {
            group.push_back(queue_.front());
            queue_.pop_front();
          }
          lock.unlock();
          RunGroup(group);
          lock.lock();
          group_cv_.notify_all();
        }
        leading_ = false;
        group_cv_.notify_all();
        break;
      }
      group_cv_.wait(lock);
    }
    return *job.result;
  }

  // The operations of one write transaction on one connection (they see each other's writes).
  class SqlStoreTransaction : public StoreTransaction {
   public:
    SqlStoreTransaction(SqlResourceStore& store, db::Connection& conn, const AuditRecord* audit)
        : store_(store), conn_(conn), audit_(audit) {}
    Result<ResourceVersion> Read(std::string_view type, std::string_view id) override {
      if (type == kAuditEvent) return store_.ReadAuditIn(conn_, id, 1);
      return store_.ReadIn(conn_, type, id);
    }
    Result<ResourceVersion> Create(json::Value resource, std::string id) override {
      if (resource.GetString("resourceType") == kAuditEvent)
        return store_.AppendAuditEventIn(conn_, resource);
      search::IndexEntries entries;
      auto registry = store_.Extract(resource, nullptr, entries);
      auto v = store_.CreateIn(conn_, std::move(resource), std::move(id), entries);
      if (!v) return v;
      FHIRSTONE_RETURN_IF_ERROR(store_.AuditWriteIn(conn_, audit_, *v, &entries, registry.get()));
      return v;
    }
    Result<UpdateResult> Update(json::Value resource, std::optional<int64_t> if_match) override {
      if (resource.GetString("resourceType") == kAuditEvent) return AuditEventImmutable();
      search::IndexEntries entries;
      auto registry = store_.Extract(resource, nullptr, entries);
      auto u = store_.UpdateIn(conn_, std::move(resource), if_match, entries);
      if (!u) return u;
      FHIRSTONE_RETURN_IF_ERROR(
          store_.AuditWriteIn(conn_, audit_, u->resource, &entries, registry.get()));
      return u;
    }
    Result<DeleteResult> Delete(std::string_view type, std::string_view id,
                                std::optional<int64_t> if_match) override {
      if (type == kAuditEvent) return AuditEventImmutable();
      Result<DeleteResult> out = Error::Internal("The delete did not run");
      FHIRSTONE_RETURN_IF_ERROR(store_.AuditedDeleteIn(conn_, type, id, if_match, audit_, out));
      return out;
    }
    Result<SearchResult> Search(const search::SearchQuery& query) override {
      if (IsAuditSearch(query))
        return internal::SearchAuditEvents(conn_, query, store_.fhir_base_,
                                           /*in_transaction=*/true);
      return internal::RunSearch(conn_, query, store_.fhir_base_, /*in_transaction=*/true);
    }

   private:
    SqlResourceStore& store_;
    db::Connection& conn_;
    const AuditRecord* audit_;
  };

  static constexpr std::string_view kAuditEvent = "AuditEvent";

  // Reports the time of one operation to the observer, if any.
  struct Timer {
    Timer(SqlResourceStore& store, std::string_view operation)
        : store(store), operation(operation) {
      if (store.observer_) start = std::chrono::steady_clock::now();
    }
    ~Timer() {
      if (!store.observer_) return;
      store.observer_(operation, std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - start)
                                     .count());
    }
    SqlResourceStore& store;
    std::string_view operation;
    std::chrono::steady_clock::time_point start;
  };

  static Error AuditEventImmutable() {
    return Error::MethodNotAllowed(
        "AuditEvent resources are the server's audit log: they can be created (POST) but never "
        "changed or deleted");
  }

  static bool IsAuditSearch(const search::SearchQuery& query) {
    return query.types.size() == 1 && query.types.front() == kAuditEvent;
  }

  Result<ResourceVersion> ReadAudit(std::string_view id, int64_t version) {
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    return ReadAuditIn(**lease, id, version);
  }

  Result<ResourceVersion> ReadAuditIn(db::Connection& conn, std::string_view id, int64_t version) {
    int64_t seq = 0;
    auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), seq);
    if (ec != std::errc() || end != id.data() + id.size() || seq <= 0)
      return NotFound(kAuditEvent, id);
    if (version != 1)
      return Error::NotFound("Version " + std::to_string(version) + " of AuditEvent/" +
                             std::string(id) + " is not known: audit events have one version");
    auto body = internal::ReadAuditEvent(conn, seq, fhir_base_);
    if (!body) return std::move(body).error();
    ResourceVersion v;
    v.type = kAuditEvent;
    v.id = std::to_string(seq);
    v.version = 1;
    v.body = std::move(body).value();
    // lastUpdated is the time recorded: read it back from the rendered meta.
    if (auto parsed = json::Parse(v.body); parsed) {
      if (const json::Value* meta = parsed->Find("meta"); meta)
        if (auto t = ParseFhirDateTime(meta->GetString("lastUpdated")); t) v.last_updated = t->low;
    }
    return v;
  }

  // A client's AuditEvent, appended to the audit log. REQUIRES: a write transaction on `conn`.
  Result<ResourceVersion> AppendAuditEventIn(db::Connection& conn, const json::Value& resource) {
    std::vector<AuditRecord> records(1);
    AuditRecord& r = records.front();
    internal::AuditFieldsFromBody(resource, r);
    r.body = json::Write(resource);
    FHIRSTONE_RETURN_IF_ERROR(internal::AppendAuditRecords(conn, clock_.NowMicros(), records));
    ResourceVersion v;
    v.type = kAuditEvent;
    v.id = std::to_string(r.seq);
    v.version = 1;
    v.last_updated = r.recorded;
    v.method = Method::kCreate;
    v.body = std::move(r.body);
    return v;
  }

  // The patients whose data `resource` of `type` is (the Patient compartment), from its index.
  std::vector<std::string> PatientsOf(std::string_view type, std::string_view id,
                                      const search::IndexEntries& entries,
                                      const search::Registry* registry) {
    std::vector<std::string> out;
    if (type == "Patient") {
      out.emplace_back(id);
      return out;
    }
    if (!registry) return out;
    const auto& params = registry->CompartmentParams("Patient", type);
    for (const auto& ref : entries.references) {
      if (ref.target_type != "Patient" || ref.target_id.empty()) continue;
      if (std::find(params.begin(), params.end(), ref.param) == params.end()) continue;
      if (std::find(out.begin(), out.end(), ref.target_id) == out.end())
        out.push_back(ref.target_id);
    }
    return out;
  }

  // Appends the audit records of one version written, from `audit` (nothing when null).
  // REQUIRES: a write transaction on `conn`.
  Status AuditWriteIn(db::Connection& conn, const AuditRecord* audit, const ResourceVersion& v,
                      const search::IndexEntries* entries, const search::Registry* registry) {
    if (!audit) return Ok();
    std::vector<std::string> patients;
    if (entries) patients = PatientsOf(v.type, v.id, *entries, registry);
    if (patients.empty()) patients.emplace_back();
    std::vector<AuditRecord> records;
    for (auto& patient : patients) {
      AuditRecord& r = records.emplace_back(*audit);
      r.resources.clear();
      r.entity = v.type + "/" + v.id;
      r.version = v.version;
      // An update that creates (the first version) is a create.
      r.action = v.method == Method::kDelete ? 'D' : v.version == 1 ? 'C' : 'U';
      if (r.subtype.empty())  // a batch or transaction: the interaction of each entry
        r.subtype = v.method == Method::kCreate   ? "create"
                    : v.method == Method::kDelete ? "delete"
                                                  : "update";
      r.patient = std::move(patient);
    }
    return internal::AppendAuditRecords(conn, clock_.NowMicros(), records);
  }

  // Delete, audited with the patients of the version it ends. REQUIRES: a write transaction.
  Status AuditedDeleteIn(db::Connection& conn, std::string_view type, std::string_view id,
                         std::optional<int64_t> if_match, const AuditRecord* audit,
                         Result<DeleteResult>& out) {
    search::IndexEntries entries;
    std::shared_ptr<const search::Registry> registry;
    bool have_entries = false;
    if (audit) {
      auto current = ReadIn(conn, type, id);
      if (current) {
        if (auto parsed = json::Parse(current->body); parsed) {
          registry = Extract(*parsed, nullptr, entries);
          have_entries = true;
        }
      }
    }
    out = DeleteIn(conn, type, id, if_match);
    if (!out) return out.error();
    if (!out->deleted) return Ok();
    return AuditWriteIn(conn, audit, *out->deleted, have_entries ? &entries : nullptr,
                        registry.get());
  }

  // One record per distinct patient of the resources a record carries, in place.
  void ExpandPerPatient(std::vector<AuditRecord>& records) {
    bool any = false;
    for (const auto& r : records) any |= !r.resources.empty();
    if (!any) return;
    std::vector<AuditRecord> out;
    out.reserve(records.size());
    std::shared_ptr<const search::Registry> registry =
        registry_ ? registry_->Get() : std::shared_ptr<const search::Registry>();
    for (auto& r : records) {
      if (r.resources.empty()) {
        out.push_back(std::move(r));
        continue;
      }
      std::vector<std::string> patients;
      bool some_without = false;
      for (const auto& body : r.resources) {
        auto parsed = json::Parse(body);
        if (!parsed || !parsed->is_object()) continue;
        std::string_view type = parsed->GetString("resourceType");
        search::IndexEntries entries;
        if (registry && type != "Patient") {
          const auto& params = registry->CompartmentParams("Patient", type);
          if (!params.empty()) entries = search::ExtractIndex(params, *parsed, fhir_base_);
        }
        std::vector<std::string> found =
            PatientsOf(type, parsed->GetString("id"), entries, registry.get());
        if (found.empty()) some_without = true;
        for (auto& p : found)
          if (std::find(patients.begin(), patients.end(), p) == patients.end())
            patients.push_back(std::move(p));
      }
      r.resources.clear();
      if (patients.empty() || some_without) {
        out.push_back(r);
        out.back().patient.clear();
      }
      for (auto& p : patients) {
        out.push_back(r);
        out.back().patient = std::move(p);
      }
    }
    records = std::move(out);
  }

  // Extracts the index entries of `resource` with the registry in force. With `used`, only when
  // the registry changed since *used was taken (a reindex began while a write waited for the
  // lock: index with the new one, so that the reindex, which skips resources rewritten
  // meanwhile, misses nothing).
  std::shared_ptr<const search::Registry> Extract(const json::Value& resource,
                                                  std::shared_ptr<const search::Registry>* used,
                                                  search::IndexEntries& entries) {
    if (!registry_) return nullptr;
    std::shared_ptr<const search::Registry> registry = registry_->Get();
    if (used && *used == registry) return registry;
    entries = search::ExtractIndex(*registry, resource, fhir_base_);
    if (used) *used = registry;
    return registry;
  }

  Result<ResourceVersion> ReadIn(db::Connection& conn, std::string_view type, std::string_view id) {
    auto stmt = conn.Prepare(
        "SELECT version, last_updated, deleted, body FROM resource WHERE type = ? AND id = ?");
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    s.BindText(1, type);
    s.BindText(2, id);
    auto row = s.Step();
    if (!row) return Finish(s, std::move(row).error());
    if (!*row) return Finish(s, NotFound(type, id));
    ResourceVersion v;
    v.type = type;
    v.id = id;
    v.version = s.ColumnInt(0);
    v.last_updated = s.ColumnInt(1);
    v.deleted = s.ColumnInt(2) != 0;
    if (v.deleted) return Finish(s, Gone(type, id, v.version));
    v.method = v.version == 1 ? Method::kCreate : Method::kUpdate;
    v.body = s.ColumnText(3);
    s.Reset();
    return v;
  }

  // REQUIRES: a write transaction on `conn`.
  Result<ResourceVersion> CreateIn(db::Connection& conn, json::Value resource, std::string id,
                                   const search::IndexEntries& entries) {
    ResourceVersion v;
    v.type = resource.GetString("resourceType");
    v.id = id.empty() ? ids_.NewId() : std::move(id);
    v.version = 1;
    v.last_updated = clock_.NowMicros();
    v.method = Method::kCreate;
    StampResource(resource, v.id, v.version, v.last_updated);
    v.body = json::Write(resource);
    FHIRSTONE_RETURN_IF_ERROR(WriteVersion(conn, v, /*previous=*/0, &entries));
    return v;
  }

  // REQUIRES: a write transaction on `conn`.
  Result<UpdateResult> UpdateIn(db::Connection& conn, json::Value resource,
                                std::optional<int64_t> if_match,
                                const search::IndexEntries& entries) {
    std::string type(resource.GetString("resourceType"));
    std::string id(resource.GetString("id"));
    auto current = Current(conn, type, id);
    if (!current) return std::move(current).error();
    bool live = current->version > 0 && !current->deleted;
    if (if_match && (!live || current->version != *if_match))
      return MismatchError(type, id, *if_match, live ? current->version : 0);
    UpdateResult result;
    result.created = !live;
    ResourceVersion& v = result.resource;
    v.type = std::move(type);
    v.id = std::move(id);
    v.version = current->version + 1;
    v.last_updated = clock_.NowMicros();
    v.method = Method::kUpdate;
    StampResource(resource, v.id, v.version, v.last_updated);
    v.body = json::Write(resource);
    FHIRSTONE_RETURN_IF_ERROR(WriteVersion(conn, v, current->version, &entries));
    return result;
  }

  // REQUIRES: a write transaction on `conn`.
  Result<DeleteResult> DeleteIn(db::Connection& conn, std::string_view type, std::string_view id,
                                std::optional<int64_t> if_match) {
    auto current = Current(conn, type, id);
    if (!current) return std::move(current).error();
    bool live = current->version > 0 && !current->deleted;
    if (if_match && (!live || current->version != *if_match))
      return MismatchError(type, id, *if_match, live ? current->version : 0);
    DeleteResult result;
    if (!live) return result;  // nothing to delete: no new version
    ResourceVersion v;
    v.type = type;
    v.id = id;
    v.version = current->version + 1;
    v.last_updated = clock_.NowMicros();
    v.method = Method::kDelete;
    v.deleted = true;
    FHIRSTONE_RETURN_IF_ERROR(WriteVersion(conn, v, current->version, nullptr));
    result.deleted = std::move(v);
    return result;
  }

  Result<HistoryPage> History(const HistoryQuery& q) override {
    Timer timer(*this, "history");
    if (q.type == kAuditEvent)
      return Error::NotSupported(
          "AuditEvent has no history: each audit event has one version; search AuditEvent "
          "instead");
    std::string where = " WHERE 1=1";
    if (!q.type.empty()) where += " AND type = ?";
    if (!q.id.empty()) where += " AND id = ?";
    if (q.since) where += " AND last_updated >= ?";
    if (q.at) where += " AND last_updated < ? AND (ended IS NULL OR ended > ?)";
    auto bind_filters = [&](db::Statement& s) {
      int i = 1;
      if (!q.type.empty()) s.BindText(i++, q.type);
      if (!q.id.empty()) s.BindText(i++, q.id);
      if (q.since) s.BindInt(i++, *q.since);
      if (q.at) {
        s.BindInt(i++, q.at->high);
        s.BindInt(i++, q.at->low);
      }
      return i;
    };
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    // One read transaction: the page and its total see the same snapshot.
    auto tx = db::Transaction::Begin(**lease, /*write=*/false);
    if (!tx) return std::move(tx).error();
    HistoryPage page;
    std::string sql =
        "SELECT txid, type, id, version, last_updated, method, body FROM resource_history" + where +
        (q.cursor ? " AND txid < ?" : "") + " ORDER BY txid DESC LIMIT ?";
    auto stmt = (*lease)->Prepare(sql);
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    int next_param = bind_filters(s);
    if (q.cursor) s.BindInt(next_param++, *q.cursor);
    s.BindInt(next_param, q.count + 1);
    int64_t last_txid = 0;
    while (true) {
      auto row = s.Step();
      if (!row) return Finish(s, std::move(row).error());
      if (!*row) break;
      if (static_cast<int>(page.entries.size()) == q.count) {
        page.next = last_txid;
        break;
      }
      last_txid = s.ColumnInt(0);
      ResourceVersion v;
      v.type = s.ColumnText(1);
      v.id = s.ColumnText(2);
      v.version = s.ColumnInt(3);
      v.last_updated = s.ColumnInt(4);
      v.method = MethodFromCode(s.ColumnText(5));
      v.deleted = v.method == Method::kDelete;
      if (!v.deleted) v.body = s.ColumnText(6);
      page.entries.push_back(std::move(v));
    }
    s.Reset();
    if (!q.id.empty()) {
      auto count = (*lease)->Prepare("SELECT count(*) FROM resource_history" + where);
      if (!count) return std::move(count).error();
      bind_filters(**count);
      auto row = (*count)->Step();
      if (!row) return Finish(**count, std::move(row).error());
      page.total = (*count)->ColumnInt(0);
      (*count)->Reset();
    }
    return page;
  }

  Result<SearchResult> Search(const search::SearchQuery& query) override {
    Timer timer(*this, "search");
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    if (IsAuditSearch(query))
      return internal::SearchAuditEvents(**lease, query, fhir_base_, /*in_transaction=*/false);
    return internal::RunSearch(**lease, query, fhir_base_, /*in_transaction=*/false);
  }

  Result<std::vector<json::Value>> ListCurrent(std::string_view type) override {
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    auto stmt = (*lease)->Prepare("SELECT body FROM resource WHERE type = ? AND deleted = 0");
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    s.BindText(1, type);
    std::vector<json::Value> out;
    while (true) {
      auto row = s.Step();
      if (!row) return Finish(s, std::move(row).error());
      if (!*row) break;
      auto parsed = json::Parse(s.ColumnText(0));
      if (parsed) out.push_back(std::move(parsed).value());
    }
    s.Reset();
    return out;
  }

  Status Export(const ExportQuery& q, const std::function<Status(const ExportRow&)>& emit,
                int64_t* snapshot_time) override {
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    db::Connection& conn = **lease;
    // One pass over the data gains nothing from a large page cache, and rebuilding it page by
    // page costs: the scan runs with SQLite's small default and restores the connection's after.
    bool sqlite = conn.dialect() == db::Dialect::kSqlite;
    if (sqlite) FHIRSTONE_RETURN_IF_ERROR(conn.Execute("PRAGMA cache_size=-2000"));
    struct RestoreCache {
      db::Connection& conn;
      bool sqlite;
      ~RestoreCache() {
        if (sqlite) (void)conn.Execute("PRAGMA cache_size=-65536");
      }
    } restore{conn, sqlite};
    auto tx = db::Transaction::Begin(conn, /*write=*/false);
    if (!tx) return std::move(tx).error();
    // The newest change: the last history row (txid grows with every write, in commit order).
    auto newest =
        conn.Prepare("SELECT last_updated FROM resource_history ORDER BY txid DESC LIMIT 1");
    if (!newest) return std::move(newest).error();
    auto row = (*newest)->Step();
    if (!row) return Finish(**newest, std::move(row).error());
    *snapshot_time = *row ? (*newest)->ColumnInt(0) : 0;
    (*newest)->Reset();
    if (*snapshot_time == 0) *snapshot_time = clock_.NowMicros();
    std::shared_ptr<const search::Registry> registry =
        registry_ ? registry_->Get() : std::shared_ptr<const search::Registry>();
    // Without a patient filter: one scan of the table in storage order, the types picked out
    // here (an order by type and id would cost an index lookup per row).
    auto filtered = [&](const std::string& type) {
      for (const auto& [t, f] : q.filters)
        if (t == type) return true;
      return false;
    };
    std::vector<std::string> per_type = q.types;
    if (q.patients.empty() && q.types.size() > 1) {
      per_type.clear();
      std::unordered_set<std::string> wanted;
      for (const auto& t : q.types) {
        if (filtered(t)) {
          per_type.push_back(t);  // read with its filters below
        } else {
          wanted.insert(t);
        }
      }
      std::string sql =
          "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resource r";
      if (q.since) {
        sql += " WHERE r.last_updated > " + std::to_string(*q.since);
      } else {
        sql += " WHERE r.deleted = 0";
      }
      auto stmt = conn.Prepare(sql);
      if (!stmt) return std::move(stmt).error();
      db::Statement& st = **stmt;
      std::string wanted_type;  // the last type looked up, and whether it is wanted
      bool wanted_last = false;
      std::string previous_body;
      while (true) {
        auto more = st.Step();
        if (!more) return Finish(st, std::move(more).error());
        if (!*more) break;
        ExportRow v;
        v.type = st.ColumnText(0);
        if (v.type != wanted_type) {
          wanted_type.assign(v.type);
          wanted_last = wanted.count(wanted_type) > 0;
        }
        if (!wanted_last) continue;
        v.id = st.ColumnText(1);
        v.version = st.ColumnInt(2);
        v.last_updated = st.ColumnInt(3);
        v.deleted = st.ColumnInt(4) != 0;
        if (!v.deleted) {
          v.body = st.ColumnText(5);
        } else {
          auto previous = conn.Prepare(
              "SELECT body FROM resource_history WHERE type = ? AND id = ? AND version = ?");
          if (!previous) return Finish(st, std::move(previous).error());
          (*previous)->BindText(1, v.type);
          (*previous)->BindText(2, v.id);
          (*previous)->BindInt(3, v.version - 1);
          auto found = (*previous)->Step();
          previous_body.clear();
          if (found && *found) previous_body.assign((*previous)->ColumnText(0));
          (*previous)->Reset();
          if (previous_body.empty()) continue;
          v.body = previous_body;
        }
        Status status = emit(v);
        if (!status) {
          st.Reset();
          return status;
        }
      }
      st.Reset();
    }
    for (const std::string& type : per_type) {
      std::string sql =
          "SELECT r.id, r.version, r.last_updated, r.deleted, r.body FROM resource r WHERE "
          "r.type = ?";
      std::vector<internal::Binding> bindings{type};
      if (q.since) sql += " AND r.last_updated > " + std::to_string(*q.since);
      if (filtered(type)) {  // (all criteria of one filter) OR (those of another) ...
        std::string any;
        int counter = 0;
        for (const auto& [t, f] : q.filters) {
          if (t != type) continue;
          std::string all = "1";
          for (const auto& c : f.criteria) {
            auto condition = internal::CriterionSql(c, "r", counter, fhir_base_, type,
                                                    /*filter=*/false);
            if (!condition) return std::move(condition).error();
            all += " AND " + condition->text;
            bindings.insert(bindings.end(), condition->bindings.begin(), condition->bindings.end());
          }
          any += (any.empty() ? "(" : " OR (") + all + ")";
        }
        // Deleted resources keep no index rows: their deletions are reported as they are.
        sql += " AND (r.deleted = 1 OR " + any + ")";
      }
      if (!q.patients.empty()) {
        std::string list;
        for (size_t i = 0; i < q.patients.size(); ++i) list += i ? ",?" : "?";
        if (type == "Patient") {
          sql += " AND r.id IN (" + list + ")";
          bindings.insert(bindings.end(), q.patients.begin(), q.patients.end());
        } else {
          if (!registry) continue;
          const auto& params = registry->CompartmentParams("Patient", type);
          if (params.empty()) continue;  // not patient data
          std::string param_list;
          for (size_t i = 0; i < params.size(); ++i) {
            param_list += i ? ",?" : "?";
            bindings.push_back(internal::ParamKey(*params[i]));
          }
          // Deleted resources keep no index rows: they are judged by their last version.
          sql +=
              " AND (r.deleted = 1 OR r.rowid IN (SELECT rid FROM idx_reference WHERE param IN (" +
              param_list + ") AND target_type = 'Patient' AND target_id IN (" + list + ")))";
          bindings.insert(bindings.end(), q.patients.begin(), q.patients.end());
        }
      }
      if (!q.since) sql += " AND r.deleted = 0";
      sql += " ORDER BY r.id";
      auto stmt = conn.Prepare(sql);
      if (!stmt) return std::move(stmt).error();
      db::Statement& st = **stmt;
      int bind_index = 1;
      internal::Bind(st, bind_index, bindings);
      while (true) {
        auto more = st.Step();
        if (!more) return Finish(st, std::move(more).error());
        if (!*more) break;
        ExportRow v;
        v.type = type;
        v.id = st.ColumnText(0);
        v.version = st.ColumnInt(1);
        v.last_updated = st.ColumnInt(2);
        v.deleted = st.ColumnInt(3) != 0;
        std::string previous_body;
        if (!v.deleted) {
          v.body = st.ColumnText(4);
        } else {
          auto previous = conn.Prepare(
              "SELECT body FROM resource_history WHERE type = ? AND id = ? AND version = ?");
          if (!previous) return Finish(st, std::move(previous).error());
          (*previous)->BindText(1, type);
          (*previous)->BindText(2, v.id);
          (*previous)->BindInt(3, v.version - 1);
          auto found = (*previous)->Step();
          if (found && *found) previous_body.assign((*previous)->ColumnText(0));
          (*previous)->Reset();
          if (previous_body.empty()) continue;  // never had a live version
          v.body = previous_body;
        }
        Status status = emit(v);
        if (!status) {
          st.Reset();
          return status;
        }
      }
      st.Reset();
    }
    return tx->Commit();
  }

  Result<int64_t> Reindex() override {
    if (!registry_) return int64_t{0};
    constexpr int kBatch = 200;
    int64_t after = 0, count = 0;
    auto lease = db_.Acquire();
    if (!lease) return std::move(lease).error();
    db::Connection& conn = **lease;
    while (true) {
      struct Row {
        int64_t rid, version;
        search::IndexEntries entries;
      };
      std::vector<Row> batch;
      std::shared_ptr<const search::Registry> registry = registry_->Get();
      {
        auto stmt = conn.Prepare(
            "SELECT rowid, version, body FROM resource WHERE rowid > ? AND deleted = 0 "
            "ORDER BY rowid LIMIT ?");
        if (!stmt) return std::move(stmt).error();
        db::Statement& s = **stmt;
        s.BindInt(1, after);
        s.BindInt(2, kBatch);
        while (true) {
          auto row = s.Step();
          if (!row) return Finish(s, std::move(row).error());
          if (!*row) break;
          Row r{s.ColumnInt(0), s.ColumnInt(1), {}};
          auto parsed = json::Parse(s.ColumnText(2));
          if (parsed) r.entries = search::ExtractIndex(*registry, *parsed, fhir_base_);
          batch.push_back(std::move(r));
        }
        s.Reset();
      }
      if (batch.empty()) break;
      // One short write transaction per batch: writers queue behind it for milliseconds only.
      auto tx = db::Transaction::Begin(conn, /*write=*/true);
      if (!tx) return std::move(tx).error();
      auto check = conn.Prepare("SELECT version FROM resource WHERE rowid = ? AND deleted = 0");
      if (!check) return std::move(check).error();
      for (const Row& r : batch) {
        (*check)->BindInt(1, r.rid);
        auto row = (*check)->Step();
        bool unchanged = row && *row && (*check)->ColumnInt(0) == r.version;
        (*check)->Reset();
        if (!unchanged) continue;  // rewritten meanwhile, and indexed by that write
        FHIRSTONE_RETURN_IF_ERROR(internal::WriteIndex(conn, r.rid, &r.entries));
        ++count;
      }
      FHIRSTONE_RETURN_IF_ERROR(tx->Commit());
      after = batch.back().rid;
    }
    return count;
  }

 private:
  static constexpr size_t kMaxGroup = 64;

  struct WriteJob {
    const std::function<Status(db::Connection&)>* work;
    std::optional<Status> result;  // set (under group_mu_) once its group committed or failed
  };

  // Runs `group` in one transaction; sets every job's result.
  void RunGroup(const std::vector<WriteJob*>& group) {
    std::vector<Status> results(group.size(), Status(Ok()));
    auto fail_all = [&](const Error& e) {
      std::lock_guard lock(group_mu_);
      for (WriteJob* job : group) job->result = e;
    };
    auto lease = db_.Acquire();
    if (!lease) return fail_all(lease.error());
    db::Connection& conn = **lease;
    auto tx = db::Transaction::Begin(conn, /*write=*/true);
    if (!tx) return fail_all(tx.error());
    auto savepoint = conn.Prepare("SAVEPOINT write");
    auto release = conn.Prepare("RELEASE write");
    auto rollback = conn.Prepare("ROLLBACK TO write");
    if (!savepoint || !release || !rollback)
      return fail_all(Error::Internal("Cannot prepare savepoints"));
    for (size_t i = 0; i < group.size(); ++i) {
      if (auto s = (*savepoint)->Run(); !s) return fail_all(s.error());
      try {
        results[i] = (*group[i]->work)(conn);
      } catch (const std::exception& e) {
        results[i] = Error::Internal(std::string("A write failed: ") + e.what());
      }
      if (!results[i]) {
        if (auto s = (*rollback)->Run(); !s) return fail_all(s.error());
      }
      if (auto s = (*release)->Run(); !s) return fail_all(s.error());
    }
    if (auto committed = tx->Commit(); !committed) return fail_all(committed.error());
    std::lock_guard lock(group_mu_);
    for (size_t i = 0; i < group.size(); ++i) group[i]->result = std::move(results[i]);
  }

  struct CurrentState {
    int64_t version = 0;  // 0: never existed
    bool deleted = false;
  };

  template <typename E>
  static E Finish(db::Statement& s, E e) {
    s.Reset();
    return e;
  }

  static Error NotFound(std::string_view type, std::string_view id) {
    return Error::NotFound("Resource " + std::string(type) + "/" + std::string(id) +
                           " is not known");
  }
  static Error Gone(std::string_view type, std::string_view id, int64_t version) {
    return Error::Gone("Resource " + std::string(type) + "/" + std::string(id) +
                       " was deleted (version " + std::to_string(version) + ")");
  }
  static Error MismatchError(std::string_view type, std::string_view id, int64_t expected,
                             int64_t actual) {
    std::string where = std::string(type) + "/" + std::string(id);
    if (actual == 0)
      return Error::PreconditionFailed("If-Match: " + where + " has no current version");
    return Error::PreconditionFailed("If-Match: version " + std::to_string(expected) +
                                     " was expected but " + where + " is at version " +
                                     std::to_string(actual));
  }

  Result<CurrentState> Current(db::Connection& conn, std::string_view type, std::string_view id) {
    auto stmt = conn.Prepare("SELECT version, deleted FROM resource WHERE type = ? AND id = ?");
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    s.BindText(1, type);
    s.BindText(2, id);
    auto row = s.Step();
    if (!row) return Finish(s, std::move(row).error());
    CurrentState state;
    if (*row) {
      state.version = s.ColumnInt(0);
      state.deleted = s.ColumnInt(1) != 0;
    }
    s.Reset();
    return state;
  }

  // Appends `v` to the history (closing version `previous`, if any), makes it current and
  // replaces its search index with `entries` (nullptr: a deletion, no index).
  Status WriteVersion(db::Connection& conn, const ResourceVersion& v, int64_t previous,
                      const search::IndexEntries* entries) {
    if (previous > 0) {
      auto close = conn.Prepare(
          "UPDATE resource_history SET ended = ? WHERE type = ? AND id = ? AND version = ?");
      if (!close) return std::move(close).error();
      (*close)->BindInt(1, v.last_updated);
      (*close)->BindText(2, v.type);
      (*close)->BindText(3, v.id);
      (*close)->BindInt(4, previous);
      auto done = (*close)->Run();
      if (!done) return std::move(done).error();
    }
    auto insert = conn.Prepare(
        "INSERT INTO resource_history (type, id, version, last_updated, method, body) "
        "VALUES (?, ?, ?, ?, ?, ?)");
    if (!insert) return std::move(insert).error();
    db::Statement& h = **insert;
    h.BindText(1, v.type);
    h.BindText(2, v.id);
    h.BindInt(3, v.version);
    h.BindInt(4, v.last_updated);
    const char method[1] = {MethodCode(v.method)};
    h.BindText(5, std::string_view(method, 1));
    if (v.deleted) {
      h.BindNull(6);
    } else {
      h.BindBlob(6, v.body);
    }
    auto done = h.Run();
    if (!done) return std::move(done).error();
    auto upsert = conn.Prepare(
        "INSERT INTO resource (type, id, version, last_updated, deleted, body) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (type, id) DO UPDATE SET "
        "version = excluded.version, last_updated = excluded.last_updated, "
        "deleted = excluded.deleted, body = excluded.body RETURNING rowid");
    if (!upsert) return std::move(upsert).error();
    db::Statement& u = **upsert;
    u.BindText(1, v.type);
    u.BindText(2, v.id);
    u.BindInt(3, v.version);
    u.BindInt(4, v.last_updated);
    u.BindInt(5, v.deleted ? 1 : 0);
    if (v.deleted) {
      u.BindNull(6);
    } else {
      u.BindBlob(6, v.body);
    }
    auto row = u.Step();
    if (!row || !*row) {
      u.Reset();
      return row ? Error::Internal("The upsert returned no row") : std::move(row).error();
    }
    int64_t rid = u.ColumnInt(0);
    u.Reset();
    if (!registry_) return Ok();
    return internal::WriteIndex(conn, rid, entries);
  }

  db::Database& db_;
  Clock& clock_;
  IdGenerator& ids_;
  const search::RegistryHolder* registry_;
  const std::string fhir_base_;
  TimeObserver observer_;
  std::mutex group_mu_;
  std::condition_variable group_cv_;
  std::deque<WriteJob*> queue_;
  bool leading_ = false;
};

}  // namespace

Result<std::unique_ptr<ResourceStore>> OpenSqlResourceStore(db::Database& db, Clock& clock,
                                                            IdGenerator& ids,
                                                            const search::RegistryHolder* registry,
                                                            std::string fhir_base) {
  FHIRSTONE_RETURN_IF_ERROR(db.Migrate(Migrations()));
  return std::unique_ptr<ResourceStore>(
      new SqlResourceStore(db, clock, ids, registry, std::move(fhir_base)));
}

}  // namespace fhirstone::store
