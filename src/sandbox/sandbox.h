// Sandbox: the browser-facing pages of Fhirstone's sandbox for SMART app developers.
//   GET  /                      the home page: what the server is, its endpoints, the registered
//                               apps and, in demo mode, the demo users with their passwords
//   GET  /launcher              the launcher form (launch type, patient, practitioner, encounter,
//                               app, client type, PKCE, scopes, patient banner, simulated errors)
//   POST /launcher/launch       re-renders the form (step=search|refresh) or launches: makes an
//                               EHR launch value (AuthorizationServer::CreateLaunch), registers an
//                               unregistered app on the fly, answers the launch link (or, for a
//                               backend service, how to get a token)
//   GET  /launcher/ehr          the simulated EHR: a patient banner and the app in an <iframe>
//   GET  /launcher/apps         the form that registers an app; POST registers it and shows its
//                               client_id and (confidential-symmetric) its secret, once
//   GET  /launcher/patients     JSON for the search-as-you-type script (?q=)
//   GET  /launcher/encounters   JSON: a patient's encounters (?patient=)
//   GET  /launcher/launcher.js  the launcher's optional script (every page works without it)
// Every /launcher page answers 404 unless SandboxOptions::launcher_enabled. POSTs are protected
// against CSRF by a double-submit token (an HttpOnly SameSite=Strict cookie and a form field).
// Pages send a Content-Security-Policy without 'unsafe-inline'; secrets (client secrets) appear
// only in the body of a POST's answer, never in a URL.
// Thread-safe: the Sandbox holds no mutable state; the store and the authorization server it
// uses are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/oauth/auth_store.h"
#include "auth/oauth/authorization_server.h"
#include "common/clock.h"
#include "http/message.h"

namespace fhirstone::sandbox {

// A demo account shown on the home page in demo mode.
struct DemoUser {
  std::string username, password, display, fhir_user, role;  // role: "practitioner" | "patient"
};

struct SandboxOptions {
  std::string base_url;  // e.g. http://localhost:8080 ; FHIR base is base_url + "/fhir"
  std::string software_version;
  bool launcher_enabled = false;     // true in demo/sandbox mode; when false /launcher answers 404
  std::vector<DemoUser> demo_users;  // shown on the home page (demo mode only)
};

class Sandbox {
 public:
  // All references outlive the Sandbox.
  Sandbox(oauth::AuthStore& store, oauth::AuthorizationServer& auth, oauth::FhirHooks hooks,
          Clock& clock, SandboxOptions options);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Whether `path` (without query) is one of the sandbox's: "/", "/launcher", "/launcher/...".
  bool Handles(std::string_view path) const;
  // Answers a request for a path that Handles() accepts. Thread-safe.
  http::Response Handle(http::Request& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhirstone::sandbox
