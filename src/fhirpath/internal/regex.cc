#include "fhirpath/internal/regex.h"

#include <iterator>
#include <regex>
#include <vector>

namespace fhirstone::fhirpath::internal {
namespace {

constexpr size_t kMaxGroupDepth = 32;
constexpr size_t kMaxStates = 10000;  // estimated size of the automaton
constexpr size_t kMaxSubstitution = 1024;

#if defined(__GLIBCXX__)
// libstdc++'s breadth-first executor: time O(input x automaton), no backtracking, no deep
// recursion over the input. It refuses back-references, which FHIRPath does not need.
constexpr auto kFlags = std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
constexpr auto kFlags = std::regex::ECMAScript;
#endif

// Checks `pattern` and rewrites it for std::regex: '.' outside a class becomes [\s\S] (FHIRPath
// regular expressions are in single-line mode). Estimates the automaton's size: atoms count one,
// a group the sum of its parts, a quantifier multiplies the atom before it.
Result<std::string> Prepare(std::string_view p) {
  if (p.size() > Regex::kMaxPatternLength) {
    return Error::Invalid("regular expression longer than " +
                          std::to_string(Regex::kMaxPatternLength) + " characters");
  }
  std::string out;
  std::vector<size_t> groups = {0};  // states so far in each open group
  size_t last = 0;                   // states of the atom before a quantifier
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) return Error::Invalid("regular expression ends with '\\'");
      char e = p[i + 1];
      if (e >= '1' && e <= '9') return Error::Invalid("back-references are not supported");
      out.append(p.substr(i, 2));
      ++i;
      last = 1;
      groups.back() += last;
      continue;
    }
    if (c == '[') {
      size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') j += p[j] == '\\' ? 2 : 1;
      if (j >= p.size())
        return Error::Invalid("unterminated character class in regular expression");
      out.append(p.substr(i, j - i + 1));
      i = j;
      last = 1;
      groups.back() += last;
      continue;
    }
    if (c == '(') {
      if (groups.size() > kMaxGroupDepth) {
        return Error::Invalid("regular expression nested too deeply");
      }
      groups.push_back(1);
      out += c;
      continue;
    }
    if (c == ')') {
      if (groups.size() == 1) return Error::Invalid("unbalanced ')' in regular expression");
      last = groups.back() + 1;
      groups.pop_back();
      groups.back() += last;
      out += c;
      continue;
    }
    if (c == '{') {
      // std::regex reads the counts into an int without checking for overflow: refuse long ones
      // whether or not they form a quantifier.
      size_t j = i + 1;
      size_t n = 0, m = 0, digits = 0;
      while (j < p.size() && p[j] >= '0' && p[j] <= '9') {
        n = n * 10 + static_cast<size_t>(p[j++] - '0');
        if (++digits > 5) return Error::Invalid("repetition count too large in regular expression");
      }
      bool has_digits = digits > 0;
      m = n;
      if (j < p.size() && p[j] == ',') {
        ++j;
        m = n + 1;
        size_t k = 0, upper = 0;
        while (j < p.size() && p[j] >= '0' && p[j] <= '9') {
          k = k * 10 + static_cast<size_t>(p[j++] - '0');
          if (++upper > 5) {
            return Error::Invalid("repetition count too large in regular expression");
          }
        }
        if (upper > 0) m = k;
      }
      if (has_digits && j < p.size() && p[j] == '}') {
        size_t factor = std::max<size_t>(std::max(n, m), 1);
        if (factor > kMaxStates) return Error::Invalid("regular expression too complex");
        groups.back() += last * (factor - 1);
        last *= factor;
        out.append(p.substr(i, j - i + 1));
        i = j;
        if (groups.back() > kMaxStates) return Error::Invalid("regular expression too complex");
        continue;
      }
    }
    if (c == '*' || c == '+' || c == '?') {
      groups.back() += 1;
      out += c;
      continue;
    }
    if (c == '.') {
      out += "[\\s\\S]";
    } else {
      out += c;
    }
    last = 1;
    groups.back() += 1;
    if (groups.back() > kMaxStates) return Error::Invalid("regular expression too complex");
  }
  if (groups.size() != 1) return Error::Invalid("unbalanced '(' in regular expression");
  return out;
}

}  // namespace

struct Regex::Impl {
  std::regex plain;
  std::regex anywhere;  // [\s\S]*(?:pattern)[\s\S]*: regex_match finds a match anywhere
};

Regex::Regex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Regex::~Regex() = default;

Result<std::unique_ptr<const Regex>> Regex::Compile(std::string_view pattern) {
  Result<std::string> prepared = Prepare(pattern);
  if (!prepared) return std::move(prepared).error();
  auto impl = std::make_unique<Impl>();
  try {
    impl->plain = std::regex(*prepared, kFlags);
    impl->anywhere = std::regex("[\\s\\S]*(?:" + *prepared + ")[\\s\\S]*", kFlags);
  } catch (const std::regex_error& e) {
    return Error::Invalid(std::string("invalid regular expression: ") + e.what());
  }
  return std::unique_ptr<const Regex>(new Regex(std::move(impl)));
}

Result<bool> Regex::Search(std::string_view input) const {
  if (input.size() > kMaxSearchInput) {
    return Error::Invalid("matches(): input longer than " + std::to_string(kMaxSearchInput) +
                          " characters");
  }
  try {
    return std::regex_match(input.data(), input.data() + input.size(), impl_->anywhere);
  } catch (const std::regex_error& e) {
    return Error::Invalid(std::string("matches(): ") + e.what());
  }
}

Result<std::string> Regex::Replace(std::string_view input, std::string_view substitution) const {
  if (input.size() > kMaxReplaceInput || substitution.size() > kMaxSubstitution) {
    return Error::Invalid("replaceMatches(): input longer than " +
                          std::to_string(kMaxReplaceInput) + " characters");
  }
  std::string out;
  try {
    std::string format(substitution);
    std::regex_replace(std::back_inserter(out), input.data(), input.data() + input.size(),
                       impl_->plain, format);
  } catch (const std::regex_error& e) {
    return Error::Invalid(std::string("replaceMatches(): ") + e.what());
  }
  return out;
}

}  // namespace fhirstone::fhirpath::internal
