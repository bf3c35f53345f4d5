// Internal to store/: translation of a SearchQuery into SQL over the index tables, and the
// writing of index entries. Not for other libraries.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "search/extract.h"
#include "search/query.h"

namespace fhirstone::store::internal {

// A value bound to a placeholder; nullptr binds NULL.
using Binding = std::variant<int64_t, double, std::string, std::nullptr_t>;

// A WHERE condition on the resource row aliased `alias` and its bindings, in order.
struct Sql {
  std::string text;
  std::vector<Binding> bindings;
};

// Replaces the ValueSet URLs of the :in and :not-in criteria (chained or not) with the codes of
// those value sets, read from the ValueSet resources stored (search::ExpandValueSet): `:in`
// becomes a plain token criterion on those codes, `:not-in` a `:not` one; a value set without
// codes leaves the criterion with no values (it matches nothing, or everything for :not-in).
// Token :below / :above (system|code) become the codes of the stored CodeSystem below / above
// that code (search::SubsumedCodes). An unknown value set or code system is Error::Invalid.
Status ExpandValueSets(db::Connection& conn, std::vector<search::Criterion>& criteria,
                       std::string_view local_base);

// The index key of a parameter: "Base.code" (e.g. Observation.code, Resource._tag).
std::string ParamKey(const search::SearchParam& p);
// The condition that an index row is one of `p`'s, on column `column`: "param = ?", or for a
// parameter stored as others' (SearchParam::stored_as) "param IN (?, ?)"; their keys (with
// `suffix`, e.g. ":of-type") go into `bindings`.
std::string ParamIs(const search::SearchParam& p, std::vector<Binding>& bindings,
                    std::string_view suffix = {}, std::string_view column = "param");
// The keys of the index rows of `p`: its own, or those of the parameters it is stored as.
std::vector<std::string> StoredKeys(const search::SearchParam& p);

// The `patients` column of a resource row: the ids of the patients in whose compartment the
// resource is (a Patient: its own), as its index `entries` name them through `type`'s Patient
// compartment parameters, separated by spaces ("": none). nullopt (NULL: the readers find them
// from the index) when an id holds a space.
std::optional<std::string> PatientsColumn(const search::Registry& registry, std::string_view type,
                                          std::string_view id, const search::IndexEntries& entries);
// The patients column `column` of the current row: null when NULL.
std::shared_ptr<const std::vector<std::string>> ReadPatientsColumn(db::Statement& s, int column);

// Reads the patients column of row after row, sharing one list among rows with the same value
// in a row (the resources of one patient, as a search reads them): no list is built for those.
class PatientsColumnReader {
 public:
  std::shared_ptr<const std::vector<std::string>> Read(db::Statement& s, int column);

 private:
  std::string text_;  // the value of `last_`'s row
  std::shared_ptr<const std::vector<std::string>> last_;
};

// The condition that resource row `alias` (of type criterion.type's chain root) matches `c`.
// `local_base` is this server's FHIR base URL.
// `alias_type` is the type of row `alias` when the search has one type. A `filter` criterion only
// checks rows that another (the driving) criterion found. `dialect`: the database's (full-text
// conditions differ). With `shard`, the index rows of row
// `alias` are looked up in that shard only (search::QueryShard).
Result<Sql> CriterionSql(const search::Criterion& c, const std::string& alias, int& alias_counter,
                         std::string_view local_base, const std::optional<std::string>& alias_type,
                         bool filter, db::Dialect dialect,
                         std::optional<int64_t> shard = std::nullopt);
// `param = ? AND (value OR value...)`: the condition that an index row of `c`'s parameter (its
// table's columns unqualified) holds one of `c`'s values (a plain criterion: no chain, _has or
// modifier). Without `param = ? AND` when the rows read are the parameter's already.
Result<Sql> ValuesConditionSql(const search::Criterion& c, bool with_param = true);
// How selective a criterion usually is (higher: fewer matches); the most selective drives.
int Selectivity(const search::Criterion& c);
// An ORDER BY expression for one sort key over row `alias`: its value in the current index
// (KeysAsOf gives a later page's keys as of its first page's snapshot).
Sql SortSql(const search::SortKey& key, const std::string& alias,
            std::optional<int64_t> shard = std::nullopt);

void Bind(db::Statement& s, int& index, const std::vector<Binding>& bindings);
// The integers of the first column of `sql`'s rows (row ids, a count), appended to `out`.
Status ReadRowIds(db::Connection& conn, const Sql& sql, std::vector<int64_t>& out);

// The condition that the time range [low_column, high_column) matches one date search value
// (prefix and FHIR precision rules), e.g. "ge2026-01"; Invalid when malformed.
Result<Sql> DateValueSql(std::string_view value, const std::string& low_column,
                         const std::string& high_column);

// Notes that a resource of `owner` (search::ShardOwnerOf) lives in shard `shard_key`, in table
// shard_owner: the first owner noted, or '' once a second one was (two patients whose keys
// collide, or a resource outside any patient's data whose own key equals a patient's). A shard
// whose owner is "Patient/<id>" thus holds that patient's data only, and every resource in it
// matches a search by its shard parameter for that patient. Never cleared: a shard stays mixed.
Status NoteShardOwner(db::Connection& conn, int64_t shard_key, std::string_view owner);

// Replaces the index rows of resource `rid` with `entries` (none: removes them), each row
// carrying the resource's `shard_key`. `fresh`: the resource row was just inserted, so there
// is nothing to remove.
Status WriteIndex(db::Connection& conn, int64_t rid, const search::IndexEntries* entries,
                  int64_t shard_key, bool fresh = false);

// SQLite's index of the reference rows' targets (idx_reference_key, migration 18): each row of
// idx_reference with a target type and id has one there, keyed by (`place`, `hash`) and its row
// id, so that the rows referring to a resource through a parameter are found by comparing
// integers, where idx_reference_target's keys are strings sharing long prefixes
// ("Observation.", a time-ordered id's first digits). `place` is the target id's leading 60
// bits (of a UUID, 15 of its first 16 hex digits, all but the version digit: a time-ordered
// one's millisecond and sequence; of another id, its first ten characters, six bits each) and 3
// bits of a hash of the parameter and type: the references that writes make to resources made
// about the same time (a new patient, its encounters) go into neighbouring pages, where a hash
// alone would scatter them over the table, one page each (transactions of a Patient and an
// Observation: 10% fewer per second with a hash alone). `hash` is the XXH3 64-bit hash of
// (parameter key, target type, target id). Two different triples share a key only when both
// parts are equal: among N triples with the same place (ids with the same first ten
// characters, say), a pair does with a chance of about N^2 / 2^65, and then one triple's
// `_revinclude` would bring the other's referrers too.
struct ReferenceKey {
  int64_t place = 0;
  int64_t hash = 0;
};
ReferenceKey ReferenceKeyOf(std::string_view param_key, std::string_view target_type,
                            std::string_view target_id);
// The key rows of the resources stored before idx_reference_key existed (once, when the store
// opens after the upgrade or after `fhirstone reindex`; store_state 'reference_keys' says so),
// made again from idx_reference in one write transaction: writes wait for it (2.2 s for the
// 1.3 million reference rows of the search benchmark's store). SQLite only.
Status BackfillReferenceKeys(db::Connection& conn);

// The index rows that migration 14 removes, as (table, parameter key): those of the built-in
// parameters stored as others' (search::SearchParam::stored_as), Observation's combo-* and the
// phonetic ones. store_test checks that the registry still says so.
const std::vector<std::pair<const char*, const char*>>& UnionRowsDropped();

// The schema of the index tables (a migration).
const char* IndexSchema();
// The names of the index tables of parameter values (idx_string ... idx_composite; not the
// full-text table).
const std::vector<const char*>& IndexTables();
// Migration 9 on SQLite: each index table becomes a WITHOUT ROWID table keyed by (rid, param,
// its value columns), so that a resource's rows for one parameter are read by key and the value
// indexes carry the row id (counts and driving criteria read the index alone); its separate row
// id index goes. The token value index is (param, code, shard_key): a patient's rows with a code
// are found directly (the system, row id and text follow in it). On PostgreSQL: the row id
// indexes become (rid, param).
const std::string& ClusteredIndexSchema();
const std::string& RowIdParamIndexesPostgres();

}  // namespace fhirstone::store::internal

namespace fhirstone::store {
struct SearchResult;
}

namespace fhirstone::store::internal {

struct RunOptions {
  // Every match lives in this shard (search::QueryShard): each table is read there only.
  std::optional<int64_t> shard;
  // The criterion that names the shard's patient (search::ShardCriterion) and that patient as a
  // shard owner ("Patient/<id>"): when it filters (does not drive), it holds of every resource in
  // a shard of that sole owner (NoteShardOwner), and is checked on each match only otherwise.
  std::optional<size_t> shard_criterion;
  std::string shard_owner;
  // Instead of running the page query, answer its plan (EXPLAIN on PostgreSQL, EXPLAIN QUERY
  // PLAN on SQLite) in SearchResult::plan, with the SQL first.
  bool explain = false;
  // With the registry (SearchQuery::with_patients), each match and included resource gets its
  // patients (the Patient compartment's references, ResourceVersion::patients) from the index.
  std::shared_ptr<const search::Registry> registry;
};

// Runs `query` on `conn` inside one read transaction (one snapshot for the page, its total and
// its includes), or inside the write transaction already open when `in_transaction`.
Result<SearchResult> RunSearch(db::Connection& conn, const search::SearchQuery& query,
                               std::string_view local_base, bool in_transaction,
                               const RunOptions& options = {});

}  // namespace fhirstone::store::internal
