#include "db/sqlite/sqlite_database.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "db/sqlite/journal_vfs.h"

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
  void BindDouble(int index, double value) override { sqlite3_bind_double(stmt_, index, value); }
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
    auto it = cache_.find(sql);
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
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<SqliteStatement>, Hash, std::equal_to<>> cache_;
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
      checkpointer_ = std::thread([this] { CheckpointLoop(); });
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
