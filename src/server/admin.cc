#include "server/admin.h"

#include <fstream>
#include <sstream>

#include "auth/jose/jose.h"
#include "auth/oauth/crypto.h"
#include "auth/oauth/tokens.h"
#include "auth/scopes/scopes.h"
#include "common/clock.h"
#include "common/json.h"
#include "db/database.h"
#include "fhir/model.h"

namespace fhirstone::server {
namespace {

struct AuthDb {
  std::unique_ptr<db::Database> db;
  std::unique_ptr<oauth::AuthStore> store;
};

Result<AuthDb> OpenAuth(const std::string& db_url) {
  AuthDb a;
  auto db = db::Database::Open(db_url);
  if (!db) return std::move(db).error();
  a.db = std::move(db).value();
  auto store = oauth::AuthStore::Open(*a.db);
  if (!store) return std::move(store).error();
  a.store = std::move(store).value();
  return a;
}

Status CheckRedirectUri(const std::string& uri) {
  if (!(uri.starts_with("https://") || uri.starts_with("http://")))
    return Error::Invalid("A redirect URI must be an absolute http(s) URL: '" + uri + "'");
  if (uri.find('#') != std::string::npos)
    return Error::Invalid("A redirect URI must not have a fragment: '" + uri + "'");
  return Ok();
}

}  // namespace

Result<ClientRegistration> AddClient(const std::string& db_url, ClientSpec spec) {
  auto type = oauth::ParseClientType(spec.type);
  if (!type)
    return Error::Invalid(
        "--type must be public, confidential-symmetric or "
        "confidential-asymmetric, not '" +
        spec.type + "'");
  if (spec.name.empty()) return Error::Invalid("A client needs a --name");
  for (const auto& uri : spec.redirect_uris) FHIRSTONE_RETURN_IF_ERROR(CheckRedirectUri(uri));
  auto scopes = scopes::Parse(spec.scopes);
  if (!scopes) return std::move(scopes).error();
  if (scopes->tokens.empty()) return Error::Invalid("A client needs --scopes");
  oauth::Client c;
  c.client_id = spec.client_id.empty() ? oauth::RandomToken(16) : spec.client_id;
  c.name = spec.name;
  c.type = *type;
  c.redirect_uris = spec.redirect_uris;
  c.allowed_scopes = scopes->ToString();
  c.launch_uri = spec.launch_uri;
  c.require_pkce = spec.require_pkce;
  ClientRegistration out{c.client_id, ""};
  if (*type == oauth::ClientType::kConfidentialSymmetric) {
    out.client_secret = oauth::RandomToken(32);
    c.secret_hash = oauth::HashSecret(out.client_secret);
  }
  if (*type == oauth::ClientType::kConfidentialAsymmetric) {
    if (spec.jwks_file.empty())
      return Error::Invalid("A confidential-asymmetric client needs --jwks FILE");
    std::ifstream in(spec.jwks_file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return Error::Invalid("Cannot read " + spec.jwks_file);
    auto jwks = json::Parse(text.str());
    if (!jwks) return Error::Invalid(spec.jwks_file + ": " + jwks.error().message());
    auto keys = jose::KeySet::FromJwks(*jwks);
    if (!keys) return Error::Invalid(spec.jwks_file + ": " + keys.error().message());
    c.jwks = json::Write(keys->ToJwks());
  } else if (!spec.jwks_file.empty()) {
    return Error::Invalid("--jwks is for confidential-asymmetric clients");
  }
  if (*type != oauth::ClientType::kConfidentialAsymmetric && c.redirect_uris.empty())
    return Error::Invalid("A client that launches apps needs at least one --redirect-uri");
  auto a = OpenAuth(db_url);
  if (!a) return std::move(a).error();
  auto existing = a->store->FindClient(c.client_id);
  if (!existing) return std::move(existing).error();
  if (*existing) return Error::Conflict("A client with id '" + c.client_id + "' exists");
  FHIRSTONE_RETURN_IF_ERROR(a->store->AddClient(c));
  return out;
}

Result<std::vector<oauth::Client>> ListClients(const std::string& db_url) {
  auto a = OpenAuth(db_url);
  if (!a) return std::move(a).error();
  return a->store->ListClients();
}

Result<std::string> AddUser(const std::string& db_url, const std::string& username,
                            const std::string& password, const std::string& fhir_user,
                            const std::string& display) {
  if (username.empty()) return Error::Invalid("A user needs a --username");
  if (password.size() < 8) return Error::Invalid("The password needs at least 8 characters");
  size_t slash = fhir_user.find('/');
  std::string type = fhir_user.substr(0, slash);
  if (slash == std::string::npos ||
      (type != "Patient" && type != "Practitioner" && type != "RelatedPerson" &&
       type != "Person") ||
      !fhir::IsValidId(fhir_user.substr(slash + 1)))
    return Error::Invalid(
        "--fhir-user must be Patient/ID, Practitioner/ID, RelatedPerson/ID or Person/ID");
  auto a = OpenAuth(db_url);
  if (!a) return std::move(a).error();
  auto existing = a->store->FindUserByName(username);
  if (!existing) return std::move(existing).error();
  if (*existing) return Error::Conflict("A user named '" + username + "' exists");
  oauth::User u{oauth::RandomToken(12), username, oauth::HashPassword(password), fhir_user,
                display};
  FHIRSTONE_RETURN_IF_ERROR(a->store->AddUser(u));
  return u.user_id;
}

Status RotateKeys(const std::string& db_url, const std::string& base_url) {
  auto a = OpenAuth(db_url);
  if (!a) return std::move(a).error();
  SystemClock clock;
  oauth::TokenOptions options;
  options.issuer = options.audience = base_url + "/fhir";
  auto tokens = oauth::TokenService::Create(*a->store, clock, options);
  if (!tokens) return std::move(tokens).error();
  return (*tokens)->RotateKeys();
}

Result<std::string> CreateLaunch(const std::string& db_url, const std::string& username,
                                 const std::string& patient, const std::string& encounter,
                                 int64_t lifetime_seconds) {
  auto a = OpenAuth(db_url);
  if (!a) return std::move(a).error();
  auto user = a->store->FindUserByName(username);
  if (!user) return std::move(user).error();
  if (!*user) return Error::NotFound("No user named '" + username + "'");
  json::Value context = json::Value::EmptyObject();
  context.Set("user", (*user)->user_id);
  if (!patient.empty()) context.Set("patient", patient);
  if (!encounter.empty()) context.Set("encounter", encounter);
  context.Set("need_patient_banner", true);
  std::string launch = oauth::RandomToken(24);
  SystemClock clock;
  FHIRSTONE_RETURN_IF_ERROR(a->store->PutLaunch(oauth::HashSecret(launch), context,
                                                clock.NowMicros() / 1000000 + lifetime_seconds));
  return launch;
}

}  // namespace fhirstone::server
