#include "db/database.h"

#include <condition_variable>
#include <mutex>

#include "common/strings.h"
#include "db/postgres/postgres_database.h"
#include "db/sqlite/sqlite_database.h"

namespace fhirstone::db {

struct Database::Pool {
  std::mutex mu;
  std::condition_variable returned;
  std::vector<std::unique_ptr<Connection>> idle;
  int open = 0;  // lent and idle
  int max = 0;   // <= 0: unbounded
  std::chrono::milliseconds wait{5000};
};

std::shared_ptr<Database::Pool> Database::MakePool() { return std::make_shared<Pool>(); }

void Statement::BindValues(std::span<const Value> values) {
  int index = 1;
  for (const Value& v : values) {
    if (const auto* n = std::get_if<int64_t>(&v)) {
      BindInt(index++, *n);
    } else if (const auto* d = std::get_if<double>(&v)) {
      BindDouble(index++, *d);
    } else {
      BindText(index++, std::get<std::string_view>(v));
    }
  }
}

Result<int64_t> Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row) {
      Reset();
      return std::move(row).error();
    }
    if (!*row) break;
  }
  int64_t changes = Changes();
  Reset();
  return changes;
}

Lease::~Lease() {
  if (conn_) db_->Release(std::move(conn_));
}

Result<Transaction> Transaction::Begin(Connection& conn, bool write) {
  FHIRSTONE_RETURN_IF_ERROR(conn.Begin(write));
  return Transaction(&conn);
}

Transaction::~Transaction() {
  if (conn_) (void)conn_->Rollback();
}

Status Transaction::Commit() {
  Connection* conn = conn_;
  conn_ = nullptr;
  auto status = conn->Commit();
  if (!status) (void)conn->Rollback();
  return status;
}

Result<std::unique_ptr<Database>> Database::Open(std::string_view url) {
  if (url.starts_with("sqlite:")) return sqlite::OpenSqliteDatabase(url.substr(7));
  if (url.starts_with("postgres://") || url.starts_with("postgresql://"))
    return postgres::OpenPostgresDatabase(url);
  return Error::Invalid("Unknown database URL '" + std::string(url) +
                        "': expected sqlite:PATH or postgres://USER@HOST/DB");
}

void Database::LimitPool(int max_connections, std::chrono::milliseconds wait) {
  std::lock_guard lock(pool_->mu);
  pool_->max = max_connections;
  pool_->wait = wait;
}

int Database::OpenConnections() const {
  std::lock_guard lock(pool_->mu);
  return pool_->open;
}

Result<Lease> Database::Acquire() {
  {
    std::unique_lock lock(pool_->mu);
    auto available = [this] {
      return !pool_->idle.empty() || pool_->max <= 0 || pool_->open < pool_->max;
    };
    if (!pool_->returned.wait_for(lock, pool_->wait, available))
      return Error::Unavailable("All " + std::to_string(pool_->max) +
                                " database connections stayed busy for " +
                                std::to_string(pool_->wait.count()) + " ms");
    if (!pool_->idle.empty()) {
      auto conn = std::move(pool_->idle.back());
      pool_->idle.pop_back();
      return Lease(this, std::move(conn));
    }
    ++pool_->open;  // taken before opening, so that concurrent opens respect the maximum
  }
  auto conn = OpenConnection();
  if (!conn) {
    std::lock_guard lock(pool_->mu);
    --pool_->open;
    pool_->returned.notify_one();
    return std::move(conn).error();
  }
  return Lease(this, std::move(conn).value());
}

void Database::Release(std::unique_ptr<Connection> conn) {
  bool reusable = conn->Reusable();
  if (!reusable) conn.reset();  // closed here; the next Acquire opens a fresh one
  std::lock_guard lock(pool_->mu);
  if (reusable)
    pool_->idle.push_back(std::move(conn));
  else
    --pool_->open;
  pool_->returned.notify_one();
}

Status Database::Migrate(const std::vector<Migration>& migrations) {
  auto lease = Acquire();
  if (!lease) return std::move(lease).error();
  Connection& conn = **lease;
  {  // in a write transaction: nodes starting at once take turns (PostgreSQL's advisory lock)
    auto tx = Transaction::Begin(conn, /*write=*/true);
    if (!tx) return std::move(tx).error();
    FHIRSTONE_RETURN_IF_ERROR(conn.Execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT "
        "NOT NULL, applied_at TEXT NOT NULL)"));
    FHIRSTONE_RETURN_IF_ERROR(tx->Commit());
  }
  for (const auto& m : migrations) {
    auto tx = Transaction::Begin(conn, /*write=*/true);
    if (!tx) return std::move(tx).error();
    auto check = conn.Prepare("SELECT 1 FROM schema_migrations WHERE version = ?");
    if (!check) return std::move(check).error();
    (*check)->BindInt(1, m.version);
    auto row = (*check)->Step();
    (*check)->Reset();
    if (!row) return std::move(row).error();
    if (*row) continue;
    FHIRSTONE_RETURN_IF_ERROR(conn.Execute(
        conn.dialect() == Dialect::kPostgres && !m.postgres_sql.empty() ? m.postgres_sql : m.sql));
    auto record = conn.Prepare(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, "
        "CURRENT_TIMESTAMP)");
    if (!record) return std::move(record).error();
    (*record)->BindInt(1, m.version);
    (*record)->BindText(2, m.name);
    auto done = (*record)->Run();
    if (!done) return std::move(done).error();
    FHIRSTONE_RETURN_IF_ERROR(tx->Commit());
  }
  return Ok();
}

Status Database::Ping() {
  auto lease = Acquire();
  if (!lease) return std::move(lease).error();
  auto stmt = (*lease)->Prepare("SELECT 1");
  if (!stmt) return std::move(stmt).error();
  auto row = (*stmt)->Step();
  (*stmt)->Reset();
  if (!row) return std::move(row).error();
  return Ok();
}

}  // namespace fhirstone::db
