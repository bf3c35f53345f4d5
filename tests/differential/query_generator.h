// QueryGenerator: deterministic (seeded) FHIR search queries drawn from the values of a Dataset,
// so that many of them have matches: string (plain prefixes in other case, :exact, :contains,
// accents), token (code, system|code, |code, system|, :not, :text), reference (id, Type/id,
// :Type, absolute URLs), uri (exact, :below, :above), date (every prefix at year, month, day,
// second and millisecond precision), quantity (every prefix, with and without |system|code),
// :missing, _id, OR lists, AND of repeated or different parameters, chains (one and two links) and
// _has (also nested). The same seed and count give the same queries on every platform (own PRNG, no
// std distributions). Each query carries feature labels for coverage statistics and for excluding
// families of known server bugs. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "differential/dataset.h"
#include "differential/oracle.h"
#include "search/registry.h"

namespace fhirstone::differential {

struct GeneratedQuery {
  std::string type;
  QueryParams params;                 // decoded (name, value), in order
  std::vector<std::string> features;  // e.g. "token", "token:not", "date:sa", "date@month", "chain"

  bool Has(std::string_view feature) const;
  // "Observation?code=http://loinc.org|8302-2&date=ge2012" (decoded, for people).
  std::string Describe() const;
  // "Observation?code=http%3A%2F%2Floinc.org%7C8302-2&..." (percent-encoded, for the wire).
  std::string Encoded() const;
};

// Percent-encodes a query component (keeps unreserved characters and ":,/").
std::string PercentEncode(std::string_view s);
// Decodes "%XX" escapes (and nothing else).
std::string PercentDecode(std::string_view s);
// Parses "Type?k=v&k=v" (encoded or not) back into a query, for reproducing one from a report.
std::optional<GeneratedQuery> ParseDescribed(std::string_view text);

class QueryGenerator {
 public:
  // `registry` tells which chains need a type modifier (a reference parameter with several
  // target types that have the chained parameter); both must outlive the generator. `base` (the
  // server's FHIR base URL) lets references be given as absolute URLs; "" leaves them out.
  QueryGenerator(const Dataset& data, const search::Registry& registry, uint64_t seed,
                 std::string base = "");
  QueryGenerator(const QueryGenerator&) = delete;
  QueryGenerator& operator=(const QueryGenerator&) = delete;

  // `count` distinct queries (fewer only if the data cannot yield that many).
  std::vector<GeneratedQuery> Generate(int count);

  // A parameter the generator draws values for (defined in the .cc).
  struct AtomSpec;

 private:
  struct Criterion {
    std::string key;
    std::string value;
    std::vector<std::string> features;
  };

  uint64_t Next();
  size_t Below(size_t n);
  bool Chance(int percent);
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

  // A criterion on `type` of one of `kinds` (string, token, reference, date, quantity, missing,
  // _id), drawn from `from` when given, else from a random resource. `plain`: no :not / :missing.
  std::optional<Criterion> RandomCriterion(const std::string& type, std::string_view kinds,
                                           const json::Value* from, bool plain);
  std::optional<Criterion> FromSpec(const AtomSpec& spec, const json::Value* from, bool plain);
  std::optional<Criterion> StringCriterion(const AtomSpec& spec, const json::Value& r);
  std::optional<Criterion> TokenCriterion(const AtomSpec& spec, const json::Value& r, bool plain);
  std::optional<Criterion> ReferenceCriterion(const AtomSpec& spec, const json::Value& r);
  std::optional<Criterion> DateCriterion(const AtomSpec& spec, const json::Value& r);
  std::optional<Criterion> QuantityCriterion(const AtomSpec& spec, const json::Value& r);
  std::optional<Criterion> UriCriterion(const AtomSpec& spec, const json::Value& r);
  std::optional<Criterion> MissingCriterion(const std::string& type);
  std::optional<Criterion> IdCriterion(const std::string& type);

  std::optional<GeneratedQuery> Single(std::string_view kind);
  std::optional<GeneratedQuery> And();
  std::optional<GeneratedQuery> DateRange();
  std::optional<GeneratedQuery> Chain();
  std::optional<GeneratedQuery> Has();

  // A date value derived from `source` (a FHIR date/dateTime) at a random precision, maybe
  // shifted; adds "date@<precision>" to `features`.
  std::string DateValue(std::string_view source, std::vector<std::string>& features);
  std::string StringVariant(const std::string& value, std::vector<std::string>& features,
                            std::string* modifier);

  const Dataset& data_;
  const search::Registry& registry_;
  uint64_t state_;
  std::string base_;
};

}  // namespace fhirstone::differential
