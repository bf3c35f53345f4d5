// SearchQuery: a FHIR search request (https://hl7.org/fhir/R4/search.html) parsed against the
// registry: criteria (each an AND term whose values are OR'ed) with modifiers, chains and reverse
// chains, and the result parameters (_sort, _count, _include, _revinclude, _total, _summary,
// _elements). Values stay as text; the store interprets them by parameter type (values.h).
// Value type; thread-compatible.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "search/registry.h"

namespace fhirstone::search {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

struct Confinement;

struct Criterion {
  // Chained parameters (subject:Patient.name=x): each link is a reference parameter followed to
  // `target_type`; `param` then applies to the last target type.
  struct Link {
    const SearchParam* param;
    std::string target_type;
    // The resources of `target_type` the link may reach (null: any). Set by access control.
    std::shared_ptr<const Confinement> confined = nullptr;
  };
  // Reverse chains (_has:Observation:patient:code=x): resources of `type` whose `reference`
  // points at the resource; applied outermost first.
  struct Has {
    std::string type;
    const SearchParam* reference;
    // `reference` tests the element that decides the shard of a resource of `type`
    // (Registry::IsShardParam): one that refers to a patient through it has that patient's
    // shard key.
    bool shard = false;
    // The resources of `type` the reverse chain may read (null: any). Set by access control.
    std::shared_ptr<const Confinement> confined = nullptr;
  };
  std::vector<Has> has;
  std::vector<Link> chain;
  // The tested parameter. For the _id and _lastUpdated parameters it is the registry's entry.
  const SearchParam* param = nullptr;
  std::string type;      // the resource type `param` is evaluated on
  std::string modifier;  // "", "exact", "contains", "missing", "not", "text", "above", "below",
                         // "identifier", "of-type", or a resource type for a reference
  std::vector<std::string> values;  // OR'ed, with FHIR escapes (\, \$ \|) resolved
  // A chain through a reference to several types (DiagnosticReport?subject.name=x, `subject`
  // reaching Patient, Group, Device... that have `name`): one fully typed criterion per path,
  // the criterion matching what any of them matches. Empty otherwise. The fields above are
  // then the first path's.
  std::vector<Criterion> any_of;
};

struct SortKey {
  const SearchParam* param;  // its code may be _id or _lastUpdated
  bool descending = false;
};

struct Include {
  bool reverse = false;  // _revinclude
  bool iterate = false;
  std::string source_type;  // the type whose reference parameter is followed ("": any, _include=*)
  const SearchParam* param = nullptr;  // nullptr for the wildcard `*`
  std::string target_type;             // optional restriction
};

enum class TotalMode { kNone, kEstimate, kAccurate };
enum class SummaryMode { kNone, kTrue, kText, kData, kCount, kFalse };

// Compartment search (https://hl7.org/fhir/R4/compartmentdefinition.html): resources whose
// `params` refer to compartment type/id.
// What a restricted access lets a chain or a reverse chain read of one type (not parsed: the
// API's access control sets it on the links): when `patient` is not empty, only the resources in
// that patient's compartment (for type Patient, that patient itself; otherwise those whose
// `compartment` parameters, the type's Patient compartment ones, refer to the patient), and only
// those that match every one of `criteria` (a scope's query restriction).
struct Confinement {
  std::string patient;
  std::vector<const SearchParam*> compartment;
  std::vector<Criterion> criteria;
};

struct Compartment {
  std::string type;
  std::string id;
  std::vector<const SearchParam*> params;
};

struct SearchQuery {
  std::vector<std::string> types;  // one type for type-level search; several or none for system
  std::optional<Compartment> compartment;
  std::vector<Criterion> criteria;
  std::vector<SortKey> sort;
  std::vector<Include> includes;
  int count = 50;
  TotalMode total = TotalMode::kAccurate;
  SummaryMode summary = SummaryMode::kNone;
  std::vector<std::string> elements;
  // The parameters understood, in order, as the self link repeats them (unknown ones left out).
  QueryParams understood;
  // Paging state from a next/previous link (opaque to clients).
  std::optional<std::string> page;
  // Whether the answer should carry each resource's patients (store::ResourceVersion::patients,
  // for the audit log); not a search parameter.
  bool with_patients = false;
  // The included resources the caller may see (type, JSON body), when its access is restricted:
  // the others are left out as they are read, before they lead to more (:iterate) or count
  // towards the bound of included resources. Null: every one. Not a search parameter.
  std::function<bool(std::string_view type, std::string_view body)> include_visible;
};

struct ParseOptions {
  bool strict = false;  // Prefer: handling=strict: unknown parameters are an error
  int default_count = 50;
  int max_count = 1000;
  int max_chain_depth = 4;
  int max_chain_paths =
      16;                // the types a chain without type modifiers may reach (Criterion::any_of)
  int max_values = 100;  // OR values in one parameter, and criteria in a query
  int max_sort_keys = 8;
  int max_includes = 32;  // _include and _revinclude parameters, a wildcard's expanded
};

// Parses the query `params` of a search on `types` (one type, or the _type list / none for a
// system search). Unknown parameters are ignored (or refused when strict); malformed ones get a
// precise Error::Invalid.
Result<SearchQuery> ParseQuery(const Registry& registry, std::vector<std::string> types,
                               const QueryParams& params, const ParseOptions& options);

// The one shard (registry.h) that holds every match of `q`, when the query names it: a search
// of one type by its Registry::ShardParam with one Patient reference (Observation?patient=123,
// subject=Patient/123, subject:Patient=123), a Patient search by one _id, or the Patient
// compartment of a type whose only compartment parameter is its shard parameter
// (Patient/123/Encounter). nullopt when the matches may span shards.
std::optional<int64_t> QueryShard(const Registry& registry, const SearchQuery& q);

// The criterion of `q` that QueryShard found its shard by (a shard parameter with one patient),
// and that patient's id in `patient`; nullopt when the shard comes from elsewhere (_id, a
// compartment) or there is none. Every resource of the shard's owner (ShardOwnerOf) matches it.
std::optional<size_t> ShardCriterion(const Registry& registry, const SearchQuery& q,
                                     std::string* patient);

// The patient a search is about, alone (the audit log's patient query, IHE Basic Audit Log
// Patterns): a Patient search by that one _id and nothing else, or a search of another type in
// that patient's compartment or with one criterion naming that patient with one value
// (ShardCriterion), whose every other criterion is a date, number or quantity, or a code of the
// resource (code, category, status... a built-in token parameter of a short list: no identifier,
// telecom or e-mail), without modifier or with :missing or :not. Such a query names no one else:
// no string (a name, an address), reference, identifier, chain, _has or free text. nullopt
// otherwise.
std::optional<std::string> QueryPatient(const Registry& registry, const SearchQuery& q);

// Splits a parameter value on unescaped commas and resolves the \, \$ \| \\ escapes.
std::vector<std::string> SplitValues(std::string_view value);

}  // namespace fhirstone::search
