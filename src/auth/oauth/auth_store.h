// AuthStore: the authorization server's state in the database, so that every node of a cluster
// shares it: clients, users, signing keys, browser sessions, pending authorization requests,
// authorization codes, refresh tokens, revocations, consents, EHR launch contexts and the client
// assertion jtis already seen. Secrets (codes, tokens, session ids, client secrets) are stored
// only as hashes (crypto.h). Thread-safe (each call leases its own connection).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::db {
class Database;
}

namespace fhirstone::oauth {

enum class ClientType { kPublic, kConfidentialSymmetric, kConfidentialAsymmetric };
std::string_view ClientTypeName(ClientType type);  // "public", "confidential-symmetric", ...
std::optional<ClientType> ParseClientType(std::string_view name);

struct Client {
  std::string client_id;
  std::string name;
  ClientType type = ClientType::kPublic;
  std::string secret_hash;  // HashSecret(secret), confidential-symmetric only
  std::vector<std::string> redirect_uris;
  std::string allowed_scopes;  // space-separated; what the client may ever be granted
  std::string jwks;            // JSON JWKS registered inline (confidential-asymmetric)
  std::string jwks_uri;        // or fetched from here
  std::string launch_uri;      // for the launcher
  bool require_pkce = false;   // public clients always need PKCE
};

struct User {
  std::string user_id;
  std::string username;
  std::string password_hash;  // Argon2id
  std::string fhir_user;      // Patient/1, Practitioner/2, RelatedPerson/3 or Person/4
  std::string display;
};

// What one authorization gave a client: carried by codes and refresh tokens, and copied into the
// access tokens issued from it. grant_id names the whole chain (code, refresh tokens, access
// tokens) so that revoking it revokes them all.
struct Grant {
  std::string grant_id;
  std::string client_id;
  std::string user_id;
  std::string fhir_user;
  std::string scope;  // granted, space-separated
  std::string patient;
  std::string encounter;
  json::Value fhir_context;  // array, or null
  bool need_patient_banner = false;
  std::string smart_style_url;
  std::string intent;
  std::string redirect_uri;
  std::string code_challenge;
  std::string nonce;
  int64_t auth_time = 0;  // seconds
  // Sandbox simulation (from a launcher's launch value): access tokens of this grant live this
  // many seconds instead of the default; 0: the default.
  int64_t access_seconds = 0;

  json::Value ToJson() const;
  static Grant FromJson(const json::Value& value);
};

struct Session {
  std::string user_id;  // "" until signed in
  std::string csrf;
  int64_t expires = 0;  // seconds
};

struct Consent {
  std::string user_id;
  std::string client_id;
  std::string scope;
  int64_t granted_at = 0;  // seconds
  std::string consent_resource_id;
};

struct StoredKey {
  std::string kid;
  std::string private_jwk;
  int64_t created = 0;
  int64_t retired = 0;  // 0 while it signs
};

// Result of consuming a single-use value (a code, a refresh token, a launch).
struct Consumed {
  std::string payload;  // the JSON it carried
  std::string grant_id;
  int64_t expires = 0;
  bool first_use = false;  // false: it had been used before (replay)
};

class AuthStore {
 public:
  // Applies the schema migrations; `db` outlives the store.
  static Result<std::unique_ptr<AuthStore>> Open(db::Database& db);

  Status AddClient(const Client& client);
  Result<std::optional<Client>> FindClient(std::string_view client_id);
  Result<std::vector<Client>> ListClients();
  Status DeleteClient(std::string_view client_id);

  Status AddUser(const User& user);
  Result<std::optional<User>> FindUserByName(std::string_view username);
  Result<std::optional<User>> FindUser(std::string_view user_id);
  Result<std::vector<User>> ListUsers();

  Result<std::vector<StoredKey>> ListKeys();
  Status AddKey(const StoredKey& key);
  Status RetireKeys(std::string_view except_kid, int64_t now);
  Status DeleteKeysRetiredBefore(int64_t before);

  Status PutSession(std::string_view id_hash, const Session& session);
  Result<std::optional<Session>> FindSession(std::string_view id_hash, int64_t now);
  Status DeleteSession(std::string_view id_hash);

  // Pending authorization requests (between /authorize and the code), bound to a session.
  Status PutRequest(std::string_view id, std::string_view session_hash, const json::Value& state,
                    int64_t expires);
  Result<std::optional<json::Value>> FindRequest(std::string_view id, std::string_view session_hash,
                                                 int64_t now);
  Status DeleteRequest(std::string_view id);

  // Authorization codes and EHR launch values: single use.
  Status PutCode(std::string_view hash, const Grant& grant, int64_t expires);
  Result<std::optional<Consumed>> ConsumeCode(std::string_view hash);
  Status PutLaunch(std::string_view hash, const json::Value& context, int64_t expires);
  Result<std::optional<Consumed>> ConsumeLaunch(std::string_view hash);

  // Refresh tokens: rotated on use; a used one presented again is a replay.
  Status PutRefresh(std::string_view hash, const Grant& grant, int64_t expires);
  Result<std::optional<Consumed>> ConsumeRefresh(std::string_view hash);
  // The grant a refresh token belongs to, without using it (introspection, revocation).
  Result<std::optional<Consumed>> FindRefresh(std::string_view hash);

  // Revocation of whole grants (code, refresh and access tokens issued from them) and of single
  // access tokens (by jti). Entries are kept until `expires`.
  Status Revoke(std::string_view id, int64_t expires);
  Result<std::vector<std::string>> ListRevoked(int64_t now);
  // Revokes every grant of `client_id` for `user_id` (withdrawn consent); returns their ids.
  Result<std::vector<std::string>> RevokeClientGrants(std::string_view client_id,
                                                      std::string_view user_id, int64_t expires);

  Status PutConsent(const Consent& consent);
  Result<std::optional<Consent>> FindConsent(std::string_view user_id, std::string_view client_id);
  Result<std::vector<Consent>> ListConsents(std::string_view user_id);
  Status DeleteConsent(std::string_view user_id, std::string_view client_id);

  // Remembers a client assertion's jti until `expires`: false when it was seen before (replay).
  Result<bool> RememberJti(std::string_view client_id, std::string_view jti, int64_t expires);

  // Deletes what has expired.
  Status Purge(int64_t now);

 private:
  explicit AuthStore(db::Database& db) : db_(db) {}
  db::Database& db_;
};

}  // namespace fhirstone::oauth
