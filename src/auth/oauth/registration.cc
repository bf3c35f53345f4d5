#include "auth/oauth/registration.h"

#include "auth/jose/jose.h"
#include "auth/oauth/client_keys.h"
#include "auth/oauth/crypto.h"
#include "auth/scopes/scopes.h"
#include "fhir/model.h"

namespace fhirstone::oauth {
namespace {

Status CheckRedirectUri(const std::string& uri) {
  if (!(uri.starts_with("https://") || uri.starts_with("http://")) || uri.size() > 2000)
    return Error::Invalid("A redirect URI must be an absolute http(s) URL: '" + uri + "'");
  if (uri.find('#') != std::string::npos)
    return Error::Invalid("A redirect URI must not have a fragment: '" + uri + "'");
  for (unsigned char c : uri)
    if (c <= 0x20 || c >= 0x7f) return Error::Invalid("A redirect URI must be plain ASCII");
  return Ok();
}

}  // namespace

Result<Registered> RegisterClient(AuthStore& store, const Registration& r) {
  auto type = ParseClientType(r.type);
  if (!type)
    return Error::Invalid(
        "The client type must be public, confidential-symmetric or "
        "confidential-asymmetric, not '" +
        r.type + "'");
  if (r.name.empty()) return Error::Invalid("A client needs a name");
  if (!r.client_id.empty() && !fhir::IsValidId(r.client_id))
    return Error::Invalid("A client_id has 1 to 64 characters among A-Z a-z 0-9 - .");
  for (const auto& uri : r.redirect_uris) FHIRSTONE_RETURN_IF_ERROR(CheckRedirectUri(uri));
  auto scopes = scopes::Parse(r.scopes);
  if (!scopes) return std::move(scopes).error();
  if (scopes->tokens.empty()) return Error::Invalid("A client needs the scopes it may be granted");
  Client c;
  c.client_id = r.client_id.empty() ? RandomToken(16) : r.client_id;
  c.name = r.name;
  c.type = *type;
  c.redirect_uris = r.redirect_uris;
  c.allowed_scopes = scopes->ToString();
  c.launch_uri = r.launch_uri;
  c.require_pkce = r.require_pkce;
  Registered out{c.client_id, ""};
  if (*type == ClientType::kConfidentialSymmetric) {
    out.client_secret = RandomToken(32);
    c.secret_hash = HashSecret(out.client_secret);
  }
  if (*type == ClientType::kConfidentialAsymmetric) {
    if (r.jwks.is_null() == r.jwks_uri.empty())
      return Error::Invalid("A confidential-asymmetric client needs a JWKS or a jwks_uri (one)");
    if (!r.jwks.is_null()) {
      auto keys = jose::KeySet::FromJwks(r.jwks);
      if (!keys) return Error::Invalid("The JWKS is not usable: " + keys.error().message());
      c.jwks = json::Write(keys->ToJwks());
    } else {
      if (!IsAcceptableJwksUri(r.jwks_uri))
        return Error::Invalid("A jwks_uri must be an https URL (http only on loopback)");
      c.jwks_uri = r.jwks_uri;
    }
  } else if (!r.jwks.is_null() || !r.jwks_uri.empty()) {
    return Error::Invalid("Keys are for confidential-asymmetric clients");
  }
  if (*type != ClientType::kConfidentialAsymmetric && c.redirect_uris.empty())
    return Error::Invalid("A client that launches apps needs at least one redirect URI");
  auto existing = store.FindClient(c.client_id);
  if (!existing) return std::move(existing).error();
  if (*existing) return Error::Conflict("A client with id '" + c.client_id + "' exists");
  FHIRSTONE_RETURN_IF_ERROR(store.AddClient(c));
  return out;
}

json::Value ClientJson(const Client& c) {
  json::Value v = json::Value::EmptyObject();
  v.Set("client_id", c.client_id);
  v.Set("client_name", c.name);
  v.Set("client_type", ClientTypeName(c.type));
  json::Value uris = json::Value::EmptyArray();
  for (const auto& u : c.redirect_uris) uris.PushBack(u);
  v.Set("redirect_uris", std::move(uris));
  v.Set("scope", c.allowed_scopes);
  if (!c.launch_uri.empty()) v.Set("launch_uri", c.launch_uri);
  v.Set("require_pkce", c.require_pkce || c.type == ClientType::kPublic);
  if (!c.jwks_uri.empty()) v.Set("jwks_uri", c.jwks_uri);
  if (!c.jwks.empty()) {
    auto jwks = json::Parse(c.jwks);
    if (jwks) v.Set("jwks", std::move(jwks).value());
  }
  return v;
}

}  // namespace fhirstone::oauth
