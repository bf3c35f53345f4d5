// Databases for tests that run on every dialect: a fresh SQLite file, or a fresh schema in a
// PostgreSQL database of this test process on the throwaway cluster that `make test` starts
// (tests/support/postgres.sh; its URL in the file FHIRSTONE_TEST_POSTGRES_FILE names).
// Header-only; used from one thread at a time.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "db/database.h"

namespace fhirstone::test {

// The URL of the tests' PostgreSQL cluster, "" when there is none.
inline std::string PostgresUrl() {
  const char* file = std::getenv("FHIRSTONE_TEST_POSTGRES_FILE");
  if (!file) return "";
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url;
}

inline const char* DialectName(db::Dialect d) {
  return d == db::Dialect::kSqlite ? "Sqlite" : "Postgres";
}

// A new, empty database of `dialect`: the SQLite file `dir`/db.sqlite (dir is emptied first), or
// this process's PostgreSQL database with its public schema dropped and made again. `*url` gets
// the URL. Unavailable when there is no PostgreSQL for the tests.
inline Result<std::unique_ptr<db::Database>> FreshDatabase(db::Dialect dialect,
                                                           const std::filesystem::path& dir,
                                                           std::string* url) {
  if (dialect == db::Dialect::kSqlite) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    *url = "sqlite:" + (dir / "db.sqlite").string();
    return db::Database::Open(*url);
  }
  std::string base = PostgresUrl();
  if (base.empty())
    return Error::Unavailable(
        "no PostgreSQL for the tests: FHIRSTONE_TEST_POSTGRES_FILE is unset (make test starts "
        "one)");
  // One database per test process, so that test programs running at once do not meet.
  std::string name = "test_" + std::to_string(getpid());
  *url = base.substr(0, base.rfind('/') + 1) + name;
  auto db = db::Database::Open(*url);
  if (!db) {
    auto admin = db::Database::Open(base);
    if (!admin) return std::move(admin).error();
    auto lease = (*admin)->Acquire();
    if (!lease) return std::move(lease).error();
    FHIRSTONE_RETURN_IF_ERROR((*lease)->Execute("CREATE DATABASE " + name));
    db = db::Database::Open(*url);
    if (!db) return std::move(db).error();
  }
  auto lease = (*db)->Acquire();
  if (!lease) return std::move(lease).error();
  FHIRSTONE_RETURN_IF_ERROR((*lease)->Execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public"));
  return db;
}

}  // namespace fhirstone::test

// In SetUp or a test body: `db_var` = FreshDatabase(dialect, dir, url). A PostgreSQL case is
// skipped, saying why, only when the tests have no PostgreSQL at all (`make test` always starts
// one); any other error fails the test.
#define FHIRSTONE_ASSIGN_FRESH_DATABASE(db_var, dialect, dir, url)                   \
  do {                                                                               \
    auto fresh_database = ::fhirstone::test::FreshDatabase((dialect), (dir), (url)); \
    if (!fresh_database && (dialect) == ::fhirstone::db::Dialect::kPostgres &&       \
        ::fhirstone::test::PostgresUrl().empty())                                    \
      GTEST_SKIP() << fresh_database.error().message();                              \
    ASSERT_TRUE(fresh_database) << fresh_database.error().message();                 \
    db_var = std::move(fresh_database).value();                                      \
  } while (0)
