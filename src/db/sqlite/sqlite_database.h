// SQLite implementation of db::Database: one file in WAL mode (readers never wait for the
// writer), synchronous=NORMAL (a committed transaction survives a crash of the process),
// a busy timeout for writers, and a prepared-statement cache per connection.
#pragma once

#include <memory>
#include <string_view>

#include "db/database.h"

namespace fhirstone::db::sqlite {

// `path` is a file path (its folder must exist) or ":memory:" (one shared in-memory database,
// for tests).
Result<std::unique_ptr<Database>> OpenSqliteDatabase(std::string_view path);

}  // namespace fhirstone::db::sqlite
