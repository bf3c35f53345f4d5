// Search execution: https://hl7.org/fhir/R4/search.html. Matches are read in pages that stay
// stable while writes happen: every page of one search is bounded by the resource rowid seen
// when the search began (later creations are left out), the default order is by rowid (an
// update keeps a resource's rowid) and pages continue after/before a rowid rather than at an
// offset, so deletions cannot shift them; sorted searches page by offset under the same bound.
// Includes are bounded (kMaxIncluded) and :iterate stops at a fixed point.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

#include "common/strings.h"
#include "store/internal/search_sql.h"
#include "store/internal/snapshot_keys.h"
#include "store/resource_store.h"

namespace fhirstone::store::internal {
namespace {

constexpr size_t kMaxIncluded = 1000;
// The largest offset of a page token of the form earlier versions wrote ('o'): a sorted search
// keeps offset + _count matches in memory (SQLite) or sorts that many (PostgreSQL).
constexpr int64_t kMaxPageOffset = 10000;
constexpr int kMaxIterations = 4;

struct PageToken {
  // 'a' after rowid, 'b' before rowid (unsorted); 'k' after, 'j' before the sort keys `keys` and
  // rowid (sorted); 'o' offset (sorted, links of earlier versions); 0: first page.
  char kind = 0;
  int64_t position = 0;  // the rowid, or the offset
  int64_t snapshot = 0;
  // 'k' and 'j': the last history entry (txid) of the first page's snapshot, whose versions give
  // the keys (internal::KeysAsOf); -1 when the token has none (links of earlier versions).
  int64_t history = -1;
  std::string keys;  // 'k' and 'j': the sort keys, encoded (EncodeKeys)
};

Result<PageToken> ParsePage(const std::optional<std::string>& page) {
  PageToken t;
  if (!page) return t;
  const std::string& s = *page;
  size_t dot = s.rfind('.');
  auto bad = [&] { return Error::Invalid("Invalid paging position '" + s + "'"); };
  if (s.size() < 4 || dot == std::string::npos || dot == 0 || s[dot + 1] != 's' ||
      std::string_view("abokj").find(s[0]) == std::string_view::npos)
    return bad();
  std::string_view position = std::string_view(s).substr(1, dot - 1);
  if (s[0] == 'k' || s[0] == 'j') {  // keys~rowid
    size_t tilde = position.rfind('~');
    if (tilde == std::string_view::npos) return bad();
    t.keys = std::string(position.substr(0, tilde));
    position.remove_prefix(tilde + 1);
  }
  auto parsed = ParseInt64(position);
  std::string_view bounds = std::string_view(s).substr(dot + 2);  // snapshot[h<history>]
  size_t h = bounds.find('h');
  auto snapshot = ParseInt64(bounds.substr(0, h));
  if (!parsed || !snapshot || *parsed < 0 || *snapshot < 0) return bad();
  if (h != std::string_view::npos) {
    auto history = ParseInt64(bounds.substr(h + 1));
    if (!history || *history < 0 || (s[0] != 'k' && s[0] != 'j')) return bad();
    t.history = *history;
  }
  t.kind = s[0];
  t.position = *parsed;
  t.snapshot = *snapshot;
  return t;
}

std::string MakePage(char kind, int64_t position, int64_t snapshot) {
  return std::string(1, kind) + std::to_string(position) + ".s" + std::to_string(snapshot);
}

// The columns of a resource row that ReadRow reads, in its order.
constexpr std::string_view kRowColumns =
    "r.rowid, r.type, r.id, r.version, r.last_updated, r.body, r.patients";
// The same where the type is known (ReadRow's `type`): not read from the row.
constexpr std::string_view kRowColumnsTyped =
    "r.rowid, NULL, r.id, r.version, r.last_updated, r.body, r.patients";

// A resource row (kRowColumns) but its row id (the caller's, read first); its patients only when
// asked for (`patients` not null). `type`, when not empty, is the row's (the statement's
// condition has it): not read again. The strings are built from the columns, not assigned.
ResourceVersion ReadRow(db::Statement& s, PatientsColumnReader* patients,
                        std::string_view type = {}) {
  ResourceVersion v{.type = std::string(type.empty() ? s.ColumnText(1) : type),
                    .id = std::string(s.ColumnText(2)),
                    .version = s.ColumnInt(3),
                    .last_updated = s.ColumnInt(4),
                    .body = std::string(s.ColumnText(5))};
  if (patients) v.patients = patients->Read(s, 6);
  v.method = v.version == 1 ? Method::kCreate : Method::kUpdate;
  return v;
}

// A match's sort keys, for a sort in memory (SQLite): each key is the value SortSql selects,
// NULL when the resource has none.
enum class SortKind { kText, kInteger, kReal, kNull };

SortKind KindOf(const search::SortKey& key) {
  const search::SearchParam& p = *key.param;
  if (p.code == "_id") return SortKind::kText;
  if (p.code == "_lastUpdated") return SortKind::kInteger;
  switch (p.type) {
    case search::ParamType::kString:
    case search::ParamType::kToken:
    case search::ParamType::kReference:
    case search::ParamType::kUri:
      return SortKind::kText;
    case search::ParamType::kDate:
      return SortKind::kInteger;
    case search::ParamType::kNumber:
    case search::ParamType::kQuantity:
      return SortKind::kReal;
    default:
      return SortKind::kNull;
  }
}

struct SortValue {
  bool null = true;
  int64_t integer = 0;
  double real = 0;
  std::string text;
  bool cut = false;  // `text` is the start of a longer key (a link's `x`): the cursor row has it
};

// The longest text key a link carries whole; of a longer one, it carries this many bytes and the
// search reads the rest from the cursor's row (its links stay short enough to be sent back).
constexpr size_t kMaxLinkText = 256;

// A sorted page's sort keys in its link's token, URL-safe and exact: each key `n` (none), `i` and
// the integer, `r` and the 16 hex digits of the double's bits, `t` and the text's bytes in hex,
// or `x` and the hex of the first kMaxLinkText bytes of a longer text; joined by `~`.
std::string EncodeKeys(const std::vector<SortValue>& keys, const std::vector<SortKind>& kinds) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i) out += '~';
    const SortValue& v = keys[i];
    if (v.null) {
      out += 'n';
    } else if (kinds[i] == SortKind::kText) {
      bool cut = v.text.size() > kMaxLinkText;
      out += cut ? 'x' : 't';
      for (unsigned char c : std::string_view(v.text).substr(0, kMaxLinkText)) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    } else if (kinds[i] == SortKind::kInteger) {
      out += 'i' + std::to_string(v.integer);
    } else {
      uint64_t bits;
      std::memcpy(&bits, &v.real, 8);
      out += 'r';
      for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(bits >> shift) & 15];
    }
  }
  return out;
}

std::optional<std::vector<SortValue>> DecodeKeys(std::string_view text,
                                                 const std::vector<SortKind>& kinds) {
  std::vector<SortValue> keys;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::string_view part : Split(text, '~')) {
    if (part.empty() || keys.size() == kinds.size()) return std::nullopt;
    SortKind kind = kinds[keys.size()];
    SortValue v;
    char tag = part[0];
    part.remove_prefix(1);
    if (tag == 'n' && part.empty()) {
      keys.push_back(v);
      continue;
    }
    v.null = false;
    if ((tag == 't' || (tag == 'x' && part.size() == 2 * kMaxLinkText)) &&
        kind == SortKind::kText && part.size() % 2 == 0) {
      v.cut = tag == 'x';
      for (size_t i = 0; i < part.size(); i += 2) {
        int hi = hex(part[i]), lo = hex(part[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        v.text += static_cast<char>(hi * 16 + lo);
      }
    } else if (tag == 'i' && kind == SortKind::kInteger) {
      auto n = ParseInt64(part);
      if (!n) return std::nullopt;
      v.integer = *n;
    } else if (tag == 'r' && kind == SortKind::kReal && part.size() == 16) {
      uint64_t bits = 0;
      for (char c : part) {
        int d = hex(c);
        if (d < 0) return std::nullopt;
        bits = bits << 4 | static_cast<uint64_t>(d);
      }
      std::memcpy(&v.real, &bits, 8);
      // Not NaN, which no stored value is (it would order differently on the two databases);
      // an infinity is (a decimal such as 1e400), and orders the same on both.
      if (std::isnan(v.real)) return std::nullopt;
    } else {
      return std::nullopt;
    }
    keys.push_back(std::move(v));
  }
  if (keys.size() != kinds.size()) return std::nullopt;
  return keys;
}

// The first `keep` matches in the order of `ORDER BY s0 [DESC] NULLS LAST, ..., rowid`, with
// SQLite's BINARY collation (bytes compared as unsigned, then the shorter first: what
// std::string::compare does), read from rows of (rowid, s0, s1...). Memory is bounded by `keep`:
// the kept rows are a heap whose top is the last of them in the order, and a row read into the
// spare slot either replaces that top or is dropped.
class TopRows {
 public:
  TopRows(const std::vector<search::SortKey>& keys, size_t keep) : keep_(keep) {
    for (const auto& k : keys) {
      kinds_.push_back(KindOf(k));
      descending_.push_back(k.descending);
    }
  }

  // Keeps only the matches after (`before`: before) the match with keys `keys` and row id `rid`
  // in the order; with `before`, the kept rows come nearest first (the order reversed). Every
  // match still counts in matched(). Call before adding.
  void SetCursor(const std::vector<SortValue>& keys, int64_t rid, bool before) {
    reverse_ = before;
    size_t slot = NewSlot();
    cursor_ = slot;
    rids_[slot] = rid;
    for (size_t i = 0; i < kinds_.size(); ++i) values_[slot * kinds_.size() + i] = keys[i];
    if (!keys.empty()) {
      cursor_pair_ = std::pair{keys[0].integer, rid};
      cursor_null_ = keys[0].null;
    }
  }

  // A row of (rowid, s0, s1...).
  void Add(db::Statement& s) {
    AddWith(s.ColumnInt(0), [&](size_t slot) { Read(s, slot); });
  }
  // A match whose only key is the integer `key` (not mixed with rows): kept as a (key, rowid)
  // pair compared inline, the surplus dropped whenever there are twice `keep` (linear on the
  // whole), instead of a heap of slots compared key kind by key kind.
  void Add(int64_t rid, int64_t key) {
    ++matched_;
    if (keep_ == 0) return;
    if (cursor_null_) {
      // Nothing comes after a match without a key (a folded key always has one), all before it.
      if (!reverse_) return;
    } else if (cursor_pair_ && !PairBefore{descending_[0], reverse_}(*cursor_pair_, {key, rid})) {
      return;
    }
    pairs_.emplace_back(key, rid);
    if (pairs_.size() >= 2 * keep_ + 64) KeepFirstPairs();
  }
  int64_t matched() const { return matched_; }
  // The kept rows' ids, in the order (reversed after SetCursor(..., before)).
  std::vector<int64_t> Sorted() {
    std::vector<int64_t> rids;
    sorted_keys_.clear();
    if (!pairs_.empty()) {
      KeepFirstPairs();
      std::sort(pairs_.begin(), pairs_.end(), PairBefore{descending_[0], reverse_});
      rids.reserve(pairs_.size());
      for (const auto& [key, rid] : pairs_) {
        rids.push_back(rid);
        SortValue v;
        v.null = false;
        v.integer = key;
        sorted_keys_.push_back({v});
      }
      return rids;
    }
    std::sort_heap(heap_.begin(), heap_.end(), [this](size_t a, size_t b) { return Before(a, b); });
    rids.reserve(heap_.size());
    for (size_t slot : heap_) {
      rids.push_back(rids_[slot]);
      sorted_keys_.emplace_back(
          values_.begin() + static_cast<std::ptrdiff_t>(slot * kinds_.size()),
          values_.begin() + static_cast<std::ptrdiff_t>((slot + 1) * kinds_.size()));
    }
    return rids;
  }
  // The keys of the i-th row Sorted() returned.
  const std::vector<SortValue>& KeysOfSorted(size_t i) const { return sorted_keys_[i]; }

 private:
  // ORDER BY key [DESC], rowid over (key, rowid) pairs; `reverse` the other way.
  struct PairBefore {
    bool descending;
    bool reverse = false;
    bool operator()(const std::pair<int64_t, int64_t>& a,
                    const std::pair<int64_t, int64_t>& b) const {
      if (reverse) return InOrder(b, a);
      return InOrder(a, b);
    }
    bool InOrder(const std::pair<int64_t, int64_t>& a, const std::pair<int64_t, int64_t>& b) const {
      if (a.first != b.first) return descending ? a.first > b.first : a.first < b.first;
      return a.second < b.second;
    }
  };
  void KeepFirstPairs() {
    if (pairs_.size() <= keep_) return;
    std::nth_element(pairs_.begin(), pairs_.begin() + static_cast<std::ptrdiff_t>(keep_),
                     pairs_.end(), PairBefore{descending_[0], reverse_});
    pairs_.resize(keep_);
  }

  // `fill(slot)` writes the match's keys into the slot. The match is read into the spare slot,
  // which then either joins the kept ones (a new spare is made while fewer than `keep` are
  // kept), replaces the last of them, or stays spare.
  template <typename Fill>
  void AddWith(int64_t rid, Fill&& fill) {
    ++matched_;
    if (keep_ == 0) return;
    if (!spare_) spare_ = NewSlot();
    size_t slot = *spare_;
    rids_[slot] = rid;
    fill(slot);
    if (cursor_ && !Before(*cursor_, slot)) return;  // not past the cursor
    auto before = [this](size_t a, size_t b) { return Before(a, b); };
    if (heap_.size() < keep_) {
      heap_.push_back(slot);
      std::push_heap(heap_.begin(), heap_.end(), before);
      spare_.reset();
    } else if (Before(slot, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), before);
      spare_ = heap_.back();
      heap_.back() = slot;
      std::push_heap(heap_.begin(), heap_.end(), before);
    }
  }
  size_t NewSlot() {
    rids_.push_back(0);
    values_.resize(values_.size() + kinds_.size());
    return rids_.size() - 1;
  }
  void Read(db::Statement& s, size_t slot) {
    for (size_t i = 0; i < kinds_.size(); ++i) {
      SortValue& v = values_[slot * kinds_.size() + i];
      int column = static_cast<int>(i) + 1;
      v.null = kinds_[i] == SortKind::kNull || s.ColumnIsNull(column);
      if (v.null) continue;
      if (kinds_[i] == SortKind::kText) {
        v.text.assign(s.ColumnText(column));
      } else if (kinds_[i] == SortKind::kInteger) {
        v.integer = s.ColumnInt(column);
      } else {
        v.real = s.ColumnDouble(column);
      }
    }
  }
  bool Before(size_t a, size_t b) const { return reverse_ ? InOrder(b, a) : InOrder(a, b); }
  bool InOrder(size_t a, size_t b) const {
    for (size_t i = 0; i < kinds_.size(); ++i) {
      const SortValue& x = values_[a * kinds_.size() + i];
      const SortValue& y = values_[b * kinds_.size() + i];
      if (x.null != y.null) return !x.null;  // resources without a value last, either way
      if (x.null) continue;
      int c = 0;
      switch (kinds_[i]) {
        case SortKind::kText:
          c = x.text.compare(y.text);
          break;
        case SortKind::kInteger:
          c = x.integer < y.integer ? -1 : x.integer > y.integer ? 1 : 0;
          break;
        case SortKind::kReal:
          c = x.real < y.real ? -1 : x.real > y.real ? 1 : 0;
          break;
        case SortKind::kNull:
          break;
      }
      if (c != 0) return descending_[i] ? c > 0 : c < 0;
    }
    return rids_[a] < rids_[b];
  }

  size_t keep_;
  std::vector<SortKind> kinds_;
  std::vector<bool> descending_;
  std::vector<int64_t> rids_;                       // per slot
  std::vector<SortValue> values_;                   // per slot, its keys in order
  std::vector<size_t> heap_;                        // the kept slots
  std::vector<std::pair<int64_t, int64_t>> pairs_;  // Add(rid, key): (key, rowid)
  std::optional<size_t> spare_;
  bool reverse_ = false;
  std::optional<size_t> cursor_;                            // SetCursor's slot
  std::optional<std::pair<int64_t, int64_t>> cursor_pair_;  // and as a pair
  bool cursor_null_ = false;                                // its first key is NULL
  std::vector<std::vector<SortValue>> sorted_keys_;         // Sorted()'s rows' keys
  int64_t matched_ = 0;
};

// The row ids of the resources a search has put in its answer (at most its page and
// kMaxIncluded): a sorted vector, no allocation per row id as a hash set's nodes.
class RowIdSet {
 public:
  template <typename It>
  RowIdSet(It first, It last) : ids_(first, last) {
    std::sort(ids_.begin(), ids_.end());
    ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
  }
  // Whether `id` was new.
  bool Insert(int64_t id) {
    auto at = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (at != ids_.end() && *at == id) return false;
    ids_.insert(at, id);
    return true;
  }
  void Erase(int64_t id) {
    auto at = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (at != ids_.end() && *at == id) ids_.erase(at);
  }

 private:
  std::vector<int64_t> ids_;
};

// Reads resources by a condition on `r` (with bindings), skipping those already in `seen` (row
// ids). `with` (a WITH clause, its placeholders first among the bindings) goes before the SELECT.
// `type`, when not empty, is every row's type (the condition restricts them to it). `visible`,
// when set, keeps a row out when false (SearchQuery::include_visible): seen, not read again.
using Visible = std::function<bool(std::string_view, std::string_view)>;
Status ReadInto(db::Connection& conn, const std::string& condition,
                const std::vector<Binding>& bindings, RowIdSet& seen, bool with_patients,
                std::vector<ResourceVersion>& out, std::vector<int64_t>* rids,
                std::string_view from = "resource r", std::string_view with = "",
                std::string_view type = {}, const Visible* visible = nullptr) {
  auto stmt = conn.Prepare(std::string(with) + "SELECT " +
                           std::string(type.empty() ? kRowColumns : kRowColumnsTyped) + " FROM " +
                           std::string(from) + " WHERE r.deleted = 0 AND " + condition);
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  int index = 1;
  Bind(s, index, bindings);
  PatientsColumnReader patients;
  while (true) {
    auto row = s.Step();
    if (!row) {
      s.Reset();
      return std::move(row).error();
    }
    if (!*row || out.size() >= kMaxIncluded) break;
    int64_t rid = s.ColumnInt(0);
    if (!seen.Insert(rid)) continue;  // before its body is copied
    if (visible && *visible && !(*visible)(type.empty() ? s.ColumnText(1) : type, s.ColumnText(5)))
      continue;
    out.push_back(ReadRow(s, with_patients ? &patients : nullptr, type));
    if (rids) rids->push_back(rid);
  }
  s.Reset();
  return Ok();
}

// Whether `sql` reads no column of the resource row `r` but its row id (`r.rowid`).
bool OnlyRowIds(std::string_view sql) {
  for (size_t at = sql.find("r."); at != std::string_view::npos; at = sql.find("r.", at + 1)) {
    char before = at == 0 ? ' ' : sql[at - 1];
    bool word = std::isalnum(static_cast<unsigned char>(before)) || before == '_';
    if (!word && !sql.substr(at + 2).starts_with("rowid")) return false;
  }
  return true;
}

std::string InList(size_t n) {
  std::string s = "(";
  for (size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s + ")";
}

// "WITH ids(k) AS (VALUES (?), ...) ": `n` placeholders rounded up to a power of two
// (`slots`), those past the n-th to be bound NULL, so that a handful of statements is prepared and
// cached whatever `n`.
std::string IdsValues(size_t n, size_t& slots) {
  slots = 1;
  while (slots < n) slots *= 2;
  std::string with = "WITH ids(k) AS (VALUES (?)";
  for (size_t i = 1; i < slots; ++i) with += ", (?)";
  return with + ") ";
}

// "WITH ids(k0, k1) AS (VALUES (?, ?), ...) ": IdsValues for internal::ReferenceKey.
std::string KeysValues(size_t n, size_t& slots) {
  slots = 1;
  while (slots < n) slots *= 2;
  std::string with = "WITH ids(k0, k1) AS (VALUES (?, ?)";
  for (size_t i = 1; i < slots; ++i) with += ", (?, ?)";
  return with + ") ";
}

// The rows of `rids` (distinct row ids), appended to `out` in that order (their row ids to
// `out_rids`): one statement, the row ids as a VALUES list joined to the resource rows, instead of
// one lookup each (half the SQL for a page of 50; `rowid IN (...)` sorts the list in a temporary
// B-tree first; IdsValues). A row id without a row is an internal error: the caller read it in
// the same snapshot.
Status ReadRowsById(db::Connection& conn, const std::vector<int64_t>& rids, bool with_patients,
                    std::vector<ResourceVersion>& out, std::vector<int64_t>& out_rids) {
  if (rids.empty()) return Ok();
  size_t slots;
  std::string with = IdsValues(rids.size(), slots);
  auto stmt = conn.Prepare(with + "SELECT " + std::string(kRowColumns) +
                           " FROM ids CROSS JOIN resource r ON r.rowid = ids.k");
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  for (size_t i = 0; i < slots; ++i) {
    if (i < rids.size()) {
      s.BindInt(static_cast<int>(i) + 1, rids[i]);
    } else {
      s.BindNull(static_cast<int>(i) + 1);  // no row: NULL is no row id (not even looked up)
    }
  }
  // Where each row id goes: (row id, its place), by row id.
  std::vector<std::pair<int64_t, size_t>> places(rids.size());
  for (size_t i = 0; i < rids.size(); ++i) places[i] = {rids[i], i};
  std::sort(places.begin(), places.end());
  std::vector<ResourceVersion> rows(rids.size());
  std::vector<char> found(rids.size());
  PatientsColumnReader patients;
  while (true) {
    auto row = s.Step();
    if (!row) {
      s.Reset();
      return std::move(row).error();
    }
    if (!*row) break;
    int64_t rid = s.ColumnInt(0);
    auto at = std::lower_bound(places.begin(), places.end(), std::pair<int64_t, size_t>{rid, 0});
    if (at == places.end() || at->first != rid || found[at->second]) continue;
    found[at->second] = 1;
    rows[at->second] = ReadRow(s, with_patients ? &patients : nullptr);
  }
  s.Reset();
  if (std::find(found.begin(), found.end(), 0) != found.end())
    return Error::Internal("A search match has no resource row in its snapshot");
  out.reserve(out.size() + rows.size());
  for (auto& v : rows) out.push_back(std::move(v));
  out_rids.insert(out_rids.end(), rids.begin(), rids.end());
  return Ok();
}

// Sets the patients of each of `versions` (whose rowids are `rids`) that its row did not give
// (written before rows kept them, and not reindexed since): its Patient compartment's
// references to patients, read from the index (what the audit log would otherwise find by
// extracting them from the body again). A Patient is its own patient.
Status FillPatients(db::Connection& conn, const search::Registry& registry,
                    std::vector<ResourceVersion>& versions, const std::vector<int64_t>& rids,
                    std::optional<int64_t> shard) {
  if (versions.size() != rids.size()) return Ok();  // not known: found from the bodies
  // The index keys of the compartment parameters of each type found (none: no patient data).
  std::unordered_map<std::string_view, std::vector<std::string>> keys;
  std::unordered_map<int64_t, size_t> at;
  // The lists being filled (versions[i].patients, while they are built).
  std::vector<std::shared_ptr<std::vector<std::string>>> lists(versions.size());
  for (size_t i = 0; i < versions.size(); ++i) {
    ResourceVersion& v = versions[i];
    if (v.patients) continue;  // from its row
    lists[i] = std::make_shared<std::vector<std::string>>();
    v.patients = lists[i];
    if (v.type == "Patient") {
      lists[i]->push_back(v.id);
      continue;
    }
    auto [known, fresh] = keys.try_emplace(v.type);
    if (fresh)
      for (const auto* p : registry.CompartmentParams("Patient", v.type))
        for (std::string& key : StoredKeys(*p)) known->second.push_back(std::move(key));
    if (!known->second.empty()) at.emplace(rids[i], i);
  }
  // Resources of one type: only its compartment parameters' rows are read, each by its key
  // (rid, param).
  const std::vector<std::string>* only = keys.size() == 1 ? &keys.begin()->second : nullptr;
  constexpr size_t kBatch = 500;
  std::vector<int64_t> batch;
  auto run = [&]() -> Status {
    auto stmt =
        conn.Prepare(std::string("SELECT rid, param, target_id FROM idx_reference WHERE ") +
                     (shard ? "shard_key = ? AND " : "") + "target_type = 'Patient' AND rid IN " +
                     InList(batch.size()) + (only ? " AND param IN " + InList(only->size()) : ""));
    if (!stmt) return std::move(stmt).error();
    db::Statement& s = **stmt;
    int index = 1;
    if (shard) s.BindInt(index++, *shard);
    for (int64_t rid : batch) s.BindInt(index++, rid);
    if (only)
      for (const std::string& key : *only) s.BindText(index++, key);
    while (true) {
      auto row = s.Step();
      if (!row) {
        s.Reset();
        return std::move(row).error();
      }
      if (!*row) break;
      auto found = at.find(s.ColumnInt(0));
      if (found == at.end()) continue;
      size_t i = found->second;
      const std::vector<std::string>& params = keys[versions[i].type];
      std::string_view param = s.ColumnText(1), patient = s.ColumnText(2);
      if (patient.empty() || std::find(params.begin(), params.end(), param) == params.end())
        continue;
      std::vector<std::string>& list = *lists[i];
      if (std::find(list.begin(), list.end(), patient) == list.end()) list.emplace_back(patient);
    }
    s.Reset();
    batch.clear();
    return Ok();
  };
  for (const auto& [rid, index] : at) {
    batch.push_back(rid);
    if (batch.size() == kBatch) FHIRSTONE_RETURN_IF_ERROR(run());
  }
  if (!batch.empty()) FHIRSTONE_RETURN_IF_ERROR(run());
  return Ok();
}

// The condition (on `m`: row id `k`, keys `s0`, `s1`...) that a match comes after the match with
// keys `keys` and row id `rid` in the order of `sort` (NULLs last), or before it (`before`): SQL's
// sort of PostgreSQL, whose collation the comparisons share.
std::string CursorCondition(const std::vector<search::SortKey>& sort,
                            const std::vector<SortValue>& keys, int64_t rid, bool before,
                            std::vector<Binding>& bindings) {
  auto bind = [&](size_t i) {
    const SortValue& v = keys[i];
    switch (KindOf(sort[i])) {
      case SortKind::kText:
        bindings.push_back(v.text);
        break;
      case SortKind::kInteger:
        bindings.push_back(v.integer);
        break;
      default:
        bindings.push_back(v.real);
        break;
    }
  };
  std::string out = "(";
  std::string equal;  // the keys before the i-th equal to the cursor's
  std::vector<size_t> equal_binds;
  for (size_t i = 0; i < sort.size(); ++i) {
    std::string column = "m.s" + std::to_string(i);
    std::string past;  // the i-th key strictly past the cursor's
    if (keys[i].null) {
      if (before) past = column + " IS NOT NULL";  // a value comes before none; none after none
    } else if (before) {  // a value, not none, on the near side of the cursor's
      past = column + (sort[i].descending ? " > ?" : " < ?");
    } else {  // a value on the far side, or none (last)
      past = "(" + column + (sort[i].descending ? " < ?" : " > ?") + " OR " + column + " IS NULL)";
    }
    if (!past.empty()) {
      out += (out.size() > 1 ? " OR (" : "(") + equal + past + ")";
      for (size_t j : equal_binds) bind(j);
      if (!keys[i].null) bind(i);
    }
    equal += keys[i].null ? column + " IS NULL AND " : column + " = ? AND ";
    if (!keys[i].null) equal_binds.push_back(i);
  }
  out += (out.size() > 1 ? " OR (" : "(") + equal + (before ? "m.k < ?" : "m.k > ?") + "))";
  for (size_t j : equal_binds) bind(j);
  bindings.push_back(rid);
  return out;
}

// Puts included[first...] (and their row ids, alongside) in row id order.
void SortByRowId(std::vector<ResourceVersion>& included, std::vector<int64_t>& included_rids,
                 size_t first) {
  if (std::is_sorted(included_rids.begin() + static_cast<std::ptrdiff_t>(first),
                     included_rids.end()))
    return;
  std::vector<size_t> order(included.size() - first);
  for (size_t i = 0; i < order.size(); ++i) order[i] = first + i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return included_rids[a] < included_rids[b]; });
  std::vector<ResourceVersion> versions;
  std::vector<int64_t> rids;
  versions.reserve(order.size());
  rids.reserve(order.size());
  for (size_t i : order) {
    versions.push_back(std::move(included[i]));
    rids.push_back(included_rids[i]);
  }
  if (first == 0) {  // the whole list: taken over rather than moved back
    included.swap(versions);
    included_rids.swap(rids);
    return;
  }
  std::move(versions.begin(), versions.end(), included.begin() + first);
  std::copy(rids.begin(), rids.end(), included_rids.begin() + first);
}

// One round of _include / _revinclude over `sources` (resources and their rowids).
Status IncludeRound(db::Connection& conn, const search::SearchQuery& q, bool iterate_only,
                    const std::vector<ResourceVersion>& sources,
                    const std::vector<int64_t>& source_rids, RowIdSet& seen, bool with_patients,
                    std::vector<ResourceVersion>& included, std::vector<int64_t>& included_rids) {
  for (const search::Include& inc : q.includes) {
    if (iterate_only && !inc.iterate) continue;
    if (!inc.reverse) {
      std::vector<Binding> bindings;
      std::vector<int64_t> rids;
      for (size_t i = 0; i < sources.size(); ++i)
        if (inc.source_type.empty() || sources[i].type == inc.source_type)
          rids.push_back(source_rids[i]);
      if (rids.empty()) continue;
      std::string param_condition;
      if (inc.param) {
        param_condition = ParamIs(*inc.param, bindings) + " AND ";
      } else if (!inc.source_type.empty()) {
        // The type's reference parameters, and those of every resource (a custom one's base
        // may be Resource or DomainResource).
        param_condition =
            "(param LIKE ? OR param LIKE 'Resource.%' OR param LIKE 'DomainResource.%') AND ";
        bindings.push_back(inc.source_type + ".%");
      }  // else every reference parameter of the resources (_include=*)
      std::string cond =
          "(r.type, r.id) IN (SELECT target_type, target_id FROM idx_reference WHERE " +
          param_condition + "target_type != ''";
      if (!inc.target_type.empty()) {
        cond += " AND target_type = ?";
        bindings.push_back(inc.target_type);
      }
      // In row id order on both databases: the same entries, and the first stored kept at the
      // bound of included resources.
      cond += " AND rid IN " + InList(rids.size()) + ") ORDER BY r.rowid";
      for (int64_t rid : rids) bindings.push_back(rid);
      FHIRSTONE_RETURN_IF_ERROR(ReadInto(conn, cond, bindings, seen, with_patients, included,
                                         &included_rids, "resource r", "", {}, &q.include_visible));
    } else {
      if (!inc.param) continue;
      // Per target type: param = ? AND target_type = ? AND target_id IN (...), on the index.
      std::map<std::string, std::vector<std::string>> ids_by_type;
      for (const auto& v : sources)
        if (inc.target_type.empty() || v.type == inc.target_type)
          ids_by_type[v.type].push_back(v.id);
      for (const auto& [type, ids] : ids_by_type) {
        const size_t first = included.size();
        if (conn.dialect() == db::Dialect::kSqlite) {
          // SQLite: for each (parameter key, id), its key (internal::ReferenceKey: a VALUES
          // list, KeysValues: no temporary B-tree of them as `IN (...)` builds; its padding is
          // NULL, which no key row has), from its key rows to their resources (CROSS JOIN keeps
          // that order; a resource referring to several of the ids is read once: `seen`),
          // without the temporary B-tree of row ids that `rowid IN (SELECT ...)` builds. The
          // round's rows then go in row id order, as that form reads them.
          const std::vector<std::string> keys = StoredKeys(*inc.param);
          std::vector<Binding> bindings;
          size_t slots;
          std::string with = KeysValues(keys.size() * ids.size(), slots);
          for (const std::string& key : keys)
            for (const std::string& id : ids) {
              ReferenceKey k = ReferenceKeyOf(key, type, id);
              bindings.push_back(k.place);
              bindings.push_back(k.hash);
            }
          while (bindings.size() < 2 * slots) bindings.push_back(nullptr);
          // The rows of a parameter of the source type are that type's resources; one of
          // Resource or DomainResource would have rows of every type (no reference parameter
          // has such a base now: custom ones name resource types).
          const std::string prefix = inc.source_type + ".";
          bool typed = std::all_of(keys.begin(), keys.end(),
                                   [&](const std::string& key) { return key.starts_with(prefix); });
          std::string condition = "x.k0 = ids.k0 AND x.k1 = ids.k1";
          if (!typed) {
            condition += " AND +r.type = ?";
            bindings.push_back(inc.source_type);
          }
          FHIRSTONE_RETURN_IF_ERROR(ReadInto(
              conn, condition, bindings, seen, with_patients, included, &included_rids,
              "ids CROSS JOIN idx_reference_key x CROSS JOIN resource r ON r.rowid = x.rid", with,
              inc.source_type, &q.include_visible));
          if (included.size() < kMaxIncluded) {
            SortByRowId(included, included_rids, first);
            continue;
          }
          // Cut at kMaxIncluded: the rows kept must be the first stored, not those of the first
          // ids in the index's order. Read again the way that keeps them.
          for (size_t i = first; i < included_rids.size(); ++i) seen.Erase(included_rids[i]);
          included.resize(first);
          included_rids.resize(first);
        }
        // PostgreSQL (and SQLite past the cut): the referring rows' ids in a subquery, which a
        // distributed database plans on its own (docs/scale-out.md), the rows in row id order
        // (SQLite reads them so).
        std::vector<Binding> bindings;
        std::string param = ParamIs(*inc.param, bindings);
        bindings.push_back(type);
        for (const auto& id : ids) bindings.push_back(id);
        bindings.push_back(inc.source_type);
        FHIRSTONE_RETURN_IF_ERROR(
            ReadInto(conn,
                     "r.rowid IN (SELECT rid FROM idx_reference WHERE " + param +
                         " AND target_type = ? AND target_id IN " + InList(ids.size()) +
                         ") AND +r.type = ?" +
                         (conn.dialect() == db::Dialect::kSqlite ? "" : " ORDER BY r.rowid"),
                     bindings, seen, with_patients, included, &included_rids, "resource r", "", {},
                     &q.include_visible));
      }
    }
    if (included.size() >= kMaxIncluded) break;
  }
  return Ok();
}

}  // namespace

Result<SearchResult> RunSearch(db::Connection& conn, const search::SearchQuery& query,
                               std::string_view local_base, bool in_transaction,
                               const RunOptions& options) {
  const std::optional<int64_t>& shard = options.shard;
  // The patients of the rows read (their column) are kept only when asked for (FillPatients).
  const bool with_patients = options.registry != nullptr;
  // The index tables are read in the shard on PostgreSQL (what a distributed database needs);
  // SQLite's are clustered by row id and indexed by value without the shard key.
  std::optional<int64_t> index_shard =
      conn.dialect() == db::Dialect::kPostgres ? shard : std::nullopt;
  auto page = ParsePage(query.page);
  if (!page) return std::move(page).error();
  std::optional<db::Transaction> tx;
  if (!in_transaction) {
    auto begun = db::Transaction::Begin(conn, /*write=*/false);
    if (!begun) return std::move(begun).error();
    tx.emplace(std::move(begun).value());
  }
  // :in and :not-in name value sets, token :above and :below codes of a code system: their
  // codes, read in the same snapshot.
  std::optional<search::SearchQuery> expanded;
  auto terminology = [](const search::Criterion& c) {
    return c.modifier == "in" || c.modifier == "not-in" ||
           ((c.modifier == "above" || c.modifier == "below") && c.param &&
            c.param->type == search::ParamType::kToken);
  };
  for (const auto& c : query.criteria) {
    // A chain through several types: any path's parameter (they may differ in type).
    if (!terminology(c) && std::none_of(c.any_of.begin(), c.any_of.end(), terminology)) continue;
    expanded = query;
    FHIRSTONE_RETURN_IF_ERROR(ExpandValueSets(conn, expanded->criteria, local_base));
    break;
  }
  const search::SearchQuery& q = expanded ? *expanded : query;

  SearchResult result;
  int64_t snapshot = page->snapshot;
  // Sorted: the last history entry of the first page's snapshot (the links carry it), and the
  // number of matches whose keys are taken as of it (KeysAsOf).
  std::optional<int64_t> history;
  size_t keys_changed = 0;
  if (page->kind == 0) {
    auto max = conn.Prepare(q.sort.empty() ? "SELECT coalesce(max(rowid), 0) FROM resource"
                                           : "SELECT coalesce(max(rowid), 0), (SELECT "
                                             "coalesce(max(txid), 0) FROM resource_history) FROM "
                                             "resource");
    if (!max) return std::move(max).error();
    auto row = (*max)->Step();
    if (!row) {
      (*max)->Reset();
      return std::move(row).error();
    }
    snapshot = (*max)->ColumnInt(0);
    if (!q.sort.empty()) history = (*max)->ColumnInt(1);
    (*max)->Reset();
  } else if (!q.sort.empty() && page->history >= 0) {
    history = page->history;
  }

  // WHERE: live resources of the types asked, within the snapshot, matching every criterion.
  std::string where = "r.deleted = 0 AND r.rowid <= ?";
  std::vector<Binding> bindings{snapshot};
  if (shard) {  // every match lives in one shard: each table is read there only
    where += " AND r.shard_key = ?";
    bindings.push_back(*shard);
  }
  if (!q.types.empty()) {
    // With criteria, their rowid subqueries are the selective access path: the unary + keeps
    // SQLite from scanning every resource of the type through the (type, id) index instead.
    // Unless _id is among them: then (type, id) is the best path of all.
    bool by_id = false;
    for (const auto& c : q.criteria)
      by_id |= c.param && c.param->code == "_id" && c.modifier.empty() && c.chain.empty() &&
               c.has.empty();
    bool selective = (!q.criteria.empty() || q.compartment.has_value()) && !by_id;
    where +=
        std::string(selective ? " AND +r.type IN " : " AND r.type IN ") + InList(q.types.size());
    for (const auto& t : q.types) bindings.push_back(t);
  }
  if (q.compartment) {
    const search::Compartment& c = *q.compartment;
    if (c.params.empty()) {
      where += " AND 1 = 0";
    } else {
      std::vector<std::string> keys;
      for (const auto* p : c.params)
        for (std::string& key : StoredKeys(*p)) keys.push_back(std::move(key));
      where += std::string(" AND r.rowid IN (SELECT rid FROM idx_reference WHERE ") +
               (index_shard ? "shard_key = ? AND " : "") + "param IN " + InList(keys.size()) +
               " AND target_type = ? AND target_id = ?)";
      if (index_shard) bindings.push_back(*index_shard);
      for (std::string& key : keys) bindings.push_back(std::move(key));
      bindings.push_back(c.type);
      bindings.push_back(c.id);
    }
  }
  // The resource rows' own conditions, without the criteria.
  const std::string row_where = where;
  const std::vector<Binding> row_bindings = bindings;
  int counter = 0;
  // The most selective criterion drives (unless a compartment already does); the others filter.
  size_t driver = q.criteria.size();
  if (!q.compartment) {
    int best = -1;
    for (size_t i = 0; i < q.criteria.size(); ++i) {
      int rank = Selectivity(q.criteria[i]);
      if (rank > best) {
        best = rank;
        driver = i;
      }
    }
  }
  // On SQLite, a search within one patient's shard with a plain token criterion (code,
  // category, status...) is driven by that criterion in the shard: the token value index is
  // (param, code, shard_key), so the patient's rows with that code are found directly and the
  // patient's reference is checked on those rows only.
  std::optional<size_t> shard_driver;
  if (shard && !index_shard && !q.compartment) {
    for (size_t i = 0; i < q.criteria.size() && !shard_driver; ++i) {
      const search::Criterion& c = q.criteria[i];
      // Every value names a code (a bare `system|` could not use the index).
      bool codes = std::none_of(c.values.begin(), c.values.end(),
                                [](const std::string& v) { return v.ends_with('|'); });
      if (c.chain.empty() && c.has.empty() && c.modifier.empty() && codes &&
          c.param->type == search::ParamType::kToken && c.param->code != "_id")
        shard_driver = i;
    }
    if (shard_driver) driver = *shard_driver;
  }
  // With one plain criterion on a parameter of the searched type itself (not a Resource-level one,
  // whose index rows span types), the total is counted on the index alone: index rows exist only
  // for live resources, so no resource row is read.
  std::optional<Sql> index_count;
  // SQLite, a token criterion driving in the shard: its rows' distinct row ids as the table the
  // sorted keys query reads (`r`, with a rowid column), and the other criteria apart. The
  // resource rows are then not read for the candidates at all: index rows exist only for live
  // resources, theirs carry the resource's shard key, and a parameter of the searched type has
  // rows of that type only.
  std::optional<Sql> driver_rows;
  // The same without DISTINCT, for one value of a parameter stored under one key: a resource with
  // the code twice (under two systems) comes twice in a row, which the folded sort key's pass
  // takes as one candidate (see below). A union parameter's rows (combo-code: code, then
  // component-code) would bring a resource back later.
  std::optional<Sql> driver_token_rows;
  // The patient's reference is implied in a shard whose only owner is the patient
  // (docs/scale-out.md "Shards with one owner"): read once, in the search's snapshot, and the
  // criterion left out of the SQL.
  bool sole_owner = false;
  std::string plan_notes;
  if (shard && options.shard_criterion) {
    auto owner = conn.Prepare("SELECT owner FROM shard_owner WHERE shard_key = ?");
    if (!owner) return std::move(owner).error();
    (*owner)->BindInt(1, *shard);
    auto row = (*owner)->Step();
    if (!row) {
      (*owner)->Reset();
      return std::move(row).error();
    }
    sole_owner = *row && (*owner)->ColumnText(0) == options.shard_owner;
    (*owner)->Reset();
  }
  std::vector<Sql> criteria_sql(q.criteria.size());  // empty text: implied, left out
  for (size_t i = 0; i < q.criteria.size(); ++i) {
    const search::Criterion& c = q.criteria[i];
    auto sql = CriterionSql(
        c, "r", counter, local_base,
        q.types.size() == 1 ? std::optional<std::string>(q.types[0]) : std::nullopt,
        /*filter=*/i != driver, conn.dialect(), shard_driver == i ? shard : index_shard);
    if (!sql) return std::move(sql).error();
    constexpr std::string_view kDriverPrefix = "r.rowid IN (SELECT rid FROM ";
    if (q.criteria.size() == 1 && q.types.size() == 1 && !q.compartment && c.chain.empty() &&
        c.has.empty() && c.param->base == q.types[0] && sql->text.starts_with(kDriverPrefix)) {
      std::string inner = sql->text.substr(std::string_view("r.rowid IN (").size());
      inner.pop_back();  // the IN list's closing parenthesis
      constexpr std::string_view kTokens = "SELECT rid FROM idx_token WHERE ";
      if (conn.dialect() == db::Dialect::kSqlite && inner.starts_with(kTokens)) {
        // SQLite's token value index is ordered (param, code, shard_key, rid): the distinct
        // (shard_key, rid) pairs come in index order and are counted as they stream, without
        // the temporary b-tree of count(DISTINCT rid).
        index_count =
            Sql{"SELECT count(*) FROM (SELECT DISTINCT shard_key, rid FROM idx_token WHERE " +
                    inner.substr(kTokens.size()) + ") AS matches WHERE rid <= ?",
                sql->bindings};
      } else {
        index_count =
            Sql{"SELECT count(DISTINCT rid) FROM (" + inner + ") AS matches WHERE rid <= ?",
                sql->bindings};
      }
      index_count->bindings.push_back(snapshot);
    }
    constexpr std::string_view kShardTokens = "r.rowid IN (SELECT rid FROM idx_token WHERE ";
    if (shard_driver == i && q.types.size() == 1 && !q.compartment && c.param->base == q.types[0] &&
        sql->text.starts_with(kShardTokens)) {
      std::string inner = sql->text.substr(kShardTokens.size());
      inner.pop_back();  // the IN list's closing parenthesis
      driver_rows = Sql{"(SELECT DISTINCT rid AS rowid FROM idx_token WHERE " + inner + ") AS r",
                        sql->bindings};
      // One value of a parameter stored under one key: its rows come in row id order.
      if (c.values.size() == 1 && StoredKeys(*c.param).size() == 1)
        driver_token_rows =
            Sql{"(SELECT rid AS rowid FROM idx_token WHERE " + inner + ") AS r", sql->bindings};
    }
    if (shard && options.shard_criterion == i && i != driver && sole_owner) {
      plan_notes = "\n(the patient's reference is implied: the shard is the patient's alone)";
      continue;
    }
    criteria_sql[i] = *sql;
    where += " AND " + sql->text;
    bindings.insert(bindings.end(), sql->bindings.begin(), sql->bindings.end());
  }

  std::string count_sql =
      index_count ? index_count->text : "SELECT count(*) FROM resource r WHERE " + where;
  auto run_count = [&]() -> Status {
    auto count = conn.Prepare(count_sql);
    if (!count) return std::move(count).error();
    int index = 1;
    Bind(**count, index, index_count ? index_count->bindings : bindings);
    auto row = (*count)->Step();
    if (!row) {
      (*count)->Reset();
      return std::move(row).error();
    }
    result.total = (*count)->ColumnInt(0);
    (*count)->Reset();
    return Ok();
  };
  bool want_total = q.total != search::TotalMode::kNone;
  if (q.summary == search::SummaryMode::kCount) {
    FHIRSTONE_RETURN_IF_ERROR(run_count());
    result.plan = count_sql + plan_notes;
    return result;
  }

  // The page. Unsorted: in row id order, continuing after (or before) the page position.
  // Sorted: the matches' row ids and sort keys are sorted first and the bodies of the page's rows
  // read after, so the sort moves keys, not bodies; the total is counted in the same pass (a sort
  // reads every match anyway).
  std::string sql;
  std::vector<Binding> page_bindings;
  // On SQLite the sort runs in memory: one pass reads every match's row id and sort keys (and
  // counts them), the first offset + _count + 1 in the order are kept, and the page's rows are
  // read by row id after. A window count and ORDER BY ... LIMIT in SQL materialize every match
  // and sort it in two temporary B-trees: 40% of the SQL of a sorted page of 147 matches.
  // PostgreSQL sorts in SQL, in its own collation.
  const bool sort_in_memory = !q.sort.empty() && conn.dialect() == db::Dialect::kSqlite;
  std::optional<size_t> folded;  // the criterion folded into the sort key's join (see below)
  // SQLite, the folded key of one code's candidates in a patient's shard: the candidates' row ids
  // (`rows`), then the shard's date rows of the key's parameter in row id order (`dates`: row id,
  // key, whether the row matches; its last two bindings the first and last candidate), merged
  // with them, instead of a seek into the date rows for each candidate (idx_date_shard). When the
  // candidates are sparse among those rows (their row ids span more than four times their
  // number, or the rows read outrun them), the join (`sql`) reads the rest.
  struct DateMerge {
    Sql rows;
    Sql dates;
  };
  std::optional<DateMerge> merge;
  bool backwards = false;
  bool window_total = false;
  // A sorted page after (before) a match: its keys ('k' and 'j' pages; its row id is the
  // token's position).
  std::optional<std::vector<SortValue>> cursor;
  int64_t offset = 0;
  // A reverse chain (_has) costs as much to count as to page: on a first page its matches' row
  // ids are counted with the page, as a sorted page counts them, instead of found again by a
  // count query.
  const bool counted_page = q.sort.empty() && page->kind == 0 && want_total &&
                            std::any_of(q.criteria.begin(), q.criteria.end(),
                                        [](const search::Criterion& c) { return !c.has.empty(); });
  if (counted_page) {
    window_total = true;
    sql = "SELECT " + std::string(kRowColumns) +
          ", p.total FROM (SELECT r.rowid AS k, count(*) OVER () AS total FROM resource r WHERE " +
          where + " ORDER BY r.rowid LIMIT ? OFFSET ?) AS p JOIN resource r ON r.rowid = p.k" +
          (shard ? " AND r.shard_key = ?" : "") + " ORDER BY p.k";
    page_bindings = bindings;
  } else if (q.sort.empty()) {
    sql = "SELECT " + std::string(kRowColumns) + " FROM resource r WHERE " + where;
    page_bindings = bindings;
    if (page->kind == 'a') {
      sql += " AND r.rowid > ?";
      page_bindings.push_back(page->position);
    } else if (page->kind == 'b') {
      sql += " AND r.rowid < ?";
      page_bindings.push_back(page->position);
      backwards = true;
    } else if (page->kind == 'o' || page->kind == 'k' || page->kind == 'j') {
      return Error::Invalid("Invalid paging position for an unsorted search");
    }
    sql += backwards ? " ORDER BY r.rowid DESC" : " ORDER BY r.rowid";
  } else {
    if (page->kind == 'a' || page->kind == 'b')
      return Error::Invalid("Invalid paging position for a sorted search");
    offset = page->kind == 'o' ? page->position : 0;
    if (offset > kMaxPageOffset)
      return Error::Invalid("This paging position is past the " + std::to_string(kMaxPageOffset) +
                            "th match, the last that links of the offset form may reach: search "
                            "again from the first page");
    if (page->kind == 'k' || page->kind == 'j') {
      std::vector<SortKind> kinds;
      for (const auto& k : q.sort) kinds.push_back(KindOf(k));
      cursor = DecodeKeys(page->keys, kinds);
      if (!cursor) return Error::Invalid("Invalid paging position for this sort");
      backwards = page->kind == 'j';
    }
    // Each match's keys as of the first page's snapshot (its last history entry, which the links
    // carry): a match updated since keeps its place (KeysAsOf), and no page repeats or skips
    // it. Links of earlier versions without that entry take the current keys.
    std::vector<Sql> key_sql;
    std::vector<std::string_view> sql_types;
    for (const search::SortKey& key : q.sort) {
      key_sql.push_back(SortSql(key, "r", index_shard));
      switch (KindOf(key)) {
        case SortKind::kText:
          sql_types.push_back("TEXT");
          break;
        case SortKind::kInteger:
          sql_types.push_back("BIGINT");
          break;
        case SortKind::kReal:
          sql_types.push_back("DOUBLE PRECISION");
          break;
        case SortKind::kNull:
          sql_types.push_back({});
          break;
      }
    }
    if (page->kind != 0 && history) {
      // The search's condition as a check of one row: every criterion in its filter form.
      auto matching = [&]() -> Result<Sql> {
        Sql m{row_where, row_bindings};
        int aliases = counter;
        for (size_t i = 0; i < q.criteria.size(); ++i) {
          if (criteria_sql[i].text.empty()) continue;  // implied
          auto c = CriterionSql(
              q.criteria[i], "r", aliases, local_base,
              q.types.size() == 1 ? std::optional<std::string>(q.types[0]) : std::nullopt,
              /*filter=*/true, conn.dialect(), index_shard);
          if (!c) return std::move(c).error();
          m.text += " AND " + c->text;
          m.bindings.insert(m.bindings.end(), c->bindings.begin(), c->bindings.end());
        }
        return m;
      };
      auto as_of = KeysAsOf(conn, q.sort, std::move(key_sql), sql_types, q.types, matching,
                            snapshot, *history, local_base);
      if (!as_of) return std::move(as_of).error();
      key_sql = std::move(as_of->keys);
      keys_changed = as_of->changed;
      if (keys_changed > 0)
        plan_notes += "\n(the sort keys of " + std::to_string(keys_changed) +
                      " matches updated since the first page are those of their versions then)";
    }
    std::string keys;
    std::vector<Binding> key_bindings;
    for (size_t i = 0; i < key_sql.size(); ++i) {
      keys += ", " + key_sql[i].text + " AS s" + std::to_string(i);
      key_bindings.insert(key_bindings.end(), key_sql[i].bindings.begin(),
                          key_sql[i].bindings.end());
    }
    // A text key the link carried in part: the whole key is the cursor row's, when it still
    // starts so (a row updated or deleted since leaves the part, the cursor then just before
    // the keys that start with it).
    if (cursor &&
        std::any_of(cursor->begin(), cursor->end(), [](const SortValue& v) { return v.cut; })) {
      std::vector<Binding> row_bindings = key_bindings;
      row_bindings.push_back(page->position);
      auto stmt = conn.Prepare("SELECT 1" + keys + " FROM resource r WHERE r.rowid = ?");
      if (!stmt) return std::move(stmt).error();
      int index = 1;
      Bind(**stmt, index, row_bindings);
      auto row = (*stmt)->Step();
      if (!row) {
        (*stmt)->Reset();
        return std::move(row).error();
      }
      for (size_t i = 0; *row && i < cursor->size(); ++i) {
        SortValue& v = (*cursor)[i];
        if (!v.cut) continue;
        std::optional<std::string_view> whole = (*stmt)->ColumnTextOrNull(static_cast<int>(i) + 1);
        if (whole && whole->starts_with(v.text)) v.text = std::string(*whole);
      }
      (*stmt)->Reset();
    }
    window_total = want_total;
    if (sort_in_memory) {
      // The date criterion on the sort key's own parameter, when there is one: the key and the
      // criterion come from one join on the date rows (a candidate's rows, each with whether
      // it matches), instead of a lookup for each.
      // Not with keys as of the snapshot: the join reads the current date rows.
      if (q.sort.size() == 1 && q.sort[0].param->type == search::ParamType::kDate &&
          q.sort[0].param->code != "_lastUpdated" && keys_changed == 0) {
        const search::SearchParam& key = *q.sort[0].param;
        for (size_t i = 0; i < q.criteria.size() && !folded; ++i) {
          const search::Criterion& c = q.criteria[i];
          if (c.param->base == key.base && c.param->code == key.code && c.modifier.empty() &&
              c.chain.empty() && c.has.empty() && !c.values.empty() &&
              criteria_sql[i].text.starts_with(
                  "EXISTS (SELECT 1 FROM idx_date WHERE rid = r.rowid AND "))
            folded = i;
        }
      }
      // The criteria that filter the rows read: all but the folded one, and but the driver when
      // the rows are its token rows.
      auto filters = [&](bool without_driver) {
        Sql out;
        for (size_t i = 0; i < q.criteria.size(); ++i) {
          if (i == folded || (without_driver && i == shard_driver) || criteria_sql[i].text.empty())
            continue;
          out.text += " AND " + criteria_sql[i].text;
          out.bindings.insert(out.bindings.end(), criteria_sql[i].bindings.begin(),
                              criteria_sql[i].bindings.end());
        }
        return out;
      };
      Sql rest = filters(true);
      const bool from_index = driver_rows && OnlyRowIds(keys + rest.text);
      if (!from_index) rest = filters(false);
      std::vector<Binding> sorted_bindings;
      if (folded) {
        // Without the parameter: the join below names it.
        auto condition = ValuesConditionSql(q.criteria[*folded], /*with_param=*/false);
        if (!condition) return std::move(condition).error();
        sql = "SELECT r.rowid, d." + std::string(q.sort[0].descending ? "high" : "low") + ", (" +
              condition->text + ") FROM ";
        sorted_bindings = condition->bindings;
      } else {
        sql = "SELECT r.rowid" + keys + " FROM ";
        sorted_bindings = key_bindings;
      }
      if (from_index) {
        const Sql& rows = folded && driver_token_rows ? *driver_token_rows : *driver_rows;
        sql += rows.text;
        sorted_bindings.insert(sorted_bindings.end(), rows.bindings.begin(), rows.bindings.end());
      } else {
        sql += "resource r";
      }
      if (folded) {
        // CROSS JOIN: the rows first, then each one's date rows (SQLite keeps this order).
        sql += " CROSS JOIN idx_date d ON d.rid = r.rowid AND " +
               ParamIs(*q.sort[0].param, sorted_bindings, "", "d.param");
      }
      if (from_index) {
        sql += " WHERE r.rowid <= ?";
        sorted_bindings.push_back(snapshot);
      } else {
        sql += " WHERE " + row_where;
        sorted_bindings.insert(sorted_bindings.end(), row_bindings.begin(), row_bindings.end());
      }
      sql += rest.text;
      sorted_bindings.insert(sorted_bindings.end(), rest.bindings.begin(), rest.bindings.end());
      page_bindings = std::move(sorted_bindings);
      if (folded && from_index && driver_token_rows && shard &&
          StoredKeys(*q.sort[0].param).size() == 1) {
        DateMerge m;
        m.rows.text = "SELECT r.rowid FROM " + driver_token_rows->text + " WHERE r.rowid <= ?" +
                      rest.text + " ORDER BY r.rowid";
        m.rows.bindings = driver_token_rows->bindings;
        m.rows.bindings.push_back(snapshot);
        m.rows.bindings.insert(m.rows.bindings.end(), rest.bindings.begin(), rest.bindings.end());
        auto condition = ValuesConditionSql(q.criteria[*folded], /*with_param=*/false);
        if (!condition) return std::move(condition).error();
        m.dates.bindings = condition->bindings;
        m.dates.bindings.push_back(*shard);
        m.dates.text = "SELECT d.rid, d." + std::string(q.sort[0].descending ? "high" : "low") +
                       ", (" + condition->text + ") FROM idx_date d WHERE d.shard_key = ? AND " +
                       ParamIs(*q.sort[0].param, m.dates.bindings, "", "d.param") +
                       " AND d.rid >= ? AND d.rid <= ? ORDER BY d.rid";
        merge = std::move(m);
      }
    } else {
      // Every match with its keys (and the total, counted over all of them); after a cursor,
      // those past it (before it for a previous page, in the reverse order, turned back below).
      std::string matches = "SELECT r.rowid AS k" + keys +
                            (window_total ? ", count(*) OVER () AS total" : ", 0 AS total") +
                            " FROM resource r WHERE " + where;
      std::vector<Binding> cursor_bindings;
      std::string order, outer;
      std::string key_columns;
      for (size_t i = 0; i < q.sort.size(); ++i) {
        std::string name = "s" + std::to_string(i);
        bool descending = q.sort[i].descending != backwards;
        // Resources without a value last either way (first in the reverse order).
        std::string direction = std::string(descending ? " DESC" : " ASC") +
                                (backwards ? " NULLS FIRST, " : " NULLS LAST, ");
        order += "m." + name + direction;
        outer += "p." + name + direction;
        key_columns += ", p." + name;
      }
      order += backwards ? "m.k DESC" : "m.k";
      outer += backwards ? "p.k DESC" : "p.k";
      std::string past = cursor ? " WHERE " + CursorCondition(q.sort, *cursor, page->position,
                                                              backwards, cursor_bindings)
                                : "";
      sql = "SELECT " + std::string(kRowColumns) + ", p.total" + key_columns +
            " FROM (SELECT m.* FROM (" + matches + ") AS m" + past + " ORDER BY " + order +
            " LIMIT ? OFFSET ?) AS p JOIN resource r ON r.rowid = p.k" +
            // Every table the page query reads is read in the shard (PostgreSQL, see index_shard).
            (shard ? " AND r.shard_key = ?" : "") + " ORDER BY " + outer;
      page_bindings = std::move(key_bindings);
      page_bindings.insert(page_bindings.end(), bindings.begin(), bindings.end());
      page_bindings.insert(page_bindings.end(), cursor_bindings.begin(), cursor_bindings.end());
    }
  }
  if (!sort_in_memory) {
    if (q.sort.empty() && !counted_page) sql += " LIMIT ? OFFSET ?";
    page_bindings.push_back(static_cast<int64_t>(q.count) + 1);
    page_bindings.push_back(offset);
    if ((!q.sort.empty() || counted_page) && shard) page_bindings.push_back(*shard);
  }
  result.plan = sql;
  if (merge)
    result.plan += "\n(dense candidates: " + merge->rows.text + "; merged by row id with " +
                   merge->dates.text + ")";
  if (sort_in_memory) result.plan += "\n(sorted in memory; then the page's rows by rowid)";
  result.plan += plan_notes;
  if (options.explain) {
    bool pg = conn.dialect() == db::Dialect::kPostgres;
    auto explain = conn.Prepare((pg ? "EXPLAIN " : "EXPLAIN QUERY PLAN ") + sql);
    if (!explain) return std::move(explain).error();
    int index = 1;
    Bind(**explain, index, page_bindings);
    result.plan += "\n";
    while (true) {
      auto row = (*explain)->Step();
      if (!row) {
        (*explain)->Reset();
        return std::move(row).error();
      }
      if (!*row) break;
      result.plan += std::string((*explain)->ColumnText(pg ? 0 : 3)) + "\n";
    }
    (*explain)->Reset();
    return result;
  }

  // The page query (`sql`), prepared and bound where it is read: a merged sort never reads it.
  auto prepare_page = [&]() -> Result<db::Statement*> {
    auto stmt = conn.Prepare(sql);
    if (!stmt) return std::move(stmt).error();
    int index = 1;
    Bind(**stmt, index, page_bindings);
    return *stmt;
  };
  std::vector<int64_t> rids;
  // A sorted page's rows' keys (for its links), alongside its matches.
  std::vector<std::vector<SortValue>> page_keys;
  bool more = false;
  std::optional<int64_t> counted;  // the sorted query's count of every match
  if (sort_in_memory) {
    TopRows top(q.sort, static_cast<size_t>(offset) + static_cast<size_t>(q.count) + 1);
    if (cursor) top.SetCursor(*cursor, page->position, backwards);
    // Folded: (rowid, the date row's low or high, whether the row matches), a candidate's rows
    // one after the other. It matches when one of its rows does; its key is the largest high
    // (descending) or the smallest low of all its rows, as SortSql's.
    const bool descending = q.sort[0].descending;
    std::optional<int64_t> current;
    int64_t key = 0;
    bool matches = false;
    auto candidate_done = [&] {
      if (current && matches) top.Add(*current, key);
      current.reset();
    };
    auto fold = [&](int64_t rid, int64_t value, bool match) {
      if (rid != current) {
        candidate_done();
        current = rid;
        key = value;
        matches = false;
      } else {
        key = descending ? std::max(key, value) : std::min(key, value);
      }
      matches |= match;
    };
    // The merge (see DateMerge): the row id from which the join reads the rest, if it does.
    std::optional<int64_t> join_from;
    bool merged = false;
    if (merge) {
      std::vector<int64_t> candidates;
      FHIRSTONE_RETURN_IF_ERROR(ReadRowIds(conn, merge->rows, candidates));
      // In row id order (ORDER BY r.rowid), a resource's token rows together.
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
      const size_t n = candidates.size();
      if (n > 0 && static_cast<uint64_t>(candidates.back() - candidates.front()) < 4 * n + 32) {
        merged = true;
        auto dates = conn.Prepare(merge->dates.text);
        if (!dates) return std::move(dates).error();
        db::Statement& d = **dates;
        int at = 1;
        Bind(d, at, merge->dates.bindings);
        d.BindInt(at, candidates.front());
        d.BindInt(at + 1, candidates.back());
        size_t next = 0;  // the first candidate not passed
        size_t read = 0;
        while (true) {
          auto row = d.Step();
          if (!row) {
            d.Reset();
            return std::move(row).error();
          }
          if (!*row) break;
          int64_t rid = d.ColumnInt(0);
          ++read;
          while (next < n && candidates[next] < rid) ++next;
          if (next == n) break;
          if (candidates[next] == rid) {
            fold(rid, d.ColumnInt(1), d.ColumnInt(2) != 0);
          } else if (read > 2 * next + 32) {
            // Rows of other resources outrun the candidates: each candidate below `rid` is done.
            join_from = candidates[next];
            break;
          }
        }
        d.Reset();
        candidate_done();
      }
    }
    if (!merged || join_from) {
      if (join_from) {
        sql += " AND r.rowid >= ?";
        page_bindings.push_back(*join_from);
      }
      auto page_stmt = prepare_page();
      if (!page_stmt) return std::move(page_stmt).error();
      db::Statement& s = **page_stmt;
      while (true) {
        auto row = s.Step();
        if (!row) {
          s.Reset();
          return std::move(row).error();
        }
        if (!*row) break;
        if (!folded) {
          top.Add(s);
          continue;
        }
        fold(s.ColumnInt(0), s.ColumnInt(1), s.ColumnInt(2) != 0);
      }
      candidate_done();
      s.Reset();
    }
    std::vector<int64_t> kept = top.Sorted();
    if (want_total) counted = top.matched();
    more = kept.size() > static_cast<size_t>(offset) + static_cast<size_t>(q.count);
    std::vector<int64_t> page_rids;
    for (size_t i = static_cast<size_t>(offset);
         i < kept.size() && page_rids.size() < static_cast<size_t>(q.count); ++i) {
      page_rids.push_back(kept[i]);
      page_keys.push_back(top.KeysOfSorted(i));
    }
    FHIRSTONE_RETURN_IF_ERROR(ReadRowsById(conn, page_rids, with_patients, result.matches, rids));
  } else {
    auto page_stmt = prepare_page();
    if (!page_stmt) return std::move(page_stmt).error();
    db::Statement& s = **page_stmt;
    PatientsColumnReader patients;
    while (true) {
      auto row = s.Step();
      if (!row) {
        s.Reset();
        return std::move(row).error();
      }
      if (!*row) break;
      if (window_total && !counted) counted = s.ColumnInt(7);
      if (static_cast<int>(result.matches.size()) == q.count) {
        more = true;
        break;
      }
      int64_t rid = s.ColumnInt(0);
      result.matches.push_back(ReadRow(s, with_patients ? &patients : nullptr));
      rids.push_back(rid);
      if (!q.sort.empty() && !counted_page) {  // the keys after p.total (PostgreSQL's sort)
        std::vector<SortValue> keys(q.sort.size());
        for (size_t i = 0; i < q.sort.size(); ++i) {
          int column = 8 + static_cast<int>(i);
          SortValue& v = keys[i];
          SortKind kind = KindOf(q.sort[i]);
          v.null = kind == SortKind::kNull || s.ColumnIsNull(column);
          if (v.null) continue;
          if (kind == SortKind::kText) {
            v.text = s.ColumnText(column);
          } else if (kind == SortKind::kInteger) {
            v.integer = s.ColumnInt(column);
          } else {
            v.real = s.ColumnDouble(column);
          }
        }
        page_keys.push_back(std::move(keys));
      }
    }
    s.Reset();
  }
  if (backwards) {
    std::reverse(result.matches.begin(), result.matches.end());
    std::reverse(rids.begin(), rids.end());
    std::reverse(page_keys.begin(), page_keys.end());
  }
  if (want_total) {
    if (counted) {
      result.total = *counted;
    } else if (!more && page->kind == 0) {
      // The first page is the last: the matches are all on it.
      result.total = static_cast<int64_t>(result.matches.size());
    } else {
      FHIRSTONE_RETURN_IF_ERROR(run_count());
    }
  }

  // Links: keyset pages continue after the last / before the first rowid; sorted ones by offset.
  if (q.sort.empty()) {
    bool has_next = backwards ? true : more;
    bool has_previous = backwards ? more : page->kind != 0;
    if (has_next && !rids.empty()) result.next_page = MakePage('a', rids.back(), snapshot);
    if (has_previous && !rids.empty()) result.previous_page = MakePage('b', rids.front(), snapshot);
  } else if (!rids.empty() && page_keys.size() == rids.size()) {
    // After the last match, before the first, by their keys and row ids: a match deleted or
    // added meanwhile moves no other from page to page, nor does one whose keys changed (keys as
    // of the first page's snapshot: KeysAsOf).
    std::vector<SortKind> kinds;
    for (const auto& k : q.sort) kinds.push_back(KindOf(k));
    auto link = [&](char kind, size_t i) {
      return std::string(1, kind) + EncodeKeys(page_keys[i], kinds) + "~" +
             std::to_string(rids[i]) + ".s" + std::to_string(snapshot) +
             (history ? "h" + std::to_string(*history) : "");
    };
    bool has_next = backwards ? true : more;
    bool has_previous = backwards ? more : page->kind == 'o' ? offset > 0 : page->kind != 0;
    if (has_next) result.next_page = link('k', rids.size() - 1);
    if (has_previous) result.previous_page = link('j', 0);
  }

  std::vector<int64_t> included_rids;
  if (!q.includes.empty() && !result.matches.empty()) {
    RowIdSet seen(rids.begin(), rids.end());
    FHIRSTONE_RETURN_IF_ERROR(IncludeRound(conn, q, false, result.matches, rids, seen,
                                           with_patients, result.included, included_rids));
    // Rounds of the :iterate ones over what the previous round added.
    bool iterate = std::any_of(q.includes.begin(), q.includes.end(),
                               [](const search::Include& inc) { return inc.iterate; });
    size_t done = 0;
    for (int round = 0; iterate && round < kMaxIterations && done < result.included.size() &&
                        result.included.size() < kMaxIncluded;
         ++round) {
      std::vector<ResourceVersion> sources(result.included.begin() + done, result.included.end());
      std::vector<int64_t> source_rids(included_rids.begin() + done, included_rids.end());
      done = result.included.size();
      FHIRSTONE_RETURN_IF_ERROR(IncludeRound(conn, q, true, sources, source_rids, seen,
                                             with_patients, result.included, included_rids));
    }
    if (result.included.size() >= kMaxIncluded) {
      result.included_cut = "The included resources stop at " + std::to_string(kMaxIncluded) +
                            ", the most one page includes: narrow the search or its _count";
    } else if (iterate && done < result.included.size()) {  // the last round added some
      result.included_cut = ":iterate stops after " + std::to_string(kMaxIterations) +
                            " rounds: resources further along the references are not included";
    }
  }
  if (options.registry) {
    // The matches live in the query's shard (on PostgreSQL, read there only); includes may not.
    FHIRSTONE_RETURN_IF_ERROR(
        FillPatients(conn, *options.registry, result.matches, rids, index_shard));
    FHIRSTONE_RETURN_IF_ERROR(
        FillPatients(conn, *options.registry, result.included, included_rids, std::nullopt));
  }
  return result;
}

}  // namespace fhirstone::store::internal
