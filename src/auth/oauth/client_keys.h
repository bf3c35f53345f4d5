// ClientKeys: the public keys a confidential-asymmetric client signs its assertions with
// (https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html): the JWKS
// registered inline, or fetched from the client's jwks_uri with a timeout and cached (10 minutes;
// when an assertion names a kid the cached set lacks, refetched at most once a minute, so that a
// client can rotate its keys). Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "auth/jose/jose.h"
#include "auth/oauth/auth_store.h"
#include "common/clock.h"
#include "common/result.h"

namespace fhirstone::oauth {

class ClientKeys {
 public:
  // Fetches a JWKS document (the body) from a URL; http::Get by default.
  using Fetcher = std::function<Result<std::string>(const std::string& url)>;

  ClientKeys(Clock& clock, Fetcher fetcher = {});

  // The keys of `client`, making sure `kid` is among them when it can be.
  Result<jose::KeySet> For(const Client& client, const std::string& kid);

 private:
  struct Entry {
    jose::KeySet keys;
    int64_t fetched = 0;  // seconds
  };
  Result<jose::KeySet> Fetch(const std::string& url);

  Clock& clock_;
  Fetcher fetcher_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;
};

// Whether `uri` may be a jwks_uri: https, or http on a loopback host (development).
bool IsAcceptableJwksUri(std::string_view uri);

}  // namespace fhirstone::oauth
