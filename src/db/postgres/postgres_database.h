// The PostgreSQL driver (libpq): a Database opened from a postgres:// or postgresql:// URL (as
// libpq reads it, https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNSTRING).
// SQL is written once for both dialects; this driver renders what differs: `?` placeholders as
// $1, $2..., INTEGER as BIGINT (SQLite integers are 64-bit), INTEGER PRIMARY KEY as an identity
// column, BLOB as BYTEA, TEXT with the C collation (code point order, as SQLite compares);
// SQLite's unary plus before a column name is dropped. Text values are
// made valid UTF-8 without NUL (U+FFFD for the rest), as PostgreSQL text requires. A write
// transaction takes one transaction-scoped advisory lock, so that writers are serialized across
// every node as SQLite serializes them in one process (no lost update, no duplicate conditional
// create). Thread safety as in database.h.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "db/database.h"

namespace fhirstone::db::postgres {

Result<std::unique_ptr<Database>> OpenPostgresDatabase(std::string_view url);

// `sql` as PostgreSQL reads it (placeholders and types); exposed for tests.
std::string RenderSql(std::string_view sql);

}  // namespace fhirstone::db::postgres
