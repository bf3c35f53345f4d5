// AuthorizationServer: the SMART App Launch 2.2 authorization server
// (https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html) on OAuth 2.0 (RFC 6749) with
// PKCE (RFC 7636), OpenID Connect, introspection (RFC 7662) and revocation (RFC 7009):
//   GET  /fhir/.well-known/smart-configuration, /fhir/.well-known/openid-configuration
//   GET  /auth/jwks
//   GET|POST /auth/authorize -> login -> patient picker -> consent -> redirect with a code
//   POST /auth/token, /auth/introspect, /auth/revoke
//   GET  /auth/apps (the user's authorized apps), POST /auth/apps/withdraw, /auth/logout
//   GET  /auth/access (a patient's record accesses, from the audit log)
//   GET  /auth/login (sign in without an app, e.g. to review apps), POST /auth/launch (EHR side)
//   GET  /static/* (the pages' stylesheet)
// It also checks bearer tokens for the FHIR API (Authenticate). Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/access.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/result.h"
#include "http/message.h"

namespace fhirstone::oauth {

class AuthStore;
class TokenService;

// What the server needs from the FHIR side, supplied by the composition root.
struct FhirHooks {
  struct PatientSummary {
    std::string id, name, birth_date, gender;
  };
  // Patients whose name matches `text` (all when empty), at most `limit`.
  std::function<Result<std::vector<PatientSummary>>(std::string_view text, int limit)>
      search_patients;
  struct EncounterSummary {
    std::string id, label, start, status;
  };
  // The encounters of Patient/`patient`, most recent first, at most `limit`.
  std::function<Result<std::vector<EncounterSummary>>(std::string_view patient, int limit)>
      search_encounters;
  // A patient's display name; NotFound when it does not exist.
  std::function<Result<std::string>(std::string_view id)> patient_name;
  // Writes a FHIR Consent resource (create when id is empty, else update); returns its id.
  std::function<Result<std::string>(const json::Value& consent)> write_consent;
  // A security event for the audit log. Never carries a password, token or secret.
  struct SecurityEvent {
    // login, login-failure, logout, token, refresh, token-refused, revoke, consent-given,
    // consent-withdrawn
    std::string kind;
    bool failure = false;
    std::string user;       // the user's FHIR reference (fhirUser), when known
    std::string user_name;  // the name typed at a failed login
    std::string patient;    // the patient in context (id), when there is one
    std::string client_id;
    std::string address;  // the caller's address
    std::string request_id;
    std::string detail;  // what happened, e.g. the OAuth error
  };
  std::function<void(const SecurityEvent&)> record_security_event;
  struct AccessEntry {
    std::string when;  // FHIR instant
    std::string who;   // the user's reference, or the application's id
    std::string app;   // the client id, when an application asked
    std::string what;  // the interaction and the resource or type
    bool refused = false;
  };
  // The newest audit records about Patient/`patient`, at most `limit`.
  std::function<Result<std::vector<AccessEntry>>(std::string_view patient, int limit)>
      patient_access_log;
};

struct AuthOptions {
  std::string base_url;               // public origin, e.g. http://localhost:8080
  bool require_pkce_for_all = false;  // PKCE for confidential clients too
  int64_t code_seconds = 60;
  int64_t access_token_seconds = 3600;
  int64_t backend_token_seconds = 300;
  int64_t refresh_token_seconds = 90 * 24 * 3600;  // offline_access
  int64_t online_refresh_seconds = 24 * 3600;      // online_access
  int64_t session_seconds = 8 * 3600;
  int64_t launch_seconds = 300;
};

class AuthorizationServer {
 public:
  static Result<std::unique_ptr<AuthorizationServer>> Create(AuthStore& store, TokenService& tokens,
                                                             Clock& clock, FhirHooks hooks,
                                                             AuthOptions options);
  ~AuthorizationServer();
  AuthorizationServer(const AuthorizationServer&) = delete;
  AuthorizationServer& operator=(const AuthorizationServer&) = delete;

  // Whether `path` is one of this server's endpoints.
  bool Handles(std::string_view path) const;
  http::Response Handle(http::Request& request);

  // The access a FHIR request's bearer token grants. Error::Unauthorized (401, with the
  // WWW-Authenticate challenge of ChallengeFor) when it is missing or invalid.
  Result<std::shared_ptr<const api::AccessContext>> Authenticate(const http::Request& request);
  // The WWW-Authenticate value for a refused FHIR request.
  std::string ChallengeFor(const Error& error) const;

  // The security section of the CapabilityStatement (rest.security).
  json::Value CapabilitySecurity() const;

  // A single-use EHR launch value bound to `context` (patient, encounter, user, intent,
  // fhirContext, need_patient_banner, smart_style_url).
  Result<std::string> CreateLaunch(const json::Value& context);

 private:
  AuthorizationServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhirstone::oauth
