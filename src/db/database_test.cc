// The SQL driver on each dialect: SQLite always, PostgreSQL on the throwaway cluster that
// `make test` starts (tests/support/databases.h).
#include "db/database.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "db/postgres/postgres_database.h"
#include "support/databases.h"

namespace fhirstone::db {
namespace {

std::vector<Migration> TestMigrations() {
  return {{1, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"},
          {2, "items.note", "ALTER TABLE items ADD COLUMN note TEXT"},
          {3, "blobs", "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB, big INTEGER)"}};
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
                                "INTEGERS TEXT)"),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, "
            "b BYTEA, INTEGERS TEXT COLLATE \"C\")");
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
