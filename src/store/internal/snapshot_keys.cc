#include "store/internal/snapshot_keys.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "common/json.h"
#include "search/extract.h"

namespace fhirstone::store::internal {
namespace {

using search::ParamType;

bool Less(const Binding& a, const Binding& b) {
  if (a.index() != b.index()) return a.index() < b.index();
  if (const auto* i = std::get_if<int64_t>(&a)) return *i < std::get<int64_t>(b);
  if (const auto* d = std::get_if<double>(&a)) return *d < std::get<double>(b);
  if (const auto* t = std::get_if<std::string>(&a)) return *t < std::get<std::string>(b);
  return false;
}

// The values of key `key`'s column (SortSql's) in the index rows of `entries`: those the
// database takes the least or greatest of. Sorted, each once.
std::vector<Binding> ColumnValues(const search::SortKey& key, const search::IndexEntries& e) {
  std::vector<Binding> out;
  const bool high = key.descending;
  switch (key.param->type) {
    case ParamType::kString:
      for (const auto& s : e.strings) out.emplace_back(s.normalized);
      break;
    case ParamType::kToken:
      for (const auto& t : e.tokens)
        if (!t.of_type) out.emplace_back(t.code);
      break;
    case ParamType::kReference:  // coalesce(target_id, url): target_id is never NULL
      for (const auto& r : e.references) out.emplace_back(r.target_id);
      break;
    case ParamType::kDate:
      for (const auto& d : e.dates) out.emplace_back(high ? d.high : d.low);
      break;
    case ParamType::kNumber:
      for (const auto& n : e.numbers) out.emplace_back(n.value);
      break;
    case ParamType::kQuantity:
      for (const auto& q : e.quantities)
        if (!q.canonical) out.emplace_back(high ? q.high : q.low);
      break;
    case ParamType::kUri:
      for (const auto& u : e.uris) out.emplace_back(u.uri);
      break;
    default:
      break;
  }
  std::sort(out.begin(), out.end(), Less);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// One version's values of each sort key (nullopt: a key that never changes, or has no values).
struct Version {
  int64_t last_updated = 0;
  std::optional<json::Value> body;
};

std::vector<std::optional<std::vector<Binding>>> KeyValues(
    const std::vector<search::SortKey>& sort, const std::vector<std::string_view>& sql_types,
    const Version& v, std::string_view local_base) {
  std::vector<std::optional<std::vector<Binding>>> out(sort.size());
  for (size_t i = 0; i < sort.size(); ++i) {
    const search::SearchParam& p = *sort[i].param;
    if (p.code == "_id" || sql_types[i].empty()) continue;
    if (p.code == "_lastUpdated") {
      out[i] = std::vector<Binding>{v.last_updated};
      continue;
    }
    if (!v.body) continue;
    std::vector<const search::SearchParam*> params;
    if (p.stored_as.empty()) {
      params.push_back(&p);
    } else {
      params.assign(p.stored_as.begin(), p.stored_as.end());
    }
    out[i] = ColumnValues(sort[i], search::ExtractIndex(params, *v.body, local_base));
  }
  return out;
}

// A version's row: its time and parsed body (none when it does not parse).
Version ReadVersion(db::Statement& s, int time_column, int body_column) {
  Version v;
  v.last_updated = s.ColumnInt(time_column);
  auto parsed = json::Parse(s.ColumnText(body_column));
  if (parsed) v.body = std::move(parsed).value();
  return v;
}

std::string Placeholders(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s;
}

}  // namespace

Result<SnapshotKeys> KeysAsOf(db::Connection& conn, const std::vector<search::SortKey>& sort,
                              std::vector<Sql> current,
                              const std::vector<std::string_view>& sql_types,
                              const std::vector<std::string>& types, int64_t snapshot, int64_t txid,
                              std::string_view local_base, const std::string& alias) {
  SnapshotKeys out;
  out.keys = std::move(current);
  const bool pg = conn.dialect() == db::Dialect::kPostgres;
  // The resources of the searched types updated since: the history entries after the snapshot's
  // last, in txid order (resource_history_type, or the primary key for every type).
  std::set<std::pair<std::string, std::string>> updated;
  {
    std::string sql = "SELECT type, id, version FROM resource_history WHERE txid > ?";
    if (!types.empty()) sql += " AND type IN (" + Placeholders(types.size()) + ")";
    sql += " LIMIT " + std::to_string(kMaxWritesSinceSnapshot + 1);
    auto stmt = conn.Prepare(sql);
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    int index = 1;
    s.BindInt(index++, txid);
    for (const std::string& t : types) s.BindText(index++, t);
    int64_t read = 0;
    while (true) {
      auto row = s.Step();
      if (!row) {
        s.Reset();
        return std::move(row).error();
      }
      if (!*row) break;
      if (++read > kMaxWritesSinceSnapshot) {
        s.Reset();
        return Error::Gone("More than " + std::to_string(kMaxWritesSinceSnapshot) +
                           " writes to the types searched since this search's first page: its "
                           "order can no longer be kept. Search again from the first page");
      }
      if (s.ColumnInt(2) > 1) updated.emplace(s.ColumnText(0), s.ColumnText(1));
    }
    s.Reset();
  }
  if (updated.empty()) return out;

  auto now = conn.Prepare(
      "SELECT rowid, last_updated, body FROM resource WHERE type = ? AND id = ? AND deleted = 0 "
      "AND rowid <= ?");
  if (!now) return std::move(now).error();
  auto then = conn.Prepare(
      "SELECT last_updated, method, body FROM resource_history WHERE type = ? AND id = ? AND "
      "txid <= ? ORDER BY version DESC LIMIT 1");
  if (!then) return std::move(then).error();
  // For each key, the rows whose values in the snapshot differ from their current ones: row id
  // and those values.
  std::vector<std::map<int64_t, std::vector<Binding>>> changed(sort.size());
  std::set<int64_t> rows_changed;
  for (const auto& [type, id] : updated) {
    db::Statement& n = **now;
    n.BindText(1, type);
    n.BindText(2, id);
    n.BindInt(3, snapshot);
    auto row = n.Step();
    if (!row) {
      n.Reset();
      return std::move(row).error();
    }
    if (!*row) {  // deleted, or created after the snapshot: no match to place
      n.Reset();
      continue;
    }
    const int64_t rid = n.ColumnInt(0);
    Version current_version = ReadVersion(n, 1, 2);
    n.Reset();

    db::Statement& t = **then;
    t.BindText(1, type);
    t.BindText(2, id);
    t.BindInt(3, txid);
    row = t.Step();
    if (!row) {
      t.Reset();
      return std::move(row).error();
    }
    // No version in the snapshot (a history entry gone), or a deleted one (the resource was not
    // in it): its current keys.
    if (!*row || t.ColumnText(1) == "D") {
      t.Reset();
      continue;
    }
    Version snapshot_version = ReadVersion(t, 0, 2);
    t.Reset();

    auto old_values = KeyValues(sort, sql_types, snapshot_version, local_base);
    auto new_values = KeyValues(sort, sql_types, current_version, local_base);
    for (size_t i = 0; i < sort.size(); ++i) {
      if (!old_values[i] || old_values[i] == new_values[i]) continue;
      changed[i][rid] = std::move(*old_values[i]);
      rows_changed.insert(rid);
    }
    if (rows_changed.size() > kMaxKeysChangedSinceSnapshot)
      return Error::Gone("The sort keys of more than " +
                         std::to_string(kMaxKeysChangedSinceSnapshot) +
                         " resources changed since this search's first page: its order can no "
                         "longer be kept. Search again from the first page");
  }
  out.changed = rows_changed.size();

  for (size_t i = 0; i < sort.size(); ++i) {
    if (changed[i].empty()) continue;
    // PostgreSQL's TEXT columns compare in code point order (COLLATE "C", as SQLite's): so do
    // these values (the database layer writes TEXT so only in a column's type).
    const bool text = sql_types[i] == "TEXT";
    const std::string collate = text && pg ? " COLLATE \"C\"" : "";
    const std::string type = text && pg ? "text" : std::string(sql_types[i]);
    const std::string cast_open = "CAST(? AS " + type + ")" + collate;
    Sql s;
    s.text = "CASE WHEN " + alias + ".rowid IN (" + Placeholders(changed[i].size()) +
             ") THEN CASE " + alias + ".rowid";
    for (const auto& entry : changed[i]) s.bindings.push_back(entry.first);
    for (auto& [rid, values] : changed[i]) {
      s.text += " WHEN ? THEN ";
      s.bindings.push_back(rid);
      if (values.empty()) {
        s.text += "CAST(NULL AS " + type + ")" + collate;
      } else if (values.size() == 1) {
        s.text += cast_open;
      } else {
        // The least (greatest) of them, compared as the database compares the index's.
        s.text += std::string("(SELECT ") + (sort[i].descending ? "MAX" : "MIN") + "(v) FROM (";
        for (size_t j = 0; j < values.size(); ++j)
          s.text += (j ? " UNION ALL SELECT " : "SELECT ") + cast_open + (j ? "" : " AS v");
        s.text += ") AS o)";
      }
      for (Binding& b : values) s.bindings.push_back(std::move(b));
    }
    s.text += " END ELSE " + out.keys[i].text + " END";
    s.bindings.insert(s.bindings.end(), out.keys[i].bindings.begin(), out.keys[i].bindings.end());
    out.keys[i] = std::move(s);
  }
  return out;
}

}  // namespace fhirstone::store::internal
