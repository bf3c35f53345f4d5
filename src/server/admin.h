// The administrative commands of the authorization server (fhirstone client, user, keys,
// launch): they open the database directly, as the offline commands do.
#pragma once

#include <string>
#include <vector>

#include "auth/oauth/auth_store.h"
#include "common/result.h"

namespace fhirstone::server {

struct ClientSpec {
  std::string client_id;  // empty: a random one
  std::string name;
  std::string type = "public";
  std::vector<std::string> redirect_uris;
  std::string scopes;
  std::string jwks_file;  // confidential-asymmetric: the client's public keys (a JWKS file)
  std::string jwks_uri;   // ... or where the server fetches them
  std::string launch_uri;
  bool require_pkce = false;
};

struct ClientRegistration {
  std::string client_id;
  std::string client_secret;  // confidential-symmetric only; shown once, stored hashed
};

// Registers a client after checking the spec (redirect URIs absolute http(s) without fragment,
// scopes parse, a usable JWKS for asymmetric clients).
Result<ClientRegistration> AddClient(const std::string& db_url, ClientSpec spec);
Result<std::vector<oauth::Client>> ListClients(const std::string& db_url);
// Adds a user whose password is hashed with Argon2id; fhir_user is Patient/x, Practitioner/x,
// RelatedPerson/x or Person/x. Returns the user id.
Result<std::string> AddUser(const std::string& db_url, const std::string& username,
                            const std::string& password, const std::string& fhir_user,
                            const std::string& display);
// Makes a new signing key current; the previous ones verify until their tokens expire.
Status RotateKeys(const std::string& db_url, const std::string& base_url);
// A single-use EHR launch value for `username` with a patient (and encounter) in context.
Result<std::string> CreateLaunch(const std::string& db_url, const std::string& username,
                                 const std::string& patient, const std::string& encounter,
                                 int64_t lifetime_seconds);

}  // namespace fhirstone::server
