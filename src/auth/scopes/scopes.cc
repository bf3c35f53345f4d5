// SMART App Launch 2.2 scopes.
// https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html
#include "auth/scopes/scopes.h"

#include <simdjson.h>

#include <algorithm>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/pct_string_view.hpp>
#include <cctype>
#include <unordered_map>
#include <unordered_set>

#include "common/strings.h"
#include "fhir/model.h"

namespace fhirstone::scopes {

namespace {

constexpr size_t kMaxQuotedLength = 100;

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
bool IsScopeChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u <= 0x5B) || (u >= 0x5D && u <= 0x7E);
}

// `token` between single quotes for an error message: at most kMaxQuotedLength characters, bytes
// that are not scope characters percent-encoded, so that the message is itself a valid OAuth
// error_description (%x20-21 / %x23-5B / %x5D-7E).
std::string Quote(std::string_view token) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "'";
  for (size_t i = 0; i < token.size() && i < kMaxQuotedLength; ++i) {
    char c = token[i];
    if (IsScopeChar(c)) {
      out.push_back(c);
    } else {
      auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  if (token.size() > kMaxQuotedLength) out += "...";
  out.push_back('\'');
  return out;
}

Error InvalidScope(std::string_view token, std::string_view why) {
  return Error::Invalid("Invalid scope " + Quote(token) + ": " + std::string(why));
}

Status CheckCharacters(std::string_view token) {
  if (token.empty()) return InvalidScope(token, "empty scope");
  for (char c : token) {
    if (!IsScopeChar(c)) {
      return InvalidScope(token, "character " + Quote(std::string_view(&c, 1)) +
                                     " is not allowed in a scope (RFC 6749 section 3.3)");
    }
  }
  return Ok();
}

// The context of a resource-scope prefix `patient/`, `user/`, `system/`; false otherwise.
bool ContextOfPrefix(std::string_view token, Context* context, size_t* prefix_length) {
  static constexpr std::pair<std::string_view, Context> kPrefixes[] = {
      {"patient/", Context::kPatient}, {"user/", Context::kUser}, {"system/", Context::kSystem}};
  for (const auto& [prefix, ctx] : kPrefixes) {
    if (token.substr(0, prefix.size()) == prefix) {
      *context = ctx;
      *prefix_length = prefix.size();
      return true;
    }
  }
  return false;
}

bool LooksLikeResourceScope(std::string_view token) {
  Context context;
  size_t length;
  return ContextOfPrefix(token, &context, &length);
}

// Percent-decodes one name or value of a query restriction (`+` is a space).
Result<std::string> DecodeQueryPart(std::string_view token, std::string_view part) {
  auto pct = boost::urls::make_pct_string_view(part);
  if (!pct) return InvalidScope(token, "bad percent-encoding in the query restriction");
  std::string decoded = pct->decode(boost::urls::encoding_opts(/*space_as_plus=*/true));
  for (char c : decoded) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return InvalidScope(token, "control character in the query restriction");
    }
  }
  if (!simdjson::validate_utf8(decoded.data(), decoded.size())) {
    return InvalidScope(token, "invalid UTF-8 in the query restriction");
  }
  return decoded;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view token,
                                                                    std::string_view query) {
  if (query.empty()) return InvalidScope(token, "empty query restriction after '?'");
  std::vector<std::pair<std::string, std::string>> params;
  for (std::string_view piece : Split(query, '&')) {
    if (piece.empty()) return InvalidScope(token, "empty parameter in the query restriction");
    size_t eq = piece.find('=');
    if (eq == std::string_view::npos) {
      return InvalidScope(token, "query parameter " + Quote(piece) + " has no value");
    }
    auto name = DecodeQueryPart(token, piece.substr(0, eq));
    if (!name) return std::move(name).error();
    auto value = DecodeQueryPart(token, piece.substr(eq + 1));
    if (!value) return std::move(value).error();
    if (name->empty()) return InvalidScope(token, "query parameter without a name");
    if (value->empty()) {
      return InvalidScope(token, "query parameter " + Quote(piece) + " has an empty value");
    }
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

// v2 permissions: a non-empty subsequence of "cruds". 0 when malformed.
uint8_t ParseV2Permissions(std::string_view perms) {
  static constexpr std::string_view kLetters = "cruds";
  uint8_t mask = 0;
  size_t next = 0;  // the first letter of kLetters still allowed
  for (char c : perms) {
    size_t at = kLetters.find(c, next);
    if (at == std::string_view::npos) return 0;
    mask |= static_cast<uint8_t>(1u << at);
    next = at + 1;
  }
  return mask;
}

// The non-resource scopes that SMART and OpenID Connect define.
bool* KnownFlag(ScopeSet& set, std::string_view token) {
  if (token == "launch") return &set.launch;
  if (token == "launch/patient") return &set.launch_patient;
  if (token == "launch/encounter") return &set.launch_encounter;
  if (token == "openid") return &set.openid;
  if (token == "fhirUser") return &set.fhir_user;
  if (token == "profile") return &set.profile;
  if (token == "offline_access") return &set.offline_access;
  if (token == "online_access") return &set.online_access;
  return nullptr;
}

// Records a token that is not a resource scope.
void AddNonResource(ScopeSet& set, std::string_view token) {
  if (bool* flag = KnownFlag(set, token)) {
    *flag = true;
  } else {
    set.other.emplace_back(token);
  }
  set.tokens.emplace_back(token);
}

std::vector<std::pair<std::string, std::string>> Sorted(
    std::vector<std::pair<std::string, std::string>> params) {
  std::sort(params.begin(), params.end());
  return params;
}

// True when the granted resource scopes together give every permission of `scope`.
bool ResourceCovered(const ResourceScope& scope, const ScopeSet& granted) {
  uint8_t have = 0;
  std::vector<std::pair<std::string, std::string>> wanted_query;  // sorted lazily
  bool wanted_sorted = false;
  for (const ResourceScope& g : granted.resources) {
    if (g.context != scope.context) continue;
    if (g.type != "*" && g.type != scope.type) continue;
    if (!g.query_params.empty()) {
      if (g.query_params.size() != scope.query_params.size()) continue;
      if (!wanted_sorted) {
        wanted_query = Sorted(scope.query_params);
        wanted_sorted = true;
      }
      if (Sorted(g.query_params) != wanted_query) continue;
    }
    have |= g.permissions;
  }
  return (scope.permissions & ~have) == 0;
}

// Covers one token of `requested` (its resource scope, or nullptr) by `granted`.
bool TokenCovered(std::string_view token, const ResourceScope* resource, const ScopeSet& granted,
                  const std::unordered_set<std::string_view>& granted_tokens) {
  if (granted_tokens.count(token) > 0) return true;
  return resource != nullptr && ResourceCovered(*resource, granted);
}

std::unordered_set<std::string_view> TokenSet(const ScopeSet& set) {
  return {set.tokens.begin(), set.tokens.end()};
}

std::unordered_map<std::string_view, const ResourceScope*> ResourcesByText(const ScopeSet& set) {
  std::unordered_map<std::string_view, const ResourceScope*> out;
  for (const ResourceScope& r : set.resources) out.emplace(r.text, &r);
  return out;
}

// "a", "a and b", "a, b and c".
std::string JoinWords(const std::vector<std::string>& words, std::string_view last_sep) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += (i + 1 == words.size()) ? std::string(last_sep) : std::string(", ");
    out += words[i];
  }
  return out;
}

// "Observation" -> "observations", "AllergyIntolerance" -> "allergy intolerances".
std::string ReadableTypePlural(std::string_view type) {
  if (type == "Media") return "media";
  if (type == "Basic") return "basic resources";
  std::string words;
  for (size_t i = 0; i < type.size(); ++i) {
    char c = type[i];
    if (i > 0 && std::isupper(static_cast<unsigned char>(c)) &&
        std::islower(static_cast<unsigned char>(type[i - 1]))) {
      words.push_back(' ');
    }
    words.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  auto ends_with = [&](std::string_view suffix) {
    return words.size() >= suffix.size() &&
           std::string_view(words).substr(words.size() - suffix.size()) == suffix;
  };
  if (ends_with("is")) {  // synthesis -> syntheses
    words.replace(words.size() - 2, 2, "es");
  } else if (ends_with("ss") || ends_with("x") || ends_with("ch") || ends_with("sh")) {
    words += "es";
  } else if (ends_with("s")) {
    // Already plural: Parameters, TerminologyCapabilities.
  } else if (ends_with("y") && words.size() >= 2 &&
             std::string_view("aeiou").find(words[words.size() - 2]) == std::string_view::npos) {
    words.replace(words.size() - 1, 1, "ies");
  } else {
    words += "s";
  }
  return words;
}

// "category=http://...|laboratory" -> "laboratory category"; "code:not=x" -> "code:not x".
std::string DescribeRestriction(const std::string& name, const std::string& value) {
  std::vector<std::string> codes;
  for (std::string_view one : Split(value, ',')) {
    size_t bar = one.rfind('|');
    std::string_view code = one;
    if (bar != std::string_view::npos && bar + 1 < one.size()) code = one.substr(bar + 1);
    codes.emplace_back(code);
  }
  std::string values = JoinWords(codes, " or ");
  std::string readable_name = name;
  if (!readable_name.empty() && readable_name.front() == '_') readable_name.erase(0, 1);
  std::replace(readable_name.begin(), readable_name.end(), '-', ' ');
  if (readable_name.find(':') != std::string::npos) return readable_name + " " + values;
  return values + " " + readable_name;
}

std::string DescribeResource(const ResourceScope& scope) {
  static constexpr std::string_view kVerbs[] = {"create", "read", "update", "delete", "search"};
  std::vector<std::string> verbs;
  for (int i = 0; i < 5; ++i) {
    if (scope.permissions & (1u << i)) verbs.emplace_back(kVerbs[i]);
  }
  std::string out = JoinWords(verbs, " and ");
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  out += ' ';
  out += scope.type == "*" ? std::string("all data") : ReadableTypePlural(scope.type);
  switch (scope.context) {
    case Context::kPatient:
      out += " of the patient in context";
      break;
    case Context::kUser:
      out += " you have access to";
      break;
    case Context::kSystem:
      out += " on the whole server";
      break;
  }
  if (!scope.query_params.empty()) {
    std::vector<std::string> parts;
    for (const auto& [name, value] : scope.query_params) {
      parts.push_back(DescribeRestriction(name, value));
    }
    out += " (" + JoinWords(parts, " and ") + " only)";
  }
  return out;
}

}  // namespace

std::string_view ContextName(Context context) {
  switch (context) {
    case Context::kPatient:
      return "patient";
    case Context::kUser:
      return "user";
    case Context::kSystem:
      return "system";
  }
  return "";
}

std::string PermissionLetters(uint8_t permissions) {
  static constexpr std::string_view kLetters = "cruds";
  std::string out;
  for (size_t i = 0; i < kLetters.size(); ++i) {
    if (permissions & (1u << i)) out.push_back(kLetters[i]);
  }
  return out;
}

std::string ScopeSet::ToString() const {
  std::string out;
  for (const std::string& token : tokens) {
    if (!out.empty()) out.push_back(' ');
    out += token;
  }
  return out;
}

bool ScopeSet::Has(std::string_view scope) const {
  return std::find(tokens.begin(), tokens.end(), scope) != tokens.end();
}

Result<ResourceScope> ParseResourceScope(std::string_view token) {
  FHIRSTONE_RETURN_IF_ERROR(CheckCharacters(token));
  ResourceScope scope;
  size_t prefix_length = 0;
  if (!ContextOfPrefix(token, &scope.context, &prefix_length)) {
    return InvalidScope(token, "not a resource scope (patient/, user/ or system/)");
  }
  std::string_view rest = token.substr(prefix_length);
  size_t question = rest.find('?');
  std::string_view base = rest.substr(0, question);
  size_t dot = base.find('.');
  if (dot == std::string_view::npos) {
    return InvalidScope(token, "expected <context>/<resource type>.<permissions>");
  }
  std::string_view type = base.substr(0, dot);
  std::string_view perms = base.substr(dot + 1);
  if (type.empty()) return InvalidScope(token, "missing resource type");
  if (type != "*" && !fhir::IsResourceType(type)) {
    return InvalidScope(token, "unknown resource type " + Quote(type));
  }
  if (perms.empty()) return InvalidScope(token, "missing permissions after '.'");
  if (perms == "read") {
    scope.permissions = kRead | kSearch;
    scope.v1 = true;
  } else if (perms == "write") {
    scope.permissions = kCreate | kUpdate | kDelete;
    scope.v1 = true;
  } else if (perms == "*") {
    scope.permissions = kAllPermissions;
    scope.v1 = true;
  } else {
    scope.permissions = ParseV2Permissions(perms);
    if (scope.permissions == 0) {
      return InvalidScope(token, "permissions " + Quote(perms) +
                                     " are neither read, write, * nor letters of cruds in order");
    }
  }
  if (question != std::string_view::npos) {
    if (scope.v1) return InvalidScope(token, "a v1 scope (read, write, *) cannot have a query");
    scope.query = std::string(rest.substr(question + 1));
    auto params = ParseQuery(token, scope.query);
    if (!params) return std::move(params).error();
    scope.query_params = std::move(*params);
  }
  scope.type = std::string(type);
  scope.text = std::string(token);
  return scope;
}

Result<ScopeSet> Parse(std::string_view scope_string) {
  ScopeSet set;
  std::unordered_set<std::string_view> seen;
  size_t i = 0;
  while (i < scope_string.size()) {
    if (scope_string[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = scope_string.find(' ', i);
    if (end == std::string_view::npos) end = scope_string.size();
    std::string_view token = scope_string.substr(i, end - i);
    i = end;
    FHIRSTONE_RETURN_IF_ERROR(CheckCharacters(token));
    if (!seen.insert(token).second) continue;
    if (LooksLikeResourceScope(token)) {
      auto resource = ParseResourceScope(token);
      if (!resource) return std::move(resource).error();
      set.resources.push_back(std::move(*resource));
      set.tokens.emplace_back(token);
    } else {
      AddNonResource(set, token);
    }
  }
  return set;
}

std::vector<const ResourceScope*> Matching(const ScopeSet& granted, std::string_view type,
                                           Permission permission,
                                           const std::vector<Context>& contexts) {
  std::vector<const ResourceScope*> out;
  for (const ResourceScope& scope : granted.resources) {
    if (scope.type != "*" && scope.type != type) continue;
    if ((scope.permissions & permission) != permission) continue;
    if (!contexts.empty() &&
        std::find(contexts.begin(), contexts.end(), scope.context) == contexts.end()) {
      continue;
    }
    out.push_back(&scope);
  }
  return out;
}

bool IsCoveredBy(const ScopeSet& requested, const ScopeSet& granted) {
  auto granted_tokens = TokenSet(granted);
  auto resources = ResourcesByText(requested);
  for (const std::string& token : requested.tokens) {
    auto it = resources.find(token);
    const ResourceScope* resource = it == resources.end() ? nullptr : it->second;
    if (!TokenCovered(token, resource, granted, granted_tokens)) return false;
  }
  // A set built by hand may hold resource scopes that are not among its tokens.
  for (const ResourceScope& resource : requested.resources) {
    if (!TokenCovered(resource.text, &resource, granted, granted_tokens)) return false;
  }
  return true;
}

ScopeSet Restrict(const ScopeSet& requested, const ScopeSet& allowed) {
  ScopeSet out;
  auto allowed_tokens = TokenSet(allowed);
  auto resources = ResourcesByText(requested);
  for (const std::string& token : requested.tokens) {
    auto it = resources.find(token);
    const ResourceScope* resource = it == resources.end() ? nullptr : it->second;
    if (!TokenCovered(token, resource, allowed, allowed_tokens)) continue;
    if (resource != nullptr) {
      out.resources.push_back(*resource);
      out.tokens.push_back(token);
    } else {
      AddNonResource(out, token);
    }
  }
  return out;
}

std::string Describe(std::string_view scope_token) {
  if (scope_token == "launch") {
    return "Open from within your health record system with its current context (launch)";
  }
  if (scope_token == "launch/patient") {
    return "Know which patient is selected when the app starts (launch/patient)";
  }
  if (scope_token == "launch/encounter") {
    return "Know which encounter is selected when the app starts (launch/encounter)";
  }
  if (scope_token == "openid") return "Know who you are (OpenID Connect)";
  if (scope_token == "fhirUser") {
    return "Know which person in the health record you are (fhirUser)";
  }
  if (scope_token == "profile") return "See your name and profile (profile)";
  if (scope_token == "offline_access") {
    return "Stay signed in to the app when you are not using it (offline access)";
  }
  if (scope_token == "online_access") {
    return "Stay signed in to the app while you are using it (online access)";
  }
  if (LooksLikeResourceScope(scope_token)) {
    auto scope = ParseResourceScope(scope_token);
    if (scope) return DescribeResource(*scope);
    return "Use the malformed permission " + Quote(scope_token) + " (it will not be granted)";
  }
  return "Use the unrecognised permission " + Quote(scope_token) + " (it will not be granted)";
}

}  // namespace fhirstone::scopes
