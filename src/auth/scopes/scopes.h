// SMART App Launch 2.2 scopes: parsing, matching, coverage and consent wording.
// https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html
//
// ResourceScope and ScopeSet are plain value types (thread-compatible); every function here is
// pure and thread-safe. Nothing here knows about tokens, clients or HTTP: callers parse the
// `scope` parameter once, then ask Matching / IsCoveredBy / Restrict / Describe.
//
// Parsing rules (decisions beyond the spec are marked "Decision"):
// - A scope string is tokens separated by one or more spaces (leading and trailing spaces are
//   ignored); each token is made of %x21 / %x23-5B / %x5D-7E (RFC 6749 §3.3). Any other byte
//   (`"`, `\`, tab, control, non-ASCII) makes the whole string invalid.
// - Decision: a token starting with `patient/`, `user/` or `system/` is a resource scope and must
//   be well formed (`<context>/<type>.<perms>[?query]`), else the string is invalid (the
//   authorization server answers invalid_scope). Any other token that is not one of the known
//   SMART / OpenID scopes (launch, launch/patient, launch/encounter, openid, fhirUser, profile,
//   offline_access, online_access) is kept in `other`, including `unknownctx/Observation.rs` and
//   upper-case variants such as `Patient/Observation.rs`: unknown scopes are not an error, they
//   are simply not granted.
// - Permissions: v1 `read` (r+s), `write` (c+u+d), `*` (cruds); v2 a non-empty subsequence of
//   `cruds` in that order. Only v2 scopes may carry a `?query` restriction.
// - Query restriction: split on `&`, then on the first `=`; names and values are percent-decoded
//   with `+` as a space, as the FHIR search of this server reads a URL query. Decision: every
//   parameter needs a non-empty name and a non-empty value (FHIR servers ignore an empty search
//   parameter, so an empty one would silently lift the restriction); a bad percent escape,
//   decoded control characters or invalid UTF-8 make the scope invalid.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace fhirstone::scopes {

// A bitmask of the v2 permission letters. Not an enum class: scopes combine them with `|`.
enum Permission : uint8_t { kCreate = 1, kRead = 2, kUpdate = 4, kDelete = 8, kSearch = 16 };
inline constexpr uint8_t kAllPermissions = kCreate | kRead | kUpdate | kDelete | kSearch;

enum class Context { kPatient, kUser, kSystem };

// "patient", "user" or "system".
std::string_view ContextName(Context context);
// The v2 letters of `permissions` in cruds order, e.g. "rs"; "" for 0.
std::string PermissionLetters(uint8_t permissions);

// One resource scope such as `patient/Observation.rs?category=...|laboratory`.
struct ResourceScope {
  Context context = Context::kPatient;
  std::string type;         // a resource type, or "*"
  uint8_t permissions = 0;  // bitmask of Permission; never 0 once parsed
  bool v1 = false;          // written in v1 syntax (read/write/*)
  std::string query;        // v2 restriction after '?', raw; "" when none
  std::vector<std::pair<std::string, std::string>> query_params;  // decoded (name, value)
  std::string text;                                               // the scope as written
};

// A parsed scope string.
struct ScopeSet {
  std::vector<ResourceScope> resources;
  bool launch = false, launch_patient = false, launch_encounter = false;
  bool openid = false, fhir_user = false, profile = false;
  bool offline_access = false, online_access = false;
  std::vector<std::string> other;   // unrecognised scopes, as written
  std::vector<std::string> tokens;  // every scope as written, in order, deduplicated

  // The tokens, space-separated, in order.
  std::string ToString() const;
  // True when `scope` is one of the tokens, exactly as written.
  bool Has(std::string_view scope) const;
};

// Parses a space-separated scope string (see the rules above). "" gives an empty set. Errors are
// Error::Invalid naming the offending token (quoted with '...', at most 100 characters, bytes
// outside %x21-7E percent-encoded so that the message is safe in an OAuth error_description).
Result<ScopeSet> Parse(std::string_view scope_string);

// Parses one resource scope token. Error::Invalid when it is not a well-formed resource scope
// (including tokens such as `openid` that are valid scopes of another kind).
Result<ResourceScope> ParseResourceScope(std::string_view token);

// The resource scopes of `granted`, in order, that allow every bit of `permission` on `type`
// (their type equals `type` or is "*"), limited to `contexts` unless it is empty. Query
// restrictions are not evaluated here: the caller applies each returned scope's query_params.
std::vector<const ResourceScope*> Matching(const ScopeSet& granted, std::string_view type,
                                           Permission permission,
                                           const std::vector<Context>& contexts = {});

// True when `requested` asks for nothing beyond `granted` (refresh, token exchange): every token
// of `requested` is a token of `granted`, or is a resource scope whose permissions are all given,
// for its context and type, by the granted resource scopes of the same context whose type is
// equal or "*" and which have no query restriction or the same one (the same decoded parameters,
// in any order). So narrowing is allowed and widening refused; v1 and v2 spellings of the same
// permissions cover each other (`patient/*.read` covers `patient/Observation.rs`,
// `patient/Observation.rs` covers `patient/Observation.read`).
bool IsCoveredBy(const ScopeSet& requested, const ScopeSet& granted);

// The tokens of `requested` that `allowed` (e.g. a client's registered scopes) covers, by the
// rule of IsCoveredBy, in requested order. A token not covered is dropped whole, never narrowed.
ScopeSet Restrict(const ScopeSet& requested, const ScopeSet& allowed);

// One short plain-English sentence for a consent page, e.g. "Read and search observations of the
// patient in context (laboratory category only)", "Know who you are (OpenID Connect)". Never
// empty; an unrecognised or malformed token is described as such with its text.
std::string Describe(std::string_view scope_token);

}  // namespace fhirstone::scopes
