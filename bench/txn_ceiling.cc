// bench_txn_ceiling: the database ceiling for small transactions (bench/transactions.sh). The
// rows the server writes for a transaction of one Patient and one Observation (each resource's
// current row, its history row and its search index rows, as the store extracts them) inserted
// straight into a fresh store schema through the SQLite driver, one thread, WAL, the server's
// pragmas. Commits every GROUP transactions (1: a commit each; 64: as the server's group commit
// at most). Prints transactions per second.
// Usage: bench_txn_ceiling sqlite:PATH SECONDS GROUP
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/clock.h"
#include "common/json.h"
#include "db/database.h"
#include "search/extract.h"
#include "search/registry.h"
#include "store/sql_resource_store.h"

namespace {

using fhirstone::Status;
namespace db = fhirstone::db;
namespace search = fhirstone::search;

constexpr const char* kBase = "http://127.0.0.1:18181/fhir";

std::string Key(const search::SearchParam& p) { return p.base + "." + p.code; }

bool Check(const Status& s, const char* what) {
  if (s) return true;
  std::fprintf(stderr, "%s: %s\n", what, s.error().message().c_str());
  return false;
}

// Inserts one resource's rows: current, history and index (`patient` replaces the Patient id
// its references name, so that each transaction's Observation points at its own Patient).
bool Insert(db::Connection& conn, const std::string& type, const std::string& id,
            const std::string& body, const search::IndexEntries& entries,
            const std::string& patient, int64_t now) {
  int64_t shard = search::PatientShardKey(patient);
  auto r = conn.Prepare(
      "INSERT INTO resource (version, last_updated, deleted, body, type, id, shard_key) VALUES "
      "(1, ?, 0, ?, ?, ?, ?) RETURNING rowid");
  auto h = conn.Prepare(
      "INSERT INTO resource_history (type, id, version, last_updated, method, body, shard_key) "
      "VALUES (?, ?, 1, ?, 'C', ?, ?)");
  if (!r || !h) return false;
  (*r)->BindInt(1, now);
  (*r)->BindBlob(2, body);
  (*r)->BindText(3, type);
  (*r)->BindText(4, id);
  (*r)->BindInt(5, shard);
  auto row = (*r)->Step();
  if (!row || !*row) return false;
  int64_t rid = (*r)->ColumnInt(0);
  (*r)->Reset();
  (*h)->BindText(1, type);
  (*h)->BindText(2, id);
  (*h)->BindInt(3, now);
  (*h)->BindBlob(4, body);
  (*h)->BindInt(5, shard);
  if (!(*h)->Run()) return false;
  auto run = [&](db::Statement* s) { return static_cast<bool>(s->Run()); };
  for (const auto& e : entries.strings) {
    auto s = conn.Prepare(
        "INSERT INTO idx_string (rid, param, norm, exact, shard_key) VALUES (?, ?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindText(3, e.normalized);
    (*s)->BindText(4, e.exact);
    (*s)->BindInt(5, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.tokens) {
    auto s = conn.Prepare(
        "INSERT INTO idx_token (rid, param, system, code, text, shard_key) VALUES "
        "(?, ?, ?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindText(3, e.system);
    (*s)->BindText(4, e.code);
    (*s)->BindText(5, e.text);
    (*s)->BindInt(6, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.references) {
    auto s = conn.Prepare(
        "INSERT INTO idx_reference (rid, param, target_type, target_id, version, url, id_system, "
        "id_value, shard_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindText(3, e.target_type);
    (*s)->BindText(4, e.target_type == "Patient" ? patient : e.target_id);
    (*s)->BindText(5, e.version);
    (*s)->BindText(6, e.target_type == "Patient" ? "Patient/" + patient : e.url);
    (*s)->BindText(7, e.identifier_system);
    (*s)->BindText(8, e.identifier_value);
    (*s)->BindInt(9, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.dates) {
    auto s = conn.Prepare(
        "INSERT INTO idx_date (rid, param, low, high, shard_key) VALUES (?, ?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindInt(3, e.low);
    (*s)->BindInt(4, e.high);
    (*s)->BindInt(5, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.quantities) {
    auto s = conn.Prepare(
        "INSERT INTO idx_quantity (rid, param, low, high, system, code, unit, shard_key) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindDouble(3, e.low);
    (*s)->BindDouble(4, e.high);
    (*s)->BindText(5, e.system);
    (*s)->BindText(6, e.code);
    (*s)->BindText(7, e.unit);
    (*s)->BindInt(8, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.composites) {
    auto s = conn.Prepare(
        "INSERT INTO idx_composite (rid, param, a_system, a_code, b_system, b_code, b_text, "
        "b_low, b_high, b_date_low, b_date_high, c_low, c_high, shard_key) VALUES (?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindText(3, e.a_system);
    (*s)->BindText(4, e.a_code);
    (*s)->BindText(5, e.b_system);
    (*s)->BindText(6, e.b_code);
    (*s)->BindText(7, e.b_text);
    (*s)->BindDouble(8, e.b_low);
    (*s)->BindDouble(9, e.b_high);
    (*s)->BindInt(10, e.b_date_low);
    (*s)->BindInt(11, e.b_date_high);
    (*s)->BindDouble(12, e.c_low);
    (*s)->BindDouble(13, e.c_high);
    (*s)->BindInt(14, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.numbers) {
    auto s =
        conn.Prepare("INSERT INTO idx_number (rid, param, value, shard_key) VALUES (?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindDouble(3, e.value);
    (*s)->BindInt(4, shard);
    if (!run(*s)) return false;
  }
  for (const auto& e : entries.uris) {
    auto s = conn.Prepare("INSERT INTO idx_uri (rid, param, uri, shard_key) VALUES (?, ?, ?, ?)");
    (*s)->BindInt(1, rid);
    (*s)->BindText(2, Key(*e.param));
    (*s)->BindText(3, e.uri);
    (*s)->BindInt(4, shard);
    if (!run(*s)) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_txn_ceiling sqlite:PATH SECONDS GROUP\n");
    return 2;
  }
  double seconds = std::atof(argv[2]);
  int group = std::max(1, std::atoi(argv[3]));
  auto opened = db::Database::Open(argv[1]);
  if (!opened) return 1;
  db::Database& database = **opened;
  fhirstone::SystemClock clock;
  fhirstone::RandomIdGenerator ids;
  auto builtin = search::Registry::Builtin();
  if (!builtin) return 1;
  search::RegistryHolder holder(std::move(builtin).value());
  auto store = fhirstone::store::OpenSqlResourceStore(database, clock, ids, &holder, kBase);
  if (!store) return 1;  // the schema
  // The two resources of bench/wrk/transaction.lua, as the server stores them.
  auto patient = fhirstone::json::Parse(std::getenv("PATIENT_JSON"));
  auto observation = fhirstone::json::Parse(std::getenv("OBSERVATION_JSON"));
  if (!patient || !observation) {
    std::fprintf(stderr, "PATIENT_JSON and OBSERVATION_JSON must hold the two resources\n");
    return 2;
  }
  std::shared_ptr<const search::Registry> registry = holder.Get();
  search::IndexEntries patient_entries =
      search::ExtractIndex(*registry, *patient, kBase, /*stored_only=*/true);
  search::IndexEntries observation_entries =
      search::ExtractIndex(*registry, *observation, kBase, /*stored_only=*/true);
  std::string patient_body = fhirstone::json::Write(*patient);
  std::string observation_body = fhirstone::json::Write(*observation);

  auto lease = database.Acquire();
  if (!lease) return 1;
  db::Connection& conn = **lease;
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  long done = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto tx = db::Transaction::Begin(conn, /*write=*/true);
    if (!tx) return 1;
    for (int i = 0; i < group; ++i, ++done) {
      std::string n = std::to_string(done);
      int64_t now = clock.NowMicros();
      if (!Insert(conn, "Patient", "cp" + n, patient_body, patient_entries, "cp" + n, now) ||
          !Insert(conn, "Observation", "co" + n, observation_body, observation_entries, "cp" + n,
                  now)) {
        std::fprintf(stderr, "insert failed\n");
        return 1;
      }
    }
    if (!Check(tx->Commit(), "commit")) return 1;
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.0f\n", done / elapsed);
  return 0;
}
