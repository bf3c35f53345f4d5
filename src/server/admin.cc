#include "server/admin.h"

#include <fstream>
#include <sstream>

#include "auth/jose/jose.h"
#include "auth/oauth/crypto.h"
#include "auth/oauth/registration.h"
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

}  // namespace

Result<ClientRegistration> AddClient(const std::string& db_url, ClientSpec spec) {
  oauth::Registration r;
  r.client_id = spec.client_id;
  r.name = spec.name;
  r.type = spec.type;
  r.redirect_uris = spec.redirect_uris;
  r.scopes = spec.scopes;
  r.launch_uri = spec.launch_uri;
  r.require_pkce = spec.require_pkce;
  r.jwks_uri = spec.jwks_uri;
  if (!spec.jwks_file.empty()) {
    std::ifstream in(spec.jwks_file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return Error::Invalid("Cannot read " + spec.jwks_file);
    auto jwks = json::Parse(text.str());
    if (!jwks) return Error::Invalid(spec.jwks_file + ": " + jwks.error().message());
    r.jwks = std::move(jwks).value();
  }
  auto a = OpenAuth(db_url);
  if (!a) return std::move(a).error();
  auto registered = oauth::RegisterClient(*a->store, r);
  if (!registered) return std::move(registered).error();
  return ClientRegistration{registered->client_id, registered->client_secret};
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
