// The sandbox's pages against a real authorization server and store (SQLite in a temporary
// file), called directly without a network: the home page, the launcher (patient search, CSRF,
// EHR, standalone and backend launches, simulated errors, on-the-fly registration), app
// registration, the simulated EHR frame and the security headers.
#include "sandbox/sandbox.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "auth/oauth/crypto.h"
#include "auth/oauth/registration.h"
#include "auth/oauth/tokens.h"
#include "common/json.h"
#include "common/strings.h"
#include "db/database.h"
#include "support/fakes.h"

namespace fhirstone::sandbox {
namespace {

namespace fs = std::filesystem;
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kBase[] = "http://sandbox.test";
constexpr char kFhirBase[] = "http://sandbox.test/fhir";
constexpr char kVitalsLaunch[] = "http://sandbox.test/apps/vitals/launch.html";
constexpr char kVitalsRedirect[] = "http://sandbox.test/apps/vitals/index.html";

std::string Encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Form(const Params& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += Encode(k) + "=" + Encode(v);
  }
  return out;
}

std::string Decode(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size()) {
      out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += v[i] == '+' ? ' ' : v[i];
    }
  }
  return out;
}

// HTML attribute text back to plain text (the entities mustache writes).
std::string Unescape(std::string s) {
  for (auto [from, to] :
       {std::pair{"&quot;", "\""}, std::pair{"&#39;", "'"}, std::pair{"&apos;", "'"},
        std::pair{"&lt;", "<"}, std::pair{"&gt;", ">"}, std::pair{"&amp;", "&"}}) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + 1))
      s.replace(at, strlen(from), to);
  }
  return s;
}

std::string QueryValue(const std::string& url, const std::string& name) {
  std::regex re("[?&]" + name + "=([^&#]*)");
  std::smatch m;
  return std::regex_search(url, m, re) ? Decode(std::string(m[1])) : "";
}

// The value of the element with id `id` (an input's value attribute), unescaped.
std::string InputValue(const std::string& html, const std::string& id) {
  std::regex re("id=\"" + id + "\"[^>]*value=\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(html, m, re) ? Unescape(m[1]) : "";
}

oauth::FhirHooks FakeHooks() {
  static const std::vector<oauth::FhirHooks::PatientSummary> kPatients = {
      {"p1", "Alice Jones", "1980-02-03", "female"},
      {"p2", "Bob Smith", "2019-07-30", "male"},
      {"p3", "Carol <script>alert(1)</script>", "1990-01-01", "other"},
      {"p4", "Baby Smithers", "2023-05-01", "male"},
  };
  oauth::FhirHooks hooks;
  hooks.search_patients = [](std::string_view text,
                             int limit) -> Result<std::vector<oauth::FhirHooks::PatientSummary>> {
    std::vector<oauth::FhirHooks::PatientSummary> out;
    for (const auto& p : kPatients)
      if (AsciiLower(p.name).find(AsciiLower(text)) != std::string::npos &&
          static_cast<int>(out.size()) < limit)
        out.push_back(p);
    return out;
  };
  hooks.search_encounters =
      [](std::string_view patient,
         int limit) -> Result<std::vector<oauth::FhirHooks::EncounterSummary>> {
    if (patient != "p1") return std::vector<oauth::FhirHooks::EncounterSummary>{};
    return std::vector<oauth::FhirHooks::EncounterSummary>{
        {"e2", "Follow-up visit", "2023-10-01T09:00:00Z", "finished"},
        {"e1", "Annual check-up", "2023-01-15T10:00:00Z", "finished"}};
  };
  hooks.patient_name = [](std::string_view id) -> Result<std::string> {
    for (const auto& p : kPatients)
      if (p.id == id) return p.name;
    return Error::NotFound("no Patient/" + std::string(id));
  };
  return hooks;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-sandbox-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto db = db::Database::Open("sqlite:" + (dir_ / "auth.db").string());
    ASSERT_TRUE(db) << db.error().message();
    db_ = std::move(db).value();
    auto store = oauth::AuthStore::Open(*db_);
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(store).value();
    auto tokens = oauth::TokenService::Create(*store_, clock_, {kFhirBase, kFhirBase});
    ASSERT_TRUE(tokens) << tokens.error().message();
    tokens_ = std::move(tokens).value();
    oauth::AuthOptions auth_options;
    auth_options.base_url = kBase;
    auto auth =
        oauth::AuthorizationServer::Create(*store_, *tokens_, clock_, FakeHooks(), auth_options);
    ASSERT_TRUE(auth) << auth.error().message();
    auth_ = std::move(auth).value();

    oauth::Registration vitals;
    vitals.client_id = "vitals";
    vitals.name = "Vitals";
    vitals.redirect_uris = {kVitalsRedirect};
    vitals.scopes = "launch launch/patient openid fhirUser patient/*.rs offline_access";
    vitals.launch_uri = kVitalsLaunch;
    ASSERT_TRUE(oauth::RegisterClient(*store_, vitals));
    // Passwords are not checked here: one Argon2id hash serves every user and test.
    static const std::string kHash = oauth::HashPassword("pw");
    ASSERT_TRUE(store_->AddUser({"u-smith", "drsmith", kHash, "Practitioner/pr1", "Dr Sam Smith"}));
    ASSERT_TRUE(
        store_->AddUser({"u-house", "drhouse", kHash, "Practitioner/pr2", "Dr Greg House"}));
    ASSERT_TRUE(store_->AddUser({"u-alice", "alice", kHash, "Patient/p1", "Alice Jones"}));
    MakeSandbox(true);
  }

  void TearDown() override {
    sandbox_.reset();
    auth_.reset();
    tokens_.reset();
    store_.reset();
    db_.reset();
    fs::remove_all(dir_);
  }

  void MakeSandbox(bool launcher, std::vector<DemoUser> demo = DefaultDemo()) {
    SandboxOptions options;
    options.base_url = kBase;
    options.software_version = "9.9.9-test";
    options.launcher_enabled = launcher;
    options.demo_users = std::move(demo);
    sandbox_ = std::make_unique<Sandbox>(*store_, *auth_, FakeHooks(), clock_, options);
  }

  static std::vector<DemoUser> DefaultDemo() {
    return {{"drsmith", "pw-smith", "Dr Sam Smith", "Practitioner/pr1", "practitioner"},
            {"alice", "pw-alice", "Alice Jones", "Patient/p1", "patient"}};
  }

  http::Response Send(std::string method, std::string target, std::string body = "",
                      std::string cookie = "") {
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    if (!request.body.empty())
      request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    if (!cookie.empty()) request.headers.emplace_back("Cookie", cookie);
    EXPECT_TRUE(sandbox_->Handles(request.Path())) << request.target;
    return sandbox_->Handle(request);
  }

  // Opens the launcher: remembers the CSRF cookie and the form's token.
  void OpenLauncher() {
    http::Response r = Send("GET", "/launcher");
    ASSERT_EQ(r.status, 200) << r.body;
    std::string set_cookie(r.Header("Set-Cookie"));
    ASSERT_TRUE(set_cookie.starts_with("fhirstone_launcher_csrf=")) << set_cookie;
    cookie_ = set_cookie.substr(0, set_cookie.find(';'));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.body, m, std::regex("name=\"csrf\" value=\"([^\"]+)\"")));
    csrf_ = m[1];
    EXPECT_EQ(cookie_, "fhirstone_launcher_csrf=" + csrf_);
  }

  http::Response PostLaunch(Params params) {
    params.emplace_back("csrf", csrf_);
    params.emplace_back("form", "1");
    return Send("POST", "/launcher/launch", Form(params), cookie_);
  }

  // The launch link on a result page.
  static std::string LaunchLink(const http::Response& r) {
    return InputValue(r.body, "launch-link");
  }

  static void ExpectSafeHeaders(const http::Response& r) {
    std::string csp(r.Header("Content-Security-Policy"));
    EXPECT_NE(csp.find("default-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'self'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
    EXPECT_EQ(r.Header("X-Frame-Options"), "SAMEORIGIN");
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(r.Header("Content-Type"), "text/html; charset=utf-8");
    // No inline script or style, no event handler attributes.
    EXPECT_FALSE(std::regex_search(r.body, std::regex("<script(?![^>]*\\ssrc=\"/)")));
    EXPECT_EQ(r.body.find("<style"), std::string::npos);
    EXPECT_EQ(r.body.find("style="), std::string::npos);
    EXPECT_FALSE(std::regex_search(r.body, std::regex(R"(\son[a-z]+\s*=)")));
  }

  // Every <input>, <select> and <textarea> but hidden inputs has a <label for> (or sits in a
  // <label>), so that each control has a name.
  static void ExpectLabelled(const std::string& html) {
    std::regex control(R"(<(input|select|textarea)\b([^>]*)>)");
    for (auto it = std::sregex_iterator(html.begin(), html.end(), control);
         it != std::sregex_iterator(); ++it) {
      std::string attrs = (*it)[2];
      if (attrs.find("type=\"hidden\"") != std::string::npos) continue;
      std::smatch id;
      if (std::regex_search(attrs, id, std::regex("id=\"([^\"]+)\"")) &&
          html.find("for=\"" + std::string(id[1]) + "\"") != std::string::npos)
        continue;
      // Else it must be inside a <label> element.
      size_t at = static_cast<size_t>(it->position());
      size_t open = html.rfind("<label", at), close = html.rfind("</label>", at);
      EXPECT_TRUE(open != std::string::npos && (close == std::string::npos || close < open))
          << "unlabelled control: " << it->str();
    }
  }

  fs::path dir_;
  test::FakeClock clock_{1700000000000000};  // 2023-11-14
  std::unique_ptr<db::Database> db_;
  std::unique_ptr<oauth::AuthStore> store_;
  std::unique_ptr<oauth::TokenService> tokens_;
  std::unique_ptr<oauth::AuthorizationServer> auth_;
  std::unique_ptr<Sandbox> sandbox_;
  std::string cookie_, csrf_;
};

TEST_F(SandboxTest, HandlesItsPathsOnly) {
  for (const char* path : {"/", "/launcher", "/launcher/", "/launcher/launch", "/launcher/ehr"})
    EXPECT_TRUE(sandbox_->Handles(path)) << path;
  for (const char* path : {"/fhir", "/auth/authorize", "/static/style.css", "/launchers", "/x/"})
    EXPECT_FALSE(sandbox_->Handles(path)) << path;
}

TEST_F(SandboxTest, HomePageListsEndpointsAppsAndDemoUsers) {
  http::Response r = Send("GET", "/");
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectSafeHeaders(r);
  EXPECT_EQ(r.body.find("<script"), std::string::npos);  // the home page needs no script
  EXPECT_NE(r.body.find("Fhirstone is a SMART on FHIR server"), std::string::npos);
  EXPECT_NE(r.body.find(kFhirBase), std::string::npos);
  EXPECT_NE(r.body.find("href=\"/fhir/metadata\""), std::string::npos);
  EXPECT_NE(r.body.find("href=\"/fhir/.well-known/smart-configuration\""), std::string::npos);
  EXPECT_NE(r.body.find("href=\"/launcher\""), std::string::npos);
  // The registered app, with a standalone launch link and the launcher.
  EXPECT_NE(r.body.find("Vitals"), std::string::npos);
  EXPECT_NE(
      r.body.find("href=\"" + std::string(kVitalsLaunch) + "?iss=" + Encode(kFhirBase) + "\""),
      std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("href=\"/launcher?app=vitals\""), std::string::npos);
  // Demo users with their passwords, role and fhirUser.
  EXPECT_NE(r.body.find("Demo users"), std::string::npos);
  for (const char* text : {"drsmith", "pw-smith", "Practitioner/pr1", "alice", "pw-alice",
                           "Patient/p1", ">Practitioner<", ">Patient<"})
    EXPECT_NE(r.body.find(text), std::string::npos) << text;
  EXPECT_NE(r.body.find("9.9.9-test"), std::string::npos);
  EXPECT_EQ(Send("POST", "/").status, 405);
}

TEST_F(SandboxTest, WithoutDemoModeNoUsersAndNoLauncher) {
  MakeSandbox(false, {});
  http::Response home = Send("GET", "/");
  ASSERT_EQ(home.status, 200);
  EXPECT_EQ(home.body.find("Demo users"), std::string::npos);
  EXPECT_EQ(home.body.find("pw-smith"), std::string::npos);
  EXPECT_EQ(home.body.find("href=\"/launcher"), std::string::npos);
  EXPECT_NE(home.body.find("Vitals"), std::string::npos);
  for (const char* target : {"/launcher", "/launcher/apps", "/launcher/ehr?app_url=x",
                             "/launcher/patients", "/launcher/launcher.js"}) {
    http::Response r = Send("GET", target);
    EXPECT_EQ(r.status, 404) << target;
    ExpectSafeHeaders(r);
  }
  EXPECT_EQ(Send("POST", "/launcher/launch", "a=b").status, 404);
}

TEST_F(SandboxTest, LauncherFormHasEveryChoiceLabelled) {
  http::Response r = Send("GET", "/launcher");
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectSafeHeaders(r);
  ExpectLabelled(r.body);
  EXPECT_NE(r.body.find("<script src=\"/launcher/launcher.js\" defer></script>"),
            std::string::npos);
  std::string cookie(r.Header("Set-Cookie"));
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_NE(cookie.find("Path=/launcher"), std::string::npos);
  for (const char* value :
       {"ehr-provider", "ehr-patient", "standalone-patient", "standalone-provider", "backend"})
    EXPECT_NE(r.body.find("name=\"type\" value=\"" + std::string(value) + "\""), std::string::npos)
        << value;
  for (const char* value : {"public", "confidential-symmetric", "confidential-asymmetric"})
    EXPECT_NE(r.body.find("<option value=\"" + std::string(value) + "\""), std::string::npos);
  for (const char* value : {"authorize", "token_expiry", "missing_context", "scope_not_granted"})
    EXPECT_NE(r.body.find("<option value=\"" + std::string(value) + "\""), std::string::npos);
  EXPECT_NE(r.body.find("EHR launches only"), std::string::npos);
  EXPECT_NE(r.body.find("name=\"pkce\""), std::string::npos);
  EXPECT_NE(r.body.find("name=\"need_patient_banner\""), std::string::npos);
  // Practitioners only in the practitioner list; the sample app preselected.
  EXPECT_NE(r.body.find("<option value=\"u-house\" selected>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<option value=\"u-smith\">"), std::string::npos);
  EXPECT_EQ(r.body.find("<option value=\"u-alice\""), std::string::npos);
  EXPECT_NE(r.body.find("<option value=\"vitals\" selected>"), std::string::npos);
  // Default EHR scopes; the first patient preselected with its encounters.
  EXPECT_EQ(InputValue(r.body, "scopes"), "launch openid fhirUser patient/*.rs offline_access");
  EXPECT_NE(r.body.find("name=\"patient\" value=\"p1\" checked"), std::string::npos);
  EXPECT_NE(r.body.find("Annual check-up · 2023-01-15 · finished"), std::string::npos);
  // A secret never appears in the form.
  EXPECT_EQ(r.body.find("client_secret"), std::string::npos);
}

TEST_F(SandboxTest, LauncherSearchesPatientsByNameWithAgeAndSex) {
  http::Response r = Send("GET", "/launcher?q=smith");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("Bob Smith"), std::string::npos);
  EXPECT_NE(r.body.find("Baby Smithers"), std::string::npos);
  EXPECT_EQ(r.body.find("Alice Jones"), std::string::npos);
  EXPECT_NE(r.body.find("<span>4 years</span><span>Male</span><span>Born 2019-07-30</span>"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("<span>6 months</span>"), std::string::npos);
  EXPECT_NE(r.body.find("value=\"smith\""), std::string::npos);

  // A chosen patient stays listed when a search leaves it out.
  r = Send("GET", "/launcher?q=smith&patient=p1");
  EXPECT_NE(r.body.find("name=\"patient\" value=\"p1\" checked"), std::string::npos);
  EXPECT_NE(r.body.find("Portal account: alice"), std::string::npos);
  EXPECT_NE(r.body.find("43 years"), std::string::npos);

  r = Send("GET", "/launcher?q=nobody");
  EXPECT_NE(r.body.find("No patient matches “nobody”"), std::string::npos);

  // Names are escaped.
  r = Send("GET", "/launcher?q=carol");
  EXPECT_EQ(r.body.find("<script>alert"), std::string::npos);
  EXPECT_NE(r.body.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);

  // The script's JSON.
  r = Send("GET", "/launcher/patients?q=jones");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  auto body = json::Parse(r.body);
  ASSERT_TRUE(body);
  const auto& patients = body->Find("patients")->as_array();
  ASSERT_EQ(patients.size(), 1u);
  EXPECT_EQ(patients[0].GetString("id"), "p1");
  EXPECT_EQ(patients[0].GetString("age"), "43 years");
  EXPECT_EQ(patients[0].GetString("sex"), "Female");
  EXPECT_EQ(patients[0].GetString("portal_user"), "alice");
  r = Send("GET", "/launcher/encounters?patient=p1");
  body = json::Parse(r.body);
  ASSERT_TRUE(body);
  ASSERT_EQ(body->Find("encounters")->as_array().size(), 2u);
  EXPECT_EQ(body->Find("encounters")->as_array()[0].GetString("label"), "Follow-up visit");
}

TEST_F(SandboxTest, ScopesFollowTheLaunchTypeUntilEdited) {
  http::Response r = Send("GET", "/launcher?type=backend");
  EXPECT_EQ(InputValue(r.body, "scopes"), "system/*.rs");
  r = Send("GET", "/launcher?type=standalone-provider");
  EXPECT_EQ(InputValue(r.body, "scopes"), "launch/patient openid fhirUser user/*.rs");
  OpenLauncher();
  // The type changed, the scopes were the old default: they follow.
  r = PostLaunch({{"step", "refresh"},
                  {"type", "standalone-patient"},
                  {"scopes", "launch openid fhirUser patient/*.rs offline_access"},
                  {"scopes_default", "launch openid fhirUser patient/*.rs offline_access"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(InputValue(r.body, "scopes"),
            "launch/patient openid fhirUser patient/*.rs offline_access");
  // Edited scopes stay.
  r = PostLaunch({{"step", "refresh"},
                  {"type", "standalone-patient"},
                  {"scopes", "openid patient/Observation.rs"},
                  {"scopes_default", "launch openid fhirUser patient/*.rs offline_access"}});
  EXPECT_EQ(InputValue(r.body, "scopes"), "openid patient/Observation.rs");
  // A search keeps the choices.
  r = PostLaunch({{"step", "search"}, {"q", "bob"}, {"patient", "p1"}, {"app", "vitals"}});
  EXPECT_NE(r.body.find("Bob Smith"), std::string::npos);
  EXPECT_NE(r.body.find("name=\"patient\" value=\"p1\" checked"), std::string::npos);
}

TEST_F(SandboxTest, LaunchNeedsTheCsrfToken) {
  OpenLauncher();
  Params launch{
      {"type", "ehr-provider"}, {"patient", "p1"}, {"practitioner", "u-smith"}, {"app", "vitals"}};
  std::string body = Form(launch);
  http::Response r = Send("POST", "/launcher/launch", body, cookie_);  // no field
  EXPECT_EQ(r.status, 403);
  ExpectSafeHeaders(r);
  r = Send("POST", "/launcher/launch", body + "&csrf=" + csrf_);  // no cookie
  EXPECT_EQ(r.status, 403);
  r = Send("POST", "/launcher/launch", body + "&csrf=" + csrf_ + "x", cookie_);  // wrong
  EXPECT_EQ(r.status, 403);
  r = Send("POST", "/launcher/launch", body + "&csrf=" + csrf_,
           "fhirstone_launcher_csrf=" + std::string(43, 'A'));  // another browser's cookie
  EXPECT_EQ(r.status, 403);
  r = Send("POST", "/launcher/launch", body + "&csrf=", "fhirstone_launcher_csrf=");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Send("GET", "/launcher/launch").status, 405);
  // Nothing was launched or registered.
  auto clients = store_->ListClients();
  ASSERT_TRUE(clients);
  EXPECT_EQ(clients->size(), 1u);
}

TEST_F(SandboxTest, EhrProviderLaunchMakesASingleUseLaunchValue) {
  OpenLauncher();
  http::Response r = PostLaunch({{"type", "ehr-provider"},
                                 {"patient", "p1"},
                                 {"practitioner", "u-smith"},
                                 {"encounter", "e1"},
                                 {"app", "vitals"},
                                 {"step", "launch"}});
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectSafeHeaders(r);
  ExpectLabelled(r.body);
  std::string link = LaunchLink(r);
  ASSERT_TRUE(link.starts_with(std::string(kVitalsLaunch) + "?iss=")) << link;
  EXPECT_EQ(QueryValue(link, "iss"), kFhirBase);
  std::string launch = QueryValue(link, "launch");
  ASSERT_FALSE(launch.empty());
  EXPECT_NE(r.body.find("Dr Sam Smith"), std::string::npos);
  EXPECT_NE(r.body.find("Alice Jones"), std::string::npos);
  EXPECT_NE(r.body.find("Annual check-up"), std::string::npos);
  // The simulated EHR and a new window.
  EXPECT_NE(r.body.find("href=\"/launcher/ehr?app_url="), std::string::npos);
  EXPECT_NE(r.body.find("target=\"_blank\" rel=\"noopener\""), std::string::npos);

  auto consumed = store_->ConsumeLaunch(oauth::HashSecret(launch));
  ASSERT_TRUE(consumed);
  ASSERT_TRUE(*consumed);
  EXPECT_TRUE((*consumed)->first_use);
  auto context = json::Parse((*consumed)->payload);
  ASSERT_TRUE(context);
  EXPECT_EQ(context->GetString("user"), "u-smith");
  EXPECT_EQ(context->GetString("patient"), "p1");
  EXPECT_EQ(context->GetString("encounter"), "e1");
  ASSERT_NE(context->Find("need_patient_banner"), nullptr);
  EXPECT_FALSE(context->Find("need_patient_banner")->as_bool());
  EXPECT_EQ(context->Find("simulate"), nullptr);
  auto again = store_->ConsumeLaunch(oauth::HashSecret(launch));
  ASSERT_TRUE(again && *again);
  EXPECT_FALSE((*again)->first_use);
}

TEST_F(SandboxTest, TheAuthorizationServerAcceptsTheLaunchOnce) {
  OpenLauncher();
  http::Response r = PostLaunch({{"type", "ehr-provider"},
                                 {"patient", "p1"},
                                 {"practitioner", "u-smith"},
                                 {"app", "vitals"}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string launch = QueryValue(LaunchLink(r), "launch");
  auto authorize = [&] {
    http::Request request;
    request.method = "GET";
    request.target = "/auth/authorize?" + Form({{"response_type", "code"},
                                                {"client_id", "vitals"},
                                                {"redirect_uri", kVitalsRedirect},
                                                {"scope", "launch openid fhirUser patient/*.rs"},
                                                {"state", "s1"},
                                                {"aud", kFhirBase},
                                                {"launch", launch},
                                                {"code_challenge", std::string(43, 'A')},
                                                {"code_challenge_method", "S256"}});
    return auth_->Handle(request);
  };
  http::Response first = authorize();
  // The launch signs Dr Smith in: the consent page, not the login page nor an error.
  EXPECT_EQ(first.status, 200) << first.Header("Location") << first.body;
  EXPECT_NE(first.body.find("Dr Sam Smith"), std::string::npos);
  http::Response second = authorize();
  EXPECT_EQ(second.status, 302);
  EXPECT_NE(second.Header("Location").find("error=invalid_request"), std::string::npos);
}

TEST_F(SandboxTest, EhrPatientLaunchSignsInThePatientsAccount) {
  OpenLauncher();
  http::Response r = PostLaunch({{"type", "ehr-patient"},
                                 {"patient", "p1"},
                                 {"app", "vitals"},
                                 {"need_patient_banner", "true"}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string launch = QueryValue(LaunchLink(r), "launch");
  auto consumed = store_->ConsumeLaunch(oauth::HashSecret(launch));
  ASSERT_TRUE(consumed && *consumed);
  auto context = json::Parse((*consumed)->payload);
  EXPECT_EQ(context->GetString("user"), "u-alice");
  EXPECT_TRUE(context->Find("need_patient_banner")->as_bool());
  // The EHR frame then shows no banner of its own.
  EXPECT_EQ(r.body.find("banner=1"), std::string::npos);

  // Bob has no account.
  r = PostLaunch({{"type", "ehr-patient"}, {"patient", "p2"}, {"app", "vitals"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("has no user account"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("role=\"alert\""), std::string::npos);
  // The form comes back with the choices kept.
  EXPECT_NE(r.body.find("name=\"type\" value=\"ehr-patient\" data-scopes"), std::string::npos);
}

TEST_F(SandboxTest, EhrLaunchChecksItsContext) {
  OpenLauncher();
  struct Case {
    Params params;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {{{"type", "ehr-provider"}, {"practitioner", "u-smith"}, {"app", "vitals"}},
            "Choose a patient"},
           {{{"type", "ehr-provider"}, {"patient", "nope"}, {"app", "vitals"}}, "does not exist"},
           {{{"type", "ehr-provider"}, {"patient", "p1"}, {"encounter", "e9"}, {"app", "vitals"}},
            "is not an encounter of"},
           {{{"type", "ehr-provider"},
             {"patient", "p1"},
             {"practitioner", "u-alice"},
             {"app", "vitals"}},
            "Choose the practitioner"},
           {{{"type", "ehr-provider"},
             {"patient", "p1"},
             {"practitioner", "u-smith"},
             {"app", "ghost"}},
            "No app is registered"},
           {{{"type", "ehr-provider"},
             {"patient", "p1"},
             {"practitioner", "u-smith"},
             {"app", "vitals"},
             {"launch_url", "javascript:alert(1)"}},
            "absolute http or https URL"},
       }) {
    http::Response r = PostLaunch(c.params);
    EXPECT_EQ(r.status, 400) << c.message;
    EXPECT_NE(r.body.find(c.message), std::string::npos) << c.message << "\n" << r.body;
    EXPECT_EQ(r.body.find("javascript:"), std::string::npos);
  }
}

TEST_F(SandboxTest, SimulatedErrorsTravelInEhrLaunchesOnly) {
  OpenLauncher();
  http::Response r = PostLaunch({{"type", "ehr-provider"},
                                 {"patient", "p1"},
                                 {"practitioner", "u-smith"},
                                 {"app", "vitals"},
                                 {"simulate", "scope_not_granted"},
                                 {"simulate_scope", "patient/*.rs"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("A requested scope is not granted"), std::string::npos);
  auto consumed = store_->ConsumeLaunch(oauth::HashSecret(QueryValue(LaunchLink(r), "launch")));
  ASSERT_TRUE(consumed && *consumed);
  auto context = json::Parse((*consumed)->payload);
  const json::Value* simulate = context->Find("simulate");
  ASSERT_NE(simulate, nullptr);
  EXPECT_EQ(simulate->GetString("error"), "scope_not_granted");
  EXPECT_EQ(simulate->GetString("scope"), "patient/*.rs");

  for (const char* error : {"authorize", "token_expiry", "missing_context"}) {
    r = PostLaunch({{"type", "ehr-provider"},
                    {"patient", "p1"},
                    {"practitioner", "u-smith"},
                    {"app", "vitals"},
                    {"simulate", error}});
    ASSERT_EQ(r.status, 200) << error;
    consumed = store_->ConsumeLaunch(oauth::HashSecret(QueryValue(LaunchLink(r), "launch")));
    ASSERT_TRUE(consumed && *consumed);
    EXPECT_EQ(json::Parse((*consumed)->payload)->Find("simulate")->GetString("error"), error);
  }

  r = PostLaunch({{"type", "ehr-provider"},
                  {"patient", "p1"},
                  {"practitioner", "u-smith"},
                  {"app", "vitals"},
                  {"simulate", "scope_not_granted"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("Name the one scope"), std::string::npos);
  r = PostLaunch({{"type", "ehr-provider"},
                  {"patient", "p1"},
                  {"practitioner", "u-smith"},
                  {"app", "vitals"},
                  {"simulate", "crash"}});
  EXPECT_EQ(r.status, 400);
  for (const char* type : {"standalone-patient", "standalone-provider"}) {
    r = PostLaunch({{"type", type}, {"app", "vitals"}, {"simulate", "authorize"}});
    EXPECT_EQ(r.status, 400) << type;
    EXPECT_NE(r.body.find("apply to EHR launches only"), std::string::npos) << type;
  }
}

TEST_F(SandboxTest, StandaloneLaunchHasIssButNoLaunch) {
  OpenLauncher();
  http::Response r =
      PostLaunch({{"type", "standalone-patient"}, {"patient", "p1"}, {"app", "vitals"}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string link = LaunchLink(r);
  EXPECT_EQ(link, std::string(kVitalsLaunch) + "?iss=" + Encode(kFhirBase));
  EXPECT_NE(r.body.find("sign in as alice (password: pw-alice)"), std::string::npos) << r.body;
  r = PostLaunch({{"type", "standalone-provider"}, {"practitioner", "u-house"}, {"app", "vitals"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(QueryValue(LaunchLink(r), "launch"), "");
  EXPECT_NE(r.body.find("sign in as drhouse, then pick a patient"), std::string::npos);
  // A registered app without a launch URL needs one from the form.
  oauth::Registration bare;
  bare.client_id = "bare";
  bare.name = "Bare";
  bare.redirect_uris = {"https://bare.example/cb"};
  bare.scopes = "openid";
  ASSERT_TRUE(oauth::RegisterClient(*store_, bare));
  r = PostLaunch({{"type", "standalone-patient"}, {"app", "bare"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("has no launch URL"), std::string::npos);
  r = PostLaunch({{"type", "standalone-patient"},
                  {"app", "bare"},
                  {"launch_url", "https://bare.example/launch?x=1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(LaunchLink(r), "https://bare.example/launch?x=1&iss=" + Encode(kFhirBase));
}

TEST_F(SandboxTest, AnotherAppIsRegisteredOnTheFlyAndReused) {
  OpenLauncher();
  Params launch{{"type", "ehr-provider"},
                {"patient", "p1"},
                {"practitioner", "u-smith"},
                {"app", ""},
                {"app_name", "My chart"},
                {"launch_url", "https://chart.example/launch"},
                {"redirect_uri", "https://chart.example/app"},
                {"client_type", "public"},
                {"pkce", "true"},
                {"scopes", "launch openid fhirUser patient/*.rs"},
                {"scopes_default", "launch openid fhirUser patient/*.rs offline_access"}};
  http::Response r = PostLaunch(launch);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("The launcher registered"), std::string::npos);
  EXPECT_TRUE(LaunchLink(r).starts_with("https://chart.example/launch?iss="));
  auto clients = store_->ListClients();
  ASSERT_TRUE(clients);
  ASSERT_EQ(clients->size(), 2u);
  const oauth::Client& chart = (*clients)[0].name == "My chart" ? (*clients)[0] : (*clients)[1];
  EXPECT_EQ(chart.name, "My chart");
  EXPECT_EQ(chart.type, oauth::ClientType::kPublic);
  EXPECT_EQ(chart.launch_uri, "https://chart.example/launch");
  EXPECT_EQ(chart.redirect_uris, std::vector<std::string>{"https://chart.example/app"});
  EXPECT_EQ(chart.allowed_scopes, "launch openid fhirUser patient/*.rs");
  EXPECT_TRUE(chart.require_pkce);
  EXPECT_NE(r.body.find(chart.client_id), std::string::npos);
  // Back in the launcher, the app is the registered one.
  EXPECT_NE(r.body.find("app=" + chart.client_id), std::string::npos);

  // The same details again: the same client.
  r = PostLaunch(launch);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("uses that registration again"), std::string::npos);
  EXPECT_EQ(store_->ListClients()->size(), 2u);

  // A missing redirect URI is refused before anything is registered.
  launch[6].second = "";
  launch[5].second = "https://other.example/launch";  // not the same app: a new registration
  r = PostLaunch(launch);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("redirect URI"), std::string::npos) << r.body;
  EXPECT_EQ(store_->ListClients()->size(), 2u);
}

TEST_F(SandboxTest, BackendServiceShowsTheTokenRequest) {
  OpenLauncher();
  // A public client cannot be a backend service.
  http::Response r = PostLaunch({{"type", "backend"}, {"app", "vitals"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("confidential client"), std::string::npos);

  r = PostLaunch({{"type", "backend"},
                  {"app", ""},
                  {"app_name", "Nightly export"},
                  {"redirect_uri", "https://export.example/cb"},
                  {"client_type", "confidential-symmetric"},
                  {"scopes", "system/*.rs"}});
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectSafeHeaders(r);
  EXPECT_EQ(LaunchLink(r), "");
  EXPECT_NE(r.body.find("client_credentials"), std::string::npos);
  EXPECT_NE(r.body.find("curl -X POST &apos;http://sandbox.test/auth/token&apos;"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("--data-urlencode &apos;scope=system/*.rs&apos;"), std::string::npos);
  // The secret, shown once, is the one the client was registered with.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.body, m, std::regex("<code class=\"secret\">([^<]+)</code>")));
  std::string secret = m[1];
  auto clients = store_->ListClients();
  const oauth::Client* exporter = nullptr;
  for (const auto& c : *clients)
    if (c.name == "Nightly export") exporter = &c;
  ASSERT_NE(exporter, nullptr);
  EXPECT_EQ(exporter->type, oauth::ClientType::kConfidentialSymmetric);
  EXPECT_EQ(exporter->secret_hash, oauth::HashSecret(secret));
  EXPECT_NE(r.body.find("-u &apos;" + exporter->client_id + ":" + secret + "&apos;"),
            std::string::npos);
  // Launched again with the same details: reused, and the secret is not shown again.
  r = PostLaunch({{"type", "backend"},
                  {"app", ""},
                  {"app_name", "Nightly export"},
                  {"redirect_uri", "https://export.example/cb"},
                  {"client_type", "confidential-symmetric"},
                  {"scopes", "system/*.rs"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find(secret), std::string::npos);
  EXPECT_NE(r.body.find("CLIENT_SECRET"), std::string::npos);
  EXPECT_NE(r.body.find("Its secret was shown then"), std::string::npos);
}

TEST_F(SandboxTest, RegisteringAnAppCreatesAClient) {
  http::Response page = Send("GET", "/launcher/apps");
  ASSERT_EQ(page.status, 200);
  ExpectSafeHeaders(page);
  ExpectLabelled(page.body);
  std::string set_cookie(page.Header("Set-Cookie"));
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::string csrf = cookie.substr(cookie.find('=') + 1);
  Params app{{"form", "1"},
             {"name", "Growth <charts>"},
             {"client_id", "growth"},
             {"client_type", "confidential-symmetric"},
             {"launch_url", "https://growth.example/launch"},
             {"redirect_uris", "https://growth.example/cb\r\nhttps://growth.example/cb2\r\n"},
             {"scopes", "launch openid patient/Observation.rs"},
             {"pkce", "true"}};
  EXPECT_EQ(Send("POST", "/launcher/apps", Form(app), cookie).status, 403);
  app.emplace_back("csrf", csrf);
  http::Response r = Send("POST", "/launcher/apps", Form(app), cookie);
  ASSERT_EQ(r.status, 201) << r.body;
  ExpectSafeHeaders(r);
  EXPECT_NE(r.body.find("Growth &lt;charts&gt; is registered"), std::string::npos);
  auto client = store_->FindClient("growth");
  ASSERT_TRUE(client && *client);
  EXPECT_EQ((*client)->type, oauth::ClientType::kConfidentialSymmetric);
  EXPECT_EQ((*client)->redirect_uris.size(), 2u);
  EXPECT_EQ((*client)->launch_uri, "https://growth.example/launch");
  EXPECT_TRUE((*client)->require_pkce);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.body, m, std::regex("<code class=\"secret\">([^<]+)</code>")));
  EXPECT_EQ((*client)->secret_hash, oauth::HashSecret(std::string(m[1])));
  EXPECT_NE(r.body.find("Know who you are"), std::string::npos);  // scopes described
  EXPECT_NE(r.body.find("href=\"/launcher?app=growth\""), std::string::npos);
  // It is listed on the home page and in the launcher, never with its secret.
  EXPECT_NE(Send("GET", "/").body.find("Growth &lt;charts&gt;"), std::string::npos);
  http::Response launcher = Send("GET", "/launcher?app=growth");
  EXPECT_NE(launcher.body.find("<option value=\"growth\" selected>"), std::string::npos);
  EXPECT_EQ(launcher.body.find(std::string(m[1])), std::string::npos);

  // The same client_id again: 409 with the form kept.
  r = Send("POST", "/launcher/apps", Form(app), cookie);
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("exists"), std::string::npos);
  EXPECT_NE(r.body.find("value=\"https://growth.example/launch\""), std::string::npos);
  // A bad redirect URI: 400.
  app[1].second = "Other";
  app[2].second = "other";
  app[5].second = "ftp://x";
  r = Send("POST", "/launcher/apps", Form(app), cookie);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("absolute http(s) URL"), std::string::npos) << r.body;
  // An asymmetric client with a bad JWKS.
  app[2].second = "other";
  app[3].second = "confidential-asymmetric";
  app[5].second = "";
  app.emplace_back("jwks", "{not json");
  r = Send("POST", "/launcher/apps", Form(app), cookie);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("JWKS"), std::string::npos);
  EXPECT_FALSE(*store_->FindClient("other"));
}

TEST_F(SandboxTest, TheSimulatedEhrFramesTheAppWithAPatientBanner) {
  OpenLauncher();
  http::Response launched = PostLaunch({{"type", "ehr-provider"},
                                        {"patient", "p1"},
                                        {"encounter", "e2"},
                                        {"practitioner", "u-smith"},
                                        {"app", "vitals"}});
  ASSERT_EQ(launched.status, 200) << launched.body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(launched.body, m, std::regex("href=\"(/launcher/ehr\\?[^\"]+)\"")));
  std::string href = Unescape(m[1]);
  EXPECT_NE(href.find("banner=1"), std::string::npos);
  http::Response r = Send("GET", href);
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectSafeHeaders(r);
  std::string csp(r.Header("Content-Security-Policy"));
  EXPECT_NE(csp.find("frame-src 'self' http: https:"), std::string::npos) << csp;
  EXPECT_NE(r.body.find("<iframe class=\"ehr-app\" src=\"" + std::string(kVitalsLaunch) + "?iss="),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("title=\"Vitals\""), std::string::npos);
  EXPECT_NE(r.body.find("class=\"patient-banner\""), std::string::npos);
  for (const char* text : {"Alice Jones", "43 years", "Female", "1980-02-03",
                           "Follow-up visit · 2023-10-01", "Signed in as Dr Sam Smith"})
    EXPECT_NE(r.body.find(text), std::string::npos) << text;

  // need_patient_banner true: the EHR shows no banner.
  r = Send("GET", "/launcher/ehr?" + Form({{"app_url", std::string(kVitalsLaunch) + "?iss=x"},
                                           {"patient", "p1"}}));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("class=\"patient-banner\""), std::string::npos);
  EXPECT_NE(r.body.find("need_patient_banner is true"), std::string::npos);

  // Only registered apps' origins, and only http(s).
  for (const char* url :
       {"https://evil.example/phish", "javascript:alert(1)", "", "data:text/html,x"}) {
    r = Send("GET", "/launcher/ehr?" + Form({{"app_url", url}}));
    EXPECT_EQ(r.status, 400) << url;
    EXPECT_EQ(r.body.find("<iframe"), std::string::npos) << url;
    EXPECT_EQ(std::string(r.Header("Content-Security-Policy")).find("frame-src"),
              std::string::npos);
  }
}

TEST_F(SandboxTest, TheScriptIsServedAndBuildsNoMarkupFromData) {
  http::Response r = Send("GET", "/launcher/launcher.js");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_NE(r.body.find("/launcher/patients?q="), std::string::npos);
  EXPECT_EQ(r.body.find(".innerHTML ="), std::string::npos);
  EXPECT_EQ(r.body.find("eval("), std::string::npos);
}

TEST_F(SandboxTest, UnknownPathsAndMethods) {
  EXPECT_EQ(Send("GET", "/launcher/nope").status, 404);
  http::Response r = Send("DELETE", "/launcher/apps");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET, HEAD, POST");
  EXPECT_EQ(Send("HEAD", "/").status, 200);
}

}  // namespace
}  // namespace fhirstone::sandbox
