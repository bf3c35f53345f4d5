// Index extraction: for one resource, the values of every search parameter of its type, found
// with the parameter's FHIRPath expression and turned into index entries by parameter type
// (https://hl7.org/fhir/R4/search.html#ptypes). The store writes them in the same transaction
// as the resource. Pure function of the registry and the resource: thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "search/fulltext.h"
#include "search/registry.h"

namespace fhirstone::search {

constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

struct StringEntry {
  const SearchParam* param;
  std::string normalized;  // NormalizeString(exact)
  std::string exact;
};

struct TokenEntry {
  const SearchParam* param;
  std::string system;
  std::string code;
  std::string text;  // normalized display / text, for :text
  // An Identifier's type for :of-type: system and code of a type coding, code then "|" and the
  // identifier's value; indexed under the parameter's key + ":of-type".
  bool of_type = false;
};

struct ReferenceEntry {
  const SearchParam* param;
  std::string target_type;  // "" when not a relative or absolute Type/id reference
  std::string target_id;
  std::string version;
  std::string url;                // the reference as written (canonical and absolute URLs included)
  std::string identifier_system;  // Reference.identifier, for :identifier
  std::string identifier_value;
};

struct DateEntry {
  const SearchParam* param;
  int64_t low;   // microseconds, inclusive (kMinTime: open)
  int64_t high;  // microseconds, exclusive (kMaxTime: open)
};

struct NumberEntry {
  const SearchParam* param;
  double value;
};

// (For the special parameter `near`: latitude in low, longitude in high, unit "deg".)
struct QuantityEntry {
  const SearchParam* param;
  double low;  // equal to high for a Quantity; a Range's bounds otherwise
  double high;
  std::string system;
  std::string code;
  std::string unit;
  // The same value in its UCUM dimension's base unit (search/ucum.h), stored under the
  // parameter's key + ":ucum", besides the value as written.
  bool canonical = false;
};

struct UriEntry {
  const SearchParam* param;
  std::string uri;
};

// One combination of a composite parameter's component values
// (https://hl7.org/fhir/R4/search.html#composite): the first component is a token (or a
// reference, kept as "Type/id" in a_code); the second a token, string, quantity, number or date;
// the optional third a number.
struct CompositeEntry {
  const SearchParam* param;
  std::string a_system{}, a_code{};
  std::string b_system{}, b_code{}, b_text{};
  double b_low = 0, b_high = 0;
  int64_t b_date_low = 0, b_date_high = 0;
  double c_low = 0, c_high = 0;
};

struct IndexEntries {
  std::vector<StringEntry> strings;
  std::vector<TokenEntry> tokens;
  std::vector<ReferenceEntry> references;
  std::vector<DateEntry> dates;
  std::vector<NumberEntry> numbers;
  std::vector<QuantityEntry> quantities;
  std::vector<UriEntry> uris;
  std::vector<CompositeEntry> composites;
  // The patient whose shard the resource lives in: the one its Registry::ShardParam refers to
  // (set by ExtractIndex with a registry; empty when none, or when it names several).
  std::string shard_patient;
  // The words of _text and _content (ExtractFullText); set by the store that writes the index,
  // not by ExtractIndex.
  FullText text;
};

// The shard key of resource `type`/`id` (registry.h): a Patient's own, its shard patient's, or
// its own "Type/id" hash.
int64_t ShardKeyOf(std::string_view type, std::string_view id, const IndexEntries& entries);
// Whose data the resource is, as its shard key was derived: "Patient/<id>" for a Patient and for
// a resource whose shard parameter names that patient, else its own "Type/id". The store notes
// it for each shard key (shard_owner), so that a shard whose resources all have one owner is
// known to hold only that patient's data (search_sql.h NoteShardOwner).
std::string ShardOwnerOf(std::string_view type, std::string_view id, const IndexEntries& entries);

// The index entries of `resource` (whose resourceType names its type). Parameters answered from
// the resource table itself (_id, _lastUpdated) and special ones (_text, _content...) are skipped.
// `local_base` is this server's FHIR base URL: absolute references under it are indexed as local
// Type/id, others only as URLs. `stored_only`: only the parameters whose rows the store keeps
// (Registry::StoredForType), not those it reads as the union of others'.
IndexEntries ExtractIndex(const Registry& registry, const json::Value& resource,
                          std::string_view local_base, bool stored_only = false);
// The same for only `params` (e.g. a compartment's parameters).
IndexEntries ExtractIndex(const std::vector<const SearchParam*>& params,
                          const json::Value& resource, std::string_view local_base);

// Splits a reference into type, id and version when it is Type/id[/_history/v], relative or
// under `local_base` (nullopt: under any base), with a known resource type. False otherwise.
bool ParseReference(std::string_view reference, std::optional<std::string_view> local_base,
                    std::string* type, std::string* id, std::string* version);

}  // namespace fhirstone::search
