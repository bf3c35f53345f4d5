// Oracle: a brute-force FHIR search (https://hl7.org/fhir/R4/search.html) over the resources of a
// Dataset, to compare a server's answers with. For every resource of the searched type it
// evaluates the parameter's FHIRPath expression (from the search::Registry) with a resolver that
// answers placeholders {"resourceType": T} for "T/id" references, then applies the matching rules
// of the parameter type written here from the specification, independently of the server's index
// and SQL: string (case- and accent-insensitive starts-with over HumanName / Address parts,
// :exact, :contains), token (code, system|code, |code, system|, :not, :text), reference (id,
// Type/id, :Type), date (ranges implied by precision, the prefixes eq ne gt lt ge le sa eb),
// quantity and number (precision-implied range for eq, exact decimal arithmetic), :missing, _id,
// OR (commas) and AND (repeated parameters), chains and _has by brute force over the dataset.
//
// Not thread-safe (it memoizes FHIRPath results); the Dataset and Registry must outlive it.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/result.h"
#include "differential/dataset.h"
#include "fhirpath/fhirpath.h"
#include "search/registry.h"

namespace fhirstone::differential {

// Search parameters as a server sees them once percent-decoded: (name, value) in order.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

class Oracle {
 public:
  // `base` is the server's FHIR base URL ("http://host:port/fhir"): an absolute reference value
  // under it means the local resource; under any other base it only matches that URL as written.
  Oracle(const search::Registry& registry, const Dataset& data, std::string base = "");
  Oracle(const Oracle&) = delete;
  Oracle& operator=(const Oracle&) = delete;

  // The ids of the resources of `type` that match every criterion of `params`. Result
  // parameters (_count, _total, _sort, _include...) are ignored. An error when a parameter,
  // modifier or value is one the oracle does not know how to evaluate.
  Result<std::set<std::string>> Evaluate(const std::string& type, const QueryParams& params);

  // How many FHIRPath evaluations failed (such a resource has no value for the parameter).
  int evaluation_errors() const { return evaluation_errors_; }

 private:
  using ResourceSet = std::unordered_set<const json::Value*>;

  // The resources of `type` matching `key` (with _has, chains and modifier) for any of `values`.
  Result<ResourceSet> Match(const std::string& type, std::string_view key,
                            const std::vector<std::string>& values, int depth);
  Result<ResourceSet> MatchLeaf(const std::string& type, std::string_view key,
                                const std::vector<std::string>& values);
  // The values of parameter `p` in `resource` (memoized).
  const fhirpath::Collection& Values(const json::Value& resource, const search::SearchParam& p);
  // The "Type/id" references `p` holds in `resource` (resolved to loaded resources).
  std::vector<const json::Value*> Targets(const json::Value& resource,
                                          const search::SearchParam& p);

  const search::Registry& registry_;
  const Dataset& data_;
  std::string base_;
  fhirpath::EvalOptions options_;
  std::unordered_map<std::string, json::Value> placeholders_;
  std::map<std::pair<const json::Value*, const search::SearchParam*>, fhirpath::Collection> memo_;
  int evaluation_errors_ = 0;
};

// Exposed for the oracle's own unit test.
namespace oracle_internal {

// Lower-cases and removes accents (Latin letters with diacritics -> base letters, combining
// marks dropped), for string search.
std::string Fold(std::string_view s);

// The instant range [low, high) in microseconds (UTC) that a FHIR date/dateTime/instant covers
// at its precision; a value without a zone is read as UTC. False when malformed.
bool ParseDateRange(std::string_view s, int64_t* low, int64_t* high);

// An exact decimal: units * 10^-scale.
struct Decimal {
  __int128 units = 0;
  int scale = 0;
};
bool ParseDecimal(std::string_view s, Decimal* out);
// -1, 0, 1.
int Compare(const Decimal& a, const Decimal& b);

}  // namespace oracle_internal

}  // namespace fhirstone::differential
