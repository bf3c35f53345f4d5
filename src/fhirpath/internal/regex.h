// Regex: the regular expressions of matches() and replaceMatches(), on std::regex (ECMAScript
// syntax) with guards against catastrophic input: patterns are limited in length, nesting and
// counted repetition (so the automaton stays small), back-references are refused, inputs are
// limited in length, and with libstdc++ matching runs on its breadth-first (polynomial) executor.
// Immutable after Compile(): safe to use from many threads. Internal to fhirstone_fhirpath.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace fhirstone::fhirpath::internal {

class Regex {
 public:
  static constexpr size_t kMaxPatternLength = 512;
  static constexpr size_t kMaxSearchInput = 16384;
  static constexpr size_t kMaxReplaceInput = 4096;

  // Error::Invalid when `pattern` is malformed, uses back-references or is too complex.
  static Result<std::unique_ptr<const Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Whether some part of `input` matches (FHIRPath matches()).
  Result<bool> Search(std::string_view input) const;
  // Every match replaced by `substitution` ($1.. refer to groups).
  Result<std::string> Replace(std::string_view input, std::string_view substitution) const;

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhirstone::fhirpath::internal
