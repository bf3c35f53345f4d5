// SearchParameter registry: every R4 search parameter (generated from search-parameters.json at
// build time) with its FHIRPath expression compiled once, looked up by resource type and code.
// Parameters defined on Resource / DomainResource (_id, _lastUpdated, _tag, _profile, _security,
// _source, _text...) apply to every type. Immutable after construction: thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/json.h"
#include "common/result.h"
#include "fhirpath/fhirpath.h"

namespace fhirstone::search {

enum class ParamType {
  kNumber,
  kDate,
  kString,
  kToken,
  kReference,
  kComposite,
  kQuantity,
  kUri,
  kSpecial
};

std::string_view ParamTypeName(ParamType type);

struct SearchParam {
  std::string base;  // the resource type it is defined on (or Resource / DomainResource)
  std::string code;
  ParamType type = ParamType::kString;
  std::string expression;
  std::vector<std::string> targets;  // reference targets
  std::string url;
  bool builtin = false;  // one of the R4 definitions (Registry::Builtin), not a custom one
  std::unique_ptr<const fhirpath::Expression> compiled;  // null when there is no expression

  struct Component {
    std::string definition;  // URL of the component's SearchParameter
    std::string expression;  // relative to each value of the composite's expression
    std::unique_ptr<const fhirpath::Expression> compiled;
    ParamType type = ParamType::kToken;
  };
  std::vector<Component> components;  // composite parameters only

  // Set when the parameter's index rows would be exactly those of other parameters of the same
  // base and type, so that they are not stored and a search on it reads theirs: its expression
  // is the union of theirs (Observation combo-code = code | component-code) or the same as one's
  // (Patient phonetic = name). Built-in parameters, not references; set by the registry.
  std::vector<const SearchParam*> stored_as;
};

class Registry {
 public:
  // The built-in R4 parameters, expressions compiled. Fails if an expression does not compile.
  static Result<std::unique_ptr<Registry>> Builtin();
  // The built-in parameters plus custom SearchParameter resources (a custom parameter with the
  // code of a built-in one on the same base replaces it). A custom parameter that cannot be used
  // (unknown type or base, missing or uncompilable expression) is left out and named in
  // `skipped` with the reason; so is one that would replace a parameter a compartment is made of
  // (the Patient compartment decides patient-scoped access and the audit's patients), one that
  // decides shards (ShardParam, IsShardParam: Observation's `patient` too) or one of the
  // parameters of every resource (`_id`, `_lastUpdated`...). Of custom parameters
  // with one base and code, the one with the greatest id is used (whatever the order they come
  // in: every node chooses the same), the others are skipped. A custom parameter that replaces an
  // operand of a built-in one stored as others' (SearchParam::stored_as) makes that one stored: its
  // key goes into `now_stored` (its rows exist once `fhirstone reindex` has written them).
  static Result<std::unique_ptr<Registry>> WithCustom(
      const std::vector<json::Value>& custom, std::vector<std::string>* skipped,
      std::vector<std::string>* now_stored = nullptr);
  // Whether a SearchParameter resource can be used as a custom parameter (the checks above).
  static Status CheckCustom(const json::Value& search_parameter);

  // The parameter `code` of `type` (or of Resource / DomainResource); nullptr when unknown.
  const SearchParam* Find(std::string_view type, std::string_view code) const;
  // Every parameter that applies to `type`, including the Resource-level ones.
  const std::vector<const SearchParam*>& ForType(std::string_view type) const;
  // Those of them whose index rows are stored (ForType without the ones with `stored_as`): what
  // the store extracts on a write.
  const std::vector<const SearchParam*>& StoredForType(std::string_view type) const;
  size_t size() const { return params_.size(); }
  // Whether custom SearchParameters (WithCustom) are among the parameters.
  bool HasCustom() const;
  // The parameters of `type` that place a resource in `compartment`'s compartment (e.g.
  // Patient, Observation -> subject, performer); empty when `type` is not in that compartment.
  const std::vector<const SearchParam*>& CompartmentParams(std::string_view compartment,
                                                           std::string_view type) const;
  // The parameter that decides which patient's shard a resource of `type` lives in (see
  // ShardKeyOf in extract.h): its Patient compartment parameter `patient`, else `subject`, if
  // it is a built-in one whose expression reaches one single-valued element of `type` (so a
  // resource refers to at most one patient through it). nullptr for Patient itself and for
  // types outside the compartment or with several patients per resource (Appointment...).
  const SearchParam* ShardParam(std::string_view type) const;
  // Whether `param` tests the element ShardParam(type) reads (Observation: subject, and patient
  // which is subject restricted to patients); `patients_only` tells whether its index holds
  // patients only (so that a bare id names a patient).
  bool IsShardParam(std::string_view type, const SearchParam* param,
                    bool* patients_only = nullptr) const;

 private:
  Registry() = default;
  // Fills for_type_ and compartment_ from by_type_.
  void Index();
  std::vector<std::unique_ptr<SearchParam>> params_;
  std::unordered_map<std::string, std::unordered_map<std::string, const SearchParam*>> by_type_;
  std::unordered_map<std::string, std::vector<const SearchParam*>> for_type_;
  std::unordered_map<std::string, std::vector<const SearchParam*>> stored_for_type_;
  std::unordered_map<std::string, std::vector<const SearchParam*>>
      compartment_;  // "Patient/Observation"
  std::unordered_map<std::string, std::vector<const SearchParam*>> shard_params_;
};

// Shard keys (docs/scale-out.md): every resource carries one, so that the patient-linked tables
// can be distributed by it (Citus) and a patient's data stays together. A patient whose id is a
// version 7 UUID in lowercase (as the server assigns them) has its time in milliseconds and 16 of
// its random bits as its key, so that the index rows keyed by the shard key of new patients' data
// go at the end of their range; any other patient's key is a 64-bit FNV-1a hash of its id. A
// resource outside any one patient's data gets the hash of "Type/id". Never 0 (0 marks a row
// written before shard keys existed).
int64_t PatientShardKey(std::string_view patient_id);
int64_t OwnShardKey(std::string_view type, std::string_view id);

// The registry in force, swapped atomically when custom parameters change ($reindex); readers
// keep the registry they took for the length of their work. Thread-safe.
class RegistryHolder {
 public:
  explicit RegistryHolder(std::shared_ptr<const Registry> registry)
      : registry_(std::move(registry)) {}
  std::shared_ptr<const Registry> Get() const { return registry_.load(); }
  void Set(std::shared_ptr<const Registry> registry) { registry_.store(std::move(registry)); }

 private:
  std::atomic<std::shared_ptr<const Registry>> registry_;
};

}  // namespace fhirstone::search
