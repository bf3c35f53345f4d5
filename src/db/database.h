// The thin SQL driver: Database (a pool of connections opened from a URL), Connection, Statement
// and Transaction. SQL is written once with `?` placeholders; each Dialect renders what differs
// (placeholders, upserts, types). SQLite is implemented in sqlite/; `postgres://` URLs are
// refused until that store exists. A Connection and its Statements are used by one thread at a
// time (a lease from the pool); Database itself is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace fhirstone::db {

enum class Dialect { kSqlite, kPostgres };

// One value of a queued row (Connection::QueueRow) or of a row bound at once
// (Statement::BindValues).
using Value = std::variant<int64_t, double, std::string_view>;

class Statement {
 public:
  virtual ~Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1. Text and blobs are copied.
  virtual void BindInt(int index, int64_t value) = 0;
  virtual void BindDouble(int index, double value) = 0;
  virtual void BindText(int index, std::string_view value) = 0;
  virtual void BindBlob(int index, std::string_view value) = 0;
  virtual void BindNull(int index) = 0;
  // Binds `values` to the parameters 1, 2, ... in order (text as text).
  void BindValues(std::span<const Value> values);
  // Advances to the next row: true when a row is available, false when done.
  virtual Result<bool> Step() = 0;
  // Columns are numbered from 0; views stay valid until the next Step() or Reset().
  virtual int64_t ColumnInt(int column) = 0;
  virtual double ColumnDouble(int column) = 0;
  virtual std::string_view ColumnText(int column) = 0;
  virtual bool ColumnIsNull(int column) = 0;
  // ColumnText, or nullopt for NULL (which ColumnText reads as empty).
  virtual std::optional<std::string_view> ColumnTextOrNull(int column) {
    if (ColumnIsNull(column)) return std::nullopt;
    return ColumnText(column);
  }
  // Makes the statement ready to run again (keeps nothing bound).
  virtual void Reset() = 0;
  // Runs to completion, for statements without rows; returns the rows changed.
  Result<int64_t> Run();

 protected:
  Statement() = default;
  virtual int64_t Changes() = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  virtual Dialect dialect() const = 0;
  // Runs one or more statements without parameters.
  virtual Status Execute(std::string_view sql) = 0;
  // A prepared statement, cached by its SQL text; owned by the connection. Reset before return.
  virtual Result<Statement*> Prepare(std::string_view sql) = 0;
  // A statement for a large result, read a batch of rows at a time: memory stays bounded and
  // other statements may run between its rows (a server-side cursor on PostgreSQL, which holds
  // a whole result otherwise; SQLite steps through any result that way). Inside a transaction
  // only. Cached like Prepare.
  virtual Result<Statement*> PrepareScan(std::string_view sql) { return Prepare(sql); }
  // Transactions: a write transaction takes the write lock at once (no lost updates).
  virtual Status Begin(bool write) = 0;
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;
  // Whether the pool may lend this connection again (false: broken, or left inside a
  // transaction); such a connection is closed when its lease ends.
  virtual bool Reusable() { return true; }

  // Deferred inserts. Queues one row for `table` (`columns` as "a, b, c", `values` in that
  // order), inserted before the next statement that names the table and before the commit; a
  // statement that fails there fails. A ROLLBACK drops the rows queued; a ROLLBACK TO a
  // savepoint drops those queued since the savepoint opened, and keeps the others.
  // - PostgreSQL: the rows of a table go in one batch (COPY), also sent at each SAVEPOINT and
  //   RELEASE.
  // - SQLite: rows wait past savepoints, until the commit (or a statement naming their table):
  //   an FTS5 table writes an index segment whenever a savepoint opens or closes, so its rows
  //   are worth gathering from all the writes of a group commit. One INSERT per row, no
  //   conflict clause (but for `keyed` rows), the tables' rows in the order queued.
  // `keyed`: the table is keyed by all its columns (a row repeated in full is kept once) and its
  // rows may go in any order. SQLite inserts them OR IGNORE, sorted by their columns after the
  // first (the value's): the inserts into the table's value index then come in its order, each
  // one near the last.
  // Returns false where no row is queued (outside a transaction): insert the row with a
  // statement then.
  virtual bool QueueRow(std::string_view table, std::string_view columns,
                        std::span<const Value> values, bool keyed = false) {
    (void)table, (void)columns, (void)values, (void)keyed;
    return false;
  }
  // Sends the rows queued for `table` now where they go in batches per statement (PostgreSQL), so
  // that an error in them is the caller's; SQLite keeps them until the commit, as said above.
  virtual Status SendQueued(std::string_view table) {
    (void)table;
    return Ok();
  }

 protected:
  Connection() = default;
};

class Database;

// A connection borrowed from the pool; returned when destroyed.
class Lease {
 public:
  Lease(Database* db, std::unique_ptr<Connection> conn) : db_(db), conn_(std::move(conn)) {}
  Lease(Lease&&) = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease();
  Connection* operator->() { return conn_.get(); }
  Connection& operator*() { return *conn_; }

 private:
  Database* db_;
  std::unique_ptr<Connection> conn_;
};

// Commits or rolls back one transaction on a leased connection (rollback unless Commit()).
class Transaction {
 public:
  static Result<Transaction> Begin(Connection& conn, bool write);
  Transaction(Transaction&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status Commit();

 private:
  explicit Transaction(Connection* conn) : conn_(conn) {}
  Connection* conn_;
};

// One migration step of a store's schema: applied once, in order, recorded in schema_migrations.
// `postgres_sql`, when given, replaces `sql` on PostgreSQL (for what the dialect rendering does
// not cover).
struct Migration {
  Migration(int version, std::string name, std::string sql, std::string postgres_sql = {})
      : version(version),
        name(std::move(name)),
        sql(std::move(sql)),
        postgres_sql(std::move(postgres_sql)) {}
  int version;
  std::string name;
  std::string sql;
  std::string postgres_sql;
};

class Database {
 public:
  virtual ~Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Opens `url`: "sqlite:PATH" (created if absent, WAL mode) or "sqlite::memory:" for tests.
  static Result<std::unique_ptr<Database>> Open(std::string_view url);

  virtual Dialect dialect() const = 0;
  // A connection for the calling thread: an idle one, or a new one while fewer than the pool's
  // maximum are open; otherwise waits up to the pool's wait for one to be given back, then
  // Error::Unavailable.
  Result<Lease> Acquire();
  // Bounds the pool: at most `max_connections` open at once (<= 0: unbounded, the default),
  // waiting up to `wait` for one. Call before the first Acquire or while none is lent.
  void LimitPool(int max_connections, std::chrono::milliseconds wait);
  // Connections open now (lent and idle).
  int OpenConnections() const;
  // Applies the migrations that are not yet applied, each in its own transaction.
  Status Migrate(const std::vector<Migration>& migrations);
  // Whether the database answers (for readiness checks).
  Status Ping();

 protected:
  Database() = default;
  virtual Result<std::unique_ptr<Connection>> OpenConnection() = 0;

 private:
  friend class Lease;
  void Release(std::unique_ptr<Connection> conn);

  struct Pool;
  std::shared_ptr<Pool> pool_ = MakePool();
  static std::shared_ptr<Pool> MakePool();
};

}  // namespace fhirstone::db
