// Bulk Data Access 2.0 export: https://hl7.org/fhir/uv/bulkdata/STU2/export.html (kick-off,
// status, manifest, cancellation, files) and the Group and Patient level operations
// (https://hl7.org/fhir/uv/bulkdata/STU2/OperationDefinition-group-export.html,
// OperationDefinition-patient-export.html).
#include "bulk/bulk_export.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <variant>

#include "api/error_response.h"
#include "common/json.h"
#include "common/strings.h"
#include "common/thread.h"
#include "common/time.h"
#include "db/database.h"
#include "fhir/model.h"
#include "search/extract.h"
#include "search/query.h"
#include "search/registry.h"
#include "store/resource_store.h"

namespace fhirstone::bulk {
namespace {

namespace fs = std::filesystem;
using Params = std::vector<std::pair<std::string, std::string>>;

std::vector<db::Migration> Migrations() {
  return {{4001, "bulk export jobs", R"sql(
CREATE TABLE bulk_job (
  id TEXT PRIMARY KEY, client_id TEXT NOT NULL, request TEXT NOT NULL, spec TEXT NOT NULL,
  status TEXT NOT NULL, progress TEXT NOT NULL, error TEXT NOT NULL,
  transaction_time INTEGER NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE bulk_file (
  job_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, kind TEXT NOT NULL,
  count INTEGER NOT NULL, PRIMARY KEY (job_id, name));
)sql"},
          // The node running a job says so now and then: a job whose heartbeat stopped (its node
          // died) is queued again, and only such a job.
          {4002, "bulk export heartbeats",
           "ALTER TABLE bulk_job ADD COLUMN heartbeat INTEGER NOT NULL DEFAULT 0"}};
}

// A job in progress without a heartbeat for this long belongs to a node that stopped.
constexpr int64_t kStaleSeconds = 60;
constexpr int64_t kHeartbeatSeconds = 10;

using Bind = std::variant<int64_t, std::string>;

Status Exec(db::Database& database, std::string_view sql, const std::vector<Bind>& binds,
            std::vector<std::vector<std::string>>* rows = nullptr, int columns = 0,
            int64_t* changes = nullptr) {
  auto lease = database.Acquire();
  if (!lease) return std::move(lease).error();
  auto stmt = (*lease)->Prepare(sql);
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  for (size_t i = 0; i < binds.size(); ++i) {
    if (const auto* n = std::get_if<int64_t>(&binds[i])) {
      s.BindInt(static_cast<int>(i) + 1, *n);
    } else {
      s.BindText(static_cast<int>(i) + 1, std::get<std::string>(binds[i]));
    }
  }
  if (!rows) {  // a write: queued on the database's write lock
    auto tx = db::Transaction::Begin(**lease, /*write=*/true);
    if (!tx) {
      s.Reset();
      return std::move(tx).error();
    }
    auto n = s.Run();
    s.Reset();
    if (!n) return std::move(n).error();
    if (changes) *changes = *n;
    return tx->Commit();
  }
  while (true) {
    auto more = s.Step();
    if (!more) {
      s.Reset();
      return std::move(more).error();
    }
    if (!*more) break;
    std::vector<std::string> row;
    for (int c = 0; c < columns; ++c) row.emplace_back(s.ColumnText(c));
    rows->push_back(std::move(row));
  }
  s.Reset();
  return Ok();
}

// A statement of the worker or of upkeep whose failure has no caller to answer: logged (the job
// is retried, requeued as stale, or expired later).
void WarnIfFailed(const Status& status, std::string_view what) {
  if (!status) spdlog::warn("bulk export: {} failed: {}", what, status.error().message());
}

http::Response Outcome(int status, ErrorCode code, std::string message) {
  http::Response r = api::ErrorResponse(Error(code, std::move(message)));
  r.status = status;
  return r;
}

http::Response JsonResponse(int status, const json::Value& body) {
  http::Response r;
  r.status = status;
  r.body = json::Write(body);
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-store");
  return r;
}

std::string RandomId() {
  RandomIdGenerator ids;
  return ids.NewId();
}

bool IsNdjsonFormat(std::string_view f) {
  return f == "application/fhir+ndjson" || f == "application/ndjson" || f == "ndjson";
}

// Whether the access allows exporting (reading) `type` system-wide.
bool MayExport(const api::AccessContext* access, std::string_view type) {
  if (!access) return true;
  for (const auto& rule : access->rules) {
    if (rule.type != "*" && rule.type != type) continue;
    if (!(rule.permissions & (api::kPermRead | api::kPermSearch))) continue;
    if (rule.patient_context || !rule.query.empty()) continue;
    return true;
  }
  return false;
}

// The types a query's chains (every path of one through several types) and reverse chains read.
std::vector<std::string> TypesRead(const search::SearchQuery& q) {
  std::vector<std::string> out;
  auto add = [&](const std::string& t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  for (const auto& c : q.criteria) {
    for (const auto& link : c.chain) add(link.target_type);
    for (const auto& path : c.any_of)
      for (const auto& link : path.chain) add(link.target_type);
    for (const auto& has : c.has) add(has.type);
  }
  return out;
}

// gzip (RFC 1952) of `data`.
std::optional<std::string> Gzip(std::string_view data) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return std::nullopt;
  std::string out;
  out.resize(deflateBound(&z, data.size()) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace

struct BulkExport::Impl {
  db::Database& db;
  store::ResourceStore& store;
  const search::RegistryHolder& registry;
  Clock& clock;
  BulkOptions options;

  std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  bool kicked = false;  // a job was queued since the worker last looked
  std::thread worker;
  std::mutex cancel_mu;
  std::set<std::string> cancelled;  // jobs asked to stop while running

  int64_t Now() { return clock.NowMicros() / 1000000; }
  std::string Url(std::string_view path) const { return options.base_url + std::string(path); }

  // ---- kick-off ----

  http::Response KickOff(http::Request& request, const api::AccessContext* access,
                         std::string_view level, std::string group_id) {
    if (request.method != "GET" && request.method != "POST")
      return Outcome(405, ErrorCode::kMethodNotAllowed, "$export takes GET or POST");
    std::string_view accept = Trim(request.Header("Accept"));
    if (!accept.empty() && accept != "application/fhir+json" && accept != "application/json" &&
        accept != "*/*")
      return Outcome(400, ErrorCode::kInvalid,
                     "Accept must be application/fhir+json for a bulk export kick-off");
    if (AsciiLower(request.Header("Prefer")).find("respond-async") == std::string::npos)
      return Outcome(400, ErrorCode::kInvalid, "A bulk export needs Prefer: respond-async");
    Params params = SplitQuery(request.Query());
    std::vector<std::string> patients;
    if (request.method == "POST") {
      auto body = json::Parse(request.body);
      if (!body || body->GetString("resourceType") != "Parameters")
        return Outcome(400, ErrorCode::kInvalid, "A POST kick-off carries a Parameters resource");
      if (const json::Value* list = body->Find("parameter"); list && list->is_array()) {
        for (const auto& p : list->as_array()) {
          std::string name(p.GetString("name"));
          if (name == "patient") {
            const json::Value* ref = p.Find("valueReference");
            std::string_view reference = ref ? ref->GetString("reference") : "";
            if (!reference.starts_with("Patient/") || reference.size() <= 8)
              return Outcome(400, ErrorCode::kInvalid,
                             "patient must be a valueReference to Patient/id");
            patients.emplace_back(reference.substr(8));
            continue;
          }
          std::string value;
          for (const char* key : {"valueString", "valueInstant", "valueCode", "valueBoolean"})
            if (const json::Value* v = p.Find(key))
              value = v->is_bool() ? (v->as_bool() ? "true" : "false") : v->as_string();
          params.emplace_back(name, value);
        }
      }
    }
    if (!patients.empty() && level == "system")
      return Outcome(400, ErrorCode::kInvalid, "patient applies to Patient and Group exports");
    json::Value spec = json::Value::EmptyObject();
    spec.Set("level", level);
    std::vector<std::string> types;
    std::map<std::string, std::vector<std::string>> type_filters;
    for (const auto& [key, value] : params) {
      if (key == "_outputFormat") {
        if (!IsNdjsonFormat(value))
          return Outcome(
              400, ErrorCode::kInvalid,
              "_outputFormat '" + value + "' is not supported: use application/fhir+ndjson");
      } else if (key == "_since") {
        auto since = ParseFhirDateTime(value);
        if (!since || value.find('T') == std::string::npos)
          return Outcome(400, ErrorCode::kInvalid,
                         "_since must be an instant, not '" + value + "'");
        spec.Set("since", json::Value::Number(since->low));
      } else if (key == "_type") {
        for (auto t : Split(value, ',')) {
          t = Trim(t);
          if (!fhir::IsResourceType(t))
            return Outcome(400, ErrorCode::kInvalid,
                           "_type: unknown resource type '" + std::string(t) + "'");
          types.emplace_back(t);
        }
      } else if (key == "_typeFilter") {
        for (auto f : Split(value, ',')) {
          size_t q = f.find('?');
          std::string type(f.substr(0, q));
          if (q == std::string_view::npos || !fhir::IsResourceType(type))
            return Outcome(400, ErrorCode::kInvalid,
                           "_typeFilter must be Type?criteria, not '" + std::string(f) + "'");
          type_filters[type].emplace_back(f.substr(q + 1));
        }
      } else if (key == "includeAssociatedData" || key == "_elements") {
        return Outcome(400, ErrorCode::kInvalid, key + " is not supported by this server");
      }
    }
    std::shared_ptr<const search::Registry> reg = registry.Get();
    // The types: asked for, else every type the caller may read (and, below the system level,
    // those of the Patient compartment).
    if (types.empty()) {
      for (const auto& t : fhir::ResourceTypes()) {
        std::string type(t);
        if (level != "system" && type != "Patient" &&
            reg->CompartmentParams("Patient", type).empty())
          continue;
        if (MayExport(access, type)) types.push_back(type);
      }
    } else {
      for (const auto& t : types)
        if (!MayExport(access, t))
          return Outcome(403, ErrorCode::kForbidden,
                         "The access token does not allow to export " + t + " resources");
    }
    if (types.empty())
      return Outcome(403, ErrorCode::kForbidden, "The access token allows no type to be exported");
    // Every filter must be a valid search of its type.
    for (const auto& [type, filters] : type_filters) {
      for (const auto& f : filters) {
        auto parsed = ParseFilter(*reg, type, f);
        if (!parsed)
          return Outcome(400, ErrorCode::kInvalid,
                         "_typeFilter " + type + "?" + f + ": " + parsed.error().message());
        // Its chains and reverse chains read other types: the caller must be able to export
        // them too.
        for (const std::string& read : TypesRead(*parsed))
          if (!MayExport(access, read))
            return Outcome(403, ErrorCode::kForbidden,
                           "_typeFilter " + type + "?" + f + " reads " + read +
                               " resources, which the access token does not allow to export");
      }
    }
    if (!group_id.empty()) {
      if (!MayExport(access, "Group"))
        return Outcome(403, ErrorCode::kForbidden,
                       "The access token does not allow to read Groups");
      auto group = store.Read("Group", group_id);
      if (!group) return api::ErrorResponse(group.error());
      auto parsed = json::Parse(group->body);
      if (!parsed) return Outcome(500, ErrorCode::kInternal, "The Group could not be read");
      std::vector<std::string> members;
      if (const json::Value* list = parsed->Find("member"); list && list->is_array()) {
        for (const auto& m : list->as_array()) {
          if (const json::Value* inactive = m.Find("inactive");
              inactive && inactive->is_bool() && inactive->as_bool())
            continue;
          const json::Value* entity = m.Find("entity");
          std::string_view ref = entity ? entity->GetString("reference") : "";
          if (ref.starts_with("Patient/")) members.emplace_back(ref.substr(8));
        }
      }
      if (!patients.empty()) {  // the patient parameter narrows the group
        std::vector<std::string> narrowed;
        for (const auto& p : patients)
          if (std::find(members.begin(), members.end(), p) != members.end()) narrowed.push_back(p);
        members = std::move(narrowed);
      }
      if (members.empty()) members.push_back("\x01no-member");  // an empty group exports nothing
      patients = std::move(members);
    }
    json::Value type_list = json::Value::EmptyArray();
    for (const auto& t : types) type_list.PushBack(t);
    spec.Set("types", std::move(type_list));
    json::Value patient_list = json::Value::EmptyArray();
    for (const auto& p : patients) patient_list.PushBack(p);
    spec.Set("patients", std::move(patient_list));
    json::Value filters = json::Value::EmptyObject();
    for (const auto& [type, list] : type_filters) {
      json::Value a = json::Value::EmptyArray();
      for (const auto& f : list) a.PushBack(f);
      filters.Set(type, std::move(a));
    }
    spec.Set("type_filters", std::move(filters));
    std::string id = RandomId();
    std::string request_url = Url(request.target);
    std::string client_id = access ? access->client_id : "";
    int64_t now = Now();
    Status st = Exec(db,
                     "INSERT INTO bulk_job (id, client_id, request, spec, status, progress, error, "
                     "transaction_time, created, expires) VALUES (?, ?, ?, ?, 'accepted', "
                     "'Queued', '', 0, ?, 0)",
                     {id, client_id, request_url, json::Write(spec), now});
    if (!st) return api::ErrorResponse(st.error());
    {
      std::lock_guard lock(mu);
      kicked = true;
    }
    wake.notify_all();
    http::Response r;
    r.status = 202;
    r.SetHeader("Content-Location", Url("/bulk/status/" + id));
    r.body = json::Write(
        api::InformationOutcome("The export is queued; poll " + Url("/bulk/status/" + id)));
    r.SetHeader("Content-Type", "application/fhir+json");
    return r;
  }

  // name=value pairs of a query string (or of a _typeFilter value), percent-decoded.
  static Params SplitQuery(std::string_view query) {
    Params out;
    for (auto part : Split(query, '&')) {
      if (part.empty()) continue;
      size_t eq = part.find('=');
      out.emplace_back(PercentDecode(part.substr(0, eq)),
                       eq == std::string_view::npos ? "" : PercentDecode(part.substr(eq + 1)));
    }
    return out;
  }

  static std::string PercentDecode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size() && isxdigit(static_cast<unsigned char>(s[i + 1])) &&
          isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += s[i] == '+' ? ' ' : s[i];
      }
    }
    return out;
  }

  // ---- status, cancellation, files ----

  struct Job {
    std::string id, client_id, request, spec, status, progress, error;
    int64_t transaction_time = 0, created = 0, expires = 0;
  };

  Result<std::optional<Job>> FindJob(const std::string& id) {
    std::vector<std::vector<std::string>> rows;
    FHIRSTONE_RETURN_IF_ERROR(Exec(db,
                                   "SELECT id, client_id, request, spec, status, progress, error, "
                                   "transaction_time, created, expires FROM bulk_job WHERE id = ?",
                                   {id}, &rows, 10));
    if (rows.empty()) return std::optional<Job>();
    const auto& r = rows[0];
    return std::optional<Job>(Job{r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                                  ParseInt64(r[7]).value_or(0), ParseInt64(r[8]).value_or(0),
                                  ParseInt64(r[9]).value_or(0)});
  }

  // The job, when it exists, is live and belongs to the caller.
  Result<Job> OwnJob(const std::string& id, const api::AccessContext* access) {
    auto job = FindJob(id);
    if (!job) return std::move(job).error();
    if (!*job || (*job)->status == "cancelled" ||
        (access && (*job)->client_id != access->client_id) ||
        ((*job)->status == "completed" && (*job)->expires <= Now()))
      return Error::NotFound("No such export (unknown, cancelled, expired or another client's)");
    return std::move(**job);
  }

  http::Response JobStatus(http::Request& request, const api::AccessContext* access,
                           const std::string& id) {
    auto job = OwnJob(id, access);
    if (!job) return api::ErrorResponse(job.error());
    if (request.method == "DELETE") {
      if (auto cancelled_row =
              Exec(db, "UPDATE bulk_job SET status = 'cancelled' WHERE id = ?", {id});
          !cancelled_row)
        return api::ErrorResponse(cancelled_row.error());
      {
        std::lock_guard lock(cancel_mu);
        cancelled.insert(id);
      }
      WarnIfFailed(RemoveFiles(id), "removing the files of a cancelled job");  // again at expiry
      http::Response r = JsonResponse(202, api::InformationOutcome("The export was cancelled"));
      r.SetHeader("Content-Type", "application/fhir+json");
      return r;
    }
    if (request.method != "GET" && request.method != "HEAD")
      return Outcome(405, ErrorCode::kMethodNotAllowed, "Use GET or DELETE");
    if (job->status == "accepted" || job->status == "in-progress") {
      http::Response r;
      r.status = 202;
      r.SetHeader("X-Progress", job->progress);
      r.SetHeader("Retry-After", std::to_string(options.retry_after_seconds));
      r.SetHeader("Cache-Control", "no-store");
      return r;
    }
    if (job->status == "failed") {
      http::Response r = Outcome(500, ErrorCode::kInternal, "The export failed: " + job->error);
      return r;
    }
    std::vector<std::vector<std::string>> files;
    if (auto listed = Exec(db,
                           "SELECT name, type, kind, count FROM bulk_file WHERE job_id = ? ORDER "
                           "BY kind, name",
                           {id}, &files, 4);
        !listed)
      return api::ErrorResponse(listed.error());  // not a manifest without its files
    json::Value manifest = json::Value::EmptyObject();
    manifest.Set("transactionTime", FormatInstant(job->transaction_time));
    manifest.Set("request", job->request);
    manifest.Set("requiresAccessToken", access != nullptr);
    json::Value output = json::Value::EmptyArray();
    json::Value deleted = json::Value::EmptyArray();
    for (const auto& f : files) {
      json::Value item = json::Value::EmptyObject();
      item.Set("type", f[1]);
      item.Set("url", Url("/bulk/files/" + id + "/" + f[0]));
      item.Set("count", json::Value::Number(ParseInt64(f[3]).value_or(0)));
      (f[2] == "deleted" ? deleted : output).PushBack(std::move(item));
    }
    manifest.Set("output", std::move(output));
    if (!deleted.as_array().empty()) manifest.Set("deleted", std::move(deleted));
    manifest.Set("error", json::Value::EmptyArray());
    http::Response r = JsonResponse(200, manifest);
    r.SetHeader("Expires", FormatHttpDate(job->expires * 1000000));
    return r;
  }

  http::Response File(http::Request& request, const api::AccessContext* access,
                      const std::string& id, const std::string& name) {
    if (request.method != "GET" && request.method != "HEAD")
      return Outcome(405, ErrorCode::kMethodNotAllowed, "Use GET");
    auto job = OwnJob(id, access);
    if (!job) return api::ErrorResponse(job.error());
    std::vector<std::vector<std::string>> rows;
    if (auto found = Exec(db, "SELECT name FROM bulk_file WHERE job_id = ? AND name = ?",
                          {id, name}, &rows, 1);
        !found)
      return api::ErrorResponse(found.error());
    if (job->status != "completed" || rows.empty())
      return Outcome(404, ErrorCode::kNotFound, "No such file");
    std::ifstream in(fs::path(options.directory) / id / name, std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof())
      return Outcome(404, ErrorCode::kNotFound,
                     "The file is not in this server's bulk folder: it was removed, or another "
                     "node wrote it (nodes that share a database need one shared --bulk-dir)");
    http::Response r;
    r.SetHeader("Content-Type", "application/fhir+ndjson");
    r.SetHeader("Expires", FormatHttpDate(job->expires * 1000000));
    r.SetHeader("Cache-Control", "private, no-store");
    if (AsciiLower(request.Header("Accept-Encoding")).find("gzip") != std::string::npos) {
      if (auto gz = Gzip(body)) {
        r.body = std::move(*gz);
        r.SetHeader("Content-Encoding", "gzip");
        r.SetHeader("Vary", "Accept-Encoding");
        return r;
      }
    }
    r.body = std::move(body);
    return r;
  }

  Status RemoveFiles(const std::string& id) {
    std::error_code ec;
    fs::remove_all(fs::path(options.directory) / id, ec);
    return Exec(db, "DELETE FROM bulk_file WHERE job_id = ?", {id});
  }

  // ---- the worker ----

  bool IsCancelled(const std::string& id) {
    std::lock_guard lock(cancel_mu);
    return cancelled.count(id) > 0;
  }

  void Run() {
    while (true) {
      {
        std::unique_lock lock(mu);
        if (stopping) return;
        kicked = false;
      }
      Expire();
      RequeueStale();
      std::optional<std::string> id = Claim();
      if (!id) {
        std::unique_lock lock(mu);
        wake.wait_for(lock, std::chrono::seconds(5), [&] { return stopping || kicked; });
        continue;
      }
      RunJob(*id);
    }
  }

  // Takes the oldest queued job for this node: at most one node gets it. On PostgreSQL, nodes
  // claiming at once skip each other's locked rows (FOR UPDATE SKIP LOCKED); SQLite has one
  // writer at a time and a compare-and-set suffices.
  std::optional<std::string> Claim() {
    std::vector<std::vector<std::string>> rows;
    if (db.dialect() == db::Dialect::kPostgres) {
      WarnIfFailed(Exec(db,
                        "UPDATE bulk_job SET status = 'in-progress', heartbeat = ? WHERE id = "
                        "(SELECT id FROM bulk_job WHERE status = 'accepted' ORDER BY created "
                        "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
                        {Now()}, &rows, 1),
                   "claiming a job");
      if (rows.empty()) return std::nullopt;
      return rows[0][0];
    }
    WarnIfFailed(
        Exec(db, "SELECT id FROM bulk_job WHERE status = 'accepted' ORDER BY created LIMIT 1", {},
             &rows, 1),
        "looking for a job");
    if (rows.empty()) return std::nullopt;
    int64_t claimed = 0;
    WarnIfFailed(Exec(db,
                      "UPDATE bulk_job SET status = 'in-progress', heartbeat = ? WHERE id = ? AND "
                      "status = 'accepted'",
                      {Now(), rows[0][0]}, nullptr, 0, &claimed),
                 "claiming a job");
    if (claimed != 1) return std::nullopt;
    return rows[0][0];
  }

  // Jobs left in progress by a node that stopped (no heartbeat for kStaleSeconds) run again.
  void RequeueStale() {
    WarnIfFailed(Exec(db,
                      "UPDATE bulk_job SET status = 'accepted', progress = 'Queued again: the node "
                      "running it stopped' WHERE status = 'in-progress' AND heartbeat < ?",
                      {Now() - kStaleSeconds}),
                 "requeueing stale jobs");
  }

  void Expire() {
    std::vector<std::vector<std::string>> rows;
    WarnIfFailed(Exec(db,
                      "SELECT id FROM bulk_job WHERE (status = 'completed' AND expires <= ?) OR "
                      "status = 'cancelled'",
                      {Now()}, &rows, 1),
                 "looking for expired jobs");
    for (const auto& r : rows) {
      if (auto removed = RemoveFiles(r[0]); !removed) {  // the job stays, to be expired again
        WarnIfFailed(removed, "removing an expired job's files");
        continue;
      }
      WarnIfFailed(Exec(db, "DELETE FROM bulk_job WHERE id = ?", {r[0]}),
                   "removing an expired job");
      std::lock_guard lock(cancel_mu);
      cancelled.erase(r[0]);
    }
  }

  // Writes the job's heartbeat every kHeartbeatSeconds while it lives (a long first query of
  // the export, or rows of other types, would leave the callbacks silent).
  class Heartbeat {
   public:
    Heartbeat(Impl& impl, std::string id) : impl_(impl), id_(std::move(id)) {
      thread_ = std::thread([this] {
        NameThisThread("fs-bulk-beat");
        std::unique_lock lock(mu_);
        while (
            !cv_.wait_for(lock, std::chrono::seconds(kHeartbeatSeconds), [this] { return done_; }))
          WarnIfFailed(Exec(impl_.db,
                            "UPDATE bulk_job SET heartbeat = ? WHERE id = ? AND status = "
                            "'in-progress'",
                            {impl_.Now(), id_}),
                       "a job's heartbeat");
      });
    }
    ~Heartbeat() {
      {
        std::lock_guard lock(mu_);
        done_ = true;
      }
      cv_.notify_all();
      thread_.join();
    }

   private:
    Impl& impl_;
    std::string id_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
  };

  void RunJob(const std::string& id) {
    Heartbeat heartbeat_writer(*this, id);
    auto job = FindJob(id);
    if (!job || !*job) return;
    auto spec = json::Parse((*job)->spec);
    if (!spec) {
      Fail(id, "the job's parameters are unreadable");
      return;
    }
    store::ExportQuery query;
    if (const json::Value* list = spec->Find("types"); list && list->is_array())
      for (const auto& t : list->as_array()) query.types.push_back(t.as_string());
    if (const json::Value* list = spec->Find("patients"); list && list->is_array())
      for (const auto& p : list->as_array()) query.patients.push_back(p.as_string());
    if (const json::Value* since = spec->Find("since"); since && since->is_number())
      query.since = ParseInt64(since->as_string());
    bool patient_level = spec->GetString("level") != "system";
    // _typeFilter: each filter's criteria go to the store, which reads only matching resources.
    if (const json::Value* filters = spec->Find("type_filters"); filters && filters->is_object()) {
      std::shared_ptr<const search::Registry> reg = registry.Get();
      for (const auto& [type, list] : filters->as_object()) {
        for (const auto& f : list.as_array()) {
          auto parsed = ParseFilter(*reg, type, f.as_string());
          if (!parsed) {
            Fail(id, parsed.error().message());
            return;
          }
          query.filters.emplace_back(type, std::move(parsed).value());
        }
      }
    }
    std::error_code ec;
    fs::path dir = fs::path(options.directory) / id;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    if (ec) {
      Fail(id, "cannot create " + dir.string() + ": " + ec.message());
      return;
    }
    if (auto cleared = Exec(db, "DELETE FROM bulk_file WHERE job_id = ?", {id}); !cleared) {
      Fail(id, "cannot clear the files of an earlier attempt: " + cleared.error().message());
      return;
    }

    struct Output {
      std::string pending;  // lines not yet written: written in pieces of about 1 MiB
      std::ofstream file;
      std::string name;
      int part = 0;
      int64_t count = 0;
      size_t bytes = 0;
    };
    std::map<std::string, Output, std::less<>> outputs;  // by type, "deleted" for deletions
    auto close = [&](const std::string& key, Output& o) -> Status {
      if (!o.file.is_open()) return Ok();
      o.file.write(o.pending.data(), static_cast<std::streamsize>(o.pending.size()));
      o.pending.clear();
      o.file.close();
      if (!o.file) return Error::Unavailable("writing " + o.name + " failed");
      return Exec(db,
                  "INSERT INTO bulk_file (job_id, name, type, kind, count) VALUES (?, ?, ?, ?, ?)",
                  {id, o.name, key == "deleted" ? std::string("Bundle") : key,
                   key == "deleted" ? std::string("deleted") : std::string("output"), o.count});
    };
    auto write = [&](std::string_view key, std::string_view line) -> Status {
      auto found = outputs.find(key);
      if (found == outputs.end()) found = outputs.emplace(std::string(key), Output{}).first;
      Output& o = found->second;
      if (o.file.is_open() && o.bytes + line.size() + 1 > options.max_file_bytes && o.count > 0) {
        FHIRSTONE_RETURN_IF_ERROR(close(found->first, o));
        o.count = 0;
        o.bytes = 0;
      }
      if (!o.file.is_open()) {
        o.name = std::string(key) + "-" + std::to_string(++o.part) + ".ndjson";
        o.file.open(dir / o.name, std::ios::binary | std::ios::trunc);
        if (!o.file) return Error::Unavailable("cannot write " + o.name);
        o.pending.reserve(1 << 20);
      }
      o.pending += line;
      o.pending += '\n';
      if (o.pending.size() >= (1 << 20)) {
        o.file.write(o.pending.data(), static_cast<std::streamsize>(o.pending.size()));
        o.pending.clear();
        if (!o.file) return Error::Unavailable("writing " + o.name + " failed");
      }
      o.bytes += line.size() + 1;
      ++o.count;
      return Ok();
    };
    int64_t total = 0;
    int64_t seen = 0;
    std::shared_ptr<const search::Registry> reg = registry.Get();
    int64_t snapshot = 0;
    Status status = store.Export(
        query,
        [&](const store::ExportRow& v) -> Status {
          if (++seen % 1024 == 1) {  // now and then: cancelled, stopping, progress
            if (IsCancelled(id)) return Error::Conflict("cancelled");
            {
              std::unique_lock lock(mu);
              if (stopping) return Error::Unavailable("stopping");
            }
            if (seen % 16384 == 1)
              WarnIfFailed(Exec(db, "UPDATE bulk_job SET progress = ? WHERE id = ?",
                                {"Exporting: " + std::to_string(total) + " resources written", id}),
                           "a job's progress");
          }
          if (v.deleted) {
            // Patient level: deletions count only when their last version was the patients'.
            if (patient_level && !query.patients.empty() && !InCompartment(*reg, v, query.patients))
              return Ok();
            std::string line =
                "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{"
                "\"method\":\"DELETE\",\"url\":";
            json::WriteString(std::string(v.type) + "/" + std::string(v.id), line);
            line += "}}]}";
            ++total;
            return write("deleted", line);
          }
          ++total;
          return write(v.type, v.body);
        },
        &snapshot);
    for (auto& [key, o] : outputs) {
      Status closed = close(key, o);
      if (status && !closed) status = closed;
    }
    if (!status) {
      if (IsCancelled(id)) {
        WarnIfFailed(RemoveFiles(id), "removing the files of a cancelled job");  // again at expiry
        return;
      }
      bool stopping_now;
      {
        std::unique_lock lock(mu);
        stopping_now = stopping;
      }
      if (stopping_now) {  // runs again at the next start
        WarnIfFailed(Exec(db,
                          "UPDATE bulk_job SET status = 'accepted', progress = 'Queued again after "
                          "a restart' WHERE id = ?",
                          {id}),
                     "requeueing a job at shutdown");  // requeued as stale otherwise
        return;
      }
      Fail(id, status.error().message());
      return;
    }
    if (auto completed = Exec(db,
                              "UPDATE bulk_job SET status = 'completed', progress = ?, "
                              "transaction_time = ?, expires = ? WHERE id = ? AND status = "
                              "'in-progress'",
                              {"Done: " + std::to_string(total) + " resources", snapshot,
                               Now() + options.expire_seconds, id});
        !completed) {  // stays in progress: requeued as stale, and run again
      WarnIfFailed(completed, "marking a job completed");
      return;
    }
    spdlog::info("bulk export {} done: {} resources", id, total);
  }

  // Whether `v` (its body) is in the compartment of one of `patients`, as the index sees it.
  bool InCompartment(const search::Registry& reg, const store::ExportRow& v,
                     const std::vector<std::string>& patients) {
    if (v.type == "Patient")
      return std::find(patients.begin(), patients.end(), v.id) != patients.end();
    auto body = json::Parse(v.body);
    if (!body) return false;
    const auto& params = reg.CompartmentParams("Patient", v.type);
    search::IndexEntries entries = search::ExtractIndex(reg, *body, Url("/fhir"));
    for (const auto& ref : entries.references) {
      if (ref.target_type != "Patient") continue;
      if (std::find(params.begin(), params.end(), ref.param) == params.end()) continue;
      if (std::find(patients.begin(), patients.end(), ref.target_id) != patients.end()) return true;
    }
    return false;
  }

  // A _typeFilter value (a query without the type) as a search of `type`.
  static Result<search::SearchQuery> ParseFilter(const search::Registry& reg,
                                                 const std::string& type,
                                                 const std::string& filter) {
    Params fp = SplitQuery(filter);
    search::ParseOptions strict;
    strict.strict = true;
    auto query = search::ParseQuery(reg, {type}, fp, strict);
    if (!query) return std::move(query).error();
    if (query->criteria.empty())
      return Error::Invalid("_typeFilter " + type + "?" + filter + " has no search criteria");
    return query;
  }

  void Fail(const std::string& id, const std::string& message) {
    spdlog::warn("bulk export {} failed: {}", id, message);
    WarnIfFailed(
        Exec(db, "UPDATE bulk_job SET status = 'failed', error = ?, expires = ? WHERE id = ?",
             {message, Now() + options.expire_seconds, id}),
        "marking a job failed");  // still in progress: requeued as stale
  }
};

BulkExport::BulkExport() = default;

BulkExport::~BulkExport() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

Status BulkExport::MigrateSchema(db::Database& db) { return db.Migrate(Migrations()); }

Result<std::unique_ptr<BulkExport>> BulkExport::Create(db::Database& db,
                                                       store::ResourceStore& store,
                                                       const search::RegistryHolder& registry,
                                                       Clock& clock, BulkOptions options) {
  FHIRSTONE_RETURN_IF_ERROR(db.Migrate(Migrations()));
  // A job interrupted by a crash runs again from the start (a new snapshot) once its heartbeat
  // is stale: a job in progress with a recent one may be another node's.
  FHIRSTONE_RETURN_IF_ERROR(Exec(db,
                                 "UPDATE bulk_job SET status = 'accepted', progress = 'Queued "
                                 "again after a restart' WHERE status = 'in-progress' AND "
                                 "heartbeat < ?",
                                 {clock.NowMicros() / 1000000 - kStaleSeconds}));
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  std::unique_ptr<BulkExport> bulk(new BulkExport());
  bulk->impl_.reset(new Impl{db, store, registry, clock, std::move(options)});
  Impl* impl = bulk->impl_.get();
  impl->worker = std::thread([impl] {
    NameThisThread("fs-bulk");
    impl->Run();
  });
  return bulk;
}

bool BulkExport::Handles(std::string_view path) {
  return path == "/fhir/$export" || path == "/fhir/Patient/$export" ||
         (path.starts_with("/fhir/Group/") && path.ends_with("/$export")) ||
         path.starts_with("/bulk/");
}

http::Response BulkExport::Handle(http::Request& request, const api::AccessContext* access) {
  std::string_view path = request.Path();
  try {
    if (path == "/fhir/$export") return impl_->KickOff(request, access, "system", "");
    if (path == "/fhir/Patient/$export") return impl_->KickOff(request, access, "patient", "");
    if (path.starts_with("/fhir/Group/")) {
      std::string id(path.substr(12, path.size() - 12 - 8));
      if (!fhir::IsValidId(id)) return Outcome(404, ErrorCode::kNotFound, "Unknown Group");
      return impl_->KickOff(request, access, "group", id);
    }
    if (path.starts_with("/bulk/status/"))
      return impl_->JobStatus(request, access, std::string(path.substr(13)));
    if (path.starts_with("/bulk/files/")) {
      std::string_view rest = path.substr(12);
      size_t slash = rest.find('/');
      if (slash == std::string_view::npos)
        return Outcome(404, ErrorCode::kNotFound, "No such file");
      std::string name(rest.substr(slash + 1));
      if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
        return Outcome(404, ErrorCode::kNotFound, "No such file");
      return impl_->File(request, access, std::string(rest.substr(0, slash)), name);
    }
    return Outcome(404, ErrorCode::kNotFound, "Unknown bulk data path");
  } catch (const std::exception& e) {
    spdlog::error("bulk export: unexpected exception: {}", e.what());
    return Outcome(500, ErrorCode::kInternal, "The server failed to process the request");
  }
}

}  // namespace fhirstone::bulk
