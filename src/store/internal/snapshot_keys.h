// Internal to store/: the sort keys of a sorted search's later pages as they were at its first
// page's snapshot, so that a resource updated while the search is paged through keeps its place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "search/query.h"
#include "store/internal/search_sql.h"

namespace fhirstone::store::internal {

// The most history entries of the searched types read after the snapshot (their writes): a link
// of a search whose types had more writes since its first page is gone (Error::Gone).
constexpr int64_t kMaxWritesSinceSnapshot = 50000;
// The most resources whose keys changed since the snapshot (same error past it).
constexpr size_t kMaxKeysChangedSinceSnapshot = 1000;

struct SnapshotKeys {
  std::vector<Sql> keys;  // each sort key's expression over row `alias`
  size_t changed = 0;     // the resources with a key of their version in the snapshot
};

// The sort keys of the resources of `types` (all types: empty) as of the snapshot whose last
// history entry is `txid` and whose last resource row is `snapshot`. `current[i]` is key i's
// expression over the current index (SortSql); `sql_types[i]` the SQL type of its values (TEXT,
// BIGINT, DOUBLE PRECISION; empty: a key without values). A live resource of the snapshot updated
// since (a history entry after `txid`) whose key's values differ from those of its version in the
// snapshot gets that version's values (extracted from its body, as the index would hold them;
// _lastUpdated: its time) in key i's expression: `CASE WHEN alias.rowid IN (...) THEN ... ELSE
// current END`. The database takes the least (greatest, descending) of them as it does of index
// rows (text in code point order on either database). `local_base`: the server's base URL
// (references under it are local).
Result<SnapshotKeys> KeysAsOf(db::Connection& conn, const std::vector<search::SortKey>& sort,
                              std::vector<Sql> current,
                              const std::vector<std::string_view>& sql_types,
                              const std::vector<std::string>& types, int64_t snapshot, int64_t txid,
                              std::string_view local_base, const std::string& alias = "r");

}  // namespace fhirstone::store::internal
