#include "auth/oauth/tokens.h"

#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "auth/jose/jose.h"
#include "auth/oauth/crypto.h"
#include "auth/scopes/scopes.h"
#include "common/strings.h"

namespace fhirstone::oauth {
namespace {

constexpr size_t kMaxCachedTokens = 100000;

int64_t ClaimInt(const json::Value& claims, std::string_view name) {
  const json::Value* v = claims.Find(name);
  if (!v || !v->is_number()) return 0;
  return ParseInt64(v->as_string()).value_or(0);
}

std::string_view PatientOfUser(std::string_view fhir_user) {
  if (fhir_user.starts_with("Patient/")) return fhir_user.substr(8);
  return {};
}

}  // namespace

api::AccessContext AccessFromClaims(const json::Value& claims) {
  api::AccessContext access;
  access.client_id = claims.GetString("client_id");
  access.fhir_user = claims.GetString("fhirUser");
  std::string_view own_patient = PatientOfUser(access.fhir_user);
  access.patient = claims.GetString("patient");
  if (access.patient.empty()) access.patient = own_patient;
  auto parsed = scopes::Parse(claims.GetString("scope"));
  if (!parsed) return access;
  for (const auto& s : parsed->resources) {
    api::AccessRule rule;
    rule.type = s.type;
    rule.permissions = s.permissions;
    // A patient signed in sees their own compartment, whatever the scope's context says.
    rule.patient_context = s.context == scopes::Context::kPatient || !own_patient.empty();
    rule.query = s.query_params;
    rule.scope = s.text;
    if (rule.type == "*" && rule.permissions == 31 && !rule.patient_context && rule.query.empty() &&
        s.context == scopes::Context::kSystem)
      access.admin = true;
    access.rules.push_back(std::move(rule));
  }
  return access;
}

struct TokenService::Impl {
  AuthStore& store;
  Clock& clock;
  TokenOptions options;

  std::shared_mutex keys_mu;
  std::vector<jose::SigningKey> keys;  // the last one signs
  jose::KeySet public_keys;
  int64_t last_reload = 0;

  std::shared_mutex revoked_mu;
  std::unordered_set<std::string> revoked;
  // Revoked here and not yet seen in a reload (id -> expiry): a reload whose read began before
  // the revocation was written must not drop it.
  std::unordered_map<std::string, int64_t> unconfirmed;

  std::shared_mutex cache_mu;
  std::unordered_map<std::string, std::shared_ptr<const VerifiedToken>> cache;

  int64_t Now() { return clock.NowMicros() / 1000000; }

  Status LoadKeys() {
    auto stored = store.ListKeys();
    if (!stored) return std::move(stored).error();
    std::vector<jose::SigningKey> loaded;
    jose::KeySet set;
    const StoredKey* current = nullptr;
    for (const auto& k : *stored)
      if (k.retired == 0) current = &k;
    for (const auto& k : *stored) {
      if (&k == current) continue;
      auto key = jose::SigningKey::FromPrivateJwk(k.private_jwk);
      if (!key) return std::move(key).error();
      FHIRSTONE_RETURN_IF_ERROR(set.Add(key->PublicJwk()));
      loaded.push_back(std::move(key).value());
    }
    if (!current) return Error::NotFound("no current signing key");
    auto key = jose::SigningKey::FromPrivateJwk(current->private_jwk);
    if (!key) return std::move(key).error();
    FHIRSTONE_RETURN_IF_ERROR(set.Add(key->PublicJwk()));
    loaded.push_back(std::move(key).value());
    std::unique_lock lock(keys_mu);
    keys = std::move(loaded);
    public_keys = std::move(set);
    last_reload = Now();
    return Ok();
  }

  Status NewKey() {
    auto key = jose::SigningKey::GenerateRsa(RandomToken(12), 2048, jose::Alg::kRS256);
    if (!key) return std::move(key).error();
    int64_t now = Now();
    FHIRSTONE_RETURN_IF_ERROR(store.AddKey(StoredKey{key->kid(), key->PrivateJwk(), now, 0}));
    FHIRSTONE_RETURN_IF_ERROR(store.RetireKeys(key->kid(), now));
    // Retired keys verify until the longest-lived token they signed has expired.
    int64_t keep = std::max(options.access_token_seconds, options.id_token_seconds) + 300;
    FHIRSTONE_RETURN_IF_ERROR(store.DeleteKeysRetiredBefore(now - keep));
    return Ok();
  }

  Result<std::string> Sign(json::Value claims) {
    std::shared_lock lock(keys_mu);
    if (keys.empty()) return Error::Internal("no signing key");
    return jose::SignJwt(keys.back(), claims);
  }

  Status LoadRevoked() {
    int64_t now = Now();
    auto ids = store.ListRevoked(now);
    if (!ids) return std::move(ids).error();
    std::unordered_set<std::string> loaded(std::make_move_iterator(ids->begin()),
                                           std::make_move_iterator(ids->end()));
    std::unique_lock lock(revoked_mu);
    for (auto it = unconfirmed.begin(); it != unconfirmed.end();) {
      if (loaded.count(it->first) || it->second <= now) {  // in the database now, or expired
        it = unconfirmed.erase(it);
      } else {
        loaded.insert(it->first);
        ++it;
      }
    }
    revoked.swap(loaded);
    return Ok();
  }
};

TokenService::TokenService() : impl_(nullptr) {}
TokenService::~TokenService() = default;

Result<std::unique_ptr<TokenService>> TokenService::Create(AuthStore& store, Clock& clock,
                                                           TokenOptions options) {
  std::unique_ptr<TokenService> service(new TokenService());
  service->impl_.reset(new Impl{store, clock, std::move(options)});
  Impl& impl = *service->impl_;
  Status loaded = impl.LoadKeys();
  if (!loaded) {
    if (loaded.error().code() != ErrorCode::kNotFound) return std::move(loaded).error();
    FHIRSTONE_RETURN_IF_ERROR(impl.NewKey());
    FHIRSTONE_RETURN_IF_ERROR(impl.LoadKeys());
  }
  FHIRSTONE_RETURN_IF_ERROR(impl.LoadRevoked());
  return service;
}

const TokenOptions& TokenService::options() const { return impl_->options; }

Result<std::string> TokenService::IssueAccessToken(const Grant& grant, int64_t seconds,
                                                   std::string* jti_out) {
  int64_t now = impl_->Now();
  std::string jti = RandomToken(16);
  json::Value claims = json::Value::EmptyObject();
  claims.Set("iss", impl_->options.issuer);
  claims.Set("aud", impl_->options.audience);
  claims.Set("sub", grant.user_id.empty() ? grant.client_id : grant.user_id);
  claims.Set("client_id", grant.client_id);
  claims.Set("scope", grant.scope);
  if (!grant.patient.empty()) claims.Set("patient", grant.patient);
  if (!grant.encounter.empty()) claims.Set("encounter", grant.encounter);
  if (!grant.fhir_user.empty()) claims.Set("fhirUser", grant.fhir_user);
  claims.Set("iat", json::Value::Number(now));
  claims.Set("exp", json::Value::Number(now + seconds));
  claims.Set("jti", jti);
  claims.Set("gid", grant.grant_id);
  if (jti_out) *jti_out = jti;
  return impl_->Sign(std::move(claims));
}

Result<std::string> TokenService::IssueIdToken(const Grant& grant) {
  int64_t now = impl_->Now();
  json::Value claims = json::Value::EmptyObject();
  claims.Set("iss", impl_->options.issuer);
  claims.Set("sub", grant.user_id);
  claims.Set("aud", grant.client_id);
  claims.Set("iat", json::Value::Number(now));
  claims.Set("exp", json::Value::Number(now + impl_->options.id_token_seconds));
  if (grant.auth_time) claims.Set("auth_time", json::Value::Number(grant.auth_time));
  if (!grant.nonce.empty()) claims.Set("nonce", grant.nonce);
  if (!grant.fhir_user.empty())
    claims.Set("fhirUser", impl_->options.audience + "/" + grant.fhir_user);
  return impl_->Sign(std::move(claims));
}

Result<std::shared_ptr<const VerifiedToken>> TokenService::Verify(std::string_view token) {
  Impl& impl = *impl_;
  int64_t now = impl.Now();
  std::shared_ptr<const VerifiedToken> verified;
  {
    std::shared_lock lock(impl.cache_mu);
    auto it = impl.cache.find(std::string(token));
    if (it != impl.cache.end()) verified = it->second;
  }
  if (!verified) {
    auto jws = jose::ParseJws(token);
    if (!jws) return Error::Unauthorized("The access token is malformed");
    Status checked = [&] {
      std::shared_lock lock(impl.keys_mu);
      return impl.public_keys.Verify(*jws);
    }();
    if (!checked && now - impl.last_reload >= 5) {  // another node may have rotated the keys
      if (impl.LoadKeys()) {
        std::shared_lock lock(impl.keys_mu);
        checked = impl.public_keys.Verify(*jws);
      }
    }
    if (!checked) return Error::Unauthorized("The access token's signature does not verify");
    const json::Value& claims = jws->claims;
    if (claims.GetString("iss") != impl.options.issuer)
      return Error::Unauthorized("The access token was not issued here");
    if (claims.GetString("aud") != impl.options.audience)
      return Error::Unauthorized("The access token is not for this server (aud)");
    if (claims.GetString("jti").empty() || !claims.Find("exp"))
      return Error::Unauthorized("The access token is not an access token of this server");
    auto v = std::make_shared<VerifiedToken>();
    v->claims = claims;
    v->access = AccessFromClaims(claims);
    v->expires = ClaimInt(claims, "exp");
    v->jti = claims.GetString("jti");
    v->grant_id = claims.GetString("gid");
    v->client_id = claims.GetString("client_id");
    verified = v;
    std::unique_lock lock(impl.cache_mu);
    if (impl.cache.size() >= kMaxCachedTokens) impl.cache.clear();
    impl.cache.emplace(std::string(token), verified);
  }
  if (verified->expires <= now) return Error::Unauthorized("The access token has expired");
  if (IsRevoked(verified->jti) || (!verified->grant_id.empty() && IsRevoked(verified->grant_id)))
    return Error::Unauthorized("The access token has been revoked");
  return verified;
}

json::Value TokenService::Jwks() {
  std::shared_lock lock(impl_->keys_mu);
  return impl_->public_keys.ToJwks();
}

Status TokenService::RotateKeys() {
  FHIRSTONE_RETURN_IF_ERROR(impl_->NewKey());
  return impl_->LoadKeys();
}

Status TokenService::Revoke(std::string_view id, int64_t expires) {
  {
    std::unique_lock lock(impl_->revoked_mu);
    impl_->revoked.insert(std::string(id));
    impl_->unconfirmed[std::string(id)] = expires;
  }
  return impl_->store.Revoke(id, expires);
}

bool TokenService::IsRevoked(std::string_view id) {
  std::shared_lock lock(impl_->revoked_mu);
  return impl_->revoked.count(std::string(id)) > 0;
}

Status TokenService::Reload() {
  FHIRSTONE_RETURN_IF_ERROR(impl_->LoadKeys());
  return impl_->LoadRevoked();
}

}  // namespace fhirstone::oauth
