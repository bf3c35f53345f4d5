// The sandbox's home page and launcher. The launcher simulates the EHR side of SMART App Launch
// 2.2 (https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#launch-app-ehr-launch):
// the EHR makes a launch value bound to its user, patient and encounter and opens the app's
// launch URL with `iss` and `launch`; for a standalone launch
// (https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#launch-app-standalone-launch)
// it opens the launch URL with `iss` only; a backend service
// (https://hl7.org/fhir/smart-app-launch/STU2.2/backend-services.html) gets a token with
// client_credentials, which the launcher explains instead of opening a browser.
// need_patient_banner (https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html)
// is honoured as the spec means it: true tells the app to show a patient banner itself, so the
// simulated EHR shows its own banner above the app only when it is false.
#include "sandbox/sandbox.h"

#include <spdlog/spdlog.h>

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>

#include "auth/oauth/crypto.h"
#include "auth/oauth/registration.h"
#include "auth/scopes/scopes.h"
#include "common/json.h"
#include "common/strings.h"
#include "common/time.h"
#include "web/web.h"

namespace fhirstone::sandbox {

std::string_view LauncherScript();  // launcher_js.cc, generated from launcher.js

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kCsrfCookie[] = "fhirstone_launcher_csrf";
constexpr int kPatientLimit = 20;
constexpr int kEncounterLimit = 50;
constexpr size_t kMaxUrl = 2000;

constexpr char kCsp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'";
// The simulated EHR frames apps, which may live on any origin.
constexpr char kFrameCsp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self' http: https:; form-action 'self'; frame-ancestors 'self'; base-uri 'none'";

enum class Kind { kEhr, kStandalone, kBackend };

struct LaunchType {
  std::string_view value;
  Kind kind;
  std::string_view label;
  std::string_view hint;
  std::string_view scopes;  // the default scopes for this type
};

constexpr LaunchType kLaunchTypes[] = {
    {"ehr-provider", Kind::kEhr, "EHR launch: provider",
     "A practitioner opens the app from a patient's chart.",
     "launch openid fhirUser patient/*.rs offline_access"},
    {"ehr-patient", Kind::kEhr, "EHR launch: patient portal",
     "A patient opens the app from their patient portal.",
     "launch openid fhirUser patient/*.rs offline_access"},
    {"standalone-patient", Kind::kStandalone, "Standalone launch: patient",
     "The app starts on its own; a patient signs in.",
     "launch/patient openid fhirUser patient/*.rs offline_access"},
    {"standalone-provider", Kind::kStandalone, "Standalone launch: provider",
     "The app starts on its own; a practitioner signs in and picks a patient.",
     "launch/patient openid fhirUser user/*.rs"},
    {"backend", Kind::kBackend, "Backend service",
     "A server gets a token with client_credentials: no browser, no user.", "system/*.rs"},
};

struct Choice {
  std::string_view value;
  std::string_view label;
};

constexpr Choice kSimulations[] = {
    {"", "None"},
    {"authorize", "The authorize step fails"},
    {"token_expiry", "The access token expires after 10 seconds"},
    {"missing_context", "The launch context is missing (no patient, no encounter)"},
    {"scope_not_granted", "A requested scope is not granted"},
};

constexpr Choice kClientTypes[] = {
    {"public", "Public: no secret, PKCE"},
    {"confidential-symmetric", "Confidential, symmetric: a client secret"},
    {"confidential-asymmetric", "Confidential, asymmetric: private_key_jwt with its JWKS"},
};

const LaunchType* FindLaunchType(std::string_view value) {
  for (const LaunchType& t : kLaunchTypes)
    if (t.value == value) return &t;
  return nullptr;
}

const Choice* FindChoice(std::span<const Choice> choices, std::string_view value) {
  for (const Choice& c : choices)
    if (c.value == value) return &c;
  return nullptr;
}

// ---- requests ----

Params ParseForm(std::string_view text) {
  Params out;
  std::string target = "/?" + std::string(text);
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return out;
  for (auto p : parsed->params()) out.emplace_back(p.key, p.has_value ? p.value : std::string());
  return out;
}

std::optional<std::string> Get(const Params& params, std::string_view name) {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return std::nullopt;
}

std::string GetOr(const Params& params, std::string_view name) {
  return std::string(Trim(Get(params, name).value_or("")));
}

std::string Encode(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

std::string QueryString(const Params& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    if (!out.empty()) out += '&';
    out += Encode(k) + "=" + Encode(v);
  }
  return out;
}

// `uri` with `params` added to its query (before any fragment).
std::string WithParams(std::string uri, const Params& params) {
  std::string fragment;
  if (size_t hash = uri.find('#'); hash != std::string::npos) {
    fragment = uri.substr(hash);
    uri.resize(hash);
  }
  std::string query = QueryString(params);
  if (!query.empty()) uri += (uri.find('?') == std::string::npos ? "?" : "&") + query;
  return uri + fragment;
}

std::string_view CookieValue(const http::Request& request, std::string_view name) {
  for (auto part : Split(request.Header("Cookie"), ';')) {
    part = Trim(part);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return part.substr(eq + 1);
  }
  return {};
}

// A CSRF token as RandomToken makes them: base64url, 43 characters for 32 bytes.
bool IsToken(std::string_view s) {
  if (s.size() < 32 || s.size() > 100) return false;
  for (char c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

// An absolute http(s) URL without whitespace or control characters.
bool IsHttpUrl(std::string_view url) {
  if (url.empty() || url.size() > kMaxUrl) return false;
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f) return false;
  auto parsed = boost::urls::parse_absolute_uri(url.substr(0, url.find('#')));
  if (!parsed) return false;
  std::string scheme = AsciiLower(parsed->scheme());
  return (scheme == "http" || scheme == "https") && parsed->has_authority() &&
         !parsed->encoded_host().empty();
}

// "scheme://host[:port]" of an absolute http(s) URL, lower-cased; "" when it is not one.
std::string Origin(std::string_view url) {
  if (!IsHttpUrl(url)) return "";
  auto parsed = boost::urls::parse_absolute_uri(url.substr(0, url.find('#')));
  std::string origin = AsciiLower(parsed->scheme()) + "://" +
                       AsciiLower(std::string_view(parsed->encoded_host_and_port()));
  return origin;
}

std::string Host(std::string_view url) {
  std::string origin = Origin(url);
  size_t at = origin.find("://");
  return at == std::string::npos ? std::string() : origin.substr(at + 3);
}

// `s` as one single-quoted POSIX shell word.
std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// ---- responses ----

void SecurityHeaders(http::Response& r, bool frames_apps = false) {
  r.SetHeader("Content-Security-Policy", frames_apps ? kFrameCsp : kCsp);
  r.SetHeader("X-Frame-Options", "SAMEORIGIN");
  r.SetHeader("X-Content-Type-Options", "nosniff");
  r.SetHeader("Referrer-Policy", "no-referrer");
  r.SetHeader("Cache-Control", "no-store");
}

http::Response Page(int status, std::string_view name, const json::Value& data,
                    bool frames_apps = false) {
  http::Response r;
  r.status = status;
  auto html = web::RenderPage(name, data);
  if (html) {
    r.body = std::move(html).value();
  } else {
    spdlog::error("sandbox: page {} could not be rendered: {}", name, html.error().message());
    r.status = 500;
    r.body = "<!doctype html><title>Error</title><p>The page could not be rendered.</p>";
  }
  r.SetHeader("Content-Type", "text/html; charset=utf-8");
  SecurityHeaders(r, frames_apps);
  return r;
}

http::Response ErrorPage(int status, std::string heading, std::string message) {
  json::Value data = json::Value::EmptyObject();
  data.Set("heading", std::move(heading));
  data.Set("message", std::move(message));
  return Page(status, "error", data);
}

http::Response MethodNotAllowed(std::string_view allow) {
  http::Response r =
      ErrorPage(405, "Method not allowed", "This address answers " + std::string(allow) + " only.");
  r.SetHeader("Allow", std::string(allow));
  return r;
}

http::Response JsonResponse(const json::Value& body, int status = 200) {
  http::Response r;
  r.status = status;
  r.body = json::Write(body);
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-store");
  r.SetHeader("X-Content-Type-Options", "nosniff");
  return r;
}

// ---- patients ----

std::string SexLabel(std::string_view gender) {
  if (gender == "male") return "Male";
  if (gender == "female") return "Female";
  if (gender == "other") return "Other";
  if (gender == "unknown") return "Unknown";
  return std::string(gender);
}

// "42 years", "7 months" on `now_micros`; "" when `birth_date` is not a full date.
std::string AgeText(std::string_view birth_date, int64_t now_micros) {
  if (birth_date.size() < 10) return "";
  std::string today = FormatInstant(now_micros).substr(0, 10);
  auto by = ParseInt64(birth_date.substr(0, 4)), bm = ParseInt64(birth_date.substr(5, 2)),
       bd = ParseInt64(birth_date.substr(8, 2));
  auto ty = ParseInt64(std::string_view(today).substr(0, 4)),
       tm = ParseInt64(std::string_view(today).substr(5, 2)),
       td = ParseInt64(std::string_view(today).substr(8, 2));
  if (!by || !bm || !bd || !ty || !tm || !td) return "";
  int64_t months = (*ty - *by) * 12 + (*tm - *bm) - (*td < *bd ? 1 : 0);
  if (months < 0) return "";
  if (months < 24) return std::to_string(months) + (months == 1 ? " month" : " months");
  return std::to_string(months / 12) + " years";
}

// ---- the launcher's form ----

// The launcher's choices, read from a GET query or a POSTed form (the same field names).
struct LauncherForm {
  std::string type;
  std::string query;  // q: patient search
  std::string patient;
  std::string practitioner;  // a user_id
  std::string encounter;
  std::string app;  // a client_id; "" with app_given: another app, registered at launch
  bool app_given = false;
  std::string app_name;
  std::string launch_url;
  std::string redirect_uri;
  std::string client_type = "public";
  bool pkce = true;
  std::string jwks;  // a JWKS (JSON) or its https URL
  std::string scopes;
  bool need_patient_banner = false;
  std::string simulate;
  std::string simulate_scope;

  const LaunchType& Type() const {
    const LaunchType* t = FindLaunchType(type);
    return t ? *t : kLaunchTypes[0];
  }

  static LauncherForm From(const Params& p) {
    LauncherForm f;
    bool submitted = Get(p, "form").has_value();  // unticked checkboxes are absent then
    f.type = GetOr(p, "type");
    if (!FindLaunchType(f.type)) f.type = std::string(kLaunchTypes[0].value);
    f.query = GetOr(p, "q");
    f.patient = GetOr(p, "patient");
    f.practitioner = GetOr(p, "practitioner");
    f.encounter = GetOr(p, "encounter");
    if (auto app = Get(p, "app")) {
      f.app = std::string(Trim(*app));
      f.app_given = true;
    }
    f.app_name = GetOr(p, "app_name");
    f.launch_url = GetOr(p, "launch_url");
    f.redirect_uri = GetOr(p, "redirect_uri");
    if (auto t = Get(p, "client_type"); t && FindChoice(kClientTypes, *t)) f.client_type = *t;
    f.jwks = GetOr(p, "jwks");
    if (submitted) {
      f.pkce = Get(p, "pkce").has_value();
      f.need_patient_banner = Get(p, "need_patient_banner").has_value();
    } else {
      if (auto v = Get(p, "pkce")) f.pkce = *v != "false" && *v != "0";
      if (auto v = Get(p, "need_patient_banner")) f.need_patient_banner = *v == "true" || *v == "1";
    }
    f.simulate = GetOr(p, "simulate");
    f.simulate_scope = GetOr(p, "simulate_scope");
    // The scopes follow the launch type until the user edits them.
    f.scopes = GetOr(p, "scopes");
    std::string shown_default = GetOr(p, "scopes_default");
    if (f.scopes.empty() || (!shown_default.empty() && f.scopes == shown_default))
      f.scopes = std::string(f.Type().scopes);
    return f;
  }

  // The launcher's address with these choices (no secrets): "Back to the launcher".
  std::string Href() const {
    Params p{{"type", type},           {"patient", patient}, {"practitioner", practitioner},
             {"encounter", encounter}, {"app", app},         {"launch_url", launch_url}};
    return "/launcher?" + QueryString(p);
  }
};

}  // namespace

struct Sandbox::Impl {
  oauth::AuthStore& store;
  oauth::AuthorizationServer& auth;
  oauth::FhirHooks hooks;
  Clock& clock;
  SandboxOptions options;
  std::string fhir_base;
  bool secure_cookies = false;

  std::string Url(std::string_view path) const { return options.base_url + std::string(path); }

  // ---- users and patients ----

  struct Users {
    std::vector<oauth::User> practitioners;
    std::unordered_map<std::string, oauth::User> by_fhir_user;
  };

  Users LoadUsers() {
    Users u;
    auto users = store.ListUsers();
    if (!users) {
      spdlog::warn("sandbox: users could not be listed: {}", users.error().message());
      return u;
    }
    for (auto& user : *users) {
      if (std::string_view(user.fhir_user).starts_with("Practitioner/"))
        u.practitioners.push_back(user);
      u.by_fhir_user.emplace(user.fhir_user, user);
    }
    return u;
  }

  std::vector<oauth::FhirHooks::PatientSummary> SearchPatients(std::string_view text, int limit) {
    if (!hooks.search_patients) return {};
    auto found = hooks.search_patients(text, limit);
    if (!found) {
      spdlog::warn("sandbox: patient search failed: {}", found.error().message());
      return {};
    }
    return std::move(found).value();
  }

  // The summary (name, birth date, gender) of Patient/`id`; nullopt when it does not exist.
  std::optional<oauth::FhirHooks::PatientSummary> FindPatient(const std::string& id) {
    if (id.empty() || !hooks.patient_name) return std::nullopt;
    auto name = hooks.patient_name(id);
    if (!name) return std::nullopt;
    // The hooks search by name: try the whole name, then each of its words.
    std::vector<std::string> tries{*name};
    for (auto word : Split(*name, ' '))
      if (word.size() > 1 && tries.size() < 5) tries.emplace_back(word);
    for (const auto& text : tries)
      for (auto& p : SearchPatients(text, 100))
        if (p.id == id) return p;
    return oauth::FhirHooks::PatientSummary{id, *name, "", ""};
  }

  std::vector<oauth::FhirHooks::EncounterSummary> Encounters(const std::string& patient,
                                                             int limit) {
    if (patient.empty() || !hooks.search_encounters) return {};
    auto found = hooks.search_encounters(patient, limit);
    if (!found) return {};
    return std::move(found).value();
  }

  json::Value PatientJson(const oauth::FhirHooks::PatientSummary& p, const Users& users) {
    json::Value item = json::Value::EmptyObject();
    item.Set("id", p.id);
    item.Set("name", p.name);
    item.Set("birth_date", p.birth_date);
    item.Set("gender", p.gender);
    item.Set("sex", SexLabel(p.gender));
    item.Set("age", AgeText(p.birth_date, clock.NowMicros()));
    auto user = users.by_fhir_user.find("Patient/" + p.id);
    item.Set("portal_user", user == users.by_fhir_user.end() ? "" : user->second.username);
    return item;
  }

  static json::Value EncounterJson(const oauth::FhirHooks::EncounterSummary& e) {
    json::Value item = json::Value::EmptyObject();
    item.Set("id", e.id);
    item.Set("label", e.label.empty() ? "Encounter " + e.id : e.label);
    item.Set("start", e.start.substr(0, 10));
    item.Set("status", e.status);
    return item;
  }

  // ---- CSRF (double submit: a cookie and a form field, compared in constant time) ----

  // The browser's token, or a new one set as a cookie on `response`.
  std::string CsrfToken(const http::Request& request, bool* set_cookie) {
    std::string_view cookie = CookieValue(request, kCsrfCookie);
    *set_cookie = !IsToken(cookie);
    return *set_cookie ? oauth::RandomToken(32) : std::string(cookie);
  }

  void SetCsrfCookie(http::Response& response, const std::string& token) {
    std::string cookie =
        std::string(kCsrfCookie) + "=" + token + "; Path=/launcher; HttpOnly; SameSite=Strict";
    if (secure_cookies) cookie += "; Secure";
    response.headers.emplace_back("Set-Cookie", std::move(cookie));
  }

  bool CsrfOk(const http::Request& request, const Params& form) {
    std::string_view cookie = CookieValue(request, kCsrfCookie);
    std::string field = GetOr(form, "csrf");
    return IsToken(cookie) && !field.empty() && oauth::ConstantTimeEquals(field, cookie);
  }

  // ---- GET / ----

  http::Response Home() {
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Home");
    data.Set("version", options.software_version);
    data.Set("fhir_base", fhir_base);
    data.Set("metadata_href", "/fhir/metadata");
    data.Set("smart_config_href", "/fhir/.well-known/smart-configuration");
    data.Set("smart_config", fhir_base + "/.well-known/smart-configuration");
    data.Set("openid_config_href", "/fhir/.well-known/openid-configuration");
    data.Set("launcher", options.launcher_enabled);
    json::Value apps = json::Value::EmptyArray();
    if (auto clients = store.ListClients()) {
      for (const auto& c : *clients) {
        json::Value app = json::Value::EmptyObject();
        app.Set("name", c.name);
        app.Set("client_id", c.client_id);
        app.Set("type", ClientTypeLabel(c.type));
        if (IsHttpUrl(c.launch_uri))
          app.Set("launch_href", WithParams(c.launch_uri, {{"iss", fhir_base}}));
        if (options.launcher_enabled)
          app.Set("launcher_href", "/launcher?" + QueryString({{"app", c.client_id}}));
        apps.PushBack(std::move(app));
      }
    } else {
      spdlog::warn("sandbox: clients could not be listed: {}", clients.error().message());
    }
    data.Set("has_apps", !apps.as_array().empty());
    data.Set("apps", std::move(apps));
    json::Value users = json::Value::EmptyArray();
    for (const DemoUser& u : options.demo_users) {
      json::Value user = json::Value::EmptyObject();
      user.Set("username", u.username);
      user.Set("password", u.password);
      user.Set("display", u.display);
      user.Set("fhir_user", u.fhir_user);
      user.Set("role", u.role == "practitioner" ? "Practitioner"
                       : u.role == "patient"    ? "Patient"
                                                : u.role);
      users.PushBack(std::move(user));
    }
    data.Set("demo", !users.as_array().empty());
    data.Set("demo_users", std::move(users));
    http::Response r = Page(200, "home", data);
    r.SetHeader("Cache-Control", "no-cache");
    return r;
  }

  static std::string ClientTypeLabel(oauth::ClientType type) {
    switch (type) {
      case oauth::ClientType::kPublic:
        return "Public";
      case oauth::ClientType::kConfidentialSymmetric:
        return "Confidential (client secret)";
      case oauth::ClientType::kConfidentialAsymmetric:
        return "Confidential (private_key_jwt)";
    }
    return "";
  }

  // ---- GET /launcher and its re-renders ----

  // The app a launcher form preselects: the sample app, else the first with a launch URL.
  static std::string DefaultApp(const std::vector<oauth::Client>& clients) {
    for (const auto& c : clients)
      if (c.client_id == "vitals") return c.client_id;
    for (const auto& c : clients)
      if (!c.launch_uri.empty()) return c.client_id;
    return "";
  }

  http::Response LauncherPage(LauncherForm f, const std::string& csrf, std::string error,
                              int status) {
    Users users = LoadUsers();
    auto listed = store.ListClients();
    std::vector<oauth::Client> clients =
        listed ? std::move(listed).value() : std::vector<oauth::Client>{};
    if (!f.app_given) f.app = DefaultApp(clients);
    bool custom = true;
    for (const auto& c : clients) custom &= c.client_id != f.app;
    if (custom) f.app.clear();

    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Launcher");
    data.Set("csrf", csrf);
    data.Set("error", std::move(error));
    data.Set("query", f.query);
    data.Set("scopes", f.scopes);
    data.Set("scopes_default", std::string(f.Type().scopes));

    json::Value types = json::Value::EmptyArray();
    for (const LaunchType& t : kLaunchTypes) {
      json::Value item = json::Value::EmptyObject();
      item.Set("value", t.value);
      item.Set("label", t.label);
      item.Set("hint", t.hint);
      item.Set("default_scopes", t.scopes);
      item.Set("kind", t.kind == Kind::kEhr       ? "ehr"
                       : t.kind == Kind::kBackend ? "backend"
                                                  : "standalone");
      item.Set("checked", t.value == f.type);
      types.PushBack(std::move(item));
    }
    data.Set("launch_types", std::move(types));

    // Patients: the search results, with the chosen one kept when the search leaves it out.
    std::vector<oauth::FhirHooks::PatientSummary> patients = SearchPatients(f.query, kPatientLimit);
    if (!f.patient.empty()) {
      bool listed_chosen = false;
      for (const auto& p : patients) listed_chosen |= p.id == f.patient;
      if (!listed_chosen) {
        if (auto chosen = FindPatient(f.patient))
          patients.insert(patients.begin(), *chosen);
        else
          f.patient.clear();
      }
    }
    if (f.patient.empty() && !patients.empty()) {
      // Preselect the first patient (for a patient's launch, the first with an account).
      f.patient = patients.front().id;
      if (f.type == "ehr-patient" || f.type == "standalone-patient") {
        for (auto it = patients.rbegin(); it != patients.rend(); ++it)
          if (users.by_fhir_user.contains("Patient/" + it->id)) f.patient = it->id;
      }
    }
    json::Value patient_list = json::Value::EmptyArray();
    for (const auto& p : patients) {
      json::Value item = PatientJson(p, users);
      item.Set("checked", p.id == f.patient);
      if (p.id == f.patient) data.Set("patient_display", p.name);
      patient_list.PushBack(std::move(item));
    }
    data.Set("has_patients", !patient_list.as_array().empty());
    data.Set("patients", std::move(patient_list));

    json::Value encounters = json::Value::EmptyArray();
    for (const auto& e : Encounters(f.patient, kEncounterLimit)) {
      json::Value item = EncounterJson(e);
      item.Set("selected", e.id == f.encounter);
      encounters.PushBack(std::move(item));
    }
    data.Set("encounters", std::move(encounters));

    bool practitioner_found = false;
    for (const auto& u : users.practitioners) practitioner_found |= u.user_id == f.practitioner;
    if (!practitioner_found && !users.practitioners.empty())
      f.practitioner = users.practitioners.front().user_id;
    json::Value practitioners = json::Value::EmptyArray();
    for (const auto& u : users.practitioners) {
      json::Value item = json::Value::EmptyObject();
      item.Set("user_id", u.user_id);
      item.Set("username", u.username);
      item.Set("display", u.display.empty() ? u.username : u.display);
      item.Set("fhir_user", u.fhir_user);
      item.Set("selected", u.user_id == f.practitioner);
      practitioners.PushBack(std::move(item));
    }
    data.Set("has_practitioners", !practitioners.as_array().empty());
    data.Set("practitioners", std::move(practitioners));

    json::Value apps = json::Value::EmptyArray();
    for (const auto& c : clients) {
      json::Value item = json::Value::EmptyObject();
      item.Set("client_id", c.client_id);
      item.Set("name", c.name);
      item.Set("type", std::string(oauth::ClientTypeName(c.type)));
      item.Set("selected", c.client_id == f.app);
      apps.PushBack(std::move(item));
    }
    data.Set("apps", std::move(apps));
    data.Set("custom", custom);
    data.Set("app_name", f.app_name);
    data.Set("launch_url", f.launch_url);
    data.Set("redirect_uri", f.redirect_uri);
    data.Set("jwks", f.jwks);
    data.Set("pkce", f.pkce);
    json::Value client_types = json::Value::EmptyArray();
    for (const Choice& c : kClientTypes) {
      json::Value item = json::Value::EmptyObject();
      item.Set("value", c.value);
      item.Set("label", c.label);
      item.Set("selected", c.value == f.client_type);
      client_types.PushBack(std::move(item));
    }
    data.Set("client_types", std::move(client_types));
    data.Set("need_patient_banner", f.need_patient_banner);
    json::Value simulations = json::Value::EmptyArray();
    for (const Choice& c : kSimulations) {
      json::Value item = json::Value::EmptyObject();
      item.Set("value", c.value);
      item.Set("label", c.label);
      item.Set("selected", c.value == f.simulate);
      simulations.PushBack(std::move(item));
    }
    data.Set("simulations", std::move(simulations));
    data.Set("simulate_scope", f.simulate_scope);
    return Page(status, "launcher", data);
  }

  http::Response Launcher(http::Request& request) {
    bool set_cookie = false;
    std::string csrf = CsrfToken(request, &set_cookie);
    http::Response r = LauncherPage(LauncherForm::From(ParseForm(request.Query())), csrf, "", 200);
    if (set_cookie) SetCsrfCookie(r, csrf);
    return r;
  }

  // ---- POST /launcher/launch ----

  http::Response LaunchPost(http::Request& request) {
    Params form = ParseForm(request.body);
    if (!CsrfOk(request, form))
      return ErrorPage(403, "The form has expired",
                       "Its security token is missing or wrong. Open the launcher again and "
                       "retry.");
    std::string csrf(CookieValue(request, kCsrfCookie));
    LauncherForm f = LauncherForm::From(form);
    std::string step = GetOr(form, "step");
    if (step == "search" || step == "refresh") return LauncherPage(std::move(f), csrf, "", 200);
    auto launched = Launch(f);
    if (!launched) {
      const Error& e = launched.error();
      int status = e.code() == ErrorCode::kInternal ? 500 : 400;
      return LauncherPage(std::move(f), csrf, e.message(), status);
    }
    return Page(200, "launch_result", *launched);
  }

  // The client an unregistered app gets: one registered earlier by the launcher with exactly the
  // same settings, else a new one (whose secret, for confidential-symmetric, is shown once).
  struct AppClient {
    oauth::Client client;
    bool registered_now = false;
    std::string client_secret;
  };

  Result<oauth::Registration> RegistrationFrom(const LauncherForm& f,
                                               const std::string& launch_url) {
    oauth::Registration reg;
    reg.name = f.app_name.empty() ? "App at " + Host(launch_url) : f.app_name;
    if (reg.name == "App at ") reg.name = "Backend service";
    reg.type = f.client_type;
    if (!f.redirect_uri.empty()) reg.redirect_uris.push_back(f.redirect_uri);
    reg.scopes = f.scopes;
    reg.launch_uri = launch_url;
    reg.require_pkce = f.pkce;
    if (f.client_type == "confidential-asymmetric") {
      if (f.jwks.empty())
        return Error::Invalid(
            "A confidential-asymmetric app needs its public keys: paste its JWKS or its URL.");
      if (f.jwks.starts_with("http://") || f.jwks.starts_with("https://")) {
        reg.jwks_uri = f.jwks;
      } else {
        auto jwks = json::Parse(f.jwks);
        if (!jwks || !jwks->is_object())
          return Error::Invalid(
              "The JWKS is not a JSON object: " +
              (jwks ? std::string("expected {\"keys\": [...]}") : jwks.error().message()));
        reg.jwks = std::move(jwks).value();
      }
    }
    return reg;
  }

  Result<AppClient> RegisterOrReuse(const oauth::Registration& reg) {
    auto scopes = scopes::Parse(reg.scopes);
    if (!scopes) return std::move(scopes).error();
    bool reusable = reg.jwks.is_null();  // inline keys are normalised on registration
    if (reusable) {
      auto clients = store.ListClients();
      if (!clients) return std::move(clients).error();
      for (const auto& c : *clients) {
        if (c.name == reg.name && c.launch_uri == reg.launch_uri &&
            c.redirect_uris == reg.redirect_uris && oauth::ClientTypeName(c.type) == reg.type &&
            c.require_pkce == reg.require_pkce && c.allowed_scopes == scopes->ToString() &&
            c.jwks_uri == reg.jwks_uri && c.jwks.empty())
          return AppClient{c, false, ""};
      }
    }
    auto registered = oauth::RegisterClient(store, reg);
    if (!registered) return std::move(registered).error();
    auto stored = store.FindClient(registered->client_id);
    if (!stored) return std::move(stored).error();
    if (!*stored) return Error::Internal("The app was registered but cannot be found");
    return AppClient{**stored, true, registered->client_secret};
  }

  json::Value ScopeList(std::string_view scope_string) {
    json::Value list = json::Value::EmptyArray();
    for (auto token : Split(scope_string, ' ')) {
      if (token.empty()) continue;
      json::Value item = json::Value::EmptyObject();
      item.Set("scope", token);
      item.Set("description", scopes::Describe(token));
      list.PushBack(std::move(item));
    }
    return list;
  }

  // The result page's data for a launch, or why it cannot be made (Error::Invalid).
  Result<json::Value> Launch(const LauncherForm& f) {
    const LaunchType* type = FindLaunchType(f.type);
    if (!type) return Error::Invalid("Choose a launch type.");
    const bool ehr = type->kind == Kind::kEhr;
    const bool backend = type->kind == Kind::kBackend;

    // Simulated errors travel in the launch value, which only an EHR launch has.
    json::Value simulate;
    if (!f.simulate.empty()) {
      if (!FindChoice(kSimulations, f.simulate)) return Error::Invalid("Unknown simulated error.");
      if (!ehr)
        return Error::Invalid(
            "Simulated errors apply to EHR launches only: they travel in the launch value, which "
            "a standalone launch or a backend service does not have. Choose “None” or an EHR "
            "launch.");
      simulate = json::Value::EmptyObject();
      simulate.Set("error", f.simulate);
      if (f.simulate == "scope_not_granted") {
        auto parsed = scopes::Parse(f.simulate_scope);
        if (f.simulate_scope.empty() || !parsed || parsed->tokens.size() != 1)
          return Error::Invalid(
              "Name the one scope that is not granted (e.g. patient/*.rs), exactly as the app "
              "requests it.");
        simulate.Set("scope", f.simulate_scope);
      }
    }

    // The app: a registered client, or one registered now from the form.
    std::optional<oauth::Client> client;
    if (!f.app.empty()) {
      auto found = store.FindClient(f.app);
      if (!found) return std::move(found).error();
      if (!*found) return Error::Invalid("No app is registered with client_id " + f.app + ".");
      client = **found;
    }
    std::string launch_url = !f.launch_url.empty() ? f.launch_url
                             : client              ? client->launch_uri
                                                   : std::string();
    if (!launch_url.empty() && !IsHttpUrl(launch_url))
      return Error::Invalid("The launch URL must be an absolute http or https URL.");
    if (!backend && launch_url.empty())
      return Error::Invalid(client ? client->name +
                                         " has no launch URL registered: enter the app's launch "
                                         "URL."
                                   : "Enter the launch URL of the app.");
    if (backend &&
        (client ? client->type == oauth::ClientType::kPublic : f.client_type == "public"))
      return Error::Invalid(
          "A backend service authenticates itself: choose a confidential client (a client "
          "secret or private_key_jwt), not a public one.");

    // The EHR's user and context.
    Users users = LoadUsers();
    std::optional<oauth::FhirHooks::PatientSummary> patient;
    std::optional<oauth::User> user;
    std::string encounter_label;
    if (ehr) {
      if (f.patient.empty())
        return Error::Invalid(
            "Choose a patient: an EHR launch opens the app in a patient's chart.");
      patient = FindPatient(f.patient);
      if (!patient) return Error::Invalid("Patient/" + f.patient + " does not exist.");
      if (!f.encounter.empty()) {
        for (const auto& e : Encounters(f.patient, 1000))
          if (e.id == f.encounter) encounter_label = EncounterJson(e).GetString("label");
        if (encounter_label.empty())
          return Error::Invalid("Encounter/" + f.encounter + " is not an encounter of " +
                                patient->name + ".");
      }
      if (type->value == "ehr-provider") {
        for (const auto& u : users.practitioners)
          if (u.user_id == f.practitioner) user = u;
        if (!user) return Error::Invalid("Choose the practitioner who launches the app.");
      } else {
        auto found = users.by_fhir_user.find("Patient/" + f.patient);
        if (found == users.by_fhir_user.end())
          return Error::Invalid(
              patient->name + " (Patient/" + f.patient +
              ") has no user account, and a patient-portal launch signs the patient in. Choose "
              "a patient with a portal account, or add one with `fhirstone user add "
              "--fhir-user Patient/" +
              f.patient + "`.");
        user = found->second;
      }
    }

    AppClient app;
    if (client) {
      app.client = *client;
    } else {
      auto reg = RegistrationFrom(f, launch_url);
      if (!reg) return std::move(reg).error();
      auto made = RegisterOrReuse(*reg);
      if (!made) return std::move(made).error();
      app = std::move(made).value();
    }
    const oauth::Client& c = app.client;

    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Launch " + c.name);
    data.Set("app_name", c.name);
    data.Set("client_id", c.client_id);
    data.Set("client_type", std::string(oauth::ClientTypeName(c.type)));
    data.Set("launch_type", type->label);
    data.Set("registered_now", app.registered_now);
    data.Set("reused", !client && !app.registered_now);
    data.Set("client_secret", app.client_secret);
    data.Set("symmetric", c.type == oauth::ClientType::kConfidentialSymmetric);
    data.Set("allowed_scopes", ScopeList(c.allowed_scopes));
    LauncherForm again = f;  // the app is registered now
    again.app = c.client_id;
    data.Set("again_href", again.Href());
    data.Set("fhir_base", fhir_base);
    data.Set("token_endpoint", Url("/auth/token"));

    if (backend) {
      std::string scope = f.scopes.empty() ? c.allowed_scopes : f.scopes;
      data.Set("backend", true);
      data.Set("scope", scope);
      std::string curl = "curl -X POST " + ShellQuote(Url("/auth/token")) + " \\\n";
      if (c.type == oauth::ClientType::kConfidentialSymmetric) {
        std::string secret = app.client_secret.empty() ? "CLIENT_SECRET" : app.client_secret;
        curl += "  -u " + ShellQuote(c.client_id + ":" + secret) + " \\\n";
      }
      curl += "  -d grant_type=client_credentials \\\n";
      curl += "  --data-urlencode " + ShellQuote("scope=" + scope);
      if (c.type == oauth::ClientType::kConfidentialAsymmetric) {
        curl +=
            " \\\n  -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:"
            "jwt-bearer \\\n  -d client_assertion=SIGNED_JWT";
        data.Set("asymmetric", true);
      }
      data.Set("curl", curl);
      data.Set("fhir_curl", "curl -H 'Authorization: Bearer ACCESS_TOKEN' " +
                                ShellQuote(fhir_base + "/Patient?_count=5"));
      return data;
    }

    std::string app_url;
    Params frame{{"app_url", ""}, {"client_id", c.client_id}};
    if (ehr) {
      json::Value context = json::Value::EmptyObject();
      context.Set("user", user->user_id);
      context.Set("patient", f.patient);
      if (!f.encounter.empty()) context.Set("encounter", f.encounter);
      context.Set("need_patient_banner", f.need_patient_banner);
      if (!simulate.is_null()) context.Set("simulate", simulate);
      auto launch = auth.CreateLaunch(context);
      if (!launch) return std::move(launch).error();
      app_url = WithParams(launch_url, {{"iss", fhir_base}, {"launch", *launch}});
      data.Set("ehr", true);
      data.Set("user_display", user->display.empty() ? user->username : user->display);
      data.Set("patient_display", patient->name);
      data.Set("patient_id", patient->id);
      data.Set("encounter_display", encounter_label);
      data.Set("need_patient_banner", f.need_patient_banner);
      const Choice* sim = FindChoice(kSimulations, f.simulate);
      data.Set("simulation", sim && !f.simulate.empty() ? std::string(sim->label) : "");
      data.Set("simulate_scope", f.simulate == "scope_not_granted" ? f.simulate_scope : "");
      frame.emplace_back("user", user->user_id);
      frame.emplace_back("patient", f.patient);
      frame.emplace_back("encounter", f.encounter);
      if (!f.need_patient_banner) frame.emplace_back("banner", "1");
    } else {
      app_url = WithParams(launch_url, {{"iss", fhir_base}});
      data.Set("standalone", true);
      data.Set("sign_in", SignInHint(*type, f, users));
      if (type->value == "standalone-provider") frame.emplace_back("user", f.practitioner);
    }
    frame[0].second = app_url;
    data.Set("app_url", app_url);
    data.Set("ehr_href", "/launcher/ehr?" + QueryString(frame));
    return data;
  }

  // Whom to sign in as after a standalone launch (with the password in demo mode).
  std::string SignInHint(const LaunchType& type, const LauncherForm& f, const Users& users) {
    std::optional<oauth::User> who;
    if (type.value == "standalone-patient") {
      if (auto it = users.by_fhir_user.find("Patient/" + f.patient); it != users.by_fhir_user.end())
        who = it->second;
    } else {
      for (const auto& u : users.practitioners)
        if (u.user_id == f.practitioner) who = u;
    }
    std::string hint = type.value == "standalone-patient"
                           ? "The app asks the user to sign in: sign in as a patient"
                           : "The app asks the user to sign in: sign in as a practitioner, then "
                             "pick a patient";
    if (!who) return hint + ".";
    hint = type.value == "standalone-patient"
               ? "The app asks the user to sign in: sign in as " + who->username
               : "The app asks the user to sign in: sign in as " + who->username +
                     ", then pick a patient";
    for (const DemoUser& d : options.demo_users)
      if (d.username == who->username) hint += " (password: " + d.password + ")";
    return hint + ".";
  }

  // ---- GET /launcher/ehr: the simulated EHR ----

  // Whether the EHR frame may show `url`: this server's own pages or a registered app's.
  bool MayFrame(std::string_view url) {
    std::string origin = Origin(url);
    if (origin.empty()) return false;
    if (origin == Origin(options.base_url)) return true;
    auto clients = store.ListClients();
    if (!clients) return false;
    for (const auto& c : *clients) {
      if (Origin(c.launch_uri) == origin) return true;
      for (const auto& uri : c.redirect_uris)
        if (Origin(uri) == origin) return true;
    }
    return false;
  }

  http::Response EhrFrame(http::Request& request) {
    Params q = ParseForm(request.Query());
    std::string app_url = GetOr(q, "app_url");
    if (!IsHttpUrl(app_url))
      return ErrorPage(400, "No app to open", "The simulated EHR needs the app's launch link.");
    if (!MayFrame(app_url))
      return ErrorPage(400, "Not a registered app",
                       "The simulated EHR opens registered apps only: register the app, or open "
                       "the link in a new window.");
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Simulated EHR");
    data.Set("app_url", app_url);
    std::string app_name = "The app";
    if (std::string id = GetOr(q, "client_id"); !id.empty()) {
      auto c = store.FindClient(id);
      if (c && *c) app_name = (*c)->name;
    }
    data.Set("app_name", app_name);
    if (std::string id = GetOr(q, "user"); !id.empty()) {
      auto u = store.FindUser(id);
      if (u && *u) data.Set("user_display", (*u)->display.empty() ? (*u)->username : (*u)->display);
    }
    std::string patient_id = GetOr(q, "patient");
    bool banner = GetOr(q, "banner") == "1";
    if (!patient_id.empty()) {
      if (auto p = FindPatient(patient_id)) {
        json::Value patient = json::Value::EmptyObject();
        patient.Set("name", p->name);
        patient.Set("id", p->id);
        patient.Set("birth_date", p->birth_date);
        patient.Set("sex", SexLabel(p->gender));
        patient.Set("age", AgeText(p->birth_date, clock.NowMicros()));
        if (std::string enc = GetOr(q, "encounter"); !enc.empty()) {
          for (const auto& e : Encounters(patient_id, 1000))
            if (e.id == enc) {
              json::Value item = EncounterJson(e);
              patient.Set("encounter", std::string(item.GetString("label")) +
                                           (e.start.empty() ? "" : " · " + e.start.substr(0, 10)));
            }
        }
        if (banner)
          data.Set("banner", std::move(patient));
        else
          data.Set("app_shows_banner", true);  // need_patient_banner: true
      }
    }
    return Page(200, "ehr_frame", data, /*frames_apps=*/true);
  }

  // ---- /launcher/apps: register an app ----

  struct AppForm {
    std::string name, client_id, launch_url, redirect_uris, client_type = "public", scopes, jwks;
    bool pkce = true;

    static AppForm From(const Params& p) {
      AppForm f;
      f.name = GetOr(p, "name");
      f.client_id = GetOr(p, "client_id");
      f.launch_url = GetOr(p, "launch_url");
      f.redirect_uris = GetOr(p, "redirect_uris");
      if (auto t = Get(p, "client_type"); t && FindChoice(kClientTypes, *t)) f.client_type = *t;
      f.scopes = GetOr(p, "scopes");
      f.jwks = GetOr(p, "jwks");
      f.pkce = Get(p, "form").has_value() ? Get(p, "pkce").has_value() : true;
      return f;
    }
  };

  static constexpr std::string_view kAppScopes =
      "launch launch/patient openid fhirUser patient/*.rs offline_access";

  http::Response AppsPage(const AppForm& f, const std::string& csrf, std::string error,
                          int status) {
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "Register an app");
    data.Set("csrf", csrf);
    data.Set("error", std::move(error));
    data.Set("name", f.name);
    data.Set("client_id", f.client_id);
    data.Set("launch_url", f.launch_url);
    data.Set("redirect_uris", f.redirect_uris);
    data.Set("scopes", f.scopes.empty() ? std::string(kAppScopes) : f.scopes);
    data.Set("jwks", f.jwks);
    data.Set("pkce", f.pkce);
    json::Value types = json::Value::EmptyArray();
    for (const Choice& c : kClientTypes) {
      json::Value item = json::Value::EmptyObject();
      item.Set("value", c.value);
      item.Set("label", c.label);
      item.Set("selected", c.value == f.client_type);
      types.PushBack(std::move(item));
    }
    data.Set("client_types", std::move(types));
    return Page(status, "app_register", data);
  }

  http::Response Apps(http::Request& request) {
    bool set_cookie = false;
    std::string csrf = CsrfToken(request, &set_cookie);
    http::Response r = AppsPage(AppForm{}, csrf, "", 200);
    if (set_cookie) SetCsrfCookie(r, csrf);
    return r;
  }

  http::Response RegisterApp(http::Request& request) {
    Params form = ParseForm(request.body);
    if (!CsrfOk(request, form))
      return ErrorPage(403, "The form has expired",
                       "Its security token is missing or wrong. Open the form again and retry.");
    std::string csrf(CookieValue(request, kCsrfCookie));
    AppForm f = AppForm::From(form);
    oauth::Registration reg;
    reg.name = f.name;
    reg.client_id = f.client_id;
    reg.type = f.client_type;
    for (auto line : Split(f.redirect_uris, '\n')) {
      line = Trim(line);
      if (!line.empty()) reg.redirect_uris.emplace_back(line);
    }
    reg.scopes = f.scopes;
    reg.require_pkce = f.pkce;
    if (!f.launch_url.empty() && !IsHttpUrl(f.launch_url))
      return AppsPage(f, csrf, "The launch URL must be an absolute http or https URL.", 400);
    reg.launch_uri = f.launch_url;
    if (!f.jwks.empty()) {
      if (f.jwks.starts_with("http://") || f.jwks.starts_with("https://")) {
        reg.jwks_uri = f.jwks;
      } else {
        auto jwks = json::Parse(f.jwks);
        if (!jwks || !jwks->is_object())
          return AppsPage(f, csrf, "The JWKS is not a JSON object ({\"keys\": [...]}).", 400);
        reg.jwks = std::move(jwks).value();
      }
    }
    auto registered = oauth::RegisterClient(store, reg);
    if (!registered) {
      const Error& e = registered.error();
      int status = e.code() == ErrorCode::kConflict   ? 409
                   : e.code() == ErrorCode::kInternal ? 500
                                                      : 400;
      return AppsPage(f, csrf, e.message(), status);
    }
    auto stored = store.FindClient(registered->client_id);
    if (!stored || !*stored)
      return ErrorPage(500, "Server error", "The app was registered but cannot be found.");
    const oauth::Client& c = **stored;
    json::Value data = json::Value::EmptyObject();
    data.Set("title", "App registered");
    data.Set("app_name", c.name);
    data.Set("client_id", c.client_id);
    data.Set("client_type", std::string(oauth::ClientTypeName(c.type)));
    data.Set("client_secret", registered->client_secret);
    data.Set("pkce", c.require_pkce || c.type == oauth::ClientType::kPublic);
    data.Set("launch_url", c.launch_uri);
    json::Value uris = json::Value::EmptyArray();
    for (const auto& u : c.redirect_uris) {
      json::Value item = json::Value::EmptyObject();
      item.Set("uri", u);
      uris.PushBack(std::move(item));
    }
    data.Set("redirect_uris", std::move(uris));
    data.Set("allowed_scopes", ScopeList(c.allowed_scopes));
    data.Set("fhir_base", fhir_base);
    data.Set("launcher_href", "/launcher?" + QueryString({{"app", c.client_id}}));
    return Page(201, "app_registered", data);
  }

  // ---- JSON for the launcher's script ----

  http::Response PatientsJson(http::Request& request) {
    Params q = ParseForm(request.Query());
    Users users = LoadUsers();
    json::Value list = json::Value::EmptyArray();
    for (const auto& p : SearchPatients(GetOr(q, "q"), kPatientLimit))
      list.PushBack(PatientJson(p, users));
    json::Value body = json::Value::EmptyObject();
    body.Set("patients", std::move(list));
    return JsonResponse(body);
  }

  http::Response EncountersJson(http::Request& request) {
    Params q = ParseForm(request.Query());
    json::Value list = json::Value::EmptyArray();
    for (const auto& e : Encounters(GetOr(q, "patient"), kEncounterLimit))
      list.PushBack(EncounterJson(e));
    json::Value body = json::Value::EmptyObject();
    body.Set("encounters", std::move(list));
    return JsonResponse(body);
  }

  static http::Response Script() {
    http::Response r;
    r.body = std::string(LauncherScript());
    r.SetHeader("Content-Type", "text/javascript; charset=utf-8");
    r.SetHeader("Cache-Control", "public, max-age=300");
    r.SetHeader("X-Content-Type-Options", "nosniff");
    return r;
  }

  // ---- routing ----

  http::Response Handle(http::Request& request) {
    std::string_view path = request.Path();
    const bool get = request.method == "GET" || request.method == "HEAD";
    const bool post = request.method == "POST";
    if (path == "/") return get ? Home() : MethodNotAllowed("GET, HEAD");
    if (!options.launcher_enabled)
      return ErrorPage(404, "Not found",
                       "The launcher is available in sandbox mode only (fhirstone serve --demo).");
    if (path == "/launcher") return get ? Launcher(request) : MethodNotAllowed("GET, HEAD");
    if (path == "/launcher/launch") return post ? LaunchPost(request) : MethodNotAllowed("POST");
    if (path == "/launcher/apps") {
      if (get) return Apps(request);
      if (post) return RegisterApp(request);
      return MethodNotAllowed("GET, HEAD, POST");
    }
    if (path == "/launcher/ehr") return get ? EhrFrame(request) : MethodNotAllowed("GET, HEAD");
    if (path == "/launcher/patients")
      return get ? PatientsJson(request) : MethodNotAllowed("GET, HEAD");
    if (path == "/launcher/encounters")
      return get ? EncountersJson(request) : MethodNotAllowed("GET, HEAD");
    if (path == "/launcher/launcher.js") return get ? Script() : MethodNotAllowed("GET, HEAD");
    return ErrorPage(404, "Not found", "There is no page here.");
  }
};

Sandbox::Sandbox(oauth::AuthStore& store, oauth::AuthorizationServer& auth, oauth::FhirHooks hooks,
                 Clock& clock, SandboxOptions options) {
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  std::string fhir_base = options.base_url + "/fhir";
  bool secure = options.base_url.starts_with("https://");
  impl_.reset(new Impl{store, auth, std::move(hooks), clock, std::move(options),
                       std::move(fhir_base), secure});
}

Sandbox::~Sandbox() = default;

bool Sandbox::Handles(std::string_view path) const {
  return path == "/" || path == "/launcher" || path.starts_with("/launcher/");
}

http::Response Sandbox::Handle(http::Request& request) {
  try {
    return impl_->Handle(request);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: unexpected exception: {}", request.method, request.Path(), e.what());
    return ErrorPage(500, "Server error", "The server failed to process the request.");
  }
}

}  // namespace fhirstone::sandbox
