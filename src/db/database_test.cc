#include "db/database.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace fhirstone::db {
namespace {

std::vector<Migration> TestMigrations() {
  return {{1, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"},
          {2, "items.note", "ALTER TABLE items ADD COLUMN note TEXT"}};
}

TEST(DatabaseTest, RejectsUnknownUrls) {
  EXPECT_EQ(Database::Open("mysql://x").error().code(), ErrorCode::kInvalid);
  EXPECT_EQ(Database::Open("postgres://u@h/db").error().code(), ErrorCode::kNotSupported);
  EXPECT_FALSE(Database::Open("sqlite:/nonexistent-folder/x/y.db"));
}

TEST(DatabaseTest, MigratesOnceAndCommitsOrRollsBack) {
  auto db = Database::Open("sqlite::memory:");
  ASSERT_TRUE(db) << db.error().message();
  ASSERT_TRUE((*db)->Migrate(TestMigrations()));
  ASSERT_TRUE((*db)->Migrate(TestMigrations()));  // idempotent
  auto lease = (*db)->Acquire();
  ASSERT_TRUE(lease);
  Connection& conn = **lease;
  {
    auto tx = Transaction::Begin(conn, true);
    ASSERT_TRUE(tx);
    auto insert = conn.Prepare("INSERT INTO items (name, note) VALUES (?, ?)");
    ASSERT_TRUE(insert);
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
}

TEST(DatabaseTest, ConstraintViolationIsAConflict) {
  auto db = Database::Open("sqlite::memory:");
  ASSERT_TRUE((*db)->Migrate(TestMigrations()));
  auto lease = (*db)->Acquire();
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
