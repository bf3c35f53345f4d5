// The SMART App Launch 2.2 authorization server:
// https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html (authorize, token, refresh),
// https://hl7.org/fhir/smart-app-launch/STU2.2/conformance.html (smart-configuration),
// https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-symmetric.html and
// client-confidential-asymmetric.html (client authentication), backend-services.html
// (client_credentials), token-introspection.html (RFC 7662), RFC 7009 (revocation),
// RFC 7636 (PKCE S256 only) and OpenID Connect Core (id_token).
#include "auth/oauth/authorization_server.h"

#include <spdlog/spdlog.h>

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>
#include <mutex>
#include <unordered_map>

#include "auth/jose/jose.h"
#include "auth/oauth/auth_store.h"
#include "auth/oauth/client_keys.h"
#include "auth/oauth/crypto.h"
#include "auth/oauth/registration.h"
#include "auth/oauth/tokens.h"
#include "auth/scopes/scopes.h"
#include "common/strings.h"
#include "common/time.h"
#include "web/web.h"

namespace fhirstone::oauth {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kSessionCookie[] = "fhirstone_session";
constexpr char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr int kMaxLoginFailures = 5;

Params ParseForm(std::string_view text) {
  Params out;
  std::string target = "/?" + std::string(text);
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return out;
  for (auto p : parsed->params()) out.emplace_back(p.key, p.has_value ? p.value : std::string());
  return out;
}

std::string Encode(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

std::optional<std::string> Get(const Params& params, std::string_view name) {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return std::nullopt;
}

std::string GetOr(const Params& params, std::string_view name) {
  return Get(params, name).value_or("");
}

std::vector<std::string> GetAll(const Params& params, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : params)
    if (k == name) out.push_back(v);
  return out;
}

// RFC 6749 §3.1: request parameters must not be repeated.
std::optional<std::string> Repeated(const Params& params, std::vector<std::string_view> names) {
  for (auto name : names) {
    int n = 0;
    for (const auto& [k, v] : params) n += k == name;
    if (n > 1) return std::string(name);
  }
  return std::nullopt;
}

std::string WithParams(std::string uri, const Params& params) {
  std::string fragment;
  if (size_t hash = uri.find('#'); hash != std::string::npos) {
    fragment = uri.substr(hash);
    uri.resize(hash);
  }
  char sep = uri.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [k, v] : params) {
    uri += sep;
    uri += Encode(k);
    uri += '=';
    uri += Encode(v);
    sep = '&';
  }
  return uri;
}

std::string_view CookieValue(const http::Request& request, std::string_view name) {
  std::string_view header = request.Header("Cookie");
  for (auto part : Split(header, ';')) {
    part = Trim(part);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return part.substr(eq + 1);
  }
  return {};
}

http::Response Redirect(std::string location) {
  http::Response r;
  r.status = 302;
  r.SetHeader("Location", std::move(location));
  r.SetHeader("Cache-Control", "no-store");
  return r;
}

// The one place OAuth errors are rendered as RFC 6749 §5.2 JSON.
http::Response OAuthError(int status, std::string_view error, std::string_view description) {
  json::Value body = json::Value::EmptyObject();
  body.Set("error", error);
  if (!description.empty()) body.Set("error_description", description);
  http::Response r;
  r.status = status;
  r.body = json::Write(body);
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-store");
  r.SetHeader("Pragma", "no-cache");
  return r;
}

// ... and as a redirect to the client (RFC 6749 §4.1.2.1).
http::Response RedirectError(const std::string& redirect_uri, std::string_view error,
                             std::string_view description, const std::string& state) {
  Params params{{"error", std::string(error)}};
  if (!description.empty()) params.emplace_back("error_description", std::string(description));
  if (!state.empty()) params.emplace_back("state", state);
  return Redirect(WithParams(redirect_uri, params));
}

http::Response JsonOk(const json::Value& body, int status = 200) {
  http::Response r;
  r.status = status;
  r.body = json::Write(body);
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-store");
  r.SetHeader("Pragma", "no-cache");
  return r;
}

void SecurityHeaders(http::Response& r) {
  r.SetHeader("Content-Security-Policy",
              "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "frame-ancestors 'self'; base-uri 'none'");
  r.SetHeader("X-Frame-Options", "SAMEORIGIN");
  r.SetHeader("X-Content-Type-Options", "nosniff");
  r.SetHeader("Referrer-Policy", "no-referrer");
  r.SetHeader("Cache-Control", "no-store");
}

http::Response Page(int status, std::string_view name, const json::Value& data) {
  http::Response r;
  r.status = status;
  auto html = web::RenderPage(name, data);
  if (html) {
    r.body = std::move(html).value();
  } else {
    r.status = 500;
    r.body = "<!doctype html><title>Error</title><p>The page could not be rendered.</p>";
  }
  r.SetHeader("Content-Type", "text/html; charset=utf-8");
  SecurityHeaders(r);
  return r;
}

http::Response ErrorPage(int status, std::string heading, std::string message) {
  json::Value data = json::Value::EmptyObject();
  data.Set("heading", std::move(heading));
  data.Set("message", std::move(message));
  return Page(status, "error", data);
}

std::string FormatDay(int64_t seconds) { return FormatInstant(seconds * 1000000).substr(0, 10); }

int AgeOn(std::string_view birth_date, int64_t now_seconds) {
  std::string today = FormatDay(now_seconds);
  auto y = ParseInt64(birth_date.substr(0, 4));
  auto ty = ParseInt64(std::string_view(today).substr(0, 4));
  if (!y || !ty || birth_date.size() < 10) return -1;
  int age = static_cast<int>(*ty - *y);
  if (std::string_view(today).substr(5) < birth_date.substr(5, 5)) --age;
  return age;
}

// Client authentication as the token, introspection and revocation endpoints see it.
struct ClientAuth {
  Client client;
  std::string method;  // none, client_secret_basic, client_secret_post, private_key_jwt
};

}  // namespace

struct AuthorizationServer::Impl {
  AuthStore& store;
  TokenService& tokens;
  Clock& clock;
  FhirHooks hooks;
  AuthOptions options;
  std::string fhir_base;
  bool secure_cookies = false;
  ClientKeys client_keys{clock};

  std::mutex login_mu;
  struct Failures {
    int count = 0;
    int64_t first = 0;
    int64_t locked_until = 0;
  };
  std::unordered_map<std::string, Failures> login_failures;

  int64_t Now() { return clock.NowMicros() / 1000000; }
  std::string Url(std::string_view path) const { return options.base_url + std::string(path); }

  // Records a security event in the audit log (when the composition root asked for it).
  void Audit(const http::Request& request, FhirHooks::SecurityEvent event) {
    if (!hooks.record_security_event) return;
    event.address = request.remote_address;
    event.request_id = request.request_id;
    hooks.record_security_event(event);
  }
  // The FHIR reference of user `user_id`, "" when unknown.
  std::string FhirUserOf(std::string_view user_id) {
    auto user = store.FindUser(user_id);
    return user && *user ? (*user)->fhir_user : "";
  }
  static std::string PatientOf(std::string_view fhir_user) {
    return fhir_user.starts_with("Patient/") ? std::string(fhir_user.substr(8)) : "";
  }
  std::string TokenEndpoint() const { return Url("/auth/token"); }

  // ---- discovery ----

  json::Value SmartConfiguration() const {
    json::Value c = json::Value::EmptyObject();
    c.Set("issuer", fhir_base);
    c.Set("jwks_uri", Url("/auth/jwks"));
    c.Set("authorization_endpoint", Url("/auth/authorize"));
    c.Set("token_endpoint", TokenEndpoint());
    c.Set("introspection_endpoint", Url("/auth/introspect"));
    c.Set("revocation_endpoint", Url("/auth/revoke"));
    c.Set("management_endpoint", Url("/auth/apps"));
    auto list = [](std::initializer_list<const char*> items) {
      json::Value a = json::Value::EmptyArray();
      for (const char* i : items) a.PushBack(i);
      return a;
    };
    c.Set("grant_types_supported",
          list({"authorization_code", "client_credentials", "refresh_token"}));
    c.Set("response_types_supported", list({"code"}));
    c.Set("code_challenge_methods_supported", list({"S256"}));
    c.Set("token_endpoint_auth_methods_supported",
          list({"client_secret_basic", "client_secret_post", "private_key_jwt"}));
    c.Set("token_endpoint_auth_signing_alg_values_supported", list({"RS384", "ES384"}));
    c.Set("scopes_supported", list({"openid",
                                    "fhirUser",
                                    "profile",
                                    "launch",
                                    "launch/patient",
                                    "offline_access",
                                    "online_access",
                                    "patient/*.rs",
                                    "patient/*.cruds",
                                    "patient/*.read",
                                    "patient/*.write",
                                    "patient/*.*",
                                    "patient/Observation.rs",
                                    "user/*.rs",
                                    "user/*.cruds",
                                    "user/*.read",
                                    "user/*.write",
                                    "user/*.*",
                                    "system/*.rs",
                                    "system/*.cruds",
                                    "system/*.read",
                                    "system/*.*"}));
    c.Set("capabilities",
          list({"launch-ehr", "launch-standalone", "authorize-post", "client-public",
                "client-confidential-symmetric", "client-confidential-asymmetric",
                "sso-openid-connect", "context-banner", "context-style", "context-ehr-patient",
                "context-ehr-encounter", "context-standalone-patient",
                "context-standalone-encounter", "permission-offline", "permission-online",
                "permission-patient", "permission-user", "permission-v1", "permission-v2"}));
    return c;
  }

  json::Value OpenIdConfiguration() const {
    json::Value c = json::Value::EmptyObject();
    c.Set("issuer", fhir_base);
    c.Set("jwks_uri", Url("/auth/jwks"));
    c.Set("authorization_endpoint", Url("/auth/authorize"));
    c.Set("token_endpoint", TokenEndpoint());
    json::Value a = json::Value::EmptyArray();
    a.PushBack("code");
    c.Set("response_types_supported", a);
    json::Value subject = json::Value::EmptyArray();
    subject.PushBack("public");
    c.Set("subject_types_supported", subject);
    json::Value algs = json::Value::EmptyArray();
    algs.PushBack("RS256");
    c.Set("id_token_signing_alg_values_supported", algs);
    json::Value scopes = json::Value::EmptyArray();
    for (const char* s : {"openid", "fhirUser", "profile"}) scopes.PushBack(s);
    c.Set("scopes_supported", scopes);
    json::Value claims = json::Value::EmptyArray();
    for (const char* s : {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"})
      claims.PushBack(s);
    c.Set("claims_supported", claims);
    json::Value auth = json::Value::EmptyArray();
    for (const char* s : {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"})
      auth.PushBack(s);
    c.Set("token_endpoint_auth_methods_supported", auth);
    return c;
  }

  // ---- sessions ----

  struct BrowserSession {
    std::string id_hash;
    Session session;
  };

  std::optional<BrowserSession> LoadSession(const http::Request& request) {
    std::string_view id = CookieValue(request, kSessionCookie);
    if (id.empty() || id.size() > 100) return std::nullopt;
    std::string hash = HashSecret(id);
    auto found = store.FindSession(hash, Now());
    if (!found || !*found) return std::nullopt;
    return BrowserSession{hash, **found};
  }

  // A new session (e.g. after signing in: a fresh id defeats session fixation).
  Result<BrowserSession> NewSession(http::Response& response, std::string user_id) {
    std::string id = RandomToken(32);
    BrowserSession s{HashSecret(id),
                     Session{std::move(user_id), RandomToken(24), Now() + options.session_seconds}};
    FHIRSTONE_RETURN_IF_ERROR(store.PutSession(s.id_hash, s.session));
    std::string cookie =
        std::string(kSessionCookie) + "=" + id +
        "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(options.session_seconds);
    if (secure_cookies) cookie += "; Secure";
    response.headers.emplace_back("Set-Cookie", std::move(cookie));
    return s;
  }

  bool CsrfOk(const BrowserSession& s, const Params& form) {
    return ConstantTimeEquals(GetOr(form, "csrf"), s.session.csrf);
  }

  // ---- the authorize flow ----

  http::Response Authorize(http::Request& request) {
    Params params = request.method == "POST" ? ParseForm(request.body) : ParseForm(request.Query());
    if (request.method == "POST" && !AsciiLower(request.Header("Content-Type"))
                                         .starts_with("application/x-www-form-urlencoded"))
      return ErrorPage(400, "Invalid authorization request",
                       "An authorization request sent with POST must be a form "
                       "(application/x-www-form-urlencoded).");
    std::string client_id = GetOr(params, "client_id");
    auto client = client_id.empty() ? Result<std::optional<Client>>(std::optional<Client>())
                                    : store.FindClient(client_id);
    if (!client) return ErrorPage(500, "Server error", "The client could not be looked up.");
    if (!*client)
      return ErrorPage(400, "Unknown application",
                       client_id.empty() ? "The request names no client_id."
                                         : "No application is registered with this client_id.");
    const Client& c = **client;
    std::string redirect_uri = GetOr(params, "redirect_uri");
    if (redirect_uri.empty() && c.redirect_uris.size() == 1) redirect_uri = c.redirect_uris[0];
    bool registered = false;
    for (const auto& uri : c.redirect_uris) registered |= uri == redirect_uri;  // exact match
    if (!registered)
      return ErrorPage(400, "Invalid redirect URI",
                       "The redirect_uri is not registered for " + c.name +
                           ": this request is refused and not redirected.");
    if (auto r = Repeated(params, {"client_id", "redirect_uri"}))
      return ErrorPage(400, "Invalid authorization request",
                       "The parameter " + *r + " is repeated.");
    std::string state = GetOr(params, "state");
    auto fail = [&](std::string_view error, std::string_view description) {
      return RedirectError(redirect_uri, error, description, state);
    };
    if (auto r = Repeated(params, {"response_type", "scope", "state", "aud", "launch",
                                   "code_challenge", "code_challenge_method", "nonce"}))
      return fail("invalid_request", "The parameter " + *r + " is repeated");
    std::string response_type = GetOr(params, "response_type");
    if (response_type != "code")
      return fail(response_type.empty() ? "invalid_request" : "unsupported_response_type",
                  "response_type must be code");
    if (state.empty()) return fail("invalid_request", "state is required");
    std::string aud = GetOr(params, "aud");
    if (aud != fhir_base)
      return fail("invalid_request", "aud must be this server's FHIR base URL, " + fhir_base);
    auto requested = scopes::Parse(GetOr(params, "scope"));
    if (!requested) return fail("invalid_scope", requested.error().message());
    if (requested->tokens.empty()) return fail("invalid_scope", "scope is required");
    std::string challenge = GetOr(params, "code_challenge");
    std::string method = GetOr(params, "code_challenge_method");
    if (!challenge.empty() || !method.empty()) {
      if (method != "S256") return fail("invalid_request", "code_challenge_method must be S256");
      if (challenge.size() != 43 || !jose::Base64UrlDecode(challenge))
        return fail("invalid_request", "code_challenge must be BASE64URL(SHA256(verifier))");
    } else if (c.type == ClientType::kPublic || c.require_pkce || options.require_pkce_for_all) {
      return fail("invalid_request", "PKCE is required: send code_challenge with S256");
    }
    json::Value flow = json::Value::EmptyObject();
    flow.Set("client_id", c.client_id);
    flow.Set("redirect_uri", redirect_uri);
    flow.Set("state", state);
    flow.Set("scope", requested->ToString());
    flow.Set("code_challenge", challenge);
    flow.Set("nonce", GetOr(params, "nonce"));
    std::string launch = GetOr(params, "launch");
    std::string launch_user;
    if (!launch.empty()) {
      auto consumed = store.ConsumeLaunch(HashSecret(launch));
      if (!consumed) return fail("server_error", "The launch could not be looked up");
      if (!*consumed || !(*consumed)->first_use || (*consumed)->expires <= Now())
        return fail("invalid_request", "The launch value is unknown, expired or already used");
      auto context = json::Parse((*consumed)->payload);
      if (!context) return fail("server_error", "The launch context is corrupt");
      launch_user = std::string(context->GetString("user"));
      if (const json::Value* sim = context->Find("simulate");
          sim && sim->GetString("error") == "authorize")  // the sandbox launcher's test case
        return fail("server_error", "Simulated by the launcher: the authorize step fails");
      flow.Set("launch", std::move(context).value());
    } else if (requested->launch) {
      return fail("invalid_request", "The launch scope needs a launch parameter (EHR launch)");
    }
    // Each authorization runs in a browser session; an EHR launch signs in the EHR's user.
    http::Response response;
    std::optional<BrowserSession> session = LoadSession(request);
    if (!launch_user.empty() && (!session || session->session.user_id != launch_user))
      session.reset();
    if (!session) {
      auto made = NewSession(response, launch_user);
      if (!made) return fail("server_error", "A session could not be started");
      session = std::move(made).value();
    }
    std::string request_id = RandomToken(24);
    if (!store.PutRequest(request_id, session->id_hash, flow, Now() + 900))
      return fail("server_error", "The request could not be stored");
    http::Response next = Continue(*session, request_id, flow, c);
    for (auto& h : response.headers) next.headers.push_back(h);
    return next;
  }

  json::Value PageData(const BrowserSession& s, const std::string& request_id, const Client& c,
                       std::string_view action) {
    json::Value data = json::Value::EmptyObject();
    data.Set("action", Url(action));
    data.Set("csrf", s.session.csrf);
    data.Set("request", request_id);
    data.Set("client_name", c.name);
    return data;
  }

  http::Response LoginPage(const BrowserSession& s, const std::string& request_id, const Client* c,
                           std::string error, std::string username) {
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Sign in");
    data.Set("action", Url("/auth/login"));
    data.Set("csrf", s.session.csrf);
    data.Set("request", request_id);
    data.Set("client_name", c ? c->name : std::string("Fhirstone"));
    int status = error.empty() ? 200 : 401;
    if (!error.empty()) data.Set("error", std::move(error));
    if (!username.empty()) data.Set("username", std::move(username));
    return Page(status, "login", data);
  }

  // Moves an authorization forward: sign-in, patient, consent, then the code.
  http::Response Continue(const BrowserSession& s, const std::string& request_id, json::Value& flow,
                          const Client& c) {
    std::string redirect_uri(flow.GetString("redirect_uri"));
    std::string state(flow.GetString("state"));
    if (s.session.user_id.empty()) return LoginPage(s, request_id, &c, "", "");
    auto user = store.FindUser(s.session.user_id);
    if (!user || !*user) return ErrorPage(500, "Server error", "The signed-in user is unknown.");
    auto requested = scopes::Parse(flow.GetString("scope"));
    if (!requested) return RedirectError(redirect_uri, "invalid_scope", "", state);
    const json::Value* launch = flow.Find("launch");
    std::string patient(flow.GetString("patient"));
    std::string_view fhir_user = (*user)->fhir_user;
    if (fhir_user.starts_with("Patient/")) {
      patient = std::string(fhir_user.substr(8));  // a patient is their own context
    } else if (launch && launch->is_object() && !launch->GetString("patient").empty()) {
      patient = std::string(launch->GetString("patient"));
    } else if (requested->launch_patient && patient.empty()) {
      return PatientPicker(s, request_id, c, "");
    }
    flow.Set("patient", patient);
    flow.Set("user_id", (*user)->user_id);
    // Standalone launch/encounter: the user picks one of the patient's encounters.
    bool launched = launch && launch->is_object();
    const json::Value* chosen = flow.Find("encounter_chosen");
    if (requested->launch_encounter && !launched && !patient.empty() && !chosen) {
      if (!store.PutRequest(request_id, s.id_hash, flow, Now() + 900))
        return ErrorPage(500, "Server error", "The request could not be stored.");
      return EncounterPicker(s, request_id, c, patient);
    }
    // What may be granted at all: what the client is registered for.
    auto allowed = scopes::Parse(c.allowed_scopes);
    scopes::ScopeSet grantable =
        allowed ? scopes::Restrict(*requested, *allowed) : scopes::ScopeSet{};
    auto consent = store.FindConsent((*user)->user_id, c.client_id);
    if (consent && *consent) {  // remembered: the code at once, the request is done
      auto consented = scopes::Parse((*consent)->scope);
      if (consented && scopes::IsCoveredBy(grantable, *consented)) {
        store.DeleteRequest(request_id);
        return IssueCode(flow, c, grantable.ToString());
      }
    }
    if (!store.PutRequest(request_id, s.id_hash, flow, Now() + 900))
      return ErrorPage(500, "Server error", "The request could not be stored.");
    return ConsentPage(s, request_id, c, **user, grantable, patient);
  }

  http::Response PatientPicker(const BrowserSession& s, const std::string& request_id,
                               const Client& c, std::string query) {
    json::Value data = PageData(s, request_id, c, "/auth/patient");
    data.Set("title", "Choose a patient");
    data.Set("query", query);
    json::Value list = json::Value::EmptyArray();
    if (hooks.search_patients) {
      auto found = hooks.search_patients(query, 50);
      if (found) {
        for (const auto& p : *found) {
          json::Value item = json::Value::EmptyObject();
          item.Set("id", p.id);
          item.Set("name", p.name);
          item.Set("birth_date", p.birth_date);
          item.Set("gender", p.gender);
          int age = AgeOn(p.birth_date, Now());
          if (age >= 0) item.Set("age", json::Value::Number(age));
          list.PushBack(std::move(item));
        }
      }
    }
    data.Set("patients", std::move(list));
    return Page(200, "patient_picker", data);
  }

  http::Response EncounterPicker(const BrowserSession& s, const std::string& request_id,
                                 const Client& c, const std::string& patient) {
    json::Value data = PageData(s, request_id, c, "/auth/encounter");
    data.Set("title", "Choose an encounter");
    std::string name = "Patient/" + patient;
    if (hooks.patient_name) {
      auto n = hooks.patient_name(patient);
      if (n) name = *n;
    }
    data.Set("patient_display", name);
    json::Value list = json::Value::EmptyArray();
    if (hooks.search_encounters) {
      auto found = hooks.search_encounters(patient, 50);
      if (found) {
        for (const auto& e : *found) {
          json::Value item = json::Value::EmptyObject();
          item.Set("id", e.id);
          item.Set("label", e.label);
          item.Set("start", e.start);
          item.Set("status", e.status);
          list.PushBack(std::move(item));
        }
      }
    }
    data.Set("encounters", std::move(list));
    return Page(200, "encounter_picker", data);
  }

  http::Response ChooseEncounter(http::Request& request) {
    auto f = LoadForm(request);
    if (!f) return FormError(f.error());
    if (auto st = LoadFlow(*f); !st) return FormError(st.error());
    if (f->session.session.user_id.empty())
      return LoginPage(f->session, f->request_id, &f->client, "", "");
    std::string encounter = GetOr(f->form, "encounter");
    std::string patient(f->flow.GetString("patient"));
    if (!encounter.empty()) {  // it must be one of the patient's
      bool found = false;
      if (hooks.search_encounters) {
        auto list = hooks.search_encounters(patient, 1000);
        if (list)
          for (const auto& e : *list) found |= e.id == encounter;
      }
      if (!found) return EncounterPicker(f->session, f->request_id, f->client, patient);
    }
    f->flow.Set("encounter", encounter);
    f->flow.Set("encounter_chosen", true);
    return Continue(f->session, f->request_id, f->flow, f->client);
  }

  http::Response ConsentPage(const BrowserSession& s, const std::string& request_id,
                             const Client& c, const User& user, const scopes::ScopeSet& grantable,
                             const std::string& patient) {
    json::Value data = PageData(s, request_id, c, "/auth/consent");
    data.Set("title", "Allow access");
    data.Set("user_display", user.display.empty() ? user.username : user.display);
    if (!patient.empty() && !std::string_view(user.fhir_user).starts_with("Patient/")) {
      std::string name = "Patient/" + patient;
      if (hooks.patient_name) {
        auto n = hooks.patient_name(patient);
        if (n) name = *n;
      }
      data.Set("patient_display", name);
    }
    json::Value list = json::Value::EmptyArray();
    for (const auto& token : grantable.tokens) {
      json::Value item = json::Value::EmptyObject();
      item.Set("scope", token);
      item.Set("description", scopes::Describe(token));
      item.Set("checked", true);
      list.PushBack(std::move(item));
    }
    data.Set("scopes", std::move(list));
    return Page(200, "consent", data);
  }

  // Loads the flow a form continues; nullopt (with the answer in *error) when it cannot.
  struct FormContext {
    BrowserSession session;
    Params form;
    std::string request_id;
    json::Value flow;
    Client client;
  };

  Result<FormContext> LoadForm(const http::Request& request) {
    FormContext f;
    f.form = ParseForm(request.body);
    auto s = LoadSession(request);
    if (!s) return Error::Forbidden("Your session has expired: start again from the app.");
    f.session = std::move(*s);
    if (!CsrfOk(f.session, f.form))
      return Error::Forbidden("The form is stale or was not sent by this site (CSRF check).");
    f.request_id = GetOr(f.form, "request");
    return f;
  }

  Status LoadFlow(FormContext& f) {
    auto flow = store.FindRequest(f.request_id, f.session.id_hash, Now());
    if (!flow || !*flow)
      return Error::NotFound("This authorization request has expired: start again from the app.");
    f.flow = std::move(**flow);
    auto client = store.FindClient(f.flow.GetString("client_id"));
    if (!client || !*client) return Error::NotFound("The application is no longer registered.");
    f.client = std::move(**client);
    return Ok();
  }

  http::Response FormError(const Error& e) {
    return ErrorPage(e.code() == ErrorCode::kForbidden ? 403 : 400, "Request refused", e.message());
  }

  bool Throttled(const std::string& key) {
    std::lock_guard lock(login_mu);
    auto it = login_failures.find(key);
    return it != login_failures.end() && it->second.locked_until > Now();
  }

  void RecordFailure(const std::string& key) {
    std::lock_guard lock(login_mu);
    if (login_failures.size() > 100000) login_failures.clear();
    Failures& f = login_failures[key];
    int64_t now = Now();
    if (now - f.first > 900) f = Failures{0, now, 0};
    if (++f.count >= kMaxLoginFailures)
      f.locked_until =
          now + std::min<int64_t>(3600, 30LL << std::min(f.count - kMaxLoginFailures, 7));
  }

  void ClearFailures(const std::string& key) {
    std::lock_guard lock(login_mu);
    login_failures.erase(key);
  }

  http::Response Login(http::Request& request) {
    if (request.method == "GET") {  // sign in without an app (to review authorized apps)
      http::Response response;
      auto s = LoadSession(request);
      if (s && !s->session.user_id.empty()) return Redirect(Url("/auth/apps"));
      if (!s) {
        auto made = NewSession(response, "");
        if (!made) return ErrorPage(500, "Server error", "A session could not be started.");
        s = std::move(made).value();
      }
      http::Response page = LoginPage(*s, "", nullptr, "", "");
      for (auto& h : response.headers) page.headers.push_back(h);
      return page;
    }
    auto f = LoadForm(request);
    if (!f) return FormError(f.error());
    const Client* client = nullptr;
    if (!f->request_id.empty()) {
      if (auto st = LoadFlow(*f); !st) return FormError(st.error());
      client = &f->client;
    }
    std::string username = GetOr(f->form, "username");
    std::string password = GetOr(f->form, "password");
    std::string key = AsciiLower(username) + "|" + request.remote_address;
    if (Throttled(key)) {
      spdlog::warn("login throttled after repeated failures");
      {
        FhirHooks::SecurityEvent event;
        event.kind = "login-failure";
        event.failure = true;
        event.user_name = username;
        event.detail = "Too many failed attempts: throttled";
        Audit(request, std::move(event));
      }
      http::Response r =
          LoginPage(f->session, f->request_id, client,
                    "Too many failed attempts: wait a minute and try again.", username);
      r.status = 429;
      r.SetHeader("Retry-After", "60");
      return r;
    }
    auto user = store.FindUserByName(username);
    bool ok = user && *user && VerifyPassword(password, (*user)->password_hash);
    if (!ok) {
      if (!(user && *user))
        VerifyPassword(password,
                       "$argon2id$v=19$m=65536,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
      RecordFailure(key);
      spdlog::info("login failed");
      {
        FhirHooks::SecurityEvent event;
        event.kind = "login-failure";
        event.failure = true;
        event.user_name = username;
        event.detail = "Wrong username or password";
        Audit(request, std::move(event));
      }
      return LoginPage(f->session, f->request_id, client, "The username or password is wrong.",
                       username);
    }
    ClearFailures(key);
    {
      FhirHooks::SecurityEvent event;
      event.kind = "login";
      event.user = (*user)->fhir_user;
      event.patient = PatientOf((*user)->fhir_user);
      event.client_id = client ? client->client_id : "";
      Audit(request, std::move(event));
    }
    // A fresh session id on sign-in; the pending request moves to it.
    http::Response response;
    store.DeleteSession(f->session.id_hash);
    auto fresh = NewSession(response, (*user)->user_id);
    if (!fresh) return ErrorPage(500, "Server error", "A session could not be started.");
    if (!client) {
      http::Response r = Redirect(Url("/auth/apps"));
      for (auto& h : response.headers) r.headers.push_back(h);
      return r;
    }
    store.DeleteRequest(f->request_id);
    std::string request_id = RandomToken(24);
    if (!store.PutRequest(request_id, fresh->id_hash, f->flow, Now() + 900))
      return ErrorPage(500, "Server error", "The request could not be stored.");
    http::Response next = Continue(*fresh, request_id, f->flow, f->client);
    for (auto& h : response.headers) next.headers.push_back(h);
    return next;
  }

  http::Response ChoosePatient(http::Request& request) {
    if (request.method == "GET") {
      Params query = ParseForm(request.Query());
      auto s = LoadSession(request);
      if (!s) return ErrorPage(403, "Request refused", "Your session has expired.");
      FormContext f{*s, {}, GetOr(query, "request"), {}, {}};
      if (auto st = LoadFlow(f); !st) return FormError(st.error());
      if (s->session.user_id.empty()) return LoginPage(*s, f.request_id, &f.client, "", "");
      return PatientPicker(*s, f.request_id, f.client, GetOr(query, "q"));
    }
    auto f = LoadForm(request);
    if (!f) return FormError(f.error());
    if (auto st = LoadFlow(*f); !st) return FormError(st.error());
    if (f->session.session.user_id.empty())
      return LoginPage(f->session, f->request_id, &f->client, "", "");
    std::string patient = GetOr(f->form, "patient");
    if (!hooks.patient_name || !hooks.patient_name(patient))
      return PatientPicker(f->session, f->request_id, f->client, "");
    f->flow.Set("patient", patient);
    return Continue(f->session, f->request_id, f->flow, f->client);
  }

  http::Response DecideConsent(http::Request& request) {
    auto f = LoadForm(request);
    if (!f) return FormError(f.error());
    if (auto st = LoadFlow(*f); !st) return FormError(st.error());
    if (f->session.session.user_id.empty() ||
        f->session.session.user_id != f->flow.GetString("user_id"))
      return LoginPage(f->session, f->request_id, &f->client, "", "");
    std::string redirect_uri(f->flow.GetString("redirect_uri"));
    std::string state(f->flow.GetString("state"));
    store.DeleteRequest(f->request_id);
    if (GetOr(f->form, "decision") != "allow")
      return RedirectError(redirect_uri, "access_denied", "The user denied access", state);
    auto requested = scopes::Parse(f->flow.GetString("scope"));
    auto allowed = scopes::Parse(f->client.allowed_scopes);
    if (!requested || !allowed) return RedirectError(redirect_uri, "invalid_scope", "", state);
    scopes::ScopeSet grantable = scopes::Restrict(*requested, *allowed);
    // Granted: what was ticked, among what could be granted, in the requested order.
    std::vector<std::string> ticked = GetAll(f->form, "scope");
    std::string granted;
    for (const auto& token : grantable.tokens) {
      if (std::find(ticked.begin(), ticked.end(), token) == ticked.end()) continue;
      if (!granted.empty()) granted += ' ';
      granted += token;
    }
    RecordConsent(f->flow, f->client, granted);
    {
      std::string fhir_user = FhirUserOf(f->flow.GetString("user_id"));
      std::string patient(f->flow.GetString("patient"));
      {
        FhirHooks::SecurityEvent event;
        event.kind = "consent-given";
        event.user = fhir_user;
        event.patient = patient.empty() ? PatientOf(fhir_user) : patient;
        event.client_id = f->client.client_id;
        event.detail = "Granted: " + (granted.empty() ? "nothing" : granted);
        Audit(request, std::move(event));
      }
    }
    return IssueCode(f->flow, f->client, granted);
  }

  void RecordConsent(const json::Value& flow, const Client& c, const std::string& granted) {
    std::string user_id(flow.GetString("user_id"));
    auto user = store.FindUser(user_id);
    std::string consent_id;
    auto previous = store.FindConsent(user_id, c.client_id);
    if (previous && *previous) consent_id = (*previous)->consent_resource_id;
    if (hooks.write_consent && user && *user) {
      json::Value consent = ConsentResource(consent_id, **user, c, granted,
                                            std::string(flow.GetString("patient")), true);
      auto written = hooks.write_consent(consent);
      if (written) {
        consent_id = *written;
      } else {
        spdlog::warn("the Consent resource could not be written: {}", written.error().message());
      }
    }
    store.PutConsent(Consent{user_id, c.client_id, granted, Now(), consent_id});
  }

  // A FHIR R4 Consent (https://hl7.org/fhir/R4/consent.html) recording what a user allowed a
  // client; inactive once withdrawn.
  json::Value ConsentResource(const std::string& id, const User& user, const Client& c,
                              const std::string& granted, const std::string& patient, bool active) {
    auto coding = [](const char* system, const char* code, const char* display) {
      json::Value cc = json::Value::EmptyObject();
      json::Value codings = json::Value::EmptyArray();
      json::Value coding = json::Value::EmptyObject();
      coding.Set("system", system);
      coding.Set("code", code);
      if (display) coding.Set("display", display);
      codings.PushBack(std::move(coding));
      cc.Set("coding", std::move(codings));
      return cc;
    };
    json::Value r = json::Value::EmptyObject();
    r.Set("resourceType", "Consent");
    if (!id.empty()) r.Set("id", id);
    r.Set("status", active ? "active" : "inactive");
    r.Set("scope", coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy",
                          "Privacy Consent"));
    json::Value category = json::Value::EmptyArray();
    category.PushBack(coding("http://loinc.org", "59284-0", "Patient Consent"));
    r.Set("category", std::move(category));
    std::string subject = !patient.empty() ? "Patient/" + patient : std::string();
    if (std::string_view(user.fhir_user).starts_with("Patient/")) subject = user.fhir_user;
    if (!subject.empty()) {
      json::Value ref = json::Value::EmptyObject();
      ref.Set("reference", subject);
      r.Set("patient", std::move(ref));
    }
    r.Set("dateTime", FormatInstant(clock.NowMicros()));
    if (!user.fhir_user.empty()) {
      json::Value performer = json::Value::EmptyArray();
      json::Value ref = json::Value::EmptyObject();
      ref.Set("reference", user.fhir_user);
      performer.PushBack(std::move(ref));
      r.Set("performer", std::move(performer));
    }
    r.Set("policyRule",
          coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in"));
    json::Value provision = json::Value::EmptyObject();
    provision.Set("type", active ? "permit" : "deny");
    json::Value actor = json::Value::EmptyObject();
    actor.Set("role", coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP",
                             "information recipient"));
    json::Value who = json::Value::EmptyObject();
    json::Value identifier = json::Value::EmptyObject();
    identifier.Set("system", Url("/auth/clients"));
    identifier.Set("value", c.client_id);
    who.Set("identifier", std::move(identifier));
    who.Set("display", c.name);
    actor.Set("reference", std::move(who));
    json::Value actors = json::Value::EmptyArray();
    actors.PushBack(std::move(actor));
    provision.Set("actor", std::move(actors));
    r.Set("provision", std::move(provision));
    json::Value extensions = json::Value::EmptyArray();
    for (auto token : Split(granted, ' ')) {
      if (token.empty()) continue;
      json::Value ext = json::Value::EmptyObject();
      ext.Set("url", Url("/fhir/StructureDefinition/smart-scope"));
      ext.Set("valueString", token);
      extensions.PushBack(std::move(ext));
    }
    if (!extensions.as_array().empty()) r.Set("extension", std::move(extensions));
    return r;
  }

  http::Response IssueCode(const json::Value& flow, const Client& c, const std::string& granted) {
    std::string redirect_uri(flow.GetString("redirect_uri"));
    std::string state(flow.GetString("state"));
    auto user = store.FindUser(flow.GetString("user_id"));
    if (!user || !*user) return RedirectError(redirect_uri, "server_error", "", state);
    Grant g;
    g.grant_id = RandomToken(16);
    g.client_id = c.client_id;
    g.user_id = (*user)->user_id;
    g.fhir_user = (*user)->fhir_user;
    g.scope = granted;
    auto set = scopes::Parse(granted);
    g.patient = flow.GetString("patient");
    if (const json::Value* launch = flow.Find("launch"); launch && launch->is_object()) {
      g.encounter = launch->GetString("encounter");
      if (const json::Value* ctx = launch->Find("fhirContext")) g.fhir_context = *ctx;
      if (const json::Value* b = launch->Find("need_patient_banner"); b && b->is_bool())
        g.need_patient_banner = b->as_bool();
      g.smart_style_url = launch->GetString("smart_style_url");
      g.intent = launch->GetString("intent");
      // Test cases of the sandbox launcher, carried by its launch value.
      if (const json::Value* sim = launch->Find("simulate")) {
        std::string_view error = sim->GetString("error");
        if (error == "token_expiry") g.access_seconds = 10;
        if (error == "missing_context") {
          g.patient.clear();
          g.encounter.clear();
        }
        if (error == "scope_not_granted") {
          std::string_view dropped = sim->GetString("scope");
          std::string kept;
          for (auto token : Split(g.scope, ' ')) {
            if (token.empty() || token == dropped) continue;
            if (!kept.empty()) kept += ' ';
            kept += token;
          }
          g.scope = kept;
        }
      }
    } else {
      g.need_patient_banner = true;  // standalone: the app shows who the data is about
      g.encounter = flow.GetString("encounter");
    }
    g.redirect_uri = redirect_uri;
    g.code_challenge = flow.GetString("code_challenge");
    g.nonce = flow.GetString("nonce");
    g.auth_time = Now();
    if (g.smart_style_url.empty()) g.smart_style_url = Url("/auth/smart-style.json");
    std::string code = RandomToken(32);
    if (!store.PutCode(HashSecret(code), g, Now() + options.code_seconds))
      return RedirectError(redirect_uri, "server_error", "", state);
    return Redirect(WithParams(redirect_uri, {{"code", code}, {"state", state}}));
  }

  // ---- the token endpoint ----

  // Authenticates the client of a token, introspection or revocation request.
  Result<ClientAuth> AuthenticateClient(const http::Request& request, const Params& form,
                                        http::Response* failure) {
    auto invalid = [&](std::string message, bool basic) -> Error {
      *failure = OAuthError(401, "invalid_client", message);
      if (basic) failure->SetHeader("WWW-Authenticate", "Basic realm=\"fhirstone\"");
      return Error::Unauthorized(message);
    };
    std::string_view authorization = request.Header("Authorization");
    std::string client_id = GetOr(form, "client_id");
    std::string secret;
    std::string method = "none";
    if (AsciiLower(authorization.substr(0, 6)) == "basic ") {
      std::string raw;
      {
        // Standard base64 (RFC 7617), then each half form-urlencoded (RFC 6749 §2.3.1).
        std::string_view b64 = Trim(authorization.substr(6));
        std::string url(b64);
        for (char& ch : url) ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
        while (!url.empty() && url.back() == '=') url.pop_back();
        auto bytes = jose::Base64UrlDecode(url);
        if (!bytes) return invalid("The Basic credentials are malformed", true);
        raw = std::move(*bytes);
      }
      size_t colon = raw.find(':');
      if (colon == std::string::npos) return invalid("The Basic credentials are malformed", true);
      Params id = ParseForm("a=" + raw.substr(0, colon) + "&b=" + raw.substr(colon + 1));
      std::string basic_id = GetOr(id, "a");
      if (!client_id.empty() && client_id != basic_id)
        return invalid("client_id differs from the Basic credentials", true);
      client_id = basic_id;
      secret = GetOr(id, "b");
      method = "client_secret_basic";
    } else if (Get(form, "client_secret")) {
      secret = GetOr(form, "client_secret");
      method = "client_secret_post";
    }
    std::string assertion_type = GetOr(form, "client_assertion_type");
    std::string assertion = GetOr(form, "client_assertion");
    std::optional<jose::Jws> jws;
    if (!assertion_type.empty() || !assertion.empty()) {
      if (method != "none") return invalid("Use one client authentication method", false);
      if (assertion_type != kJwtBearer)
        return invalid("client_assertion_type must be " + std::string(kJwtBearer), false);
      auto parsed = jose::ParseJws(assertion);
      if (!parsed) return invalid("The client assertion is malformed", false);
      jws = std::move(parsed).value();
      std::string iss(jws->claims.GetString("iss"));
      if (!client_id.empty() && client_id != iss)
        return invalid("client_id differs from the assertion's iss", false);
      client_id = iss;
      method = "private_key_jwt";
    }
    if (client_id.empty()) return invalid("The client is not identified", false);
    auto found = store.FindClient(client_id);
    if (!found) {
      *failure = OAuthError(500, "server_error", "");
      return Error::Internal("client lookup failed");
    }
    if (!*found) return invalid("Unknown client", method == "client_secret_basic");
    Client client = std::move(**found);
    switch (client.type) {
      case ClientType::kPublic:
        if (method != "none") return invalid("A public client has no credentials", false);
        break;
      case ClientType::kConfidentialSymmetric:
        if (method != "client_secret_basic" && method != "client_secret_post")
          return invalid("This client authenticates with its client secret", false);
        if (!ConstantTimeEquals(HashSecret(secret), client.secret_hash))
          return invalid("The client secret is wrong", method == "client_secret_basic");
        break;
      case ClientType::kConfidentialAsymmetric: {
        if (method != "private_key_jwt")
          return invalid("This client authenticates with a signed JWT (private_key_jwt)", false);
        if (auto st = CheckAssertion(client, *jws); !st)
          return invalid(st.error().message(), false);
        break;
      }
    }
    return ClientAuth{std::move(client), method};
  }

  // https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html
  Status CheckAssertion(const Client& client, const jose::Jws& jws) {
    if (jws.alg != jose::Alg::kRS384 && jws.alg != jose::Alg::kES384)
      return Error::Unauthorized("The assertion must be signed with RS384 or ES384");
    if (const json::Value* jku = jws.header.Find("jku")) {  // an allow-list of one: its jwks_uri
      if (!jku->is_string() || client.jwks_uri.empty() || jku->as_string() != client.jwks_uri)
        return Error::Unauthorized(
            "jku is accepted only when it is the client's registered "
            "jwks_uri");
    }
    if (jws.kid.empty()) return Error::Unauthorized("The assertion's header needs a kid");
    const json::Value& claims = jws.claims;
    if (claims.GetString("sub") != client.client_id || claims.GetString("iss") != client.client_id)
      return Error::Unauthorized("The assertion's iss and sub must be the client_id");
    bool aud_ok = false;
    if (const json::Value* aud = claims.Find("aud")) {
      if (aud->is_string()) aud_ok = aud->as_string() == TokenEndpoint();
      if (aud->is_array())
        for (const auto& a : aud->as_array())
          aud_ok |= a.is_string() && a.as_string() == TokenEndpoint();
    }
    if (!aud_ok) return Error::Unauthorized("The assertion's aud must be " + TokenEndpoint());
    const json::Value* exp = claims.Find("exp");
    int64_t now = Now();
    auto exp_value = exp && exp->is_number() ? ParseInt64(exp->as_string()) : std::nullopt;
    if (!exp_value) return Error::Unauthorized("The assertion needs a numeric exp");
    if (*exp_value <= now) return Error::Unauthorized("The assertion has expired");
    if (*exp_value > now + 300 + 30)
      return Error::Unauthorized("The assertion's exp is more than 5 minutes ahead");
    std::string jti(claims.GetString("jti"));
    if (jti.empty()) return Error::Unauthorized("The assertion needs a jti");
    auto keys = client_keys.For(client, jws.kid);
    if (!keys)
      return Error::Unauthorized("The client's keys are not available: " + keys.error().message());
    FHIRSTONE_RETURN_IF_ERROR(keys->Verify(jws));
    auto fresh = store.RememberJti(client.client_id, jti, *exp_value + 60);
    if (!fresh) return Error::Unauthorized("The assertion could not be checked");
    if (!*fresh) return Error::Unauthorized("The assertion's jti was used before (replay)");
    return Ok();
  }

  http::Response Token(http::Request& request) {
    if (request.method != "POST") return OAuthError(405, "invalid_request", "Use POST");
    if (!AsciiLower(request.Header("Content-Type"))
             .starts_with("application/x-www-form-urlencoded"))
      return OAuthError(400, "invalid_request",
                        "The token request must be application/x-www-form-urlencoded");
    Params form = ParseForm(request.body);
    if (auto r = Repeated(form, {"grant_type", "code", "redirect_uri", "code_verifier",
                                 "refresh_token", "scope", "client_id", "client_assertion"}))
      return OAuthError(400, "invalid_request", "The parameter " + *r + " is repeated");
    std::string grant_type = GetOr(form, "grant_type");
    if (grant_type.empty()) return OAuthError(400, "invalid_request", "grant_type is required");
    if (grant_type != "authorization_code" && grant_type != "refresh_token" &&
        grant_type != "client_credentials")
      return OAuthError(400, "unsupported_grant_type",
                        "grant_type must be authorization_code, refresh_token or "
                        "client_credentials");
    http::Response failure;
    auto auth = AuthenticateClient(request, form, &failure);
    if (!auth) {
      {
        FhirHooks::SecurityEvent event;
        event.kind = "token-refused";
        event.failure = true;
        event.client_id = GetOr(form, "client_id");
        event.detail = "Client authentication failed (" + grant_type + ")";
        Audit(request, std::move(event));
      }
      return failure;
    }
    http::Response response;
    if (grant_type == "authorization_code") {
      response = CodeGrant(*auth, form);
    } else if (grant_type == "refresh_token") {
      response = RefreshGrant(*auth, form);
    } else {
      response = ClientCredentialsGrant(*auth, form);
    }
    AuditToken(request, grant_type, auth->client.client_id, response);
    if (const std::string_view origin = request.Header("Origin"); !origin.empty()) {
      response.SetHeader("Access-Control-Allow-Origin", std::string(origin));
      response.SetHeader("Vary", "Origin");
    }
    return response;
  }

  // The audit record of a token request: who got which context, or why it was refused.
  void AuditToken(const http::Request& request, const std::string& grant_type,
                  const std::string& client_id, const http::Response& response) {
    if (!hooks.record_security_event) return;
    FhirHooks::SecurityEvent event;
    event.client_id = client_id;
    auto body = json::Parse(response.body);
    if (response.status != 200) {
      event.kind = "token-refused";
      event.failure = true;
      event.detail = grant_type + ": " +
                     std::string(body ? body->GetString("error") : std::string_view("error")) +
                     (body && !body->GetString("error_description").empty()
                          ? " (" + std::string(body->GetString("error_description")) + ")"
                          : std::string());
    } else {
      event.kind = grant_type == "refresh_token" ? "refresh" : "token";
      if (body) {
        event.detail = grant_type + ": " + std::string(body->GetString("scope"));
        if (auto verified = tokens.Verify(body->GetString("access_token")); verified) {
          event.user = (*verified)->access.fhir_user;
          event.patient = (*verified)->access.patient;
        }
      }
    }
    Audit(request, std::move(event));
  }

  http::Response CodeGrant(const ClientAuth& auth, const Params& form) {
    std::string code = GetOr(form, "code");
    if (code.empty()) return OAuthError(400, "invalid_request", "code is required");
    auto consumed = store.ConsumeCode(HashSecret(code));
    if (!consumed) return OAuthError(500, "server_error", "");
    if (!*consumed) return OAuthError(400, "invalid_grant", "The authorization code is unknown");
    const Consumed& c = **consumed;
    if (!c.first_use) {
      // A replayed code: revoke everything the first use issued (RFC 6749 §4.1.2).
      tokens.Revoke(c.grant_id, Now() + options.refresh_token_seconds);
      spdlog::warn("authorization code replayed: its grant is revoked");
      return OAuthError(400, "invalid_grant", "The authorization code was already used");
    }
    if (c.expires <= Now())
      return OAuthError(400, "invalid_grant", "The authorization code has expired");
    auto payload = json::Parse(c.payload);
    if (!payload) return OAuthError(500, "server_error", "");
    Grant g = Grant::FromJson(*payload);
    if (g.client_id != auth.client.client_id)
      return OAuthError(400, "invalid_grant", "The code was issued to another client");
    if (GetOr(form, "redirect_uri") != g.redirect_uri)
      return OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization's");
    if (!g.code_challenge.empty()) {
      std::string verifier = GetOr(form, "code_verifier");
      if (verifier.size() < 43 || verifier.size() > 128)
        return OAuthError(400, "invalid_grant", "code_verifier must have 43 to 128 characters");
      if (!VerifyPkceS256(verifier, g.code_challenge))
        return OAuthError(400, "invalid_grant", "The code_verifier does not match the challenge");
    } else if (Get(form, "code_verifier")) {
      return OAuthError(400, "invalid_grant", "No code_challenge was sent with the authorization");
    }
    return TokenResponse(g, g.access_seconds ? g.access_seconds : options.access_token_seconds);
  }

  http::Response RefreshGrant(const ClientAuth& auth, const Params& form) {
    std::string token = GetOr(form, "refresh_token");
    if (token.empty()) return OAuthError(400, "invalid_request", "refresh_token is required");
    // Bound to its client: another client's attempt leaves it untouched.
    auto found = store.FindRefresh(HashSecret(token));
    if (!found) return OAuthError(500, "server_error", "");
    if (!*found) return OAuthError(400, "invalid_grant", "The refresh token is unknown");
    auto owner = json::Parse((*found)->payload);
    if (!owner) return OAuthError(500, "server_error", "");
    if (Grant::FromJson(*owner).client_id != auth.client.client_id)
      return OAuthError(400, "invalid_grant", "The refresh token was issued to another client");
    std::string narrowed;  // a refresh may narrow the scope, never widen it
    if (auto scope = Get(form, "scope")) {
      auto requested = scopes::Parse(*scope);
      auto granted = scopes::Parse(Grant::FromJson(*owner).scope);
      if (!requested || !granted || requested->tokens.empty() ||
          !scopes::IsCoveredBy(*requested, *granted))
        return OAuthError(400, "invalid_scope", "A refresh may narrow the scope, never widen it");
      narrowed = requested->ToString();
    }
    auto consumed = store.ConsumeRefresh(HashSecret(token));
    if (!consumed) return OAuthError(500, "server_error", "");
    if (!*consumed) return OAuthError(400, "invalid_grant", "The refresh token is unknown");
    const Consumed& c = **consumed;
    auto payload = json::Parse(c.payload);
    if (!payload) return OAuthError(500, "server_error", "");
    Grant g = Grant::FromJson(*payload);
    if (tokens.IsRevoked(g.grant_id))
      return OAuthError(400, "invalid_grant", "The refresh token has been revoked");
    if (!c.first_use) {
      tokens.Revoke(g.grant_id, Now() + options.refresh_token_seconds);
      spdlog::warn("refresh token replayed: its grant is revoked");
      return OAuthError(400, "invalid_grant", "The refresh token was already used");
    }
    if (c.expires <= Now())
      return OAuthError(400, "invalid_grant", "The refresh token has expired");
    if (!narrowed.empty()) g.scope = narrowed;
    return TokenResponse(g, g.access_seconds ? g.access_seconds : options.access_token_seconds);
  }

  http::Response ClientCredentialsGrant(const ClientAuth& auth, const Params& form) {
    if (auth.client.type == ClientType::kPublic)
      return OAuthError(400, "unauthorized_client",
                        "client_credentials needs a confidential client");
    auto requested = scopes::Parse(GetOr(form, "scope"));
    if (!requested) return OAuthError(400, "invalid_scope", requested.error().message());
    auto allowed = scopes::Parse(auth.client.allowed_scopes);
    scopes::ScopeSet granted =
        allowed ? scopes::Restrict(*requested, *allowed) : scopes::ScopeSet{};
    std::string scope;
    for (const auto& s : granted.resources) {
      if (s.context != scopes::Context::kSystem) continue;
      if (!scope.empty()) scope += ' ';
      scope += s.text;
    }
    if (scope.empty())
      return OAuthError(400, "invalid_scope",
                        "None of the requested system/ scopes is allowed for this client");
    Grant g;
    g.grant_id = RandomToken(16);
    g.client_id = auth.client.client_id;
    g.scope = scope;
    std::string jti;
    auto access = tokens.IssueAccessToken(g, options.backend_token_seconds, &jti);
    if (!access) return OAuthError(500, "server_error", "");
    json::Value body = json::Value::EmptyObject();
    body.Set("access_token", *access);
    body.Set("token_type", "Bearer");
    body.Set("expires_in", json::Value::Number(options.backend_token_seconds));
    body.Set("scope", scope);
    return JsonOk(body);
  }

  http::Response TokenResponse(const Grant& g, int64_t seconds) {
    auto set = scopes::Parse(g.scope);
    if (!set) return OAuthError(400, "invalid_scope", "");
    auto access = tokens.IssueAccessToken(g, seconds);
    if (!access) return OAuthError(500, "server_error", "");
    json::Value body = json::Value::EmptyObject();
    body.Set("access_token", *access);
    body.Set("token_type", "Bearer");
    body.Set("expires_in", json::Value::Number(seconds));
    body.Set("scope", g.scope);
    if (set->openid && (set->fhir_user || set->profile)) {
      auto id_token = tokens.IssueIdToken(g);
      if (!id_token) return OAuthError(500, "server_error", "");
      body.Set("id_token", *id_token);
    } else if (set->openid) {
      auto id_token = tokens.IssueIdToken(g);
      if (id_token) body.Set("id_token", *id_token);
    }
    if (set->offline_access || set->online_access) {
      std::string refresh = RandomToken(32);
      int64_t lifetime =
          set->offline_access ? options.refresh_token_seconds : options.online_refresh_seconds;
      if (!store.PutRefresh(HashSecret(refresh), g, Now() + lifetime))
        return OAuthError(500, "server_error", "");
      body.Set("refresh_token", refresh);
    }
    bool patient_scopes = false;
    for (const auto& r : set->resources) patient_scopes |= r.context == scopes::Context::kPatient;
    if (!g.patient.empty() && (set->launch_patient || set->launch || patient_scopes))
      body.Set("patient", g.patient);
    if (!g.encounter.empty() && (set->launch_encounter || set->launch))
      body.Set("encounter", g.encounter);
    if (g.fhir_context.is_array() && !g.fhir_context.as_array().empty())
      body.Set("fhirContext", g.fhir_context);
    if (set->launch || set->launch_patient) {
      body.Set("need_patient_banner", g.need_patient_banner);
      if (!g.smart_style_url.empty()) body.Set("smart_style_url", g.smart_style_url);
    }
    if (!g.intent.empty()) body.Set("intent", g.intent);
    return JsonOk(body);
  }

  // ---- introspection and revocation ----

  // The caller: an authenticated client, or the bearer of a valid access token.
  bool IntrospectionCaller(const http::Request& request, const Params& form,
                           http::Response* failure) {
    std::string_view authorization = request.Header("Authorization");
    if (AsciiLower(authorization.substr(0, 7)) == "bearer ") {
      if (tokens.Verify(Trim(authorization.substr(7)))) return true;
      *failure = OAuthError(401, "invalid_token", "The bearer token is not valid");
      failure->SetHeader("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      return false;
    }
    auto auth = AuthenticateClient(request, form, failure);
    if (!auth) return false;
    if (auth->client.type == ClientType::kPublic) {
      *failure = OAuthError(401, "invalid_client", "Introspection needs an authenticated caller");
      return false;
    }
    return true;
  }

  http::Response Introspect(http::Request& request) {
    if (request.method != "POST") return OAuthError(405, "invalid_request", "Use POST");
    Params form = ParseForm(request.body);
    http::Response failure;
    if (!IntrospectionCaller(request, form, &failure)) return failure;
    std::string token = GetOr(form, "token");
    json::Value inactive = json::Value::EmptyObject();
    inactive.Set("active", false);
    if (token.empty()) return JsonOk(inactive);
    if (auto v = tokens.Verify(token)) {
      const json::Value& claims = (*v)->claims;
      json::Value body = json::Value::EmptyObject();
      body.Set("active", true);
      for (const char* name :
           {"scope", "client_id", "sub", "patient", "encounter", "fhirUser", "iss", "aud", "jti"})
        if (!claims.GetString(name).empty()) body.Set(name, claims.GetString(name));
      for (const char* name : {"exp", "iat"})
        if (const json::Value* n = claims.Find(name)) body.Set(name, *n);
      body.Set("token_type", "Bearer");
      return JsonOk(body);
    }
    auto refresh = store.FindRefresh(HashSecret(token));
    if (refresh && *refresh && (*refresh)->first_use && (*refresh)->expires > Now() &&
        !tokens.IsRevoked((*refresh)->grant_id)) {
      auto payload = json::Parse((*refresh)->payload);
      if (payload) {
        Grant g = Grant::FromJson(*payload);
        json::Value body = json::Value::EmptyObject();
        body.Set("active", true);
        body.Set("scope", g.scope);
        body.Set("client_id", g.client_id);
        if (!g.user_id.empty()) body.Set("sub", g.user_id);
        if (!g.patient.empty()) body.Set("patient", g.patient);
        if (!g.fhir_user.empty()) body.Set("fhirUser", g.fhir_user);
        body.Set("exp", json::Value::Number((*refresh)->expires));
        body.Set("token_type", "refresh_token");
        return JsonOk(body);
      }
    }
    return JsonOk(inactive);
  }

  http::Response Revoke(http::Request& request) {
    if (request.method != "POST") return OAuthError(405, "invalid_request", "Use POST");
    Params form = ParseForm(request.body);
    http::Response failure;
    auto auth = AuthenticateClient(request, form, &failure);
    if (!auth) return failure;
    std::string token = GetOr(form, "token");
    if (token.empty()) return OAuthError(400, "invalid_request", "token is required");
    int64_t far = Now() + options.refresh_token_seconds;
    if (auto v = tokens.Verify(token)) {
      if ((*v)->client_id == auth->client.client_id) tokens.Revoke((*v)->jti, (*v)->expires + 60);
    } else if (auto refresh = store.FindRefresh(HashSecret(token)); refresh && *refresh) {
      auto payload = json::Parse((*refresh)->payload);
      if (payload && Grant::FromJson(*payload).client_id == auth->client.client_id)
        tokens.Revoke((*refresh)->grant_id, far);  // the refresh token and its access tokens
    }
    {
      FhirHooks::SecurityEvent event;
      event.kind = "revoke";
      event.client_id = auth->client.client_id;
      Audit(request, std::move(event));
    }
    http::Response r;  // RFC 7009 §2.2: 200 whether or not the token was known
    r.status = 200;
    r.SetHeader("Cache-Control", "no-store");
    return r;
  }

  // ---- the user's authorized apps ----

  http::Response Apps(http::Request& request) {
    auto s = LoadSession(request);
    if (!s || s->session.user_id.empty()) return Redirect(Url("/auth/login"));
    auto user = store.FindUser(s->session.user_id);
    if (!user || !*user) return Redirect(Url("/auth/login"));
    auto consents = store.ListConsents((*user)->user_id);
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Your authorized apps");
    data.Set("csrf", s->session.csrf);
    data.Set("user_display", (*user)->display.empty() ? (*user)->username : (*user)->display);
    data.Set("action", Url("/auth/apps/withdraw"));
    data.Set("logout_action", Url("/auth/logout"));
    json::Value apps = json::Value::EmptyArray();
    if (consents) {
      for (const auto& c : *consents) {
        auto client = store.FindClient(c.client_id);
        json::Value app = json::Value::EmptyObject();
        app.Set("client_id", c.client_id);
        app.Set("client_name", client && *client ? (*client)->name : c.client_id);
        std::string when = FormatInstant(c.granted_at * 1000000);  // 2026-11-29T05:38:39.000Z
        app.Set("granted_at", when.substr(0, 10) + " " + when.substr(11, 5) + " UTC");
        json::Value list = json::Value::EmptyArray();
        for (auto token : Split(c.scope, ' ')) {
          if (token.empty()) continue;
          json::Value item = json::Value::EmptyObject();
          item.Set("scope", token);
          item.Set("description", scopes::Describe(token));
          list.PushBack(std::move(item));
        }
        app.Set("scopes", std::move(list));
        apps.PushBack(std::move(app));
      }
    }
    data.Set("apps", std::move(apps));
    if (hooks.patient_access_log && !PatientOf((*user)->fhir_user).empty())
      data.Set("access_url", Url("/auth/access"));
    return Page(200, "apps", data);
  }

  // GET /auth/access: a patient's view of the audit log: who accessed their record, when, with
  // which application, and whether it was allowed.
  http::Response AccessLog(http::Request& request) {
    auto s = LoadSession(request);
    if (!s || s->session.user_id.empty()) return Redirect(Url("/auth/login"));
    auto user = store.FindUser(s->session.user_id);
    if (!user || !*user) return Redirect(Url("/auth/login"));
    std::string patient = PatientOf((*user)->fhir_user);
    if (patient.empty() || !hooks.patient_access_log)
      return ErrorPage(403, "Not available",
                       "This page shows the accesses to a patient's own record: sign in as a "
                       "patient.");
    constexpr int kLimit = 200;
    auto entries = hooks.patient_access_log(patient, kLimit);
    if (!entries) return ErrorPage(500, "Server error", "The access log could not be read.");
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Who accessed your record");
    data.Set("user_display", (*user)->display.empty() ? (*user)->username : (*user)->display);
    data.Set("limit", std::to_string(kLimit));
    data.Set("apps_url", Url("/auth/apps"));
    json::Value list = json::Value::EmptyArray();
    for (const auto& e : *entries) {
      json::Value row = json::Value::EmptyObject();
      row.Set("when", e.when);
      row.Set("when_words", e.when.size() >= 16
                                ? e.when.substr(0, 10) + " " + e.when.substr(11, 5) + " UTC"
                                : e.when);
      row.Set("who", e.who == (*user)->fhir_user ? std::string("You") : e.who);
      row.Set("app", e.app);
      row.Set("what", e.what);
      row.Set("refused", e.refused);
      list.PushBack(std::move(row));
    }
    data.Set("has_entries", !list.as_array().empty());
    data.Set("entries", std::move(list));
    http::Response page = Page(200, "access_log", data);
    page.SetHeader("Cache-Control", "no-store");
    return page;
  }

  http::Response Withdraw(http::Request& request) {
    auto f = LoadForm(request);
    if (!f) return FormError(f.error());
    if (f->session.session.user_id.empty()) return Redirect(Url("/auth/login"));
    std::string client_id = GetOr(f->form, "client_id");
    const std::string& user_id = f->session.session.user_id;
    auto consent = store.FindConsent(user_id, client_id);
    int64_t far = Now() + options.refresh_token_seconds;
    auto revoked = store.RevokeClientGrants(client_id, user_id, far);
    if (revoked)
      for (const auto& id : *revoked) tokens.Revoke(id, far);
    if (consent && *consent) {
      auto user = store.FindUser(user_id);
      auto client = store.FindClient(client_id);
      if (hooks.write_consent && user && *user && client && *client &&
          !(*consent)->consent_resource_id.empty()) {
        json::Value resource = ConsentResource((*consent)->consent_resource_id, **user, **client,
                                               (*consent)->scope, "", false);
        auto written = hooks.write_consent(resource);
        if (!written) spdlog::warn("Consent not updated: {}", written.error().message());
      }
      store.DeleteConsent(user_id, client_id);
    }
    FhirHooks::SecurityEvent event;
    event.kind = "consent-withdrawn";
    event.user = FhirUserOf(user_id);
    event.patient = PatientOf(event.user);
    event.client_id = client_id;
    event.detail = "Access withdrawn; the application's tokens were revoked";
    Audit(request, std::move(event));
    return Redirect(Url("/auth/apps"));
  }

  http::Response Logout(http::Request& request) {
    auto f = LoadForm(request);
    if (!f) return FormError(f.error());
    store.DeleteSession(f->session.id_hash);
    if (!f->session.session.user_id.empty()) {
      std::string fhir_user = FhirUserOf(f->session.session.user_id);
      {
        FhirHooks::SecurityEvent event;
        event.kind = "logout";
        event.user = fhir_user;
        event.patient = PatientOf(fhir_user);
        Audit(request, std::move(event));
      }
    }
    http::Response r = Redirect(Url("/auth/login"));
    r.headers.emplace_back(
        "Set-Cookie", std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    return r;
  }

  // POST /auth/launch: the EHR side asks for a launch value, as a signed-in user (a form with
  // the session's CSRF token, or JSON with the X-CSRF-Token header).
  http::Response Launch(http::Request& request) {
    if (request.method != "POST") return OAuthError(405, "invalid_request", "Use POST");
    auto s = LoadSession(request);
    if (!s || s->session.user_id.empty())
      return OAuthError(401, "invalid_request", "Sign in first: a launch is made by a user");
    json::Value context = json::Value::EmptyObject();
    bool is_json = AsciiLower(request.Header("Content-Type")).starts_with("application/json");
    std::string csrf;
    if (is_json) {
      csrf = std::string(request.Header("X-CSRF-Token"));
      auto parsed = json::Parse(request.body);
      if (!parsed || !parsed->is_object())
        return OAuthError(400, "invalid_request", "The launch context must be a JSON object");
      context = std::move(parsed).value();
    } else {
      Params form = ParseForm(request.body);
      csrf = GetOr(form, "csrf");
      for (const char* k : {"patient", "encounter", "intent", "smart_style_url"})
        if (auto v = Get(form, k); v && !v->empty()) context.Set(k, *v);
      if (auto b = Get(form, "need_patient_banner"))
        context.Set("need_patient_banner", *b == "true");
    }
    if (!ConstantTimeEquals(csrf, s->session.csrf))
      return OAuthError(403, "invalid_request", "The CSRF token is missing or wrong");
    context.Set("user", s->session.user_id);
    auto launch = CreateLaunchValue(context);
    if (!launch) return OAuthError(400, "invalid_request", launch.error().message());
    json::Value body = json::Value::EmptyObject();
    body.Set("launch", *launch);
    return JsonOk(body, 201);
  }

  Result<std::string> CreateLaunchValue(const json::Value& context) {
    std::string patient(context.GetString("patient"));
    if (!patient.empty() && hooks.patient_name && !hooks.patient_name(patient))
      return Error::Invalid("Patient/" + patient + " does not exist");
    std::string launch = RandomToken(24);
    FHIRSTONE_RETURN_IF_ERROR(
        store.PutLaunch(HashSecret(launch), context, Now() + options.launch_seconds));
    return launch;
  }

  // The admin JSON API for clients: GET (list), POST (register, answers the client_id and, for
  // confidential-symmetric clients, the secret once), DELETE /auth/admin/clients/{id}. Callers
  // present an access token with full system access (system/*.cruds or system/*.*).
  http::Response AdminClients(http::Request& request) {
    std::string_view authorization = request.Header("Authorization");
    if (AsciiLower(authorization.substr(0, 7)) != "bearer ") {
      http::Response r =
          OAuthError(401, "invalid_token", "An administrator's access token is required");
      r.SetHeader("WWW-Authenticate", "Bearer");
      return r;
    }
    auto verified = tokens.Verify(Trim(authorization.substr(7)));
    if (!verified) {
      http::Response r = OAuthError(401, "invalid_token", verified.error().message());
      r.SetHeader("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      return r;
    }
    if (!(*verified)->access.admin)
      return OAuthError(403, "insufficient_scope", "Managing clients needs system/*.cruds");
    std::string_view path = request.Path();
    std::string id(path.size() > 20 ? path.substr(20) : std::string_view());
    if (request.method == "GET" && id.empty()) {
      auto clients = store.ListClients();
      if (!clients) return OAuthError(500, "server_error", "");
      json::Value list = json::Value::EmptyArray();
      for (const auto& c : *clients) list.PushBack(ClientJson(c));
      return JsonOk(list);
    }
    if (request.method == "GET") {
      auto c = store.FindClient(id);
      if (!c) return OAuthError(500, "server_error", "");
      if (!*c) return OAuthError(404, "invalid_request", "No such client");
      return JsonOk(ClientJson(**c));
    }
    if (request.method == "DELETE" && !id.empty()) {
      if (!store.DeleteClient(id)) return OAuthError(500, "server_error", "");
      http::Response r;
      r.status = 204;
      return r;
    }
    if (request.method != "POST" || !id.empty())
      return OAuthError(405, "invalid_request", "Use GET, POST or DELETE");
    auto body = json::Parse(request.body);
    if (!body || !body->is_object())
      return OAuthError(400, "invalid_client_metadata", "The body must be a JSON object");
    Registration reg;
    reg.client_id = body->GetString("client_id");
    reg.name = body->GetString("client_name");
    reg.type = body->GetString("client_type");
    if (reg.type.empty()) {  // RFC 7591 names the authentication method instead
      std::string_view method = body->GetString("token_endpoint_auth_method");
      reg.type = method == "private_key_jwt" ? "confidential-asymmetric"
                 : method == "client_secret_basic" || method == "client_secret_post"
                     ? "confidential-symmetric"
                     : "public";
    }
    if (const json::Value* uris = body->Find("redirect_uris"); uris && uris->is_array())
      for (const auto& u : uris->as_array())
        if (u.is_string()) reg.redirect_uris.push_back(u.as_string());
    reg.scopes = body->GetString("scope");
    if (const json::Value* jwks = body->Find("jwks")) reg.jwks = *jwks;
    reg.jwks_uri = body->GetString("jwks_uri");
    reg.launch_uri = body->GetString("launch_uri");
    if (const json::Value* p = body->Find("require_pkce"); p && p->is_bool())
      reg.require_pkce = p->as_bool();
    auto registered = RegisterClient(store, reg);
    if (!registered) {
      const Error& e = registered.error();
      return OAuthError(
          e.code() == ErrorCode::kConflict ? 409 : 400,
          e.code() == ErrorCode::kConflict ? "invalid_request" : "invalid_client_metadata",
          e.message());
    }
    auto stored = store.FindClient(registered->client_id);
    json::Value out = stored && *stored ? ClientJson(**stored) : json::Value::EmptyObject();
    if (!registered->client_secret.empty()) out.Set("client_secret", registered->client_secret);
    http::Response r = JsonOk(out, 201);
    r.SetHeader("Location", Url("/auth/admin/clients/" + registered->client_id));
    return r;
  }

  http::Response Handle(http::Request& request) {
    std::string_view path = request.Path();
    bool get = request.method == "GET" || request.method == "HEAD";
    if (path == "/fhir/.well-known/smart-configuration" ||
        path == "/fhir/.well-known/openid-configuration" || path == "/auth/jwks") {
      if (!get) return OAuthError(405, "invalid_request", "Use GET");
      json::Value body = path == "/auth/jwks"                    ? tokens.Jwks()
                         : path.ends_with("smart-configuration") ? SmartConfiguration()
                                                                 : OpenIdConfiguration();
      http::Response r;
      r.body = json::Write(body);
      r.SetHeader("Content-Type", "application/json");
      r.SetHeader("Access-Control-Allow-Origin", "*");
      r.SetHeader("Cache-Control", "public, max-age=300");
      return r;
    }
    if (path == "/auth/smart-style.json" &&
        get) {  // https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html#styling
      json::Value style = json::Value::EmptyObject();
      for (auto [k, v] :
           {std::pair{"color_background", "#f6f8fb"}, std::pair{"color_error", "#b42318"},
            std::pair{"color_highlight", "#1d4ed8"},
            std::pair{"color_modal_backdrop", "rgba(15,23,42,0.5)"},
            std::pair{"color_success", "#067647"}, std::pair{"color_text", "#0f172a"},
            std::pair{"dim_border_radius", "8px"}, std::pair{"dim_font_size", "16px"},
            std::pair{"dim_spacing_size", "16px"},
            std::pair{"font_family_body", "system-ui, sans-serif"},
            std::pair{"font_family_heading", "system-ui, sans-serif"}})
        style.Set(k, v);
      http::Response r;
      r.body = json::Write(style);
      r.SetHeader("Content-Type", "application/json");
      r.SetHeader("Access-Control-Allow-Origin", "*");
      return r;
    }
    if (path.starts_with("/static/")) {
      auto file = web::FindStatic(path.substr(8));
      if (!file) return ErrorPage(404, "Not found", "No such file.");
      http::Response r;
      r.body = std::string(file->body);
      r.SetHeader("Content-Type", std::string(file->content_type));
      r.SetHeader("Cache-Control", "public, max-age=3600");
      r.SetHeader("X-Content-Type-Options", "nosniff");
      return r;
    }
    if (path == "/auth/authorize") {
      if (!get && request.method != "POST")
        return ErrorPage(405, "Not allowed", "Use GET or POST.");
      return Authorize(request);
    }
    if (path == "/auth/token" || path == "/auth/introspect" || path == "/auth/revoke") {
      if (request.method == "OPTIONS") {  // CORS preflight for browser apps
        http::Response r;
        r.status = 204;
        r.SetHeader("Access-Control-Allow-Origin", std::string(request.Header("Origin")));
        r.SetHeader("Access-Control-Allow-Methods", "POST");
        r.SetHeader("Access-Control-Allow-Headers", "Authorization, Content-Type");
        r.SetHeader("Access-Control-Max-Age", "600");
        return r;
      }
      if (path == "/auth/token") return Token(request);
      if (path == "/auth/introspect") return Introspect(request);
      return Revoke(request);
    }
    if (path == "/auth/login") return Login(request);
    if (path == "/auth/patient") return ChoosePatient(request);
    if (path == "/auth/consent" && request.method == "POST") return DecideConsent(request);
    if (path == "/auth/encounter" && request.method == "POST") return ChooseEncounter(request);
    if (path == "/auth/apps" && get) return Apps(request);
    if (path == "/auth/access" && get) return AccessLog(request);
    if (path == "/auth/apps/withdraw" && request.method == "POST") return Withdraw(request);
    if (path == "/auth/logout" && request.method == "POST") return Logout(request);
    if (path == "/auth/launch") return Launch(request);
    if (path == "/auth/admin/clients" || path.starts_with("/auth/admin/clients/"))
      return AdminClients(request);
    return ErrorPage(404, "Not found", "There is no page here.");
  }
};

AuthorizationServer::AuthorizationServer() = default;
AuthorizationServer::~AuthorizationServer() = default;

Result<std::unique_ptr<AuthorizationServer>> AuthorizationServer::Create(
    AuthStore& store, TokenService& tokens, Clock& clock, FhirHooks hooks, AuthOptions options) {
  std::unique_ptr<AuthorizationServer> server(new AuthorizationServer());
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  std::string fhir_base = options.base_url + "/fhir";
  bool secure = options.base_url.starts_with("https://");
  server->impl_.reset(
      new Impl{store, tokens, clock, std::move(hooks), std::move(options), fhir_base, secure});
  return server;
}

bool AuthorizationServer::Handles(std::string_view path) const {
  return path.starts_with("/auth/") || path.starts_with("/static/") ||
         path == "/fhir/.well-known/smart-configuration" ||
         path == "/fhir/.well-known/openid-configuration";
}

http::Response AuthorizationServer::Handle(http::Request& request) {
  try {
    return impl_->Handle(request);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: unexpected exception: {}", request.method, request.Path(), e.what());
    return OAuthError(500, "server_error", "The server failed to process the request");
  }
}

Result<std::shared_ptr<const api::AccessContext>> AuthorizationServer::Authenticate(
    const http::Request& request) {
  std::string_view authorization = request.Header("Authorization");
  if (authorization.empty()) return Error::Unauthorized("An access token is required");
  if (AsciiLower(authorization.substr(0, 7)) != "bearer ")
    return Error::Unauthorized("Use the Bearer authentication scheme");
  auto verified = impl_->tokens.Verify(Trim(authorization.substr(7)));
  if (!verified) return std::move(verified).error();
  // The AccessContext lives as long as the cached token entry that owns it.
  return std::shared_ptr<const api::AccessContext>(*verified, &(*verified)->access);
}

std::string AuthorizationServer::ChallengeFor(const Error& error) const {
  std::string challenge = "Bearer realm=\"" + impl_->fhir_base + "\"";
  if (error.message() != "An access token is required")
    challenge += ", error=\"invalid_token\", error_description=\"" + error.message() + "\"";
  return challenge;
}

json::Value AuthorizationServer::CapabilitySecurity() const {
  const Impl& impl = *impl_;
  json::Value security = json::Value::EmptyObject();
  security.Set("cors", true);
  json::Value service = json::Value::EmptyObject();
  json::Value codings = json::Value::EmptyArray();
  json::Value coding = json::Value::EmptyObject();
  coding.Set("system", "http://terminology.hl7.org/CodeSystem/restful-security-service");
  coding.Set("code", "SMART-on-FHIR");
  coding.Set("display", "SMART-on-FHIR");
  codings.PushBack(std::move(coding));
  service.Set("coding", std::move(codings));
  service.Set("text", "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)");
  json::Value services = json::Value::EmptyArray();
  services.PushBack(std::move(service));
  security.Set("service", std::move(services));
  json::Value uris = json::Value::EmptyObject();
  uris.Set("url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
  json::Value exts = json::Value::EmptyArray();
  for (auto [name, path] :
       {std::pair{"authorize", "/auth/authorize"}, std::pair{"token", "/auth/token"},
        std::pair{"introspect", "/auth/introspect"}, std::pair{"revoke", "/auth/revoke"},
        std::pair{"manage", "/auth/apps"}}) {
    json::Value e = json::Value::EmptyObject();
    e.Set("url", name);
    e.Set("valueUri", impl.Url(path));
    exts.PushBack(std::move(e));
  }
  uris.Set("extension", std::move(exts));
  json::Value extension = json::Value::EmptyArray();
  extension.PushBack(std::move(uris));
  security.Set("extension", std::move(extension));
  return security;
}

Result<std::string> AuthorizationServer::CreateLaunch(const json::Value& context) {
  return impl_->CreateLaunchValue(context);
}

}  // namespace fhirstone::oauth
