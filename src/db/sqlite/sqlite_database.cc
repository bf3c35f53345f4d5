#include "db/sqlite/sqlite_database.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/thread.h"
#include "db/sqlite/journal_vfs.h"
#include "db/sqlite/page_cache.h"

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

// What a statement does to the transaction, as far as queued rows (RowQueue) care.
enum class StatementKind { kOther, kBegin, kCommit, kRollback, kSavepoint, kRelease, kRollbackTo };

// The kind of `sql` (one statement) and, for savepoint statements, the savepoint's name.
StatementKind Classify(std::string_view sql, std::string* name) {
  auto words = [&] {
    std::vector<std::string> out;
    std::string word;
    for (char c : sql) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';') {
        if (!word.empty()) out.push_back(std::move(word));
        word.clear();
        if (c == ';') break;
      } else {
        word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
    }
    if (!word.empty()) out.push_back(std::move(word));
    return out;
  };
  // Cheap test first: most statements are none of these.
  size_t start = sql.find_first_not_of(" \t\n\r");
  if (start == std::string_view::npos) return StatementKind::kOther;
  char first = static_cast<char>(std::toupper(static_cast<unsigned char>(sql[start])));
  if (first != 'B' && first != 'C' && first != 'E' && first != 'R' && first != 'S')
    return StatementKind::kOther;
  std::vector<std::string> w = words();
  if (w.empty()) return StatementKind::kOther;
  // SQLite compares savepoint names without regard to case (ASCII).
  auto last = [&] { *name = w.back(); };
  if (w[0] == "BEGIN") return StatementKind::kBegin;
  if (w[0] == "COMMIT" || w[0] == "END") return StatementKind::kCommit;
  if (w[0] == "SAVEPOINT" && w.size() == 2) return last(), StatementKind::kSavepoint;
  if (w[0] == "RELEASE" && w.size() >= 2) return last(), StatementKind::kRelease;
  if (w[0] == "ROLLBACK") {
    if (std::find(w.begin(), w.end(), "TO") != w.end() && w.back() != "TO")
      return last(), StatementKind::kRollbackTo;
    return StatementKind::kRollback;
  }
  return StatementKind::kOther;
}

// Rows queued by Connection::QueueRow, inserted all at once: before the commit, and before any
// statement that names their table. Savepoints do not send them: a savepoint makes SQLite's
// FTS5 tables write their pending terms as a new index segment when it opens and when it closes,
// so rows inserted inside each write's savepoint of a group commit cost a segment (and later
// merges) each. The queue follows savepoints instead: a ROLLBACK TO drops the rows queued since
// its savepoint opened, and queues again those sent since then that were queued before (the
// rollback took them out of the database).
class RowQueue {
 public:
  using Value = db::Value;
  struct Table {
    std::string name, columns, sql;
    bool keyed = false;  // INSERT OR IGNORE, rows sent sorted (Connection::QueueRow)
  };
  // Bit i: table i (every bit past the 64th table).
  static uint64_t Bit(size_t table) { return table < 64 ? uint64_t{1} << table : ~uint64_t{0}; }

  // Index of the table (registered on first use; its INSERT built once).
  size_t TableIndex(std::string_view table, std::string_view columns, size_t arity, bool keyed) {
    for (size_t i = 0; i < tables_.size(); ++i)
      if (tables_[i].name == table && tables_[i].columns == columns && tables_[i].keyed == keyed)
        return i;
    std::string sql = std::string(keyed ? "INSERT OR IGNORE INTO " : "INSERT INTO ") +
                      std::string(table) + " (" + std::string(columns) + ") VALUES (?";
    for (size_t i = 1; i < arity; ++i) sql += ", ?";
    sql += ")";
    tables_.push_back({std::string(table), std::string(columns), std::move(sql), keyed});
    ++version_;
    return tables_.size() - 1;
  }

  void Add(size_t table, std::span<const Value> values) {
    rows_.push_back({table, values_.size(), values.size()});
    pending_mask_ |= Bit(table);
    for (const Value& v : values) {
      Stored s;
      if (const auto* n = std::get_if<int64_t>(&v)) {
        s.kind = Stored::kInt;
        s.i = *n;
      } else if (const auto* d = std::get_if<double>(&v)) {
        s.kind = Stored::kDouble;
        s.d = *d;
      } else {
        auto text = std::get<std::string_view>(v);
        s.kind = Stored::kText;
        s.offset = text_.size();
        s.size = text.size();
        text_.append(text);
      }
      values_.push_back(s);
    }
  }

  bool Pending() const { return sent_ < rows_.size(); }
  uint64_t version() const { return version_; }
  const std::vector<Table>& tables() const { return tables_; }

  // Whether a statement whose text names the tables of `mask` (bit i: tables()[i]) must wait
  // for queued rows.
  bool Concerns(uint64_t mask) const { return (mask & pending_mask_) != 0; }

  // Sends the rows not sent yet through `insert` (table, values): table by table, a keyed
  // table's rows sorted by their values after the first then by the first, the others' in the
  // order queued. (rows_ keeps the order queued: the savepoints' marks count in it.) A failed
  // send leaves the rows it inserted in the database and every row still queued: the statement
  // that sent them fails, and its caller rolls back to a savepoint or the whole transaction (as
  // every caller does), which takes those rows out again and re-queues what the savepoint's
  // mark counts as unsent. Sending again without a rollback would insert the full-text rows
  // twice.
  template <typename Insert>
  Status Send(Insert&& insert) {
    std::vector<size_t> order(rows_.size() - sent_);
    for (size_t i = 0; i < order.size(); ++i) order[i] = sent_ + i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const Row& x = rows_[a];
      const Row& y = rows_[b];
      if (x.table != y.table) return x.table < y.table;
      if (!tables_[x.table].keyed) return false;  // stable: as queued
      int c = CompareValues(x, y, 1);
      if (c == 0) c = CompareValues(x, y, 0);
      return c < 0;
    });
    std::vector<Value> values;
    for (size_t row : order) {
      const Row& r = rows_[row];
      values.clear();
      for (size_t i = r.first; i < r.first + r.count; ++i) {
        const Stored& s = values_[i];
        if (s.kind == Stored::kInt) {
          values.emplace_back(s.i);
        } else if (s.kind == Stored::kDouble) {
          values.emplace_back(s.d);
        } else {
          values.emplace_back(std::string_view(text_).substr(s.offset, s.size));
        }
      }
      FHIRSTONE_RETURN_IF_ERROR(insert(tables_[r.table], values));
    }
    sent_ = rows_.size();
    pending_mask_ = 0;
    return Ok();
  }

  void Clear() {
    rows_.clear();
    values_.clear();
    text_.clear();
    marks_.clear();
    sent_ = 0;
    pending_mask_ = 0;
  }

  // `began`: the savepoint began the transaction (no BEGIN): releasing it commits.
  void Opened(const std::string& savepoint, bool began) {
    marks_.push_back({savepoint, rows_.size(), values_.size(), text_.size(), sent_, began});
  }
  bool ReleaseCommits(const std::string& savepoint) const {
    for (size_t i = marks_.size(); i-- > 0;)
      if (marks_[i].name == savepoint) return i == 0 && marks_[0].began;
    return false;
  }
  void Released(const std::string& savepoint) {
    for (size_t i = marks_.size(); i-- > 0;) {
      if (marks_[i].name == savepoint) {
        marks_.resize(i);
        return;
      }
    }
  }
  void RolledBackTo(const std::string& savepoint) {
    for (size_t i = marks_.size(); i-- > 0;) {
      if (marks_[i].name != savepoint) continue;
      const Mark& m = marks_[i];
      rows_.resize(m.rows);
      values_.resize(m.values);
      text_.resize(m.text);
      sent_ = std::min(sent_, m.sent);
      pending_mask_ = 0;
      for (size_t row = sent_; row < rows_.size(); ++row) pending_mask_ |= Bit(rows_[row].table);
      marks_.resize(i + 1);  // the savepoint stays open
      return;
    }
  }

 private:
  struct Stored {
    enum Kind : uint8_t { kInt, kDouble, kText } kind = kInt;
    int64_t i = 0;
    double d = 0;
    size_t offset = 0, size = 0;
  };
  struct Row {
    size_t table, first, count;
  };
  struct Mark {
    std::string name;
    size_t rows, values, text, sent;
    bool began;
  };
  // Compares the values of rows x and y (of one table) from value `from` on (past `from == 0`:
  // the first value alone).
  int CompareValues(const Row& x, const Row& y, size_t from) const {
    size_t end = from == 0 ? 1 : std::min(x.count, y.count);
    for (size_t i = from; i < end; ++i) {
      const Stored& a = values_[x.first + i];
      const Stored& b = values_[y.first + i];
      if (a.kind != b.kind) return a.kind < b.kind ? -1 : 1;
      int c = 0;
      if (a.kind == Stored::kInt) {
        c = a.i < b.i ? -1 : a.i > b.i;
      } else if (a.kind == Stored::kDouble) {
        c = a.d < b.d ? -1 : a.d > b.d;
      } else {
        c = std::string_view(text_)
                .substr(a.offset, a.size)
                .compare(std::string_view(text_).substr(b.offset, b.size));
      }
      if (c != 0) return c;
    }
    return 0;
  }

  std::vector<Table> tables_;
  uint64_t version_ = 0;
  std::vector<Row> rows_;
  std::vector<Stored> values_;
  std::string text_;
  std::vector<Mark> marks_;
  size_t sent_ = 0;            // rows_[0, sent_) are in the database
  uint64_t pending_mask_ = 0;  // the tables of rows_[sent_, end)
};

class SqliteConnection;
// Called around each statement's steps by SqliteStatement: queued rows go first where the
// statement needs them; savepoints and transaction ends move the queue's marks.
Status BeforeStep(SqliteConnection& conn, class SqliteStatement& stmt);
void AfterStatement(SqliteConnection& conn, StatementKind kind, const std::string& name);

class SqliteStatement : public Statement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, SqliteConnection* owner, std::string_view sql)
      : db_(db), stmt_(stmt), owner_(owner), sql_(sql) {
    kind_ = Classify(sql, &name_);
  }
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  StatementKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // Bit i set: the statement's text names table i of the connection's queue (as of `version`).
  uint64_t TableMask(const RowQueue& queue) {
    if (mask_version_ != queue.version()) {
      mask_ = 0;
      const auto& tables = queue.tables();
      for (size_t i = 0; i < tables.size(); ++i)
        if (sql_.find(tables[i].name) != std::string_view::npos) mask_ |= RowQueue::Bit(i);
      mask_version_ = queue.version();
    }
    return mask_;
  }

  void BindInt(int index, int64_t value) override { sqlite3_bind_int64(stmt_, index, value); }
  void BindDouble(int index, double value) override { sqlite3_bind_double(stmt_, index, value); }
  void BindText(int index, std::string_view value) override {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, std::string_view value) override {
    sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int index) override { sqlite3_bind_null(stmt_, index); }

  Result<bool> Step() override {
    FHIRSTONE_RETURN_IF_ERROR(BeforeStep(*owner_, *this));
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) {
      if (kind_ != StatementKind::kOther) AfterStatement(*owner_, kind_, name_);
      return false;
    }
    return SqliteError(db_, "SQLite step failed");
  }
  int64_t ColumnInt(int column) override { return sqlite3_column_int64(stmt_, column); }
  double ColumnDouble(int column) override { return sqlite3_column_double(stmt_, column); }
  // Text through the column's value: one lookup of the column (sqlite3_column_blob and _bytes
  // each look it up and check the connection's state). The value is unprotected, which is safe
  // here: a connection is used by one thread at a time (SQLITE_OPEN_NOMUTEX).
  std::string_view ColumnText(int column) override {
    sqlite3_value* value = sqlite3_column_value(stmt_, column);
    const void* data = sqlite3_value_blob(value);
    return data ? std::string_view(static_cast<const char*>(data), sqlite3_value_bytes(value))
                : std::string_view();
  }
  std::optional<std::string_view> ColumnTextOrNull(int column) override {
    sqlite3_value* value = sqlite3_column_value(stmt_, column);
    if (sqlite3_value_type(value) == SQLITE_NULL) return std::nullopt;
    const void* data = sqlite3_value_blob(value);
    return data ? std::string_view(static_cast<const char*>(data), sqlite3_value_bytes(value))
                : std::string_view();
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
  SqliteConnection* owner_;  // the connection, whose queue of rows the statement may need
  std::string_view sql_;     // the connection's cache key: lives as long as the statement
  StatementKind kind_;
  std::string name_;  // savepoint statements: the savepoint's name
  uint64_t mask_ = 0;
  uint64_t mask_version_ = ~uint64_t{0};
};

// WAL checkpoints. A background thread copies the WAL into the database once it holds
// kCheckpointPages (SqliteDatabase::CheckpointLoop), so that commits do not wait for it. Under
// sustained writes that copy never reaches the WAL's end (frames keep coming while it runs), and a
// WAL restarts from its beginning only once fully copied with no reader left in it: it grew
// without bound (6 GB for a 250 MB database after 30 s of small transactions). So:
// - the thread runs passes while they leave much and make progress; then, with the WAL past
//   kRestartPages and at most kTailPages left, it copies those holding the write lock and waits
//   up to 50 ms for the readers to leave the WAL (SQLITE_CHECKPOINT_RESTART): writers wait for
//   the tail only, and the next write transaction restarts the WAL;
// - should the WAL still hold kInlineCheckpointPages when a write transaction begins (readers
//   held the thread back, or writes came faster than its copies), that transaction's writer
//   copies it after its commit, still holding the write lock.
constexpr int kCheckpointPages = 4000;
constexpr int kRestartPages = 2 * kCheckpointPages;
constexpr int kTailPages = kCheckpointPages / 4;
constexpr int kInlineCheckpointPages = 8 * kCheckpointPages;

// The WAL's state, shared by the connections of one database and its checkpoint thread.
struct WalState {
  std::atomic<int> frames{0};  // after the last commit (the WAL hook)
  std::mutex running;          // held while a checkpoint runs (after the write mutex when both)
};

// Runs a checkpoint of `mode` on `db` (after the one running, if any).
int RunCheckpoint(sqlite3* db, WalState& wal, int mode, int* frames, int* copied) {
  std::lock_guard running(wal.running);
  return sqlite3_wal_checkpoint_v2(db, nullptr, mode, frames, copied);
}

class SqliteConnection : public Connection {
 public:
  // `write_mutex` is shared by every connection of one database: writers queue on it in-process
  // instead of spinning in SQLite's busy handler. `wal_pages`: the WAL's size after the last
  // commit (nullptr: no WAL).
  SqliteConnection(sqlite3* db, std::mutex* write_mutex, WalState* wal)
      : db_(db), write_mutex_(write_mutex), wal_(wal) {}
  ~SqliteConnection() override {
    if (holds_write_lock_) (void)Rollback();
    cache_.clear();
    sqlite3_close_v2(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Status Execute(std::string_view sql) override {
    // Whatever the statements do, the queued rows go first (the savepoints' marks follow).
    if (queue_.Pending()) FHIRSTONE_RETURN_IF_ERROR(SendQueued());
    // One statement (text past its ';' aside) may move the savepoints' marks; several are
    // migrations and the like, which use no savepoints.
    std::string name;
    size_t end = sql.find(';');
    bool one = end == std::string_view::npos ||
               sql.find_first_not_of(" \t\n\r;", end) == std::string_view::npos;
    StatementKind kind = one ? Classify(sql, &name) : StatementKind::kOther;
    if (kind == StatementKind::kSavepoint) opening_began_ = sqlite3_get_autocommit(db_) != 0;
    std::string text(sql);
    char* message = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string m = message ? message : "unknown error";
      sqlite3_free(message);
      Error e = SqliteError(db_, "SQLite exec failed");
      return Error(e.code(), "SQLite exec failed: " + m);
    }
    if (kind != StatementKind::kOther) AfterStatement(kind, name);
    return Ok();
  }

  Result<Statement*> Prepare(std::string_view sql) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second.get();
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &stmt, nullptr) != SQLITE_OK)
      return SqliteError(db_, "SQLite prepare failed");
    auto [it2, inserted] = cache_.emplace(std::string(sql), nullptr);
    it2->second = std::make_unique<SqliteStatement>(db_, stmt, this, it2->first);
    return it2->second.get();
  }

  bool QueueRow(std::string_view table, std::string_view columns, std::span<const Value> values,
                bool keyed) override {
    if (sqlite3_get_autocommit(db_)) return false;  // no transaction: nothing would send it
    queue_.Add(queue_.TableIndex(table, columns, values.size(), keyed), values);
    return true;
  }

  Status BeforeStep(SqliteStatement& stmt) {
    if (sending_) return Ok();
    switch (stmt.kind()) {
      case StatementKind::kCommit:
        return SendQueued();
      case StatementKind::kBegin:
        return Ok();  // a BEGIN that fails inside a transaction leaves its rows queued
      case StatementKind::kRollback:
        queue_.Clear();
        return Ok();
      case StatementKind::kSavepoint:
        opening_began_ = sqlite3_get_autocommit(db_) != 0;
        return Ok();  // AfterStatement sets the mark
      case StatementKind::kRelease:
        // Releasing the savepoint that began the transaction commits it.
        if (queue_.Pending() && queue_.ReleaseCommits(stmt.name())) return SendQueued();
        return Ok();
      case StatementKind::kRollbackTo:
        return Ok();  // AfterStatement moves the marks
      case StatementKind::kOther:
        if (queue_.Pending() && queue_.Concerns(stmt.TableMask(queue_))) return SendQueued();
        return Ok();
    }
    return Ok();
  }

  void AfterStatement(StatementKind kind, const std::string& name) {
    switch (kind) {
      case StatementKind::kSavepoint:
        // A savepoint that began the transaction: what a transaction that SQLite ended on its
        // own (after an error) left queued is no longer of use.
        if (opening_began_) queue_.Clear();
        if (!sqlite3_get_autocommit(db_)) queue_.Opened(name, opening_began_);
        break;
      case StatementKind::kRelease:
        queue_.Released(name);
        if (sqlite3_get_autocommit(db_)) queue_.Clear();  // the outermost savepoint committed
        break;
      case StatementKind::kRollbackTo:
        queue_.RolledBackTo(name);
        break;
      case StatementKind::kCommit:
      case StatementKind::kRollback:
      case StatementKind::kBegin:  // a new transaction: nothing queued belongs to it
        queue_.Clear();
        break;
      case StatementKind::kOther:
        break;
    }
  }

  Status Begin(bool write) override {
    if (!write) return RunCached("BEGIN DEFERRED");
    write_mutex_->lock();
    holds_write_lock_ = true;
    if (wal_) wal_at_begin_ = wal_->frames.load(std::memory_order_relaxed);
    auto status = RunCached("BEGIN IMMEDIATE");
    if (!status) ReleaseWriteLock();
    return status;
  }
  Status Commit() override {
    auto status = RunCached("COMMIT");
    if (!status) return status;  // the caller rolls back, which releases the write lock
    if (holds_write_lock_ && wal_ && wal_at_begin_ >= kInlineCheckpointPages) {
      // After the background pass, if one runs (RunCheckpoint waits): this one copies the rest.
      int frames = 0, copied = 0;
      (void)RunCheckpoint(db_, *wal_, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
    }
    ReleaseWriteLock();
    return status;
  }
  Status Rollback() override {
    Status status = Ok();
    queue_.Clear();
    if (!sqlite3_get_autocommit(db_)) status = RunCached("ROLLBACK");
    ReleaseWriteLock();
    return status;
  }

 private:
  // Runs one of the transaction statements, prepared once per connection (sqlite3_exec would
  // compile it at every transaction).
  Status RunCached(std::string_view sql) {
    auto stmt = Prepare(sql);
    if (!stmt) return std::move(stmt).error();
    auto done = (*stmt)->Run();
    if (!done) return std::move(done).error();
    return Ok();
  }

  // Inserts the queued rows not yet in the database, in their order. SQLite may have rolled the
  // transaction back on its own after an error (a full disk, say): the rows are dropped then,
  // never inserted outside it.
  Status SendQueued() {
    if (!queue_.Pending()) return Ok();
    if (sqlite3_get_autocommit(db_)) {
      queue_.Clear();
      return Error::Unavailable("The transaction ended before its queued rows were written");
    }
    sending_ = true;
    struct Done {  // also when an exception (std::bad_alloc) leaves
      bool& sending;
      ~Done() { sending = false; }
    } reset{sending_};
    Status sent =
        queue_.Send([&](const RowQueue::Table& table, std::span<const Value> values) -> Status {
          auto stmt = Prepare(table.sql);
          if (!stmt) return std::move(stmt).error();
          (*stmt)->BindValues(values);
          auto done = (*stmt)->Run();
          if (!done) return std::move(done).error();
          return Ok();
        });
    return sent;
  }

  void ReleaseWriteLock() {
    if (holds_write_lock_) {
      holds_write_lock_ = false;
      write_mutex_->unlock();
    }
  }

  sqlite3* db_;
  std::mutex* write_mutex_;
  WalState* wal_;  // nullptr: no WAL (a memory database)
  int wal_at_begin_ = 0;
  bool holds_write_lock_ = false;
  RowQueue queue_;
  bool sending_ = false;        // SendQueued runs: its own statements pass BeforeStep
  bool opening_began_ = false;  // the savepoint being opened begins the transaction
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<SqliteStatement>, Hash, std::equal_to<>> cache_;
};

Status BeforeStep(SqliteConnection& conn, SqliteStatement& stmt) { return conn.BeforeStep(stmt); }
void AfterStatement(SqliteConnection& conn, StatementKind kind, const std::string& name) {
  conn.AfterStatement(kind, name);
}

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
  ~SqliteDatabase() override {
    if (checkpointer_.joinable()) {
      {
        std::lock_guard lock(checkpoint_mu_);
        stopping_ = true;
      }
      checkpoint_cv_.notify_all();
      checkpointer_.join();
    }
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Result<std::unique_ptr<Connection>> OpenConnection() override {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (memory_) flags |= SQLITE_OPEN_URI;
    if (sqlite3_open_v2(uri_.c_str(), &db, flags, JournalVfsName()) != SQLITE_OK) {
      std::string m = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close_v2(db);
      return Error::Unavailable("Cannot open SQLite database '" + path_ + "': " + m);
    }
    auto conn = std::make_unique<SqliteConnection>(db, &write_mutex_, memory_ ? nullptr : &wal_);
    sqlite3_busy_timeout(db, 10000);
    // temp_store=FILE: past 64 KiB a savepoint journal becomes a "file", which the VFS of
    // journal_vfs.h keeps in memory. (temp_store=MEMORY keeps it in SQLite's chunk list, which
    // made a group commit of large writes quadratic: a quarter of an import's time.)
    // mmap_size: pages are read from the process's one mapping of the file (journal_vfs.h),
    // as far as it reaches.
    std::string pragmas =
        "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; "
        "PRAGMA temp_store=FILE; PRAGMA mmap_size=274877906944;";
    if (!memory_) {
      // Checkpoints run on a background thread (CheckpointLoop; see kCheckpointPages).
      pragmas = "PRAGMA journal_mode=WAL; " + pragmas;
    }
    FHIRSTONE_RETURN_IF_ERROR(conn->Execute(pragmas));
    // Replaces SQLite's auto-checkpoint hook: commits only signal the checkpointer thread.
    if (!memory_) sqlite3_wal_hook(db, &SqliteDatabase::OnWalCommit, this);
    return std::unique_ptr<Connection>(std::move(conn));
  }

  // Keeps one connection open for the lifetime of a memory database (it vanishes with the last).
  // A memory database keeps one connection open; a file database (once created by its first
  // connection) gets its checkpointer thread.
  Status Init() {
    if (!memory_) return Ok();
    auto conn = OpenConnection();
    if (!conn) return std::move(conn).error();
    keep_alive_ = std::move(conn).value();
    return Ok();
  }

  void StartCheckpointer() {
    if (!memory_ && !checkpointer_.joinable())
      checkpointer_ = std::thread([this] {
        NameThisThread("fs-checkpoint");
        CheckpointLoop();
      });
  }

 private:
  // Called by SQLite after each commit with the WAL's size in pages.
  static int OnWalCommit(void* self, sqlite3*, const char*, int pages) {
    auto* db = static_cast<SqliteDatabase*>(self);
    db->wal_.frames.store(pages, std::memory_order_relaxed);
    if (pages >= kCheckpointPages) db->checkpoint_cv_.notify_one();
    return SQLITE_OK;
  }

  // Copies the WAL back into the database file when it grew (or once a second): PASSIVE
  // checkpoints, which block neither readers nor writers, then the tail described at
  // kCheckpointPages.
  void CheckpointLoop() {
    sqlite3* db = nullptr;
    // Through the same VFS as the pool's connections: the process's mapping of the file keeps a
    // descriptor open while any of them is (journal_vfs.cc, AcquireMap).
    if (sqlite3_open_v2(uri_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        JournalVfsName()) != SQLITE_OK) {
      sqlite3_close_v2(db);
      return;
    }
    sqlite3_busy_timeout(db, 1000);
    // A connection learns the journal mode when it first reads the database.
    sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    std::unique_lock lock(checkpoint_mu_);
    while (!stopping_) {
      checkpoint_cv_.wait_for(lock, std::chrono::seconds(1));
      if (stopping_) break;
      lock.unlock();
      int frames = 0, copied = 0;
      if (RunCheckpoint(db, wal_, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) == SQLITE_OK) {
        auto left = [&] { return wal_.frames.load(std::memory_order_relaxed) - copied; };
        for (int pass = 0; pass < 4 && left() > kTailPages; ++pass) {
          int before = copied;
          if (RunCheckpoint(db, wal_, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) != SQLITE_OK ||
              copied <= before)
            break;  // a reader holds it back: no tail under the write lock this time
        }
        if (wal_.frames.load(std::memory_order_relaxed) >= kRestartPages && left() <= kTailPages) {
          std::lock_guard writers(write_mutex_);
          sqlite3_busy_timeout(db, 50);
          (void)RunCheckpoint(db, wal_, SQLITE_CHECKPOINT_RESTART, &frames, &copied);
          sqlite3_busy_timeout(db, 1000);
        }
      }
      lock.lock();
    }
    sqlite3_close_v2(db);
  }

  WalState wal_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool stopping_ = false;
  std::thread checkpointer_;
  std::string path_;
  std::string uri_;
  bool memory_ = false;
  std::unique_ptr<Connection> keep_alive_;
  std::mutex write_mutex_;
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqliteDatabase(std::string_view path) {
  // Once per process, before SQLite initializes: no global memory statistics (their mutex is
  // taken on every allocation and serializes all connections). Savepoint journals stay in
  // memory through the VFS of journal_vfs.h.
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    InstallPageCache();  // page_cache.h
    return true;
  }();
  (void)configured;
  if (path.empty()) return Error::Invalid("sqlite: URL needs a path, e.g. sqlite:var/fhirstone.db");
  auto db = std::make_unique<SqliteDatabase>(std::string(path));
  FHIRSTONE_RETURN_IF_ERROR(db->Init());
  // Open one connection now so that a bad path fails at start-up, not at the first request.
  {
    auto lease = db->Acquire();
    if (!lease) return std::move(lease).error();
  }
  db->StartCheckpointer();
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace fhirstone::db::sqlite
