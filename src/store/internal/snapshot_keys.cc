#include "store/internal/snapshot_keys.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "common/json.h"
#include "common/strings.h"
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
std::vector<Binding> ColumnValues(const search::SortKey& key, const search::IndexEntries& e,
                                  bool pg) {
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
  if (pg)  // text as PostgreSQL stores it (a NUL or an invalid byte replaced)
    for (Binding& b : out)
      if (auto* text = std::get_if<std::string>(&b)) MakeValidUtf8(*text);
  std::sort(out.begin(), out.end(), Less);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Whether any sort key is one that the resource's body gives (not _id nor _lastUpdated).
bool NeedsBodies(const std::vector<search::SortKey>& sort,
                 const std::vector<std::string_view>& sql_types) {
  for (size_t i = 0; i < sort.size(); ++i)
    if (!sql_types[i].empty() && sort[i].param->code != "_id" &&
        sort[i].param->code != "_lastUpdated")
      return true;
  return false;
}

// One version of a resource: its time and parsed body (none when not read or not parsed).
struct Version {
  int64_t last_updated = 0;
  std::optional<json::Value> body;
};

// Each sort key's value for a version: the least of its column values (the greatest when
// descending), as SortSql's MIN / MAX over the index rows gives it (text compared byte-wise, as
// SQLite's BINARY and PostgreSQL's COLLATE "C" do); NULL when there is none. nullopt: a key that
// never changes (_id) or has no values (special parameters).
std::vector<std::optional<Binding>> KeyValues(const std::vector<search::SortKey>& sort,
                                              const std::vector<std::string_view>& sql_types,
                                              const Version& v, std::string_view local_base,
                                              bool pg) {
  std::vector<std::optional<Binding>> out(sort.size());
  for (size_t i = 0; i < sort.size(); ++i) {
    const search::SearchParam& p = *sort[i].param;
    if (p.code == "_id" || sql_types[i].empty()) continue;
    if (p.code == "_lastUpdated") {
      out[i] = v.last_updated;
      continue;
    }
    if (!v.body) continue;  // not parsed: the key is not known
    std::vector<const search::SearchParam*> params;
    if (p.stored_as.empty()) {
      params.push_back(&p);
    } else {
      params.assign(p.stored_as.begin(), p.stored_as.end());
    }
    std::vector<Binding> values =
        ColumnValues(sort[i], search::ExtractIndex(params, *v.body, local_base), pg);
    if (values.empty()) {
      out[i] = nullptr;
    } else {
      out[i] = sort[i].descending ? values.back() : values.front();
    }
  }
  return out;
}

// The version in the current row of `s`: its time (column `time`) and, when `body` is set, its
// body parsed (column `*body`; none when it does not parse: its keys are then not known).
Version ReadVersion(db::Statement& s, int time, std::optional<int> body) {
  Version v;
  v.last_updated = s.ColumnInt(time);
  if (body)
    if (auto parsed = json::Parse(s.ColumnText(*body)); parsed) v.body = std::move(parsed).value();
  return v;
}

Error Fail(db::Statement& s, Error e) {
  s.Reset();
  return e;
}

std::string Placeholders(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s;
}

// `n` rounded up to a power of two (at least 8): the number of placeholders of a list of `n`
// values, the rest bound NULL, so that a handful of statement texts is prepared and cached.
size_t Slots(size_t n) {
  size_t slots = 8;
  while (slots < n) slots *= 2;
  return slots;
}

Error TooManyChanges(const std::string& what) {
  return Error::Gone(what + " since this search's first page: its order can no longer be kept. " +
                     "Search again from the first page");
}

}  // namespace

Result<SnapshotKeys> KeysAsOf(db::Connection& conn, const std::vector<search::SortKey>& sort,
                              std::vector<Sql> current,
                              const std::vector<std::string_view>& sql_types,
                              const std::vector<std::string>& types,
                              const std::function<Result<Sql>()>& matching, int64_t snapshot,
                              int64_t txid, std::string_view local_base, const std::string& alias) {
  SnapshotKeys out;
  out.keys = std::move(current);
  const bool pg = conn.dialect() == db::Dialect::kPostgres;
  // The history entries after the snapshot's last, of the searched types (through
  // resource_history_type, or the primary key for every type).
  std::string after = "h.txid > ?";
  std::vector<Binding> after_bindings{txid};
  if (!types.empty()) after += " AND h.type IN (" + Placeholders(types.size()) + ")";
  after_bindings.insert(after_bindings.end(), types.begin(), types.end());

  // The writes to the searched types since, at most so many.
  std::vector<int64_t> writes;
  FHIRSTONE_RETURN_IF_ERROR(
      ReadRowIds(conn,
                 Sql{"SELECT count(*) FROM (SELECT 1 FROM resource_history h WHERE " + after +
                         " LIMIT " + std::to_string(kMaxWritesSinceSnapshot + 1) + ") AS w",
                     after_bindings},
                 writes));
  if (writes.empty() || writes[0] == 0) return out;
  if (writes[0] > kMaxWritesSinceSnapshot)
    return TooManyChanges("More than " + std::to_string(kMaxWritesSinceSnapshot) +
                          " writes to the types searched");

  // The resources of the snapshot (row id up to its last) updated since and live.
  std::vector<int64_t> updated;
  Sql since{
      "SELECT DISTINCT x.rowid FROM resource_history h JOIN resource x ON x.type = h.type "
      "AND x.id = h.id WHERE " +
          after + " AND h.version > 1 AND x.rowid <= ? AND x.deleted = 0",
      after_bindings};
  since.bindings.push_back(snapshot);
  FHIRSTONE_RETURN_IF_ERROR(ReadRowIds(conn, since, updated));
  if (updated.empty()) return out;

  // Those that match the search (`matching`): the row ids (a VALUES list padded to a power of
  // two, at most 4096 a statement) joined to their rows, each checked by the search's condition
  // (in its filter form: index lookups for the row, not subqueries over every match).
  std::vector<int64_t> matches;
  auto condition = matching();
  if (!condition) return std::move(condition).error();
  constexpr size_t kChunk = 4096;
  const size_t slots = std::min(kChunk, Slots(updated.size()));
  Sql chunk{"WITH ids(k) AS (VALUES (CAST(? AS BIGINT))", {}};
  for (size_t i = 1; i < slots; ++i) chunk.text += ", (?)";
  chunk.text += std::string(") SELECT r.rowid FROM ids ") + (pg ? "JOIN" : "CROSS JOIN") +
                " resource r ON r.rowid = ids.k WHERE " + condition->text;
  for (size_t from = 0; from < updated.size(); from += slots) {
    chunk.bindings.clear();
    for (size_t i = from; i < from + slots; ++i) {
      if (i < updated.size()) {
        chunk.bindings.push_back(updated[i]);
      } else {
        chunk.bindings.push_back(nullptr);
      }
    }
    chunk.bindings.insert(chunk.bindings.end(), condition->bindings.begin(),
                          condition->bindings.end());
    FHIRSTONE_RETURN_IF_ERROR(ReadRowIds(conn, chunk, matches));
    if (matches.size() > kMaxMatchesUpdatedSinceSnapshot)
      return TooManyChanges("More than " + std::to_string(kMaxMatchesUpdatedSinceSnapshot) +
                            " matches updated");
  }
  if (matches.empty()) return out;

  // Each match's keys now and in the snapshot (its newest version up to the snapshot's last
  // entry; none, or a deletion: it was not in the snapshot, its current keys stand).
  const bool bodies = NeedsBodies(sort, sql_types);
  auto now =
      conn.Prepare(bodies ? "SELECT type, id, last_updated, body FROM resource WHERE rowid = ?"
                          : "SELECT type, id, last_updated FROM resource WHERE rowid = ?");
  if (!now) return std::move(now).error();
  auto then = conn.Prepare(
      std::string("SELECT last_updated, method") + (bodies ? ", body" : "") +
      " FROM resource_history WHERE type = ? AND id = ? AND txid <= ? ORDER BY version DESC "
      "LIMIT 1");
  if (!then) return std::move(then).error();
  // For each key, the matches whose key in the snapshot differs from their current one: row id
  // and that key.
  std::vector<std::map<int64_t, Binding>> changed(sort.size());
  std::set<int64_t> rows_changed;
  for (int64_t rid : matches) {
    db::Statement& n = **now;
    n.BindInt(1, rid);
    auto row = n.Step();
    if (!row) return Fail(n, std::move(row).error());
    if (!*row) {
      n.Reset();
      continue;
    }
    std::string type(n.ColumnText(0)), id(n.ColumnText(1));
    Version current_version = ReadVersion(n, 2, bodies ? std::optional<int>(3) : std::nullopt);
    n.Reset();

    db::Statement& t = **then;
    t.BindText(1, type);
    t.BindText(2, id);
    t.BindInt(3, txid);
    row = t.Step();
    if (!row) return Fail(t, std::move(row).error());
    if (!*row || t.ColumnText(1) == "D") {
      t.Reset();
      continue;
    }
    Version snapshot_version = ReadVersion(t, 0, bodies ? std::optional<int>(2) : std::nullopt);
    t.Reset();

    auto old_values = KeyValues(sort, sql_types, snapshot_version, local_base, pg);
    auto new_values = KeyValues(sort, sql_types, current_version, local_base, pg);
    for (size_t i = 0; i < sort.size(); ++i) {
      if (!old_values[i] || old_values[i] == new_values[i]) continue;
      changed[i].emplace(rid, std::move(*old_values[i]));
      rows_changed.insert(rid);
    }
    if (rows_changed.size() > kMaxKeysChangedSinceSnapshot)
      return TooManyChanges("The sort keys of more than " +
                            std::to_string(kMaxKeysChangedSinceSnapshot) + " matches changed");
  }
  out.changed = rows_changed.size();
  if (rows_changed.empty()) return out;

  // Each key's lists padded to a power of two: a handful of statement texts whatever the
  // changes. Their placeholders stay well within both databases' limits.
  size_t placeholders = 0;
  for (const auto& c : changed) placeholders += c.empty() ? 0 : 3 * Slots(c.size());
  if (placeholders > kMaxKeyPlaceholders)
    return TooManyChanges("Too many sort keys of matches changed");
  for (size_t i = 0; i < sort.size(); ++i) {
    if (changed[i].empty()) continue;
    const size_t slots = Slots(changed[i].size());
    // PostgreSQL's TEXT columns compare in code point order (COLLATE "C", as SQLite's): so does
    // this value (the database layer writes TEXT so only in a column's type).
    const bool text = sql_types[i] == "TEXT";
    const std::string type = text && pg ? "text" : std::string(sql_types[i]);
    const std::string value = "CAST(? AS " + type + ")" + (text && pg ? " COLLATE \"C\"" : "");
    Sql s;
    s.text = "CASE WHEN " + alias + ".rowid IN (" + Placeholders(slots) + ") THEN CASE " + alias +
             ".rowid";
    for (const auto& entry : changed[i]) s.bindings.push_back(entry.first);
    s.bindings.resize(slots, nullptr);
    for (size_t j = 0; j < slots; ++j) s.text += " WHEN ? THEN " + value;
    for (auto& [rid, key] : changed[i]) {
      s.bindings.push_back(rid);
      s.bindings.push_back(std::move(key));
    }
    s.bindings.resize(3 * slots, nullptr);
    s.text += " END ELSE " + out.keys[i].text + " END";
    s.bindings.insert(s.bindings.end(), out.keys[i].bindings.begin(), out.keys[i].bindings.end());
    out.keys[i] = std::move(s);
  }
  return out;
}

}  // namespace fhirstone::store::internal
