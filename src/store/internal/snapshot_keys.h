// Internal to store/: the sort keys of a sorted search's later pages as they were at its first
// page's snapshot, so that a resource updated while the search is paged through keeps its place.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "search/query.h"
#include "store/internal/search_sql.h"

namespace fhirstone::store::internal {

// The bounds of a later page's work (past them its link is gone, Error::Gone: the search starts
// again from its first page): the writes to the searched types since the first page (history
// entries read), the matches updated since (each one's versions read), and the matches whose keys
// changed (each one a value bound in the page's SQL).
constexpr int64_t kMaxWritesSinceSnapshot = 50000;
constexpr size_t kMaxMatchesUpdatedSinceSnapshot = 2000;
constexpr size_t kMaxKeysChangedSinceSnapshot = 1000;
// The most placeholders the changed keys take (three for each of a key's changed matches, its
// list padded to a power of two): SQLite allows 32,766 in a statement, the search's own included.
constexpr size_t kMaxKeyPlaceholders = 16384;

struct SnapshotKeys {
  std::vector<Sql> keys;  // each sort key's expression over row `alias`
  size_t changed = 0;     // the resources with a key of their version in the snapshot
};

// The sort keys of the resources of `types` (all types: empty) as of the snapshot whose last
// history entry is `txid` and whose last resource row is `snapshot`. `current[i]` is key i's
// expression over the current index (SortSql); `sql_types[i]` the SQL type of its values (TEXT,
// BIGINT, DOUBLE PRECISION; empty: a key without values). `matching` gives the search's condition
// on resource row `r` (its matches), in the form that checks one row (not driven by an index). A
// match of the snapshot updated since (a history entry after `txid`) whose key differs from that of
// its version in the snapshot (extracted from its body as the index would hold it; _lastUpdated:
// its time) gets that key in key i's expression: `CASE WHEN alias.rowid IN (...) THEN CASE
// alias.rowid WHEN ... END ELSE current END`. `local_base`: the server's base URL (references under
// it are local). Both versions are read with the current parameters: a parameter changed since the
// snapshot (before `fhirstone reindex` rewrote the index) may place a match by keys the index did
// not hold then.
Result<SnapshotKeys> KeysAsOf(db::Connection& conn, const std::vector<search::SortKey>& sort,
                              std::vector<Sql> current,
                              const std::vector<std::string_view>& sql_types,
                              const std::vector<std::string>& types,
                              const std::function<Result<Sql>()>& matching, int64_t snapshot,
                              int64_t txid, std::string_view local_base,
                              const std::string& alias = "r");

}  // namespace fhirstone::store::internal
