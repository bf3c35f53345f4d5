#include "db/sqlite/sqlite_database.h"

#include <sqlite3.h>

#include <atomic>
#include <string>
#include <unordered_map>

namespace fhirstone::db::sqlite {
namespace {

Error SqliteError(sqlite3* db, std::string_view what) {
  int code = sqlite3_extended_errcode(db);
  std::string message = std::string(what) + ": " + sqlite3_errmsg(db);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || (code & 0xff) == SQLITE_BUSY)
    return Error::Unavailable(message);
  if ((code & 0xff) == SQLITE_CONSTRAINT) return Error::Conflict(message);
  return Error::Internal(message);
}

class SqliteStatement : public Statement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  void BindInt(int index, int64_t value) override { sqlite3_bind_int64(stmt_, index, value); }
  void BindText(int index, std::string_view value) override {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, std::string_view value) override {
    sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int index) override { sqlite3_bind_null(stmt_, index); }

  Result<bool> Step() override {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, "SQLite step failed");
  }
  int64_t ColumnInt(int column) override { return sqlite3_column_int64(stmt_, column); }
  std::string_view ColumnText(int column) override {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return data ? std::string_view(static_cast<const char*>(data), size) : std::string_view();
  }
  bool ColumnIsNull(int column) override {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 protected:
  int64_t Changes() override { return sqlite3_changes64(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteConnection : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    cache_.clear();
    sqlite3_close_v2(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Status Execute(std::string_view sql) override {
    std::string text(sql);
    char* message = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string m = message ? message : "unknown error";
      sqlite3_free(message);
      Error e = SqliteError(db_, "SQLite exec failed");
      return Error(e.code(), "SQLite exec failed: " + m);
    }
    return Ok();
  }

  Result<Statement*> Prepare(std::string_view sql) override {
    auto it = cache_.find(std::string(sql));
    if (it != cache_.end()) return it->second.get();
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &stmt, nullptr) != SQLITE_OK)
      return SqliteError(db_, "SQLite prepare failed");
    auto& slot = cache_[std::string(sql)];
    slot = std::make_unique<SqliteStatement>(db_, stmt);
    return slot.get();
  }

  Status Begin(bool write) override {
    return Execute(write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  }
  Status Commit() override { return Execute("COMMIT"); }
  Status Rollback() override {
    if (sqlite3_get_autocommit(db_)) return Ok();
    return Execute("ROLLBACK");
  }

 private:
  sqlite3* db_;
  std::unordered_map<std::string, std::unique_ptr<SqliteStatement>> cache_;
};

class SqliteDatabase : public Database {
 public:
  explicit SqliteDatabase(std::string path) : path_(std::move(path)) {
    if (path_ == ":memory:") {
      // One named shared-cache memory database per instance, so that all connections see it.
      static std::atomic<int> counter{0};
      uri_ = "file:fhirstone-mem-" + std::to_string(counter++) + "?mode=memory&cache=shared";
      memory_ = true;
    } else {
      uri_ = path_;
    }
  }
  ~SqliteDatabase() override = default;

  Dialect dialect() const override { return Dialect::kSqlite; }

  Result<std::unique_ptr<Connection>> OpenConnection() override {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (memory_) flags |= SQLITE_OPEN_URI;
    if (sqlite3_open_v2(uri_.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      std::string m = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close_v2(db);
      return Error::Unavailable("Cannot open SQLite database '" + path_ + "': " + m);
    }
    auto conn = std::make_unique<SqliteConnection>(db);
    sqlite3_busy_timeout(db, 10000);
    std::string pragmas =
        "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; "
        "PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456;";
    if (!memory_) pragmas = "PRAGMA journal_mode=WAL; " + pragmas;
    FHIRSTONE_RETURN_IF_ERROR(conn->Execute(pragmas));
    return std::unique_ptr<Connection>(std::move(conn));
  }

  // Keeps one connection open for the lifetime of a memory database (it vanishes with the last).
  Status Init() {
    if (!memory_) return Ok();
    auto conn = OpenConnection();
    if (!conn) return std::move(conn).error();
    keep_alive_ = std::move(conn).value();
    return Ok();
  }

 private:
  std::string path_;
  std::string uri_;
  bool memory_ = false;
  std::unique_ptr<Connection> keep_alive_;
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqliteDatabase(std::string_view path) {
  if (path.empty()) return Error::Invalid("sqlite: URL needs a path, e.g. sqlite:var/fhirstone.db");
  auto db = std::make_unique<SqliteDatabase>(std::string(path));
  FHIRSTONE_RETURN_IF_ERROR(db->Init());
  // Open one connection now so that a bad path fails at start-up, not at the first request.
  auto lease = db->Acquire();
  if (!lease) return std::move(lease).error();
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace fhirstone::db::sqlite
