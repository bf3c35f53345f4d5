// TokenService: the authorization server's signing keys and the tokens signed with them.
// Access tokens are RS256 JWTs (iss, aud = the FHIR base, sub, client_id, scope, patient,
// encounter, fhirUser, exp, iat, jti, and `gid`, the grant they come from) so that any node can
// check them; a check costs a signature verification once per token, then a cache lookup and a
// revocation check (grant ids and jtis in memory, mirrored in the database).
// Keys live in the database: the newest signs; rotated-out keys stay in the JWKS until every
// token they signed has expired, so rotation breaks no token in flight.
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "api/access.h"
#include "auth/oauth/auth_store.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/result.h"

namespace fhirstone::oauth {

struct TokenOptions {
  std::string issuer;    // e.g. http://localhost:8080/fhir
  std::string audience;  // the FHIR base URL
  int64_t access_token_seconds = 3600;
  int64_t id_token_seconds = 3600;
};

// A verified access token.
struct VerifiedToken {
  json::Value claims;
  api::AccessContext access;
  int64_t expires = 0;  // seconds
  std::string jti;
  std::string grant_id;
  std::string client_id;
};

class TokenService {
 public:
  static Result<std::unique_ptr<TokenService>> Create(AuthStore& store, Clock& clock,
                                                      TokenOptions options);
  ~TokenService();
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;

  // An access token for `grant` living `seconds`; its jti in *jti when given.
  Result<std::string> IssueAccessToken(const Grant& grant, int64_t seconds,
                                       std::string* jti = nullptr);
  // An OpenID Connect id_token (RS256, with kid) for `grant`.
  Result<std::string> IssueIdToken(const Grant& grant);
  // Checks signature, issuer, audience, expiry and revocation. Error::Unauthorized says why.
  Result<std::shared_ptr<const VerifiedToken>> Verify(std::string_view token);
  // The public keys (JWKS) of every key that may have signed a live token.
  json::Value Jwks();
  // Makes a new signing key the current one; the old ones keep verifying until they expire.
  Status RotateKeys();
  // Revokes a grant id or a jti (until `expires`), in memory at once and in the database.
  Status Revoke(std::string_view id, int64_t expires);
  bool IsRevoked(std::string_view id);
  // Reloads keys and revocations written by other nodes.
  Status Reload();
  const TokenOptions& options() const;

 private:
  TokenService();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The AccessContext an access token's claims grant (scopes, patient context, a patient user's
// own compartment).
api::AccessContext AccessFromClaims(const json::Value& claims);

}  // namespace fhirstone::oauth
