// Client registration, shared by `fhirstone client add` and the admin JSON API
// (POST /auth/admin/clients): checks a registration and stores the client, its secret hashed.
// Thread-safe (the store is).
#pragma once

#include <string>
#include <vector>

#include "auth/oauth/auth_store.h"
#include "common/json.h"
#include "common/result.h"

namespace fhirstone::oauth {

struct Registration {
  std::string client_id;  // empty: a random one
  std::string name;
  std::string type = "public";  // public, confidential-symmetric, confidential-asymmetric
  std::vector<std::string> redirect_uris;
  std::string scopes;
  json::Value jwks;      // confidential-asymmetric: the client's public keys, inline
  std::string jwks_uri;  // ... or where to fetch them (https; http only on loopback)
  std::string launch_uri;
  bool require_pkce = false;
};

struct Registered {
  std::string client_id;
  std::string client_secret;  // confidential-symmetric only: shown once, stored hashed
};

// Redirect URIs must be absolute http(s) URLs without fragment; scopes must parse; an
// asymmetric client needs a usable JWKS; ids are unique (Conflict otherwise).
Result<Registered> RegisterClient(AuthStore& store, const Registration& registration);

// A client as the admin API shows it (never its secret hash).
json::Value ClientJson(const Client& client);

}  // namespace fhirstone::oauth
