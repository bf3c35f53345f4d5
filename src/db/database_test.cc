// The SQL driver on each dialect: SQLite always, PostgreSQL on the throwaway cluster that
// `make test` starts (tests/support/databases.h).
#include "db/database.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "db/postgres/postgres_database.h"
#include "db/sqlite/journal_vfs.h"
#include "db/sqlite/page_cache.h"
#include "support/databases.h"

namespace fhirstone::db {
namespace {

std::vector<Migration> TestMigrations() {
  return {{1, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"},
          {2, "items.note", "ALTER TABLE items ADD COLUMN note TEXT"},
          {3, "blobs", "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB, big INTEGER)"}};
}

// Inserts `rows` items named `prefix` followed by their number, with `note` (NULL when empty), in
// the transaction open on `conn`.
void InsertItemsIn(Connection& conn, int rows, const std::string& prefix,
                   std::string_view note = {}) {
  auto insert = conn.Prepare("INSERT INTO items (name, note) VALUES (?, ?)");
  ASSERT_TRUE(insert);
  for (int i = 0; i < rows; ++i) {
    (*insert)->BindText(1, prefix + std::to_string(i));
    if (note.empty()) {
      (*insert)->BindNull(2);
    } else {
      (*insert)->BindText(2, note);
    }
    ASSERT_TRUE((*insert)->Run());
  }
}

// The same in a transaction of its own.
void InsertItems(Connection& conn, int rows, const std::string& prefix) {
  auto tx = Transaction::Begin(conn, true);
  ASSERT_TRUE(tx);
  InsertItemsIn(conn, rows, prefix);
  ASSERT_TRUE(tx->Commit());
}

// How many items match `where`.
int64_t CountItems(Connection& conn, std::string_view where) {
  auto stmt = conn.Prepare("SELECT count(*) FROM items WHERE " + std::string(where));
  EXPECT_TRUE(stmt);
  if (!stmt) return -1;
  auto row = (*stmt)->Step();
  EXPECT_TRUE(row && *row);
  int64_t n = row && *row ? (*stmt)->ColumnInt(0) : -1;
  (*stmt)->Reset();
  return n;
}

class DialectTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fhirstone-dialect-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string url;
    FHIRSTONE_ASSIGN_FRESH_DATABASE(db_, GetParam(), dir_, &url);
  }
  void TearDown() override {
    db_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
};

TEST_P(DialectTest, MigratesOnceAndCommitsOrRollsBack) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  ASSERT_TRUE(db_->Migrate(TestMigrations()));  // idempotent
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  Connection& conn = **lease;
  EXPECT_EQ(conn.dialect(), GetParam());
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    auto insert = conn.Prepare("INSERT INTO items (name, note) VALUES (?, ?)");
    ASSERT_TRUE(insert) << insert.error().message();
    (*insert)->BindText(1, "kept");
    (*insert)->BindNull(2);
    EXPECT_EQ(*(*insert)->Run(), 1);
    ASSERT_TRUE(tx->Commit());
  }
  {
    auto tx = Transaction::Begin(conn, true);
    auto insert = conn.Prepare("INSERT INTO items (name, note) VALUES (?, ?)");
    (*insert)->BindText(1, "dropped");
    (*insert)->BindText(2, "x");
    ASSERT_TRUE((*insert)->Run());
    // no commit: rolled back
  }
  auto select = conn.Prepare("SELECT name, note FROM items ORDER BY id");
  ASSERT_TRUE(select);
  std::vector<std::string> names;
  while (*(*select)->Step()) {
    names.emplace_back((*select)->ColumnText(0));
    EXPECT_TRUE((*select)->ColumnIsNull(1));
  }
  (*select)->Reset();
  EXPECT_EQ(names, std::vector<std::string>{"kept"});
  auto count = conn.Prepare("SELECT count(*) FROM schema_migrations");
  ASSERT_TRUE(*(*count)->Step());
  EXPECT_EQ((*count)->ColumnInt(0), 3);
  (*count)->Reset();
}

TEST_P(DialectTest, ConstraintViolationIsAConflict) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  auto lease = db_->Acquire();
  auto insert = (*lease)->Prepare("INSERT INTO items (id, name) VALUES (?, ?)");
  (*insert)->BindInt(1, 1);
  (*insert)->BindText(2, "a");
  ASSERT_TRUE((*insert)->Run());
  (*insert)->BindInt(1, 1);
  (*insert)->BindText(2, "b");
  auto again = (*insert)->Run();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kConflict);
  EXPECT_FALSE((*lease)->Prepare("SELEC nonsense"));
  EXPECT_TRUE(db_->Ping());
}

TEST_P(DialectTest, BlobsLargeIntegersAndQuotedQuestionMarksRoundTrip) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  auto lease = db_->Acquire();
  std::string bytes("a\0b\xff\x01{\"json\":1}", 14);
  int64_t big = 1764400000000000;  // microseconds since the epoch: beyond 32 bits
  auto insert = (*lease)->Prepare("INSERT INTO blobs (data, big) VALUES (?, ?)");
  ASSERT_TRUE(insert) << insert.error().message();
  (*insert)->BindBlob(1, bytes);
  (*insert)->BindInt(2, big);
  ASSERT_TRUE((*insert)->Run());
  auto select = (*lease)->Prepare("SELECT data, big, 'why?' FROM blobs WHERE big = ?");
  ASSERT_TRUE(select) << select.error().message();
  (*select)->BindInt(1, big);
  auto row = (*select)->Step();
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*select)->ColumnText(0), bytes);
  EXPECT_EQ((*select)->ColumnInt(1), big);
  EXPECT_EQ((*select)->ColumnText(2), "why?");
  EXPECT_FALSE(*(*select)->Step());
  (*select)->Reset();
}

// Write transactions exclude each other (SQLite's write lock; PostgreSQL's advisory lock, across
// every node): a second writer waits for the first to commit.
TEST_P(DialectTest, WriteTransactionsAreSerialized) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  auto first = db_->Acquire();
  auto second = db_->Acquire();
  ASSERT_TRUE(first && second);
  auto tx = Transaction::Begin(**first, true);
  ASSERT_TRUE(tx);
  ASSERT_TRUE((*first)->Execute("INSERT INTO items (name) VALUES ('first')"));
  std::atomic<bool> second_began{false};
  std::thread other([&] {
    auto tx2 = Transaction::Begin(**second, true);
    second_began = true;
    ASSERT_TRUE(tx2);
    auto count = (*second)->Prepare("SELECT count(*) FROM items");
    ASSERT_TRUE(*(*count)->Step());
    EXPECT_EQ((*count)->ColumnInt(0), 1);  // sees the first writer's commit
    (*count)->Reset();
    ASSERT_TRUE(tx2->Commit());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(second_began.load());
  ASSERT_TRUE(tx->Commit());
  other.join();
  EXPECT_TRUE(second_began.load());
}

TEST_P(DialectTest, PoolOpensAtMostItsMaximumAndWaitsForAConnection) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  db_->LimitPool(2, std::chrono::milliseconds(150));
  std::optional<Lease> first, second;
  {
    auto a = db_->Acquire();
    auto b = db_->Acquire();
    ASSERT_TRUE(a && b);
    first.emplace(std::move(a).value());
    second.emplace(std::move(b).value());
  }
  EXPECT_EQ(db_->OpenConnections(), 2);
  auto start = std::chrono::steady_clock::now();
  auto third = db_->Acquire();  // both lent: waits, then gives up
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code(), ErrorCode::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(140));
  // A connection given back while another thread waits goes to that thread.
  db_->LimitPool(2, std::chrono::milliseconds(5000));
  std::thread giver([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    first.reset();
  });
  auto fourth = db_->Acquire();
  giver.join();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(db_->OpenConnections(), 2);
  auto count = (*fourth)->Prepare("SELECT count(*) FROM items");
  ASSERT_TRUE(count);
  EXPECT_TRUE(*(*count)->Step());
  (*count)->Reset();
}

// Queued rows (COPY on PostgreSQL): in by the next statement that reads their table, gone
// with a rollback to a savepoint, in by the commit; values arrive exactly as given.
TEST_P(DialectTest, QueuedRowsArriveBeforeTheyAreReadAndGoWithARollback) {
  ASSERT_TRUE(db_->Migrate(
      {{1, "q", "CREATE TABLE q (n INTEGER NOT NULL, d REAL NOT NULL, t TEXT NOT NULL)"}}));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  db::Connection& conn = **lease;
  auto insert = [&](int64_t n, double d, std::string_view t) {
    std::vector<Value> values{n, d, t};
    if (conn.QueueRow("q", "n, d, t", values)) return;
    auto stmt = conn.Prepare("INSERT INTO q (n, d, t) VALUES (?, ?, ?)");
    ASSERT_TRUE(stmt);
    (*stmt)->BindInt(1, n);
    (*stmt)->BindDouble(2, d);
    (*stmt)->BindText(3, t);
    ASSERT_TRUE((*stmt)->Run());
  };
  auto count = [&]() -> int64_t {
    auto stmt = conn.Prepare("SELECT count(*) FROM q");
    EXPECT_TRUE(stmt);
    auto row = (*stmt)->Step();
    EXPECT_TRUE(row && *row) << (row ? "" : row.error().message());
    int64_t n = row && *row ? (*stmt)->ColumnInt(0) : -1;
    (*stmt)->Reset();
    return n;
  };
  std::vector<Value> probe{int64_t{1}};
  // Outside a transaction nothing is queued (no commit would send it; on PostgreSQL the
  // connection would go back to the pool with it).
  EXPECT_FALSE(conn.QueueRow("q", "n", probe));
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    insert(-9007199254740993, 0.1, "tab\there, newline\nthere, backslash \\N and \r");
    insert(2, -1e300, "é ✓");
    EXPECT_EQ(count(), 2);  // the SELECT names q: the queued rows went first
    ASSERT_TRUE(conn.Execute("SAVEPOINT s"));
    insert(3, 3.5, "dropped");
    ASSERT_TRUE(conn.Execute("ROLLBACK TO s"));
    ASSERT_TRUE(conn.Execute("RELEASE s"));
    insert(4, 1.0 / 3, "kept");
    ASSERT_TRUE(tx->Commit());  // the commit sends the last row
  }
  EXPECT_EQ(count(), 3);
  auto rows = conn.Prepare("SELECT n, d, t FROM q ORDER BY n");
  ASSERT_TRUE(rows);
  std::vector<std::tuple<int64_t, std::string, std::string>> got;
  while (true) {
    auto row = (*rows)->Step();
    ASSERT_TRUE(row);
    if (!*row) break;
    got.emplace_back((*rows)->ColumnInt(0), std::string((*rows)->ColumnText(1)),
                     std::string((*rows)->ColumnText(2)));
  }
  (*rows)->Reset();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(std::get<0>(got[0]), -9007199254740993);
  EXPECT_EQ(std::get<2>(got[0]), "tab\there, newline\nthere, backslash \\N and \r");
  EXPECT_EQ(std::get<2>(got[1]), "é ✓");
  EXPECT_EQ(std::get<0>(got[2]), 4);
  EXPECT_EQ(std::get<2>(got[2]), "kept");
  // Doubles are stored exactly (8 bytes on both): each matches itself bound as a parameter.
  for (auto [n, d] :
       {std::pair{-9007199254740993LL, 0.1}, std::pair{2LL, -1e300}, std::pair{4LL, 1.0 / 3}}) {
    auto exact = conn.Prepare("SELECT n FROM q WHERE d = ?");
    ASSERT_TRUE(exact);
    (*exact)->BindDouble(1, d);
    auto row = (*exact)->Step();
    ASSERT_TRUE(row && *row) << d;
    EXPECT_EQ((*exact)->ColumnInt(0), n);
    (*exact)->Reset();
  }
}

// Queued rows and the savepoints of a group commit (each write in its own): rows queued by
// earlier writes survive a later write's rollback even when that write's reads sent them;
// releasing a savepoint that began the transaction commits the rows queued; a rollback drops all.
TEST_P(DialectTest, QueuedRowsFollowSavepoints) {
  ASSERT_TRUE(db_->Migrate({{1, "q", "CREATE TABLE q (n INTEGER NOT NULL)"}}));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  db::Connection& conn = **lease;
  auto queue = [&](int64_t n) {
    std::vector<Value> values{n};
    ASSERT_TRUE(conn.QueueRow("q", "n", values));
  };
  auto run = [&](std::string_view sql) {
    // SQLite runs them as the group commit does, prepared; PostgreSQL prepares no savepoints.
    if (GetParam() == Dialect::kPostgres) {
      auto done = conn.Execute(sql);
      ASSERT_TRUE(done) << done.error().message();
      return;
    }
    auto stmt = conn.Prepare(sql);
    ASSERT_TRUE(stmt);
    auto done = (*stmt)->Run();
    ASSERT_TRUE(done) << done.error().message();
  };
  auto rows = [&] {
    std::vector<int64_t> out;
    auto stmt = conn.Prepare("SELECT n FROM q ORDER BY n");
    EXPECT_TRUE(stmt);
    while (true) {
      auto row = (*stmt)->Step();
      EXPECT_TRUE(row);
      if (!row || !*row) break;
      out.push_back((*stmt)->ColumnInt(0));
    }
    (*stmt)->Reset();
    return out;
  };
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    queue(1);
    run("SAVEPOINT write");
    queue(2);
    run("RELEASE write");
    run("SAVEPOINT write");
    queue(3);
    EXPECT_EQ(rows(), (std::vector<int64_t>{1, 2, 3}));  // sent inside this savepoint
    queue(4);
    run("SAVEPOINT nested");
    queue(5);
    run("RELEASE nested");
    run("ROLLBACK TO write");  // 3, 4 and 5 go; 1 and 2 stay queued or written
    EXPECT_EQ(rows(), (std::vector<int64_t>{1, 2}));  // queued again: a read gets them
    run("RELEASE write");
    run("SAVEPOINT write");
    queue(6);
    run("SAVEPOINT nested");
    queue(7);
    run("ROLLBACK TO nested");
    run("RELEASE nested");
    run("RELEASE write");
    ASSERT_TRUE(tx->Commit());
  }
  EXPECT_EQ(rows(), (std::vector<int64_t>{1, 2, 6}));
  std::vector<int64_t> expected{1, 2, 6};
  if (GetParam() == Dialect::kSqlite) {  // a savepoint without BEGIN opens the transaction
    run("SAVEPOINT opening");
    queue(8);
    run("RELEASE opening");  // commits
    expected.push_back(8);
    EXPECT_EQ(rows(), expected);
  }
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    queue(9);
    ASSERT_TRUE(conn.Rollback());
  }
  EXPECT_EQ(rows(), expected);
}

// A scan reads a large result a batch at a time, lets other statements run between its rows,
// and starts over after a Reset.
// Keyed queued rows (index rows): a row repeated in full is kept once; SQLite sends a table's
// rows sorted by their values after the first, then by the first (the order of the value index),
// and a rollback to a savepoint still drops exactly the rows queued after it, though they were
// sent mixed with earlier ones.
TEST_P(DialectTest, KeyedQueuedRowsGoSortedAndOnce) {
  // Keyed by every column on SQLite, as the index tables are (PostgreSQL's keep duplicates).
  const bool sqlite = GetParam() == Dialect::kSqlite;
  ASSERT_TRUE(db_->Migrate(
      {{1, "k",
        std::string("CREATE TABLE k (seq INTEGER PRIMARY KEY, rid INTEGER NOT NULL, v TEXT NOT "
                    "NULL, w REAL NOT NULL);") +
            (sqlite ? "CREATE UNIQUE INDEX k_all ON k (rid, v, w)" : "")}}));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  db::Connection& conn = **lease;
  auto run = [&](std::string_view sql) {  // savepoints as the group commit runs them
    if (!sqlite) {
      ASSERT_TRUE(conn.Execute(sql));
      return;
    }
    auto stmt = conn.Prepare(sql);
    ASSERT_TRUE(stmt);
    ASSERT_TRUE((*stmt)->Run());
  };
  auto queue = [&](int64_t rid, std::string_view v, double w) {
    std::vector<Value> values{rid, v, w};
    ASSERT_TRUE(conn.QueueRow("k", "rid, v, w", values, /*keyed=*/true));
  };
  auto rows = [&] {  // in the order inserted (seq)
    std::vector<std::string> out;
    auto stmt = conn.Prepare("SELECT rid, v, w FROM k ORDER BY seq");
    EXPECT_TRUE(stmt);
    while (true) {
      auto row = (*stmt)->Step();
      EXPECT_TRUE(row);
      if (!row || !*row) break;
      out.push_back(std::to_string((*stmt)->ColumnInt(0)) + std::string((*stmt)->ColumnText(1)) +
                    std::string((*stmt)->ColumnText(2)));
    }
    (*stmt)->Reset();
    return out;
  };
  using Rows = std::vector<std::string>;
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    queue(2, "b", 1);
    queue(1, "b", 1);
    queue(3, "a", 2);
    queue(1, "b", 1);  // the same row again: kept once
    run("SAVEPOINT s");
    queue(4, "a", 1);
    queue(5, "c", 1);
    // The read sends them: by (v, w), then rid.
    Rows sorted{"4a1.0", "3a2.0", "1b1.0", "2b1.0", "5c1.0"};
    if (sqlite) EXPECT_EQ(rows(), sorted);
    if (!sqlite) EXPECT_EQ(rows().size(), 6u);  // COPY keeps every row, in the order queued
    run("ROLLBACK TO s");
    run("RELEASE s");
    queue(0, "z", 0);
    ASSERT_TRUE(tx->Commit());
  }
  if (sqlite) {
    // After the rollback the rows queued before the savepoint went again, sorted, then the last.
    EXPECT_EQ(rows(), (Rows{"3a2.0", "1b1.0", "2b1.0", "0z0.0"}));
  } else {
    EXPECT_EQ(rows(), (Rows{"2b1", "1b1", "3a2", "1b1", "0z0"}));
  }
}

TEST_P(DialectTest, ScansReadLargeResultsInBatches) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  db::Connection& conn = **lease;
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    auto insert = conn.Prepare("INSERT INTO items (id, name) VALUES (?, ?)");
    ASSERT_TRUE(insert);
    for (int i = 1; i <= 2500; ++i) {
      (*insert)->BindInt(1, i);
      (*insert)->BindText(2, "item " + std::to_string(i));
      ASSERT_TRUE((*insert)->Run());
    }
    ASSERT_TRUE(tx->Commit());
  }
  auto tx = Transaction::Begin(conn, false);
  ASSERT_TRUE(tx);
  auto scan = conn.PrepareScan("SELECT id, name FROM items WHERE id > ? ORDER BY id");
  ASSERT_TRUE(scan);
  auto other = conn.Prepare("SELECT name FROM items WHERE id = ?");
  ASSERT_TRUE(other);
  for (int round = 0; round < 2; ++round) {
    (*scan)->BindInt(1, 100);
    int64_t expected = 101, seen = 0;
    while (true) {
      auto row = (*scan)->Step();
      ASSERT_TRUE(row) << row.error().message();
      if (!*row) break;
      ASSERT_EQ((*scan)->ColumnInt(0), expected);
      ASSERT_EQ((*scan)->ColumnText(1), "item " + std::to_string(expected));
      if (expected % 500 == 0) {  // another statement between two rows of the scan
        (*other)->BindInt(1, 1);
        auto found = (*other)->Step();
        ASSERT_TRUE(found && *found);
        EXPECT_EQ((*other)->ColumnText(0), "item 1");
        (*other)->Reset();
      }
      ++expected;
      ++seen;
      if (round == 0 && seen == 1500) break;  // stopped half way: Reset starts over
    }
    (*scan)->Reset();
    EXPECT_EQ(seen, round == 0 ? 1500 : 2400);
  }
  ASSERT_TRUE(tx->Commit());
}

// A statement that changes megabytes inside a transaction (a journal of megabytes): it commits.
// (SQLite 3.40's unix VFS fails a write whose length is a multiple of 128 KiB with "database or
// disk is full": a spilled journal's first write must not be one.)
TEST_P(DialectTest, LargeUpdateInsideATransactionCommits) {
  ASSERT_TRUE(db_->Migrate(TestMigrations()));
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  db::Connection& conn = **lease;
  InsertItems(conn, 10000, std::string(400, 'f'));
  auto tx = Transaction::Begin(conn, true);
  ASSERT_TRUE(tx);
  ASSERT_TRUE(conn.Execute("SAVEPOINT s"));
  auto updated = conn.Execute("UPDATE items SET note = name");
  ASSERT_TRUE(updated) << updated.error().message();
  ASSERT_TRUE(conn.Execute("RELEASE s"));
  ASSERT_TRUE(tx->Commit());
  auto count = conn.Prepare("SELECT count(*) FROM items WHERE note = name");
  ASSERT_TRUE(count);
  ASSERT_TRUE(*(*count)->Step());
  EXPECT_EQ((*count)->ColumnInt(0), 10000);
  (*count)->Reset();
}

// A SQLite file database with the test migrations, in a folder of its own removed at the end.
class SqliteJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fhirstone-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto db = Database::Open(url());
    ASSERT_TRUE(db);
    db_ = std::move(db).value();
    ASSERT_TRUE(db_->Migrate(TestMigrations()));
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string url() const { return "sqlite:" + (dir_ / "t.db").string(); }

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
};

// Savepoint journals live in memory (journal_vfs.cc) and spill to a file past their limit: a
// rollback to the savepoint restores every changed row either way, and the transaction's other
// changes stay.
TEST_F(SqliteJournalTest, RollbackToSavepointRestoresFromMemoryAndFromASpilledJournal) {
  auto run = [&] {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    Connection& conn = **lease;
    InsertItems(conn, 5000, std::string(400, 'f'));
    auto count = [&](std::string_view where) { return CountItems(conn, where); };
    for (size_t limit : {size_t{64} << 20, size_t{256} << 10}) {
      SCOPED_TRACE("in-memory limit " + std::to_string(limit));
      sqlite::SetMemoryJournalLimit(limit);
      auto before = sqlite::JournalVfsCounts();
      auto tx = Transaction::Begin(conn, true);
      ASSERT_TRUE(tx);
      ASSERT_TRUE(conn.Execute("SAVEPOINT kept"));
      auto kept = conn.Execute("UPDATE items SET note = 'kept' WHERE rowid % 10 = 0");
      ASSERT_TRUE(kept) << kept.error().message();
      ASSERT_TRUE(conn.Execute("RELEASE kept"));
      ASSERT_TRUE(conn.Execute("SAVEPOINT undone"));
      ASSERT_TRUE(conn.Execute("UPDATE items SET note = name, name = 'x' || name"));
      ASSERT_TRUE(conn.Execute("DELETE FROM items WHERE rowid % 3 = 0"));
      EXPECT_EQ(count("name LIKE 'x%'"), 5000 - 5000 / 3);
      ASSERT_TRUE(conn.Execute("ROLLBACK TO undone"));
      ASSERT_TRUE(conn.Execute("RELEASE undone"));
      ASSERT_TRUE(tx->Commit());
      EXPECT_EQ(count("1"), 5000);
      EXPECT_EQ(count("name LIKE 'x%'"), 0);
      EXPECT_EQ(count("note = 'kept'"), 500);
      EXPECT_EQ(count("note IS NOT NULL AND note <> 'kept'"), 0);
      auto after = sqlite::JournalVfsCounts();
      EXPECT_GT(after.opened, before.opened);
      EXPECT_EQ(after.spilled - before.spilled, limit < (size_t{1} << 20) ? 1 : 0);
      ASSERT_TRUE(conn.Execute("UPDATE items SET note = NULL"));
    }
  };
  run();
  sqlite::SetMemoryJournalLimit(size_t{64} << 20);
}

// The page cache (page_cache.h) skips the truncations at the end of write transactions that
// have no page past the end of the database, even after B-tree balances moved pages through a
// temporary number past it, and passes on those that do: a rolled-back transaction that grew
// the database leaves pages past its end. Data read afterwards is intact.
TEST_F(SqliteJournalTest, PageCacheTruncatesOnlyWhenPagesLiePastTheEnd) {
  ASSERT_TRUE(sqlite::InstallPageCache()) << "SQLite initialized before the first database";
  auto lease = db_->Acquire();
  ASSERT_TRUE(lease);
  Connection& conn = **lease;
  ASSERT_TRUE(conn.Execute("CREATE INDEX items_name ON items (name)"));
  auto before = sqlite::PageCacheCounts();
  for (int batch = 0; batch < 30; ++batch) {  // index entries in no order: pages split
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    auto insert = conn.Prepare("INSERT INTO items (name) VALUES (?)");
    ASSERT_TRUE(insert);
    for (int i = 0; i < 100; ++i) {
      (*insert)->BindText(1,
                          std::to_string((batch * 100 + i) * 7919 % 100003) + std::string(40, 'k'));
      ASSERT_TRUE((*insert)->Run());
    }
    ASSERT_TRUE(tx->Commit());
  }
  auto grown = sqlite::PageCacheCounts();
  EXPECT_GE(grown.skipped - before.skipped, 25);
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    InsertItemsIn(conn, 2000, std::string(300, 'r'), std::string(500, 'n'));
    EXPECT_EQ(CountItems(conn, "1"), 5000);
    ASSERT_TRUE(conn.Rollback());
  }
  EXPECT_GT(sqlite::PageCacheCounts().truncated, grown.truncated);
  EXPECT_EQ(CountItems(conn, "1"), 3000);
  EXPECT_EQ(CountItems(conn, "note IS NOT NULL"), 0);
  InsertItemsIn(conn, 500, "again");  // reuses the page numbers the rollback gave back
  EXPECT_EQ(CountItems(conn, "1"), 3500);
  auto check = conn.Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check);
  auto row = (*check)->Step();
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*check)->ColumnText(0), "ok");
  (*check)->Reset();
}

// WAL frames are gathered and written once per commit (journal_vfs.cc). Another connection
// sees every committed row; frames a transaction spills from a tiny page cache are read back by
// it; a rolled-back transaction's frames are never seen; the database passes integrity_check.
TEST_F(SqliteJournalTest, WalFramesAreWrittenOncePerCommitAndReadBackCorrectly) {
  auto run = [&] {
    auto writer = db_->Acquire();
    auto reader = db_->Acquire();
    ASSERT_TRUE(writer && reader);
    auto count = CountItems;
    auto insert = [](Connection& conn, std::string_view tag, int rows) {
      InsertItemsIn(conn, rows, std::string(300, 'n'), tag);
    };
    // One commit of about 150 pages: some 300 writes by SQLite, a few writes to the file.
    auto before = sqlite::JournalVfsCounts();
    {
      auto tx = Transaction::Begin(**writer, true);
      ASSERT_TRUE(tx);
      insert(**writer, "first", 2000);
      ASSERT_TRUE(tx->Commit());
    }
    auto after = sqlite::JournalVfsCounts();
    EXPECT_GE(after.wal_writes - before.wal_writes, 300);
    EXPECT_LE(after.wal_flushes - before.wal_flushes, 3);
    EXPECT_EQ(count(**reader, "note = 'first'"), 2000);

    // A page cache of 10 pages: the transaction spills frames to the WAL before its commit and
    // reads them back.
    ASSERT_TRUE((*writer)->Execute("PRAGMA cache_size=10"));
    {
      auto tx = Transaction::Begin(**writer, true);
      ASSERT_TRUE(tx);
      insert(**writer, "undone", 3000);
      EXPECT_EQ(count(**writer, "note = 'undone'"), 3000);
      EXPECT_EQ(count(**reader, "note = 'undone'"), 0);
    }  // rolled back
    {
      auto tx = Transaction::Begin(**writer, true);
      ASSERT_TRUE(tx);
      insert(**writer, "second", 3000);
      ASSERT_TRUE((*writer)->Execute("UPDATE items SET note = 'first again' WHERE note = 'first'"));
      EXPECT_EQ(count(**writer, "note = 'second'"), 3000);
      ASSERT_TRUE(tx->Commit());
    }
    ASSERT_TRUE((*writer)->Execute("PRAGMA cache_size=-65536"));
    EXPECT_EQ(count(**reader, "note = 'undone'"), 0);
    EXPECT_EQ(count(**reader, "note = 'second'"), 3000);
    EXPECT_EQ(count(**reader, "note = 'first again'"), 2000);
    EXPECT_EQ(count(**reader, "1"), 5000);
    // A checkpoint copies the frames' pages from the mapping of the WAL; the database file then
    // holds them (a fresh connection's cache starts empty).
    auto before_checkpoint = sqlite::JournalVfsCounts();
    ASSERT_TRUE((*writer)->Execute("PRAGMA wal_checkpoint(PASSIVE)"));
    EXPECT_GT(sqlite::JournalVfsCounts().wal_mapped_reads - before_checkpoint.wal_mapped_reads,
              100);
    {
      auto fresh = db_->Acquire();
      ASSERT_TRUE(fresh);
      EXPECT_EQ(count(**fresh, "note = 'second'"), 3000);
      EXPECT_EQ(count(**fresh, "note = 'first again'"), 2000);
    }
    auto check = (*reader)->Prepare("PRAGMA integrity_check");
    ASSERT_TRUE(check);
    auto row = (*check)->Step();
    ASSERT_TRUE(row && *row);
    EXPECT_EQ((*check)->ColumnText(0), "ok");
    (*check)->Reset();
  };
  run();
  db_.reset();
  // Reopened: everything committed is there.
  auto reopened = Database::Open(url());
  ASSERT_TRUE(reopened);
  {
    auto lease = (*reopened)->Acquire();
    ASSERT_TRUE(lease);
    EXPECT_EQ(CountItems(**lease, "note IN ('first again', 'second')"), 5000);
  }
}

// What another program does with the database: opens it with SQLite, reads and closes it, then
// says it did (a file next to the database). Run by
// AnotherProcessLeavesTheWalOfLiveConnectionsAlone in a process of its own.
TEST(SqliteOtherProcess, DISABLED_OpensReadsAndCloses) {
  const char* path = std::getenv("FHIRSTONE_OTHER_PROCESS_DB");
  if (!path) GTEST_SKIP() << "run by AnotherProcessLeavesTheWalOfLiveConnectionsAlone";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "SELECT count(*) FROM items", nullptr, nullptr, nullptr), SQLITE_OK);
  // It writes too, and checkpoints what the other process's readers allow.
  ASSERT_EQ(
      sqlite3_exec(db, "INSERT INTO items (name) VALUES ('other')", nullptr, nullptr, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  std::ofstream(std::string(path) + ".closed") << "closed\n";
}

// The last connection of a process to close a database in WAL mode checkpoints it and deletes
// its WAL when it can lock the file exclusively, that is when no other process holds a lock on
// it. The process's connections must keep their locks however many connections it opens (the
// mapping of the file once dropped them: another process closing the database then deleted the
// WAL still in use, and the database was corrupted).
TEST_F(SqliteJournalTest, AnotherProcessLeavesTheWalOfLiveConnectionsAlone) {
  auto a = db_->Acquire();
  auto b = db_->Acquire();
  ASSERT_TRUE(a && b);
  InsertItems(**a, 10, "before");
  EXPECT_EQ(CountItems(**b, "name LIKE 'before%'"), 10);

  std::string path = (dir_ / "t.db").string();
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=SqliteOtherProcess.DISABLED_OpensReadsAndCloses";
  std::string disabled = "--gtest_also_run_disabled_tests";
  char* argv[] = {self.data(), filter.data(), disabled.data(), nullptr};
  // This process's environment and the database's path (setenv here could race the threads).
  std::string db_variable = "FHIRSTONE_OTHER_PROCESS_DB=" + path;
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e)
    if (!std::string_view(*e).starts_with("GTEST_")) envp.push_back(*e);  // no sharding
  envp.push_back(db_variable.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t quiet;  // the child's test report would mix with this one's
  ASSERT_EQ(::posix_spawn_file_actions_init(&quiet), 0);
  ASSERT_EQ(::posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0), 0);
  pid_t child = 0;
  int spawned = ::posix_spawn(&child, self.c_str(), &quiet, nullptr, argv, envp.data());
  ::posix_spawn_file_actions_destroy(&quiet);
  ASSERT_EQ(spawned, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_TRUE(std::filesystem::exists(path + ".closed"));  // the other process did run

  EXPECT_TRUE(std::filesystem::exists(path + "-wal"));
  InsertItems(**a, 5, "after");
  auto c = db_->Acquire();  // a connection opened after: it sees every commit
  ASSERT_TRUE(c);
  EXPECT_EQ(CountItems(**c, "name LIKE 'after%'"), 5);
  EXPECT_EQ(CountItems(**c, "name LIKE 'before%'"), 10);
  EXPECT_EQ(CountItems(**a, "name = 'other'"), 1);  // what the other process wrote
}

// A database file is mapped once per process and its connections read pages through that one
// mapping (journal_vfs.h): a reader sees every committed change, including after the file
// shrank (VACUUM) and grew again, and a new file at the same path gets a mapping of its own.
TEST_F(SqliteJournalTest, ConnectionsShareOneMappingThatFollowsTheFile) {
  auto checkpoint = [](Connection& conn) {
    auto stmt = conn.Prepare("PRAGMA wal_checkpoint(TRUNCATE)");
    ASSERT_TRUE(stmt);
    auto row = (*stmt)->Step();
    ASSERT_TRUE(row && *row);
    EXPECT_EQ((*stmt)->ColumnInt(0), 0);  // not busy: every frame is in the file
    (*stmt)->Reset();
  };
  auto integrity = [](Connection& conn) {
    auto check = conn.Prepare("PRAGMA integrity_check");
    EXPECT_TRUE(check);
    if (!check) return std::string();
    auto row = (*check)->Step();
    std::string out = row && *row ? std::string((*check)->ColumnText(0)) : "";
    (*check)->Reset();
    return out;
  };
  const std::string note(300, 'm');
  sqlite::CountMappedFetches(true);
  {
    auto writer = db_->Acquire();
    auto reader = db_->Acquire();
    ASSERT_TRUE(writer && reader);
    auto tx = Transaction::Begin(**writer, true);
    ASSERT_TRUE(tx);
    InsertItemsIn(**writer, 4000, "m", note);
    ASSERT_TRUE(tx->Commit());
    checkpoint(**writer);
    auto before = sqlite::JournalVfsCounts();
    EXPECT_EQ(CountItems(**reader, "note = '" + note + "'"), 4000);
    auto after = sqlite::JournalVfsCounts();
    EXPECT_GT(after.mapped_fetches - before.mapped_fetches, 100);  // the pages of 4,000 rows
    EXPECT_EQ(after.maps_created, before.maps_created);            // both use the fixture's

    // Changed rows, checkpointed into the file: the reader sees them through the mapping.
    ASSERT_TRUE((*writer)->Execute("UPDATE items SET note = 'changed' WHERE id % 2 = 0"));
    checkpoint(**writer);
    EXPECT_EQ(CountItems(**reader, "note = 'changed'"), 2000);
    EXPECT_EQ(CountItems(**reader, "note = '" + note + "'"), 2000);

    // The file shrinks, then grows past its former size.
    uintmax_t full = std::filesystem::file_size(dir_ / "t.db");
    ASSERT_TRUE((*writer)->Execute("DELETE FROM items WHERE id > 100"));
    ASSERT_TRUE((*writer)->Execute("VACUUM"));
    checkpoint(**writer);
    EXPECT_LT(std::filesystem::file_size(dir_ / "t.db"), full / 4);
    EXPECT_EQ(CountItems(**reader, "1"), 100);
    EXPECT_EQ(integrity(**reader), "ok");
    auto grow = Transaction::Begin(**writer, true);
    ASSERT_TRUE(grow);
    InsertItemsIn(**writer, 8000, "g", note);
    ASSERT_TRUE(grow->Commit());
    checkpoint(**writer);
    EXPECT_GT(std::filesystem::file_size(dir_ / "t.db"), full);
    // The checkpoints that grew the file made no connection map it on its own: the process
    // holds the one mapping.
    auto mappings = [&] {
      std::ifstream maps("/proc/self/maps");
      std::string line, path = (dir_ / "t.db").string();
      int n = 0;
      while (std::getline(maps, line))
        if (line.size() >= path.size() &&
            line.compare(line.size() - path.size(), path.size(), path) == 0)
          ++n;
      return n;
    };
    EXPECT_EQ(mappings(), 1);
    before = sqlite::JournalVfsCounts();
    EXPECT_EQ(CountItems(**reader, "name LIKE 'g%' AND note = '" + note + "'"), 8000);
    EXPECT_EQ(integrity(**reader), "ok");
    after = sqlite::JournalVfsCounts();
    EXPECT_GT(after.mapped_fetches - before.mapped_fetches, 200);

    // A write transaction reads the pages it changes with xRead (SQLite fetches mapped pages for
    // reading only): they are copied from the mapping too, here through a page cache too small
    // to keep them.
    ASSERT_TRUE((*writer)->Execute("PRAGMA cache_size=16"));
    const std::string sevenths = "name LIKE 'g%' AND id % 7 = 0";
    int64_t changed = CountItems(**reader, sevenths);
    EXPECT_GT(changed, 1000);
    before = sqlite::JournalVfsCounts();
    ASSERT_TRUE((*writer)->Execute("UPDATE items SET note = 'read back' WHERE " + sevenths));
    after = sqlite::JournalVfsCounts();
    EXPECT_GT(after.db_mapped_reads - before.db_mapped_reads, 50);
    EXPECT_EQ(CountItems(**reader, "note = 'read back'"), changed);
    EXPECT_EQ(CountItems(**reader, "name LIKE 'g%' AND note = '" + note + "'"), 8000 - changed);
    EXPECT_EQ(integrity(**reader), "ok");
    ASSERT_TRUE((*writer)->Execute("PRAGMA cache_size=-65536"));
  }
  sqlite::CountMappedFetches(false);
  // Another database object on the same file shares the mapping.
  auto before = sqlite::JournalVfsCounts();
  {
    auto second = Database::Open(url());
    ASSERT_TRUE(second);
    auto lease = (*second)->Acquire();
    ASSERT_TRUE(lease);
    EXPECT_EQ(CountItems(**lease, "1"), 8100);
  }
  EXPECT_EQ(sqlite::JournalVfsCounts().maps_created, before.maps_created);
  // A new file at the same path is another file: it gets its own mapping.
  db_.reset();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  auto fresh = Database::Open(url());
  ASSERT_TRUE(fresh);
  ASSERT_TRUE((*fresh)->Migrate(TestMigrations()));
  auto lease = (*fresh)->Acquire();
  ASSERT_TRUE(lease);
  InsertItems(**lease, 300, "f");
  checkpoint(**lease);
  EXPECT_EQ(CountItems(**lease, "1"), 300);
  EXPECT_EQ(CountItems(**lease, "name LIKE 'g%'"), 0);
  EXPECT_GT(sqlite::JournalVfsCounts().maps_created, before.maps_created);
}

// Under sustained writes the WAL restarts from its beginning (the checkpointer copies the frames
// that came during its pass holding the write lock): it stays bounded instead of growing with
// every write (it reached 6 GB for a 250 MB database).
TEST_F(SqliteJournalTest, WalStaysBoundedUnderSustainedWrites) {
  const std::string filler(3000, 'w');
  uintmax_t largest = 0;
  int64_t written = 0;
  {
    auto lease = db_->Acquire();
    ASSERT_TRUE(lease);
    auto insert = (*lease)->Prepare("INSERT INTO items (name, note) VALUES (?, ?)");
    ASSERT_TRUE(insert);
    for (int commit = 0; commit < 1500; ++commit) {
      auto tx = Transaction::Begin(**lease, true);
      ASSERT_TRUE(tx);
      for (int i = 0; i < 60; ++i) {
        (*insert)->BindText(1, std::to_string(commit) + "-" + std::to_string(i));
        (*insert)->BindText(2, filler);
        ASSERT_TRUE((*insert)->Run());
      }
      ASSERT_TRUE(tx->Commit());
      written += 60 * 3000;
      std::error_code ec;
      largest = std::max(largest, std::filesystem::file_size(dir_ / "t.db-wal", ec));
    }
  }
  // 270 MB of rows went through the WAL; without restarts it would hold them all.
  EXPECT_GT(written, 250'000'000);
  EXPECT_LT(largest, uintmax_t{150'000'000});
}

INSTANTIATE_TEST_SUITE_P(Dialects, DialectTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         [](const auto& info) {
                           return info.param == Dialect::kSqlite ? "Sqlite" : "Postgres";
                         });

TEST(DatabaseTest, RejectsUnknownUrlsAndUnreachableServers) {
  EXPECT_EQ(Database::Open("mysql://x").error().code(), ErrorCode::kInvalid);
  auto refused = Database::Open("postgres://fhirstone@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(Database::Open("sqlite:/nonexistent-folder/x/y.db"));
}

TEST(DatabaseTest, PostgresRendering) {
  EXPECT_EQ(postgres::RenderSql("SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)");
  EXPECT_EQ(postgres::RenderSql("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, b BLOB, "
                                "INTEGERS TEXT, d REAL)"),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, "
            "b BYTEA, INTEGERS TEXT COLLATE \"C\", d DOUBLE PRECISION)");
  EXPECT_EQ(postgres::RenderSql("SELECT 1 FROM r WHERE +r.type = ? AND a + 1 > (+b)"),
            "SELECT 1 FROM r WHERE r.type = $1 AND a + 1 > (b)");
}

TEST(DatabaseTest, FileDatabasePersistsAcrossOpens) {
  auto dir =
      std::filesystem::temp_directory_path() / ("fhirstone-db-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string url = "sqlite:" + (dir / "t.db").string();
  {
    auto db = Database::Open(url);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->Migrate(TestMigrations()));
    auto lease = (*db)->Acquire();
    ASSERT_TRUE((*lease)->Execute("INSERT INTO items (name) VALUES ('persisted')"));
    EXPECT_TRUE((*db)->Ping());
  }
  {
    auto db = Database::Open(url);
    ASSERT_TRUE(db);
    auto lease = (*db)->Acquire();
    auto select = (*lease)->Prepare("SELECT count(*) FROM items");
    ASSERT_TRUE(*(*select)->Step());
    EXPECT_EQ((*select)->ColumnInt(0), 1);
    (*select)->Reset();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fhirstone::db
