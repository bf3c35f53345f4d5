// The SMART App Launch authorization server end to end, in-process over HTTP: discovery, the
// authorize flow through the real pages (login, consent, patient picker), the token endpoint
// (PKCE, code reuse and expiry, refresh rotation, client authentication by secret and by signed
// JWT, client_credentials), introspection, revocation, consent withdrawal, EHR launch, and the
// scopes enforced on the FHIR API (letters, patient compartment, v2 query restrictions).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include "auth/jose/jose.h"
#include "common/json.h"
#include "common/strings.h"
#include "http/server.h"
#include "server/admin.h"
#include "server/app.h"
#include "support/databases.h"
#include "support/fakes.h"
#include "support/http_client.h"

namespace fhirstone {
namespace {

namespace fs = std::filesystem;
using Params = std::vector<std::pair<std::string, std::string>>;

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

// The value of query parameter `name` in a URL.
std::string QueryValue(const std::string& url, const std::string& name) {
  std::regex re("[?&]" + name + "=([^&#]*)");
  std::smatch m;
  if (!std::regex_search(url, m, re)) return "";
  std::string v = m[1], out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size()) {
      out += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += v[i] == '+' ? ' ' : v[i];
    }
  }
  return out;
}

std::string HiddenInput(const std::string& html, const std::string& name) {
  std::regex re("name=\"" + name + "\" value=\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(html, m, re) ? std::string(m[1]) : "";
}

json::Value ParseJson(const std::string& body) {
  auto v = json::Parse(body);
  return v ? std::move(v).value() : json::Value();
}

constexpr char kVerifier[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-chars-73";
const std::string kChallenge = jose::Base64UrlEncode(jose::Sha256(kVerifier));

class AuthTest : public ::testing::TestWithParam<db::Dialect> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fhirstone-auth-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    {
      std::unique_ptr<db::Database> fresh;  // emptied; the server opens its own
      FHIRSTONE_ASSIGN_FRESH_DATABASE(fresh, GetParam(), dir_ / "db", &db_);
    }
    server::ServeConfig config;
    config.listen = "127.0.0.1:0";
    config.db = db_;
    config.threads = 2;
    auto app = server::App::Start(config, &clock_, nullptr);
    ASSERT_TRUE(app) << app.error().message();
    app_ = std::move(app).value();
    port_ = app_->port();
    base_ = app_->base_url();
    fhir_ = base_ + "/fhir";

    // A backend client seeds data through the API itself.
    server::ClientSpec admin;
    admin.client_id = "admin";
    admin.name = "Seeder";
    admin.type = "confidential-symmetric";
    admin.redirect_uris = {"https://admin.example/cb"};
    admin.scopes = "system/*.cruds";
    auto reg = server::AddClient(db_, admin);
    ASSERT_TRUE(reg) << reg.error().message();
    admin_secret_ = reg->client_secret;
    auto token = Post("/auth/token",
                      Form({{"grant_type", "client_credentials"}, {"scope", "system/*.cruds"}}),
                      {{"Authorization", Basic("admin", admin_secret_)}});
    ASSERT_EQ(token.status, 200) << token.body;
    admin_token_ = std::string(ParseJson(token.body).GetString("access_token"));
    Seed();

    server::ClientSpec app_client;
    app_client.client_id = "app";
    app_client.name = "Vitals";
    app_client.type = "public";
    app_client.redirect_uris = {"https://app.example/cb", "https://app.example/other"};
    app_client.scopes =
        "openid fhirUser profile launch launch/patient launch/encounter offline_access "
        "online_access patient/*.cruds user/*.cruds "
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
        "observation-category|laboratory";
    ASSERT_TRUE(server::AddClient(db_, app_client));
    server::ClientSpec other = app_client;
    other.client_id = "other";
    other.name = "Other";
    ASSERT_TRUE(server::AddClient(db_, other));
    ASSERT_TRUE(server::AddUser(db_, "ada", "ada-password-1", "Patient/pa", "Ada Lovelace"));
    ASSERT_TRUE(server::AddUser(db_, "grace", "grace-password-1", "Patient/pb", "Grace Hopper"));
    ASSERT_TRUE(server::AddUser(db_, "drsmith", "smith-password-1", "Practitioner/dr", "Dr Smith"));
  }

  void TearDown() override {
    if (app_) app_->Stop();
    app_.reset();
    fs::remove_all(dir_);
  }

  static std::string Basic(const std::string& id, const std::string& secret) {
    std::string b64 = jose::Base64UrlEncode(id + ":" + secret);
    for (char& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (b64.size() % 4) b64 += '=';
    return "Basic " + b64;
  }

  http::Response Send(std::string method, std::string target, std::string body,
                      http::Headers headers) {
    if (target.starts_with(base_)) target = target.substr(base_.size());
    http::Request r = test::MakeRequest(std::move(method), std::move(target), std::move(body));
    for (auto& h : headers) r.headers.push_back(std::move(h));
    auto response = test::Fetch("127.0.0.1", port_, std::move(r));
    EXPECT_TRUE(response) << (response ? "" : response.error().message());
    return response ? std::move(response).value() : http::Response{};
  }

  http::Response Get(const std::string& target, http::Headers headers = {}) {
    return Send("GET", target, "", std::move(headers));
  }

  http::Response Post(const std::string& target, const std::string& form,
                      http::Headers headers = {}) {
    headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    return Send("POST", target, form, std::move(headers));
  }

  http::Response Fhir(const std::string& method, const std::string& path, const std::string& token,
                      const std::string& body = "") {
    http::Headers h;
    if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty()) h.emplace_back("Content-Type", "application/fhir+json");
    return Send(method, "/fhir/" + path, body, std::move(h));
  }

  void Put(const std::string& path, const std::string& body) {
    auto r = Fhir("PUT", path, admin_token_, body);
    ASSERT_TRUE(r.status == 200 || r.status == 201) << path << ": " << r.body;
  }

  void Seed() {
    Put("Patient/pa",
        R"({"resourceType":"Patient","id":"pa","name":[{"family":"Lovelace","given":["Ada"]}],"birthDate":"1985-12-10","gender":"female"})");
    Put("Patient/pb",
        R"({"resourceType":"Patient","id":"pb","name":[{"family":"Hopper","given":["Grace"]}],"birthDate":"1906-12-09","gender":"female"})");
    Put("Practitioner/dr",
        R"({"resourceType":"Practitioner","id":"dr","name":[{"family":"Smith"}]})");
    Put("Encounter/ea",
        R"({"resourceType":"Encounter","id":"ea","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/pa"}})");
    auto obs = [&](const std::string& id, const std::string& patient, const std::string& category) {
      Put("Observation/" + id,
          R"({"resourceType":"Observation","id":")" + id +
              R"(","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":")" +
              category +
              R"("}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/)" +
              patient + R"("},"performer":[{"reference":"Practitioner/dr"}]})");
    };
    obs("oa-lab", "pa", "laboratory");
    obs("oa-vital", "pa", "vital-signs");
    obs("ob-lab", "pb", "laboratory");
  }

  // A browser: one session cookie.
  struct Browser {
    std::string cookie;
    void Absorb(const http::Response& r) {
      for (const auto& [k, v] : r.headers) {
        if (AsciiLower(k) != "set-cookie") continue;
        std::string c = v.substr(0, v.find(';'));
        if (c.ends_with("=")) continue;
        cookie = c;
      }
    }
  };

  http::Response BrowserGet(Browser& b, const std::string& url) {
    http::Headers h;
    if (!b.cookie.empty()) h.emplace_back("Cookie", b.cookie);
    auto r = Get(url, h);
    b.Absorb(r);
    return r;
  }

  http::Response BrowserPost(Browser& b, const std::string& url, const Params& form) {
    http::Headers h;
    if (!b.cookie.empty()) h.emplace_back("Cookie", b.cookie);
    auto r = Post(url, Form(form), h);
    b.Absorb(r);
    return r;
  }

  std::string AuthorizeUrl(const std::string& scope, const std::string& client = "app",
                           const std::string& redirect = "https://app.example/cb",
                           const std::string& launch = "") {
    Params p{{"response_type", "code"},
             {"client_id", client},
             {"redirect_uri", redirect},
             {"scope", scope},
             {"state", "st-123"},
             {"aud", fhir_},
             {"code_challenge", kChallenge},
             {"code_challenge_method", "S256"},
             {"nonce", "n-1"}};
    if (!launch.empty()) p.emplace_back("launch", launch);
    return "/auth/authorize?" + Form(p);
  }

  // Signs in on the login page (when shown) and answers the consent page, keeping only `keep`
  // scopes ticked when given. Returns the final redirect.
  http::Response Authorize(Browser& b, const std::string& url, const std::string& user,
                           const std::string& password,
                           const std::vector<std::string>* keep = nullptr,
                           const std::string& patient = "") {
    auto page = BrowserGet(b, url);
    if (page.status == 302) return page;
    if (page.body.find("name=\"password\"") != std::string::npos) {
      page = BrowserPost(b, "/auth/login",
                         {{"csrf", HiddenInput(page.body, "csrf")},
                          {"request", HiddenInput(page.body, "request")},
                          {"username", user},
                          {"password", password}});
    }
    if (page.body.find("name=\"patient\"") != std::string::npos) {
      page = BrowserPost(b, "/auth/patient",
                         {{"csrf", HiddenInput(page.body, "csrf")},
                          {"request", HiddenInput(page.body, "request")},
                          {"patient", patient}});
    }
    if (page.body.find("name=\"encounter\"") != std::string::npos) {
      std::regex re("name=\"encounter\" value=\"([^\"]*)\"");
      std::smatch m;
      std::string encounter = std::regex_search(page.body, m, re) ? std::string(m[1]) : "";
      page = BrowserPost(b, "/auth/encounter",
                         {{"csrf", HiddenInput(page.body, "csrf")},
                          {"request", HiddenInput(page.body, "request")},
                          {"encounter", encounter}});
    }
    if (page.status == 302) return page;
    EXPECT_NE(page.body.find("name=\"decision\""), std::string::npos) << page.body;
    Params form{{"csrf", HiddenInput(page.body, "csrf")},
                {"request", HiddenInput(page.body, "request")},
                {"decision", "allow"}};
    std::regex re("name=\"scope\" value=\"([^\"]*)\"");
    for (auto it = std::sregex_iterator(page.body.begin(), page.body.end(), re);
         it != std::sregex_iterator(); ++it) {
      std::string scope = (*it)[1];
      // the page escapes & as &amp; inside values
      for (size_t p; (p = scope.find("&amp;")) != std::string::npos;) scope.replace(p, 5, "&");
      if (!keep || std::find(keep->begin(), keep->end(), scope) != keep->end())
        form.emplace_back("scope", scope);
    }
    return BrowserPost(b, "/auth/consent", form);
  }

  http::Response Exchange(const std::string& code, const std::string& client = "app",
                          const std::string& redirect = "https://app.example/cb",
                          const std::string& verifier = kVerifier) {
    return Post("/auth/token", Form({{"grant_type", "authorization_code"},
                                     {"code", code},
                                     {"redirect_uri", redirect},
                                     {"client_id", client},
                                     {"code_verifier", verifier}}));
  }

  // A full standalone launch as `user`: the token response.
  json::Value Login(const std::string& user, const std::string& password, const std::string& scope,
                    const std::string& patient = "") {
    Browser b;
    auto done = Authorize(b, AuthorizeUrl(scope), user, password, nullptr, patient);
    EXPECT_EQ(done.status, 302) << done.body;
    std::string location(done.Header("Location"));
    auto token = Exchange(QueryValue(location, "code"));
    EXPECT_EQ(token.status, 200) << token.body;
    return ParseJson(token.body);
  }

  // Starts at the real time: the CLI's launch values are stamped with the system clock.
  const int64_t start_seconds_ = SystemClock().NowMicros() / 1000000;
  test::FakeClock clock_{start_seconds_ * 1000000};
  fs::path dir_;
  std::string db_;
  std::unique_ptr<server::App> app_;
  uint16_t port_ = 0;
  std::string base_, fhir_;
  std::string admin_secret_, admin_token_;
};

TEST_P(AuthTest, DiscoveryDocumentsAgree) {
  auto r = Get("/fhir/.well-known/smart-configuration", {{"Accept", "text/html"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.Header("Access-Control-Allow-Origin"), "*");
  json::Value c = ParseJson(r.body);
  EXPECT_EQ(c.GetString("issuer"), fhir_);
  EXPECT_EQ(c.GetString("authorization_endpoint"), base_ + "/auth/authorize");
  EXPECT_EQ(c.GetString("token_endpoint"), base_ + "/auth/token");
  EXPECT_EQ(json::Write(*c.Find("code_challenge_methods_supported")), "[\"S256\"]");
  std::string caps = json::Write(*c.Find("capabilities"));
  for (const char* cap : {"launch-ehr", "launch-standalone", "authorize-post", "client-public",
                          "client-confidential-symmetric", "client-confidential-asymmetric",
                          "sso-openid-connect", "context-ehr-patient", "permission-v1",
                          "permission-v2", "permission-offline", "permission-patient"})
    EXPECT_NE(caps.find(std::string("\"") + cap + "\""), std::string::npos) << cap;
  EXPECT_NE(json::Write(*c.Find("scopes_supported")).find("patient/Observation.rs"),
            std::string::npos);

  auto oidc = Get("/fhir/.well-known/openid-configuration");
  ASSERT_EQ(oidc.status, 200);
  EXPECT_EQ(ParseJson(oidc.body).GetString("issuer"), fhir_);
  auto jwks = ParseJson(Get("/auth/jwks").body);
  ASSERT_TRUE(jwks.Find("keys"));
  ASSERT_FALSE(jwks.Find("keys")->as_array().empty());
  EXPECT_FALSE(jwks.Find("keys")->as_array()[0].GetString("kid").empty());
  EXPECT_FALSE(jwks.Find("keys")->as_array()[0].Find("d"));  // public only

  // The CapabilityStatement's oauth-uris name the same endpoints.
  auto metadata = Get("/fhir/metadata");
  ASSERT_EQ(metadata.status, 200);
  std::string cs = metadata.body;
  EXPECT_NE(cs.find("SMART-on-FHIR"), std::string::npos);
  for (const char* key : {"authorization_endpoint", "token_endpoint", "introspection_endpoint",
                          "revocation_endpoint", "management_endpoint"})
    EXPECT_NE(cs.find("\"" + std::string(c.GetString(key)) + "\""), std::string::npos) << key;
}

TEST_P(AuthTest, FhirApiNeedsAValidToken) {
  auto none = Fhir("GET", "Patient/pa", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_TRUE(none.Header("WWW-Authenticate").starts_with("Bearer"));
  EXPECT_NE(none.body.find("OperationOutcome"), std::string::npos);
  auto garbage = Fhir("GET", "Patient/pa", "not-a-token");
  EXPECT_EQ(garbage.status, 401);
  EXPECT_NE(garbage.Header("WWW-Authenticate").find("invalid_token"), std::string::npos);
  // A token with a changed payload does not verify.
  std::string t = admin_token_;
  size_t dot = t.find('.');
  auto claims = ParseJson(*jose::Base64UrlDecode(t.substr(dot + 1, t.rfind('.') - dot - 1)));
  claims.Set("scope", "system/*.cruds patient/*.cruds");
  std::string forged =
      t.substr(0, dot + 1) + jose::Base64UrlEncode(json::Write(claims)) + t.substr(t.rfind('.'));
  EXPECT_EQ(Fhir("GET", "Patient/pa", forged).status, 401);
  // Expired: the backend token lives 5 minutes.
  EXPECT_EQ(Fhir("GET", "Patient/pa", admin_token_).status, 200);
  clock_.Advance(301LL * 1000000);
  EXPECT_EQ(Fhir("GET", "Patient/pa", admin_token_).status, 401);
  EXPECT_EQ(Get("/fhir/metadata").status, 200);  // the CapabilityStatement is public
}

TEST_P(AuthTest, StandalonePatientLaunchWithPkce) {
  Browser b;
  auto login =
      BrowserGet(b, AuthorizeUrl("launch/patient openid fhirUser offline_access patient/*.rs"));
  ASSERT_EQ(login.status, 200);
  EXPECT_NE(login.body.find("name=\"password\""), std::string::npos);
  EXPECT_NE(login.Header("Content-Security-Policy").find("frame-ancestors"), std::string::npos);
  EXPECT_FALSE(b.cookie.empty());
  // A wrong password shows the page again.
  auto wrong = BrowserPost(b, "/auth/login",
                           {{"csrf", HiddenInput(login.body, "csrf")},
                            {"request", HiddenInput(login.body, "request")},
                            {"username", "ada"},
                            {"password", "nope"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.body.find("wrong"), std::string::npos);
  // Without the CSRF token the form is refused.
  auto forged = BrowserPost(b, "/auth/login",
                            {{"request", HiddenInput(login.body, "request")},
                             {"username", "ada"},
                             {"password", "ada-password-1"}});
  EXPECT_EQ(forged.status, 403);

  std::vector<std::string> keep{"launch/patient", "openid", "fhirUser", "patient/*.rs"};
  auto done =
      Authorize(b, AuthorizeUrl("launch/patient openid fhirUser offline_access patient/*.rs"),
                "ada", "ada-password-1", &keep);
  ASSERT_EQ(done.status, 302) << done.body;
  std::string location(done.Header("Location"));
  ASSERT_TRUE(location.starts_with("https://app.example/cb?")) << location;
  EXPECT_EQ(QueryValue(location, "state"), "st-123");
  std::string code = QueryValue(location, "code");
  ASSERT_FALSE(code.empty());

  auto token = Exchange(code);
  ASSERT_EQ(token.status, 200) << token.body;
  EXPECT_EQ(token.Header("Cache-Control"), "no-store");
  EXPECT_EQ(token.Header("Pragma"), "no-cache");
  json::Value t = ParseJson(token.body);
  EXPECT_EQ(t.GetString("token_type"), "Bearer");
  ASSERT_TRUE(t.Find("expires_in") && t.Find("expires_in")->is_number());
  EXPECT_EQ(t.GetString("scope"),
            "launch/patient openid fhirUser patient/*.rs");  // unticked: offline_access
  EXPECT_FALSE(t.Find("refresh_token"));
  EXPECT_EQ(t.GetString("patient"), "pa");
  ASSERT_FALSE(t.GetString("id_token").empty());
  auto id_token = jose::ParseJws(t.GetString("id_token"));
  ASSERT_TRUE(id_token);
  EXPECT_EQ(jose::AlgName(id_token->alg), "RS256");
  EXPECT_FALSE(id_token->kid.empty());
  EXPECT_EQ(id_token->claims.GetString("aud"), "app");
  EXPECT_EQ(id_token->claims.GetString("nonce"), "n-1");
  EXPECT_EQ(id_token->claims.GetString("fhirUser"), fhir_ + "/Patient/pa");
  auto keys = jose::KeySet::FromJwks(ParseJson(Get("/auth/jwks").body));
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->Verify(*id_token));

  std::string access(t.GetString("access_token"));
  auto own = Fhir("GET", "Patient/pa", access);
  EXPECT_EQ(own.status, 200);
  EXPECT_EQ(own.Header("Cache-Control"), "no-store");  // never replayed from a cache
  EXPECT_EQ(Fhir("GET", "Patient/pb", access).status, 403);
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", access).status, 200);
  EXPECT_EQ(Fhir("GET", "Observation/ob-lab", access).status, 403);
  auto search = Fhir("GET", "Observation?_count=50", access);
  ASSERT_EQ(search.status, 200);
  EXPECT_NE(search.body.find("oa-lab"), std::string::npos);
  EXPECT_EQ(search.body.find("ob-lab"), std::string::npos);
  // Reaching for the other patient through the search itself returns nothing of theirs.
  auto theirs = Fhir("GET", "Observation?subject=Patient/pb", access);
  ASSERT_EQ(theirs.status, 200);
  EXPECT_EQ(theirs.body.find("ob-lab"), std::string::npos);
  EXPECT_EQ(Fhir("GET", "Patient/pb/Observation", access).status, 403);
  auto patients = Fhir("GET", "Patient", access);
  EXPECT_NE(patients.body.find("\"pa\""), std::string::npos);
  EXPECT_EQ(patients.body.find("\"pb\""), std::string::npos);
  // _revinclude and _include bring nothing of another patient.
  auto included = Fhir("GET", "Patient?_revinclude=Observation:subject", access);
  EXPECT_EQ(included.body.find("ob-lab"), std::string::npos);
  // Nor do :iterate rounds through what the token may not see: the other patient's Encounter at
  // the same Organization leads to no Location of theirs (a Location is shown by its type alone).
  Put("Organization/org", R"({"resourceType":"Organization","id":"org","name":"Clinic"})");
  for (const auto& [encounter, patient, location] :
       std::vector<std::tuple<std::string, std::string, std::string>>{{"ea", "pa", "loc-a"},
                                                                      {"eb", "pb", "loc-b"}}) {
    Put("Location/" + location,
        R"({"resourceType":"Location","id":")" + location + R"(","name":")" + location + "\"}");
    Put("Encounter/" + encounter,
        R"({"resourceType":"Encounter","id":")" + encounter +
            R"(","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/)" +
            patient +
            R"("},"serviceProvider":{"reference":"Organization/org"},"location":[{"location":{"reference":"Location/)" +
            location + R"("}}]})");
  }
  auto iterated =
      Fhir("GET",
           "Encounter?_include=Encounter:service-provider&_revinclude:iterate=Encounter:"
           "service-provider&_include:iterate=Encounter:location",
           access);
  ASSERT_EQ(iterated.status, 200) << iterated.body;
  EXPECT_NE(iterated.body.find("Organization/org"), std::string::npos) << iterated.body;
  EXPECT_NE(iterated.body.find("Location/loc-a"), std::string::npos) << iterated.body;
  EXPECT_EQ(iterated.body.find("Location/loc-b"), std::string::npos) << iterated.body;
  EXPECT_EQ(iterated.body.find("Encounter/eb"), std::string::npos) << iterated.body;
  // rs allows no writes.
  EXPECT_EQ(
      Fhir("PUT", "Patient/pa", access, R"({"resourceType":"Patient","id":"pa","gender":"female"})")
          .status,
      403);
  EXPECT_EQ(Fhir("DELETE", "Observation/oa-lab", access).status, 403);
  // history only shows what the token may read
  auto history = Fhir("GET", "Observation/_history", access);
  ASSERT_EQ(history.status, 200);
  EXPECT_EQ(history.body.find("ob-lab"), std::string::npos);
  EXPECT_NE(history.body.find("oa-lab"), std::string::npos);
}

TEST_P(AuthTest, CodesAreSingleUseBoundAndShortLived) {
  std::string scope = "launch/patient patient/*.rs";
  Browser b;
  auto done = Authorize(b, AuthorizeUrl(scope), "ada", "ada-password-1");
  std::string code = QueryValue(std::string(done.Header("Location")), "code");
  // A wrong verifier fails, and burns the code.
  auto bad = Exchange(code, "app", "https://app.example/cb", std::string(60, 'x'));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ParseJson(bad.body).GetString("error"), "invalid_grant");

  done = Authorize(b, AuthorizeUrl(scope), "ada", "ada-password-1");
  code = QueryValue(std::string(done.Header("Location")), "code");
  EXPECT_EQ(ParseJson(Exchange(code, "app", "https://app.example/other").body).GetString("error"),
            "invalid_grant");  // another redirect_uri

  done = Authorize(b, AuthorizeUrl(scope), "ada", "ada-password-1");
  code = QueryValue(std::string(done.Header("Location")), "code");
  EXPECT_EQ(ParseJson(Exchange(code, "other").body).GetString("error"), "invalid_grant");

  done = Authorize(b, AuthorizeUrl(scope), "ada", "ada-password-1");
  code = QueryValue(std::string(done.Header("Location")), "code");
  clock_.Advance(61LL * 1000000);
  EXPECT_EQ(ParseJson(Exchange(code).body).GetString("error"), "invalid_grant");  // expired

  done = Authorize(b, AuthorizeUrl(scope), "ada", "ada-password-1");
  code = QueryValue(std::string(done.Header("Location")), "code");
  auto first = Exchange(code);
  ASSERT_EQ(first.status, 200);
  std::string access(ParseJson(first.body).GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Patient/pa", access).status, 200);
  auto again = Exchange(code);
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(ParseJson(again.body).GetString("error"), "invalid_grant");
  EXPECT_EQ(Fhir("GET", "Patient/pa", access).status, 401);  // what the first use got is revoked
}

TEST_P(AuthTest, AuthorizeErrors) {
  // Unknown client and unregistered redirect URI: a page, never a redirect.
  auto unknown = Get(AuthorizeUrl("patient/*.rs", "nobody"));
  EXPECT_EQ(unknown.status, 400);
  EXPECT_TRUE(unknown.Header("Location").empty());
  auto bad_redirect = Get(AuthorizeUrl("patient/*.rs", "app", "https://evil.example/cb"));
  EXPECT_EQ(bad_redirect.status, 400);
  EXPECT_TRUE(bad_redirect.Header("Location").empty());
  auto prefix = Get(AuthorizeUrl("patient/*.rs", "app", "https://app.example/cb/x"));
  EXPECT_EQ(prefix.status, 400);  // exact match only

  auto redirect_error = [&](const std::string& url) {
    auto r = Get(url);
    EXPECT_EQ(r.status, 302) << r.body;
    return std::string(r.Header("Location"));
  };
  std::string no_pkce =
      redirect_error("/auth/authorize?" + Form({{"response_type", "code"},
                                                {"client_id", "app"},
                                                {"redirect_uri", "https://app.example/cb"},
                                                {"scope", "patient/*.rs"},
                                                {"state", "s1"},
                                                {"aud", fhir_}}));
  EXPECT_EQ(QueryValue(no_pkce, "error"), "invalid_request");
  EXPECT_EQ(QueryValue(no_pkce, "state"), "s1");
  std::string plain =
      redirect_error("/auth/authorize?" + Form({{"response_type", "code"},
                                                {"client_id", "app"},
                                                {"redirect_uri", "https://app.example/cb"},
                                                {"scope", "patient/*.rs"},
                                                {"state", "s1"},
                                                {"aud", fhir_},
                                                {"code_challenge", kVerifier},
                                                {"code_challenge_method", "plain"}}));
  EXPECT_EQ(QueryValue(plain, "error"), "invalid_request");
  std::string aud =
      redirect_error("/auth/authorize?" + Form({{"response_type", "code"},
                                                {"client_id", "app"},
                                                {"redirect_uri", "https://app.example/cb"},
                                                {"scope", "patient/*.rs"},
                                                {"state", "s1"},
                                                {"aud", "https://elsewhere.example/fhir"},
                                                {"code_challenge", kChallenge},
                                                {"code_challenge_method", "S256"}}));
  EXPECT_EQ(QueryValue(aud, "error"), "invalid_request");
  std::string type =
      redirect_error("/auth/authorize?" + Form({{"response_type", "token"},
                                                {"client_id", "app"},
                                                {"redirect_uri", "https://app.example/cb"},
                                                {"scope", "patient/*.rs"},
                                                {"state", "s1"},
                                                {"aud", fhir_}}));
  EXPECT_EQ(QueryValue(type, "error"), "unsupported_response_type");
  std::string scope = redirect_error(AuthorizeUrl("patient/Observation.sr"));
  EXPECT_EQ(QueryValue(scope, "error"), "invalid_scope");

  // authorize-post works like GET.
  auto post = Post("/auth/authorize", Form({{"response_type", "code"},
                                            {"client_id", "app"},
                                            {"redirect_uri", "https://app.example/cb"},
                                            {"scope", "patient/*.rs"},
                                            {"state", "s1"},
                                            {"aud", fhir_},
                                            {"code_challenge", kChallenge},
                                            {"code_challenge_method", "S256"}}));
  EXPECT_EQ(post.status, 200);
  EXPECT_NE(post.body.find("name=\"password\""), std::string::npos);

  // Deny goes back with access_denied.
  Browser b;
  auto page = BrowserGet(b, AuthorizeUrl("launch/patient patient/*.rs"));
  page = BrowserPost(b, "/auth/login",
                     {{"csrf", HiddenInput(page.body, "csrf")},
                      {"request", HiddenInput(page.body, "request")},
                      {"username", "ada"},
                      {"password", "ada-password-1"}});
  auto denied = BrowserPost(b, "/auth/consent",
                            {{"csrf", HiddenInput(page.body, "csrf")},
                             {"request", HiddenInput(page.body, "request")},
                             {"decision", "deny"}});
  ASSERT_EQ(denied.status, 302);
  EXPECT_EQ(QueryValue(std::string(denied.Header("Location")), "error"), "access_denied");
}

TEST_P(AuthTest, TokenEndpointErrors) {
  auto unsupported = Post("/auth/token", Form({{"grant_type", "password"}, {"client_id", "app"}}));
  EXPECT_EQ(unsupported.status, 400);
  EXPECT_EQ(ParseJson(unsupported.body).GetString("error"), "unsupported_grant_type");
  auto missing = Post("/auth/token", Form({{"client_id", "app"}}));
  EXPECT_EQ(ParseJson(missing.body).GetString("error"), "invalid_request");
  auto unknown_code = Post("/auth/token", Form({{"grant_type", "authorization_code"},
                                                {"client_id", "app"},
                                                {"code", "nope"},
                                                {"redirect_uri", "https://app.example/cb"}}));
  EXPECT_EQ(unknown_code.status, 400);
  EXPECT_EQ(ParseJson(unknown_code.body).GetString("error"), "invalid_grant");
  auto bad_secret =
      Post("/auth/token", Form({{"grant_type", "client_credentials"}, {"scope", "system/*.rs"}}),
           {{"Authorization", Basic("admin", "wrong")}});
  EXPECT_EQ(bad_secret.status, 401);
  EXPECT_EQ(ParseJson(bad_secret.body).GetString("error"), "invalid_client");
  auto unknown_client =
      Post("/auth/token", Form({{"grant_type", "client_credentials"}, {"client_id", "ghost"}}));
  EXPECT_EQ(ParseJson(unknown_client.body).GetString("error"), "invalid_client");
  // A public client cannot use client_credentials.
  auto public_cc = Post(
      "/auth/token",
      Form({{"grant_type", "client_credentials"}, {"client_id", "app"}, {"scope", "system/*.rs"}}));
  EXPECT_EQ(ParseJson(public_cc.body).GetString("error"), "unauthorized_client");
  // Scope the client may not have.
  auto scope =
      Post("/auth/token", Form({{"grant_type", "client_credentials"}, {"scope", "user/*.rs"}}),
           {{"Authorization", Basic("admin", admin_secret_)}});
  EXPECT_EQ(ParseJson(scope.body).GetString("error"), "invalid_scope");
  // client_secret_post works too.
  auto post = Post("/auth/token", Form({{"grant_type", "client_credentials"},
                                        {"scope", "system/Patient.rs"},
                                        {"client_id", "admin"},
                                        {"client_secret", admin_secret_}}));
  EXPECT_EQ(post.status, 200) << post.body;
  EXPECT_EQ(ParseJson(post.body).GetString("scope"), "system/Patient.rs");
}

TEST_P(AuthTest, RefreshRotatesNarrowsAndDetectsReplay) {
  json::Value t =
      Login("ada", "ada-password-1", "launch/patient openid fhirUser offline_access patient/*.rs");
  std::string refresh(t.GetString("refresh_token"));
  ASSERT_FALSE(refresh.empty());
  auto refresh_with = [&](const std::string& token, const std::string& client,
                          const std::string& scope) {
    Params p{{"grant_type", "refresh_token"}, {"refresh_token", token}, {"client_id", client}};
    if (!scope.empty()) p.emplace_back("scope", scope);
    return Post("/auth/token", Form(p));
  };
  // Another client cannot use it (and it stays usable by its own).
  EXPECT_EQ(ParseJson(refresh_with(refresh, "other", "").body).GetString("error"), "invalid_grant");
  // The full original scope set is accepted.
  auto full = refresh_with(refresh, "app", std::string(t.GetString("scope")));
  ASSERT_EQ(full.status, 200) << full.body << " scope " << t.GetString("scope");
  json::Value t2 = ParseJson(full.body);
  std::string refresh2(t2.GetString("refresh_token"));
  EXPECT_NE(refresh2, refresh);  // rotated
  EXPECT_EQ(t2.GetString("patient"), "pa");
  // Widening fails; narrowing works.
  EXPECT_EQ(ParseJson(refresh_with(refresh2, "app", "patient/*.cruds").body).GetString("error"),
            "invalid_scope");
  auto narrow = refresh_with(refresh2, "app", "patient/Observation.rs");
  ASSERT_EQ(narrow.status, 200) << narrow.body;
  json::Value t3 = ParseJson(narrow.body);
  EXPECT_EQ(t3.GetString("scope"), "patient/Observation.rs");
  std::string access3(t3.GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", access3).status, 200);
  EXPECT_EQ(Fhir("GET", "Patient/pa", access3).status, 403);
  // Replaying a rotated refresh token revokes the whole grant.
  EXPECT_EQ(ParseJson(refresh_with(refresh, "app", "").body).GetString("error"), "invalid_grant");
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", access3).status, 401);
  EXPECT_EQ(refresh_with(std::string(t3.GetString("refresh_token")), "app", "").status, 400);
}

TEST_P(AuthTest, IntrospectionAndRevocation) {
  json::Value t = Login("ada", "ada-password-1", "launch/patient offline_access patient/*.rs");
  std::string access(t.GetString("access_token"));
  auto introspect = [&](const std::string& token) {
    return Post("/auth/introspect", Form({{"token", token}}),
                {{"Authorization", Basic("admin", admin_secret_)}});
  };
  auto active = introspect(access);
  ASSERT_EQ(active.status, 200);
  json::Value a = ParseJson(active.body);
  EXPECT_EQ(json::Write(*a.Find("active")), "true");
  EXPECT_EQ(a.GetString("client_id"), "app");
  EXPECT_EQ(a.GetString("patient"), "pa");
  EXPECT_EQ(a.GetString("scope"), "launch/patient offline_access patient/*.rs");
  EXPECT_TRUE(a.Find("exp"));
  EXPECT_EQ(introspect("garbage").body, "{\"active\":false}");
  // Unauthenticated callers are refused.
  EXPECT_EQ(Post("/auth/introspect", Form({{"token", access}})).status, 401);
  // Revocation (RFC 7009) of the access token.
  auto revoked = Post("/auth/revoke", Form({{"token", access}, {"client_id", "app"}}));
  EXPECT_EQ(revoked.status, 200);
  EXPECT_EQ(introspect(access).body, "{\"active\":false}");
  EXPECT_EQ(Fhir("GET", "Patient/pa", access).status, 401);
  // Revoking the refresh token ends the grant.
  std::string refresh(t.GetString("refresh_token"));
  EXPECT_EQ(json::Write(*ParseJson(introspect(refresh).body).Find("active")), "true");
  EXPECT_EQ(Post("/auth/revoke", Form({{"token", refresh}, {"client_id", "app"}})).status, 200);
  EXPECT_EQ(introspect(refresh).body, "{\"active\":false}");
  EXPECT_EQ(
      Post(
          "/auth/token",
          Form({{"grant_type", "refresh_token"}, {"refresh_token", refresh}, {"client_id", "app"}}))
          .status,
      400);
}

TEST_P(AuthTest, ScopeLettersOneByOne) {
  // create without read
  json::Value t = Login("ada", "ada-password-1", "launch/patient patient/Observation.c");
  std::string token(t.GetString("access_token"));
  std::string mine =
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pa"}})";
  std::string theirs =
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pb"}})";
  EXPECT_EQ(Fhir("POST", "Observation", token, mine).status, 201);
  EXPECT_EQ(Fhir("POST", "Observation", token, theirs).status, 403);
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", token).status, 403);
  EXPECT_EQ(Fhir("GET", "Observation", token).status, 403);
  EXPECT_EQ(Fhir("POST", "Condition", token,
                 R"({"resourceType":"Condition","subject":{"reference":"Patient/pa"}})")
                .status,
            403);
  // read without search
  t = Login("ada", "ada-password-1", "launch/patient patient/Observation.r");
  token = std::string(t.GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", token).status, 200);
  EXPECT_EQ(Fhir("GET", "Observation", token).status, 403);
  // update and delete
  t = Login("ada", "ada-password-1", "launch/patient patient/Observation.ud");
  token = std::string(t.GetString("access_token"));
  std::string update =
      R"({"resourceType":"Observation","id":"oa-vital","status":"amended","code":{"text":"y"},"subject":{"reference":"Patient/pa"}})";
  EXPECT_EQ(Fhir("PUT", "Observation/oa-vital", token, update).status, 200);
  std::string move =
      R"({"resourceType":"Observation","id":"oa-vital","status":"amended","code":{"text":"y"},"subject":{"reference":"Patient/pb"}})";
  EXPECT_EQ(Fhir("PUT", "Observation/oa-vital", token, move).status,
            403);  // out of the compartment
  EXPECT_EQ(Fhir("DELETE", "Observation/ob-lab", token).status, 403);
  EXPECT_EQ(Fhir("DELETE", "Observation/oa-vital", token).status, 204);
}

// A chain reads the types it passes through: every type, for a chain through a reference that
// may point to several (Patient.general-practitioner: Practitioner and Organization have `name`).
TEST_P(AuthTest, ChainsNeedSearchAccessToEveryTypeTheyRead) {
  json::Value t =
      Login("ada", "ada-password-1", "launch/patient patient/Patient.rs patient/Practitioner.rs");
  std::string token(t.GetString("access_token"));
  ASSERT_FALSE(token.empty()) << json::Write(t);
  auto typed = Fhir("GET", "Patient?general-practitioner:Practitioner.name=smith", token);
  EXPECT_EQ(typed.status, 200) << typed.body;
  auto untyped = Fhir("GET", "Patient?general-practitioner.name=smith", token);
  EXPECT_EQ(untyped.status, 403) << untyped.body;
  EXPECT_NE(untyped.body.find("Organization"), std::string::npos) << untyped.body;
  t = Login("ada", "ada-password-1",
            "launch/patient patient/Patient.rs patient/Practitioner.rs patient/Organization.rs");
  token = std::string(t.GetString("access_token"));
  auto both = Fhir("GET", "Patient?general-practitioner.name=smith", token);
  EXPECT_EQ(both.status, 200) << both.body;
}

// A chain or reverse chain through a type the token may search only in part reads only that
// part: the patient's compartment, the scope's query restriction. Otherwise a match would tell
// what another patient's resources hold.
TEST_P(AuthTest, ChainsReadOnlyWhatTheScopesOfTheirTypesAllow) {
  // In Ada's compartment (she performed it) but about Grace.
  Put("Observation/about-b",
      R"({"resourceType":"Observation","id":"about-b","status":"final","code":{"text":"x"},)"
      R"("subject":{"reference":"Patient/pb"},"performer":[{"reference":"Patient/pa"}]})");
  // Grace's, by a practitioner of her own.
  Put("Practitioner/dr2",
      R"({"resourceType":"Practitioner","id":"dr2","name":[{"family":"Jones"}]})");
  Put("Observation/ob-2",
      R"({"resourceType":"Observation","id":"ob-2","status":"final","code":{"text":"x"},)"
      R"("subject":{"reference":"Patient/pb"},"performer":[{"reference":"Practitioner/dr2"}]})");
  json::Value t = Login("ada", "ada-password-1", "launch/patient patient/*.rs");
  std::string token(t.GetString("access_token"));
  ASSERT_FALSE(token.empty()) << json::Write(t);
  auto ids = [&](const std::string& query) {
    auto r = Fhir("GET", query, token);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    std::vector<std::string> out;
    json::Value bundle = ParseJson(r.body);
    if (const json::Value* entries = bundle.Find("entry"); entries && entries->is_array())
      for (const auto& e : entries->as_array())
        if (const json::Value* resource = e.Find("resource"))
          out.emplace_back(resource->GetString("id"));
    std::sort(out.begin(), out.end());
    return out;
  };
  using Ids = std::vector<std::string>;
  // Ada may read the observation, not Grace's name through it; her own name is chained as before.
  EXPECT_EQ(ids("Observation?_id=about-b"), Ids{"about-b"});
  EXPECT_EQ(ids("Observation?subject:Patient.name=Hopper"), Ids{});
  EXPECT_EQ(ids("Observation?subject:Patient.name=Lovelace"), (Ids{"oa-lab", "oa-vital"}));
  // Any Practitioner may be searched, but only through Ada's observations.
  EXPECT_EQ(ids("Practitioner?_has:Observation:performer:status=final"), Ids{"dr"});
  EXPECT_EQ(ids("Practitioner?_id=dr2&_has:Observation:performer:subject=Patient/pb"), Ids{});
  // Through a chain to several types (Observation.subject: Patient, Group, Device, Location), the
  // reverse chain's observations are Ada's too: not one about a Location by another practitioner.
  Put("Location/ward", R"({"resourceType":"Location","id":"ward","name":"Ward"})");
  Put("Observation/at-ward",
      R"({"resourceType":"Observation","id":"at-ward","status":"final","code":{"text":"x"},)"
      R"("subject":{"reference":"Location/ward"},"performer":[{"reference":"Practitioner/dr2"}]})");
  EXPECT_EQ(ids("Location?name=Ward"), Ids{"ward"});
  EXPECT_EQ(ids("Practitioner?_has:Observation:performer:subject.name=Ward"), Ids{});
  // A query restriction on the type read.
  t = Login("ada", "ada-password-1",
            "launch/patient patient/Patient.rs patient/Observation.rs?category=http://"
            "terminology.hl7.org/CodeSystem/observation-category|laboratory");
  token = std::string(t.GetString("access_token"));
  EXPECT_EQ(ids("Patient?_has:Observation:patient:category=laboratory"), Ids{"pa"});
  EXPECT_EQ(ids("Patient?_has:Observation:patient:category=vital-signs"), Ids{});
  // A restriction that chains would read another type unchecked: refused.
  t = Login("ada", "ada-password-1",
            "launch/patient patient/Patient.rs patient/Observation.rs?subject:Patient.name=Ada");
  token = std::string(t.GetString("access_token"));
  ASSERT_NE(t.GetString("scope").find("subject:Patient.name"), std::string_view::npos)
      << json::Write(t);
  auto chained = Fhir("GET", "Observation", token);
  EXPECT_EQ(chained.status, 403) << chained.body;
}

// Conditional operations and conditional references search too: the types their criteria's
// chains and reverse chains read need search access as well.
TEST_P(AuthTest, ConditionalCriteriaNeedSearchAccessToTheTypesTheyRead) {
  auto issued = Post("/auth/token",
                     Form({{"grant_type", "client_credentials"},
                           {"scope",
                            "system/Patient.cruds system/Practitioner.rs "
                            "system/Observation.c"}}),
                     {{"Authorization", Basic("admin", admin_secret_)}});
  ASSERT_EQ(issued.status, 200) << issued.body;
  std::string token(ParseJson(issued.body).GetString("access_token"));
  const std::string patient = R"({"resourceType":"Patient","name":[{"family":"Kay"}]})";
  // Through Organization (general-practitioner may be one), which the token may not search.
  auto untyped = Fhir("PUT", "Patient?general-practitioner.name=smith", token, patient);
  EXPECT_EQ(untyped.status, 403) << untyped.body;
  auto typed = Fhir("PUT", "Patient?general-practitioner:Practitioner.name=nobody", token, patient);
  EXPECT_TRUE(typed.status == 200 || typed.status == 201) << typed.body;
  auto has = Send("POST", "/fhir/Patient", patient,
                  {{"Authorization", "Bearer " + token},
                   {"Content-Type", "application/fhir+json"},
                   {"If-None-Exist", "_has:Condition:patient:code=x"}});
  EXPECT_EQ(has.status, 403) << has.body;
  auto deleted = Fhir("DELETE", "Patient?general-practitioner.name=smith", token);
  EXPECT_EQ(deleted.status, 403) << deleted.body;
  // A conditional reference in a transaction.
  auto bundle =
      Fhir("POST", "", token,
           R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":)"
           R"("Observation","status":"final","code":{"text":"x"},"subject":{"reference":)"
           R"("Patient?general-practitioner.name=smith"}},"request":{"method":"POST","url":)"
           R"("Observation"}}]})");
  EXPECT_EQ(bundle.status, 403) << bundle.body;
}

TEST_P(AuthTest, QueryRestrictedScopes) {
  json::Value t = Login("ada", "ada-password-1",
                        "launch/patient patient/Observation.rs?category=http://"
                        "terminology.hl7.org/CodeSystem/observation-category|laboratory");
  std::string token(t.GetString("access_token"));
  ASSERT_FALSE(token.empty()) << json::Write(t);
  auto search = Fhir("GET", "Observation", token);
  ASSERT_EQ(search.status, 200) << search.body;
  EXPECT_NE(search.body.find("oa-lab"), std::string::npos);
  EXPECT_EQ(search.body.find("oa-vital"), std::string::npos);
  EXPECT_EQ(search.body.find("ob-lab"), std::string::npos);
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", token).status, 200);
  EXPECT_EQ(Fhir("GET", "Observation/oa-vital", token).status, 403);
}

TEST_P(AuthTest, PractitionerUserScopesAndPatientPicker) {
  json::Value t =
      Login("drsmith", "smith-password-1", "launch/patient openid fhirUser user/*.rs", "pb");
  EXPECT_EQ(t.GetString("patient"), "pb");
  std::string token(t.GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Patient/pa", token).status, 200);  // user/ scopes: not confined
  auto all = Fhir("GET", "Observation", token);
  EXPECT_NE(all.body.find("ob-lab"), std::string::npos);
  EXPECT_NE(all.body.find("oa-lab"), std::string::npos);
  EXPECT_EQ(Fhir("DELETE", "Observation/oa-lab", token).status, 403);
  EXPECT_EQ(Fhir("POST", "$reindex", token).status, 403);
}

TEST_P(AuthTest, StandaloneEncounterPicker) {
  Browser b;
  auto page = BrowserGet(b, AuthorizeUrl("launch/patient launch/encounter patient/*.rs"));
  page = BrowserPost(b, "/auth/login",
                     {{"csrf", HiddenInput(page.body, "csrf")},
                      {"request", HiddenInput(page.body, "request")},
                      {"username", "ada"},
                      {"password", "ada-password-1"}});
  ASSERT_NE(page.body.find("name=\"encounter\" value=\"ea\""), std::string::npos) << page.body;
  // An encounter of someone else is not accepted.
  auto wrong = BrowserPost(b, "/auth/encounter",
                           {{"csrf", HiddenInput(page.body, "csrf")},
                            {"request", HiddenInput(page.body, "request")},
                            {"encounter", "not-hers"}});
  EXPECT_NE(wrong.body.find("name=\"encounter\" value=\"ea\""), std::string::npos);
  auto done = Authorize(b, AuthorizeUrl("launch/patient launch/encounter patient/*.rs"), "ada",
                        "ada-password-1");
  ASSERT_EQ(done.status, 302) << done.body;
  auto token = Exchange(QueryValue(std::string(done.Header("Location")), "code"));
  ASSERT_EQ(token.status, 200);
  json::Value t = ParseJson(token.body);
  EXPECT_EQ(t.GetString("patient"), "pa");
  EXPECT_EQ(t.GetString("encounter"), "ea");
}

TEST_P(AuthTest, LauncherSimulationsThroughTheLaunchEndpoint) {
  // The EHR side: a signed-in practitioner asks for launch values.
  Browser ehr;
  auto login = BrowserGet(ehr, "/auth/login");
  auto signed_in = BrowserPost(ehr, "/auth/login",
                               {{"csrf", HiddenInput(login.body, "csrf")},
                                {"request", ""},
                                {"username", "drsmith"},
                                {"password", "smith-password-1"}});
  ASSERT_EQ(signed_in.status, 302);
  auto apps = BrowserGet(ehr, "/auth/apps");
  std::string csrf = HiddenInput(apps.body, "csrf");
  auto make_launch = [&](const std::string& simulate) {
    http::Headers h{
        {"Cookie", ehr.cookie}, {"Content-Type", "application/json"}, {"X-CSRF-Token", csrf}};
    auto r = Send("POST", "/auth/launch",
                  R"({"patient":"pa","encounter":"ea","simulate":)" + simulate + "}", h);
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(ParseJson(r.body).GetString("launch"));
  };
  // Without the CSRF header the endpoint refuses.
  EXPECT_EQ(Send("POST", "/auth/launch", R"({"patient":"pa"})",
                 {{"Cookie", ehr.cookie}, {"Content-Type", "application/json"}})
                .status,
            403);
  std::string scope = "launch openid fhirUser patient/*.rs";
  auto run = [&](const std::string& launch) {
    Browser b;
    return Authorize(b, AuthorizeUrl(scope, "app", "https://app.example/cb", launch), "", "");
  };
  auto failing = run(make_launch(R"({"error":"authorize"})"));
  ASSERT_EQ(failing.status, 302);
  EXPECT_EQ(QueryValue(std::string(failing.Header("Location")), "error"), "server_error");

  auto expiring = run(make_launch(R"({"error":"token_expiry"})"));
  auto t = ParseJson(Exchange(QueryValue(std::string(expiring.Header("Location")), "code")).body);
  EXPECT_EQ(json::Write(*t.Find("expires_in")), "10");
  std::string access(t.GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Patient/pa", access).status, 200);
  clock_.Advance(11LL * 1000000);
  EXPECT_EQ(Fhir("GET", "Patient/pa", access).status, 401);

  auto missing = run(make_launch(R"({"error":"missing_context"})"));
  t = ParseJson(Exchange(QueryValue(std::string(missing.Header("Location")), "code")).body);
  EXPECT_FALSE(t.Find("patient"));
  EXPECT_EQ(Fhir("GET", "Patient/pa", std::string(t.GetString("access_token"))).status, 403);

  auto dropped = run(make_launch(R"({"error":"scope_not_granted","scope":"patient/*.rs"})"));
  t = ParseJson(Exchange(QueryValue(std::string(dropped.Header("Location")), "code")).body);
  EXPECT_EQ(t.GetString("scope"), "launch openid fhirUser");
}

TEST_P(AuthTest, EhrLaunch) {
  auto launch = server::CreateLaunch(db_, "drsmith", "pa", "ea", 300);
  ASSERT_TRUE(launch) << launch.error().message();
  Browser b;
  // The launch signs in the EHR's user: straight to consent.
  auto consent = BrowserGet(b, AuthorizeUrl("launch openid fhirUser patient/*.rs", "app",
                                            "https://app.example/cb", *launch));
  ASSERT_EQ(consent.status, 200) << consent.body << consent.Header("Location");
  EXPECT_NE(consent.body.find("name=\"decision\""), std::string::npos);
  EXPECT_NE(consent.body.find("Ada Lovelace"), std::string::npos);
  auto done = BrowserPost(b, "/auth/consent",
                          {{"csrf", HiddenInput(consent.body, "csrf")},
                           {"request", HiddenInput(consent.body, "request")},
                           {"decision", "allow"},
                           {"scope", "launch"},
                           {"scope", "openid"},
                           {"scope", "fhirUser"},
                           {"scope", "patient/*.rs"}});
  ASSERT_EQ(done.status, 302);
  auto token = Exchange(QueryValue(std::string(done.Header("Location")), "code"));
  ASSERT_EQ(token.status, 200) << token.body;
  json::Value t = ParseJson(token.body);
  EXPECT_EQ(t.GetString("patient"), "pa");
  EXPECT_EQ(t.GetString("encounter"), "ea");
  EXPECT_TRUE(t.Find("need_patient_banner"));
  EXPECT_FALSE(t.GetString("smart_style_url").empty());
  auto id_token = jose::ParseJws(t.GetString("id_token"));
  ASSERT_TRUE(id_token);
  EXPECT_EQ(id_token->claims.GetString("fhirUser"), fhir_ + "/Practitioner/dr");
  // A launch value is single-use.
  auto reused = Get(AuthorizeUrl("launch patient/*.rs", "app", "https://app.example/cb", *launch));
  ASSERT_EQ(reused.status, 302);
  EXPECT_EQ(QueryValue(std::string(reused.Header("Location")), "error"), "invalid_request");
}

TEST_P(AuthTest, ConsentIsRememberedAndCanBeWithdrawn) {
  std::string scope = "launch/patient offline_access patient/*.rs";
  json::Value t = Login("ada", "ada-password-1", scope);
  std::string refresh(t.GetString("refresh_token"));
  // The second time the same browser is not asked again.
  Browser b;
  auto first = Authorize(b, AuthorizeUrl(scope), "ada", "ada-password-1");
  ASSERT_EQ(first.status, 302);
  auto second = BrowserGet(b, AuthorizeUrl(scope));
  ASSERT_EQ(second.status, 302) << second.body;
  EXPECT_FALSE(QueryValue(std::string(second.Header("Location")), "code").empty());
  // A Consent resource records it.
  auto consents = Fhir("GET", "Consent?patient=Patient/pa", admin_token_);
  EXPECT_NE(consents.body.find("\"status\":\"active\""), std::string::npos) << consents.body;
  // The apps page lists the app; withdrawing revokes its refresh tokens.
  auto apps = BrowserGet(b, "/auth/apps");
  ASSERT_EQ(apps.status, 200);
  EXPECT_NE(apps.body.find("Vitals"), std::string::npos);
  auto withdrawn = BrowserPost(b, "/auth/apps/withdraw",
                               {{"csrf", HiddenInput(apps.body, "csrf")}, {"client_id", "app"}});
  EXPECT_EQ(withdrawn.status, 302);
  EXPECT_EQ(
      Post(
          "/auth/token",
          Form({{"grant_type", "refresh_token"}, {"refresh_token", refresh}, {"client_id", "app"}}))
          .status,
      400);
  EXPECT_EQ(Fhir("GET", "Patient/pa", std::string(t.GetString("access_token"))).status, 401);
  consents = Fhir("GET", "Consent?patient=Patient/pa", admin_token_);
  EXPECT_NE(consents.body.find("\"status\":\"inactive\""), std::string::npos) << consents.body;
  apps = BrowserGet(b, "/auth/apps");
  EXPECT_EQ(apps.body.find("Vitals"), std::string::npos);
  // Asked again next time.
  auto again = BrowserGet(b, AuthorizeUrl(scope));
  EXPECT_EQ(again.status, 200);
  EXPECT_NE(again.body.find("name=\"decision\""), std::string::npos);
}

TEST_P(AuthTest, AsymmetricClientAssertions) {
  auto rsa = jose::SigningKey::GenerateRsa("rsa-1", 2048, jose::Alg::kRS384);
  auto ec = jose::SigningKey::GenerateEc("ec-1", jose::Alg::kES384);
  ASSERT_TRUE(rsa && ec);
  json::Value jwks = json::Value::EmptyObject();
  json::Value keys = json::Value::EmptyArray();
  for (const auto* k : {&*rsa, &*ec}) {
    json::Value jwk = k->PublicJwk();
    jwk.Set("key_ops", json::Value(json::Array{json::Value("verify")}));
    jwk.Set("ext", true);
    keys.PushBack(std::move(jwk));
  }
  jwks.Set("keys", std::move(keys));
  fs::path file = dir_ / "jwks.json";
  std::ofstream(file) << json::Write(jwks);
  server::ClientSpec spec;
  spec.client_id = "backend";
  spec.name = "Backend";
  spec.type = "confidential-asymmetric";
  spec.scopes = "system/*.rs";
  spec.jwks_file = file.string();
  ASSERT_TRUE(server::AddClient(db_, spec));

  int64_t now = start_seconds_;
  auto assertion = [&](const jose::SigningKey& key, const std::string& jti, const std::string& aud,
                       int64_t exp) {
    json::Value c = json::Value::EmptyObject();
    c.Set("iss", "backend");
    c.Set("sub", "backend");
    c.Set("aud", aud);
    c.Set("exp", json::Value::Number(exp));
    c.Set("jti", jti);
    return *jose::SignJwt(key, c);
  };
  auto token = [&](const std::string& jwt) {
    return Post(
        "/auth/token",
        Form({{"grant_type", "client_credentials"},
              {"scope", "system/*.rs"},
              {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
              {"client_assertion", jwt}}));
  };
  std::string endpoint = base_ + "/auth/token";
  auto ok = token(assertion(*rsa, std::string(64, 'a'), endpoint, now + 240));
  ASSERT_EQ(ok.status, 200) << ok.body;
  json::Value t = ParseJson(ok.body);
  EXPECT_EQ(json::Write(*t.Find("expires_in")), "300");
  std::string access(t.GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Observation/ob-lab", access).status, 200);
  EXPECT_EQ(Fhir("DELETE", "Observation/ob-lab", access).status, 403);
  EXPECT_EQ(token(assertion(*ec, std::string(64, 'b'), endpoint, now + 240)).status, 200);
  // Replayed jti, wrong aud, too long a life, expired: invalid_client.
  for (const auto& bad :
       {assertion(*rsa, std::string(64, 'a'), endpoint, now + 240),
        assertion(*rsa, std::string(64, 'c'), "https://x.example/token", now + 240),
        assertion(*rsa, std::string(64, 'd'), endpoint, now + 3600),
        assertion(*rsa, std::string(64, 'e'), endpoint, now - 10)}) {
    auto r = token(bad);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(ParseJson(r.body).GetString("error"), "invalid_client");
  }
  // A key the client did not register.
  auto stranger = jose::SigningKey::GenerateRsa("rsa-1", 2048, jose::Alg::kRS384);
  EXPECT_EQ(token(assertion(*stranger, std::string(64, 'f'), endpoint, now + 240)).status, 401);
}

TEST_P(AuthTest, ClientKeysFromJwksUri) {
  auto first = jose::SigningKey::GenerateEc("ec-a", jose::Alg::kES384);
  auto second = jose::SigningKey::GenerateRsa("rsa-b", 2048, jose::Alg::kRS384);
  ASSERT_TRUE(first && second);
  std::mutex mu;
  std::string served;
  int fetches = 0;
  auto serve = [&](std::vector<const jose::SigningKey*> keys) {
    json::Value list = json::Value::EmptyArray();
    for (const auto* k : keys) list.PushBack(k->PublicJwk());
    json::Value jwks = json::Value::EmptyObject();
    jwks.Set("keys", std::move(list));
    std::lock_guard lock(mu);
    served = json::Write(jwks);
  };
  serve({&*first});
  http::ServerOptions options;
  options.port = 0;
  options.threads = 1;
  auto keys_server = http::Server::Start(
      options,
      [&](http::Request&) {
        std::lock_guard lock(mu);
        ++fetches;
        http::Response r;
        r.body = served;
        r.SetHeader("Content-Type", "application/json");
        return r;
      },
      [](int status, std::string_view) {
        http::Response r;
        r.status = status;
        return r;
      });
  ASSERT_TRUE(keys_server);
  std::string uri = "http://127.0.0.1:" + std::to_string((*keys_server)->port()) + "/jwks.json";
  server::ClientSpec spec;
  spec.client_id = "remote";
  spec.name = "Remote keys";
  spec.type = "confidential-asymmetric";
  spec.scopes = "system/*.rs";
  spec.jwks_uri = uri;
  ASSERT_TRUE(server::AddClient(db_, spec));
  spec.client_id = "insecure";
  spec.jwks_uri = "http://keys.example/jwks.json";  // plain http off loopback is refused
  EXPECT_FALSE(server::AddClient(db_, spec));

  int serial = 0;
  auto token = [&](const jose::SigningKey& key) {
    json::Value c = json::Value::EmptyObject();
    c.Set("iss", "remote");
    c.Set("sub", "remote");
    c.Set("aud", base_ + "/auth/token");
    c.Set("exp", json::Value::Number(clock_.NowMicros() / 1000000 + 120));
    c.Set("jti", "jti-" + std::to_string(++serial));
    std::string jwt = *jose::SignJwt(key, c);
    return Post(
        "/auth/token",
        Form({{"grant_type", "client_credentials"},
              {"scope", "system/*.rs"},
              {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
              {"client_assertion", jwt}}));
  };
  auto ok = token(*first);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(token(*first).status, 200);
  EXPECT_EQ(fetches, 1);  // cached
  // The client rotates to a new key: an unknown kid refetches (at most once a minute).
  serve({&*first, &*second});
  clock_.Advance(61LL * 1000000);
  auto rotated = token(*second);
  EXPECT_EQ(rotated.status, 200) << rotated.body;
  EXPECT_EQ(fetches, 2);
  (*keys_server)->Stop();
}

TEST_P(AuthTest, KeyRotationKeepsTokensInFlight) {
  json::Value t = Login("ada", "ada-password-1", "launch/patient patient/*.rs");
  std::string before(t.GetString("access_token"));
  ASSERT_TRUE(server::RotateKeys(db_, base_));
  clock_.Advance(10LL * 1000000);  // the server reloads keys it does not know
  json::Value t2 = Login("ada", "ada-password-1", "launch/patient patient/*.rs");
  std::string after(t2.GetString("access_token"));
  EXPECT_EQ(Fhir("GET", "Patient/pa", before).status, 200);
  EXPECT_EQ(Fhir("GET", "Patient/pa", after).status, 200);
  auto jwks = ParseJson(Get("/auth/jwks").body);
  EXPECT_GE(jwks.Find("keys")->as_array().size(), 1u);
}

TEST_P(AuthTest, FailedLoginsAreThrottled) {
  Browser b;
  auto page = BrowserGet(b, AuthorizeUrl("patient/*.rs"));
  int last = 0;
  for (int i = 0; i < 6; ++i) {
    page = BrowserPost(b, "/auth/login",
                       {{"csrf", HiddenInput(page.body, "csrf")},
                        {"request", HiddenInput(page.body, "request")},
                        {"username", "ada"},
                        {"password", "wrong-" + std::to_string(i)}});
    last = page.status;
  }
  EXPECT_EQ(last, 429);
  // Even the right password waits.
  page = BrowserPost(b, "/auth/login",
                     {{"csrf", HiddenInput(page.body, "csrf")},
                      {"request", HiddenInput(page.body, "request")},
                      {"username", "ada"},
                      {"password", "ada-password-1"}});
  EXPECT_EQ(page.status, 429);
}

TEST_P(AuthTest, AdminClientApi) {
  http::Headers admin{{"Authorization", "Bearer " + admin_token_},
                      {"Content-Type", "application/json"}};
  auto created = Send("POST", "/auth/admin/clients",
                      R"({"client_name":"Chart","client_type":"confidential-symmetric",
                          "redirect_uris":["https://chart.example/cb"],"scope":"user/*.rs openid"})",
                      admin);
  ASSERT_EQ(created.status, 201) << created.body;
  json::Value c = ParseJson(created.body);
  std::string id(c.GetString("client_id"));
  EXPECT_FALSE(c.GetString("client_secret").empty());
  EXPECT_EQ(created.Header("Location"), base_ + "/auth/admin/clients/" + id);
  auto list = Send("GET", "/auth/admin/clients", "", admin);
  ASSERT_EQ(list.status, 200);
  EXPECT_NE(list.body.find("Chart"), std::string::npos);
  EXPECT_EQ(list.body.find("secret"), std::string::npos);  // never shown again
  auto bad = Send(
      "POST", "/auth/admin/clients",
      R"j({"client_name":"Bad","redirect_uris":["javascript:alert(1)"],"scope":"openid"})j", admin);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ParseJson(bad.body).GetString("error"), "invalid_client_metadata");
  EXPECT_EQ(Send("GET", "/auth/admin/clients", "", {}).status, 401);
  json::Value t = Login("ada", "ada-password-1", "launch/patient patient/*.cruds");
  EXPECT_EQ(Send("GET", "/auth/admin/clients", "",
                 {{"Authorization", "Bearer " + std::string(t.GetString("access_token"))}})
                .status,
            403);
  EXPECT_EQ(Send("DELETE", "/auth/admin/clients/" + id, "", admin).status, 204);
  EXPECT_EQ(Send("GET", "/auth/admin/clients/" + id, "", admin).status, 404);
}

// ---- the audit log (AuditEvent) ----

// The AuditEvents of a search by the administrator (after the queued records are appended).
std::vector<json::Value> AuditEventsOf(const http::Response& bundle) {
  std::vector<json::Value> out;
  json::Value b = ParseJson(bundle.body);
  if (const json::Value* entries = b.Find("entry"); entries && entries->is_array())
    for (const auto& e : entries->as_array())
      if (const json::Value* r = e.Find("resource")) out.push_back(*r);
  return out;
}

TEST_P(AuthTest, AuditRecordsEveryAccessAndSecurityEvent) {
  // Writes are in the log with their data, at once: the seeding PUTs of the admin client.
  auto seeded = Fhir("GET", "AuditEvent?entity=Observation/oa-lab&action=C", admin_token_);
  ASSERT_EQ(seeded.status, 200) << seeded.body;
  auto writes = AuditEventsOf(seeded);
  ASSERT_EQ(writes.size(), 1u) << seeded.body;
  std::string write = json::Write(writes[0]);
  EXPECT_NE(write.find("\"code\":\"update\""), std::string::npos) << write;  // PUT as create
  EXPECT_NE(write.find("\"value\":\"admin\""), std::string::npos);           // the client
  EXPECT_NE(write.find("\"reference\":\"Patient/pa\""), std::string::npos);  // whose data

  // A patient's app reads; the record names the user, the app, the resource and the patient.
  json::Value t = Login("ada", "ada-password-1", "launch/patient openid fhirUser patient/*.rs");
  std::string token(t.GetString("access_token"));
  auto read = Fhir("GET", "Observation/oa-lab", token);
  ASSERT_EQ(read.status, 200);
  std::string request_id(read.Header("X-Request-Id"));
  ASSERT_FALSE(request_id.empty());
  EXPECT_EQ(Fhir("GET", "Observation/ob-lab", token).status, 403);  // another patient's
  EXPECT_EQ(Fhir("GET", "Observation/oa-lab", "").status, 401);     // no token
  Browser b;
  auto login = BrowserGet(b, "/auth/login");
  BrowserPost(b, "/auth/login",
              {{"csrf", HiddenInput(login.body, "csrf")},
               {"username", "ada"},
               {"password", "wrong-password"}});
  app_->FlushAudit();

  auto reads = AuditEventsOf(Fhir("GET", "AuditEvent?subtype=read&patient=pa", admin_token_));
  ASSERT_EQ(reads.size(), 1u);
  std::string r = json::Write(reads[0]);
  EXPECT_EQ(reads[0].GetString("action"), "R");
  EXPECT_EQ(reads[0].GetString("outcome"), "0");
  EXPECT_NE(r.find("\"who\":{\"reference\":\"Patient/pa\"}"), std::string::npos) << r;
  EXPECT_NE(r.find("\"value\":\"app\""), std::string::npos) << r;
  EXPECT_NE(r.find("Observation/oa-lab/_history/1"), std::string::npos) << r;
  EXPECT_NE(r.find("\"address\":\"127.0.0.1\""), std::string::npos) << r;
  EXPECT_NE(r.find("\"value\":\"" + request_id + "\""), std::string::npos) << r;

  // Refusals are security alerts with the reason.
  auto denied = AuditEventsOf(Fhir(
      "GET",
      "AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM|110113&subtype=access-denied",
      admin_token_));
  ASSERT_EQ(denied.size(), 2u);
  for (const auto& d : denied) EXPECT_EQ(d.GetString("outcome"), "4");
  std::string refused = json::Write(denied[1]);  // oldest last: the 403 came first
  EXPECT_NE(refused.find("Observation/ob-lab"), std::string::npos) << refused;
  EXPECT_NE(refused.find("\"value\":\"app\""), std::string::npos) << refused;

  // Security events: the login, the token issued, the failed login.
  auto logins =
      AuditEventsOf(Fhir("GET", "AuditEvent?subtype=login&agent=Patient/pa", admin_token_));
  EXPECT_EQ(logins.size(), 1u);
  auto tokens = AuditEventsOf(Fhir("GET", "AuditEvent?subtype=token&patient=pa", admin_token_));
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_NE(json::Write(tokens[0]).find("\"value\":\"app\""), std::string::npos);
  auto failures = AuditEventsOf(Fhir("GET", "AuditEvent?subtype=login-failure", admin_token_));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(json::Write(failures[0]).find("\"display\":\"ada\""), std::string::npos);
  // Nothing secret is recorded.
  auto all = Fhir("GET", "AuditEvent?_count=1000", admin_token_);
  EXPECT_EQ(all.body.find(token), std::string::npos);
  EXPECT_EQ(all.body.find("wrong-password"), std::string::npos);
  EXPECT_EQ(all.body.find("ada-password-1"), std::string::npos);

  // The chain holds.
  auto verified = server::VerifyAudit(db_);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->problems.empty());
  EXPECT_GT(verified->records, 10);
}

// Whatever bytes a client sends end up in the log as valid text: a client id that is not UTF-8
// and a user name with a NUL are recorded (as U+FFFD), the log keeps appending, the chain holds.
TEST_P(AuthTest, AuditRecordsSurviveMalformedText) {
  auto refused = Post("/auth/token", "grant_type=client_credentials&client_id=%FF%C3&scope=x");
  EXPECT_EQ(refused.status, 401) << refused.body;
  Browser b;
  auto login = BrowserGet(b, "/auth/login");
  BrowserPost(b, "/auth/login",
              {{"csrf", HiddenInput(login.body, "csrf")},
               {"username", std::string("ada\0evil", 8)},
               {"password", "wrong-password"}});
  app_->FlushAudit();
  auto failures = Fhir("GET",
                       "AuditEvent?outcome=4&type=http://dicom.nema.org/resources/"
                       "ontology/DCM|110113",
                       admin_token_);
  ASSERT_EQ(failures.status, 200) << failures.body;
  EXPECT_NE(failures.body.find("\"value\":\"\xef\xbf\xbd\xef\xbf\xbd\""), std::string::npos)
      << failures.body;
  EXPECT_NE(failures.body.find("ada\xef\xbf\xbd"
                               "evil"),
            std::string::npos)
      << failures.body;
  EXPECT_EQ(Fhir("GET", "Patient/pa", admin_token_).status, 200);
  app_->FlushAudit();  // later records are appended too
  auto verified = server::VerifyAudit(db_);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->problems.empty()) << verified->problems[0];
}

// A batch answers entry by entry: the writes it made are recorded with them, the entries it
// refused one by one.
TEST_P(AuthTest, RefusedBatchEntriesAreRecorded) {
  json::Value t = Login("ada", "ada-password-1", "launch/patient openid fhirUser patient/*.cruds");
  std::string token(t.GetString("access_token"));
  auto observation = [](const std::string& id, const std::string& patient) {
    return R"({"resource":{"resourceType":"Observation","id":")" + id +
           R"(","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/)" + patient +
           R"("}},"request":{"method":"PUT","url":"Observation/)" + id + R"("}})";
  };
  std::string batch = R"({"resourceType":"Bundle","type":"batch","entry":[)" +
                      observation("mine", "pa") + "," + observation("theirs", "pb") + "]}";
  auto response =
      Send("POST", "/fhir", batch,
           {{"Authorization", "Bearer " + token}, {"Content-Type", "application/fhir+json"}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_NE(response.body.find("\"status\":\"201"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("\"status\":\"403"), std::string::npos) << response.body;
  app_->FlushAudit();
  auto written = AuditEventsOf(Fhir("GET", "AuditEvent?entity=Observation/mine", admin_token_));
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].GetString("outcome"), "0");
  auto refused = AuditEventsOf(
      Fhir("GET", "AuditEvent?entity=Observation/theirs&subtype=access-denied", admin_token_));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].GetString("outcome"), "4");
  EXPECT_NE(refused[0].GetString("outcomeDesc").find("Bundle.entry[1]"), std::string::npos);
}

// A transaction checks each entry's access before its validity, in the spec's order, even when
// its resources are validated before the write transaction: an entry out of scope is refused
// (403, recorded as access-denied) before a later entry's invalid resource is reported.
TEST_P(AuthTest, TransactionRefusesAccessBeforeReportingInvalidResources) {
  json::Value t = Login("ada", "ada-password-1", "launch/patient openid fhirUser patient/*.cruds");
  std::string token(t.GetString("access_token"));
  // `extra`: more elements of the resource (an unknown one makes it invalid).
  auto observation = [](const std::string& id, const std::string& patient,
                        const std::string& extra) {
    return R"({"fullUrl":"urn:uuid:)" + id +
           R"(","resource":{"resourceType":"Observation","status":"final")" + extra +
           R"(,"code":{"text":"txn-order"},"subject":{"reference":"Patient/)" + patient +
           R"("}},"request":{"method":"POST","url":"Observation"}})";
  };
  auto send = [&](const std::string& entries) {
    return Send("POST", "/fhir",
                R"({"resourceType":"Bundle","type":"transaction","entry":[)" + entries + "]}",
                {{"Authorization", "Bearer " + token}, {"Content-Type", "application/fhir+json"}});
  };
  auto refused =
      send(observation("0b7e2d94-8a61-4f3c-b5d2-7c9e1a4f6b01", "pb", "") + "," +
           observation("0b7e2d94-8a61-4f3c-b5d2-7c9e1a4f6b02", "pa", R"(,"bogus":true)"));
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(refused.body.find("Bundle.entry[0]"), std::string::npos) << refused.body;
  // In scope, the invalid entry is the one reported; nothing is written either way.
  auto invalid =
      send(observation("0b7e2d94-8a61-4f3c-b5d2-7c9e1a4f6b03", "pa", "") + "," +
           observation("0b7e2d94-8a61-4f3c-b5d2-7c9e1a4f6b04", "pa", R"(,"bogus":true)"));
  EXPECT_EQ(invalid.status, 400) << invalid.body;
  EXPECT_NE(invalid.body.find("Bundle.entry[1]"), std::string::npos) << invalid.body;
  auto found = Fhir("GET", "Observation?code:text=txn-order&_summary=count", admin_token_);
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_NE(found.body.find("\"total\":0"), std::string::npos) << found.body;
}

TEST_P(AuthTest, PatientsSeeWhoAccessedTheirRecord) {
  json::Value doctor =
      Login("drsmith", "smith-password-1", "launch/patient openid fhirUser user/*.rs", "pb");
  std::string dr(doctor.GetString("access_token"));
  ASSERT_EQ(Fhir("GET", "Patient/pa", dr).status, 200);
  ASSERT_EQ(Fhir("GET", "Observation?patient=pa", dr).status, 200);
  ASSERT_EQ(Fhir("GET", "Observation", dr).status, 200);  // both patients' data
  app_->FlushAudit();

  // Through the API: patient/AuditEvent.rs sees Ada's records and no one else's.
  json::Value t = Login("ada", "ada-password-1", "launch/patient openid fhirUser patient/*.rs");
  std::string token(t.GetString("access_token"));
  auto mine = Fhir("GET", "AuditEvent?agent=Practitioner/dr", token);
  ASSERT_EQ(mine.status, 200) << mine.body;
  auto events = AuditEventsOf(mine);
  // The read of Patient/pa, the search by patient, her part of the search of every Observation.
  ASSERT_EQ(events.size(), 3u) << mine.body;
  int with_query = 0;
  for (const auto& e : events) {
    std::string text = json::Write(e);
    EXPECT_NE(text.find("Patient/pa"), std::string::npos) << text;
    EXPECT_EQ(text.find("Patient/pb"), std::string::npos) << text;
    // The search by her alone keeps its query in her record (patient=pa).
    with_query += text.find("\"query\":\"cGF0aWVudD1wYQ==\"") != std::string::npos;
  }
  EXPECT_EQ(with_query, 1) << mine.body;
  EXPECT_TRUE(AuditEventsOf(Fhir("GET", "AuditEvent?patient=pb", token)).empty());
  EXPECT_EQ(Fhir("GET", "AuditEvent/" + std::string(events[0].GetString("id")), token).status, 200);
  // A record of Grace's data is out of Ada's compartment.
  auto grace = AuditEventsOf(Fhir("GET", "AuditEvent?patient=pb&_count=1", admin_token_));
  ASSERT_EQ(grace.size(), 1u);
  EXPECT_EQ(Fhir("GET", "AuditEvent/" + std::string(grace[0].GetString("id")), token).status, 403);
  // A query naming someone else, though it disclosed Ada alone, stays out of her record.
  ASSERT_EQ(Fhir("GET", "Patient?family=Lovelace,Babbage", dr).status, 200);
  // Her own search with patient/ scopes (the access confines it to her compartment): one record,
  // hers, with its query.
  ASSERT_EQ(Fhir("GET", "Observation?patient=pa&category=laboratory", token).status, 200);
  app_->FlushAudit();
  for (const auto& e : AuditEventsOf(Fhir("GET", "AuditEvent?agent=Practitioner/dr", token)))
    EXPECT_EQ(json::Write(e).find("ZmFtaWx5PUxvdmVsYWNlLEJhYmJhZ2U="), std::string::npos);
  int apart = 0;
  for (const auto& e : AuditEventsOf(Fhir("GET", "AuditEvent?subtype=search-type", admin_token_)))
    apart += json::Write(e).find("ZmFtaWx5PUxvdmVsYWNlLEJhYmJhZ2U=") != std::string::npos &&
             json::Write(e).find("Patient/pa") == std::string::npos;
  EXPECT_EQ(apart, 1);
  int own = 0;
  for (const auto& e : AuditEventsOf(Fhir("GET", "AuditEvent?subtype=search-type", admin_token_))) {
    std::string text = json::Write(e);
    if (text.find("cGF0aWVudD1wYSZjYXRlZ29yeT1sYWJvcmF0b3J5") == std::string::npos) continue;
    ++own;
    EXPECT_NE(text.find("Patient/pa"), std::string::npos) << text;
  }
  EXPECT_EQ(own, 1);

  // Without AuditEvent in the scopes, the log stays closed.
  json::Value narrow = Login("ada", "ada-password-1", "launch/patient patient/Observation.rs");
  EXPECT_EQ(Fhir("GET", "AuditEvent", std::string(narrow.GetString("access_token"))).status, 403);

  // On a page, after signing in.
  Browser b;
  auto login = BrowserGet(b, "/auth/login");
  auto signed_in = BrowserPost(b, "/auth/login",
                               {{"csrf", HiddenInput(login.body, "csrf")},
                                {"username", "ada"},
                                {"password", "ada-password-1"}});
  ASSERT_EQ(signed_in.status, 302);
  auto apps = BrowserGet(b, "/auth/apps");
  EXPECT_NE(apps.body.find("/auth/access"), std::string::npos);
  auto page = BrowserGet(b, "/auth/access");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("Practitioner/dr"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("Patient/pa"), std::string::npos);
  EXPECT_EQ(page.body.find("Patient/pb"), std::string::npos);
  EXPECT_EQ(page.Header("Cache-Control"), "no-store");
  // A practitioner has no such page.
  Browser c;
  login = BrowserGet(c, "/auth/login");
  BrowserPost(c, "/auth/login",
              {{"csrf", HiddenInput(login.body, "csrf")},
               {"username", "drsmith"},
               {"password", "smith-password-1"}});
  EXPECT_EQ(BrowserGet(c, "/auth/access").status, 403);
}

TEST_P(AuthTest, AuditEventsAreAppendOnly) {
  std::string event =
      R"({"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},)"
      R"("action":"R","recorded":"2026-01-01T00:00:00Z","outcome":"0",)"
      R"("agent":[{"who":{"reference":"Practitioner/dr"},"requestor":true}],)"
      R"("source":{"observer":{"display":"An EHR"}},"entity":[{"what":{"reference":"Patient/pb"}}]})";
  auto created = Fhir("POST", "AuditEvent", admin_token_, event);
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id(ParseJson(created.body).GetString("id"));
  auto found = AuditEventsOf(Fhir("GET", "AuditEvent?_id=" + id + "&patient=pb", admin_token_));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].GetString("recorded"), "2026-01-01T00:00:00Z");
  // Who sent it is on record too; a patient's app may not file one.
  app_->FlushAudit();
  auto sent =
      AuditEventsOf(Fhir("GET", "AuditEvent?subtype=create&agent:identifier=admin", admin_token_));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_NE(json::Write(sent[0]).find("\"name\":\"AuditEvent\""), std::string::npos);
  json::Value t = Login("ada", "ada-password-1", "launch/patient patient/*.cruds");
  auto forged = Fhir("POST", "AuditEvent", std::string(t.GetString("access_token")), event);
  EXPECT_EQ(forged.status, 403) << forged.body;
  auto put = Fhir("PUT", "AuditEvent/" + id, admin_token_, json::Write(ParseJson(created.body)));
  EXPECT_EQ(put.status, 405) << put.body;
  EXPECT_NE(put.body.find("OperationOutcome"), std::string::npos);
  EXPECT_EQ(Fhir("DELETE", "AuditEvent/" + id, admin_token_).status, 405);
  std::string with_id = event;
  with_id.insert(with_id.find(","), R"(,"id":"custom-id")");
  EXPECT_EQ(Fhir("PUT", "AuditEvent/custom-id", admin_token_, with_id).status, 405);
  auto history = Fhir("GET", "AuditEvent/_history", admin_token_);
  EXPECT_GE(history.status, 400) << history.body;
  EXPECT_NE(history.body.find("search AuditEvent"), std::string::npos) << history.body;
  auto unsupported = Fhir("GET", "AuditEvent?policy=x", admin_token_);
  EXPECT_EQ(unsupported.status, 400) << unsupported.body;
  EXPECT_EQ(Fhir("GET", "AuditEvent?_include=AuditEvent:agent", admin_token_).status, 400);
  EXPECT_EQ(Fhir("GET", "AuditEvent?date=not-a-date", admin_token_).status, 400);
  // The CapabilityStatement says so.
  json::Value cs = ParseJson(Get("/fhir/metadata").body);
  std::string audit_entry;
  for (const auto& r : cs.Find("rest")->as_array()[0].Find("resource")->as_array())
    if (r.GetString("type") == "AuditEvent") audit_entry = json::Write(r);
  EXPECT_NE(audit_entry.find(R"("interaction":[{"code":"read"},{"code":"vread"},)"
                             R"({"code":"create"},{"code":"search-type"}])"),
            std::string::npos)
      << audit_entry;
  EXPECT_NE(audit_entry.find(R"("name":"patient")"), std::string::npos);
  EXPECT_EQ(audit_entry.find(R"("name":"policy")"), std::string::npos);
  // Paging and sorting by date.
  auto page = ParseJson(Fhir("GET", "AuditEvent?_count=2&_sort=date", admin_token_).body);
  const json::Value* links = page.Find("link");
  ASSERT_TRUE(links && links->is_array());
  bool has_next = false;
  for (const auto& l : links->as_array()) has_next |= l.GetString("relation") == "next";
  EXPECT_TRUE(has_next);
  EXPECT_EQ(
      AuditEventsOf(Fhir("GET", "AuditEvent?_count=2&_sort=date", admin_token_))[0].GetString("id"),
      "1");
}

// Several stateless nodes on one database (PostgreSQL, or one SQLite file on one host): a token
// issued by one node is accepted by the others and, once revoked, refused by all of them; a write
// on one is read on another at once; the audit log they share keeps one intact chain.
TEST_P(AuthTest, SeveralNodesShareOneDatabase) {
  std::vector<std::unique_ptr<server::App>> nodes;
  for (int i = 0; i < 2; ++i) {
    server::ServeConfig config;
    config.listen = "127.0.0.1:0";
    config.db = db_;
    config.base_url = base_;  // one public origin behind a load balancer
    config.threads = 2;
    config.sync_interval_ms = 50;
    config.access_log = "off";
    auto node = server::App::Start(config, &clock_, nullptr);
    ASSERT_TRUE(node) << node.error().message();
    nodes.push_back(std::move(node).value());
  }
  auto on = [&](server::App& node, const std::string& method, const std::string& path,
                const std::string& token, const std::string& body = "") {
    http::Request r = test::MakeRequest(method, "/fhir/" + path, body);
    if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty()) r.headers.emplace_back("Content-Type", "application/fhir+json");
    auto response = test::Fetch("127.0.0.1", node.port(), std::move(r));
    EXPECT_TRUE(response);
    return response ? response->status : 0;
  };
  // A token from the first node (app_) works on the others.
  auto token =
      Post("/auth/token", Form({{"grant_type", "client_credentials"}, {"scope", "system/*.cruds"}}),
           {{"Authorization", Basic("admin", admin_secret_)}});
  ASSERT_EQ(token.status, 200);
  std::string t(ParseJson(token.body).GetString("access_token"));
  for (auto& node : nodes) EXPECT_EQ(on(*node, "GET", "Patient/pa", t), 200);
  // A write on one node is read on another at once.
  EXPECT_EQ(on(*nodes[0], "PUT", "Patient/pz", t,
               R"({"resourceType":"Patient","id":"pz","name":[{"family":"Zed"}]})"),
            201);
  EXPECT_EQ(on(*nodes[1], "GET", "Patient/pz", t), 200);
  EXPECT_EQ(Fhir("GET", "Patient/pz", t).status, 200);
  // Revoked on the first node: refused there at once, on the others within the sync interval.
  auto revoked = Post("/auth/revoke", Form({{"token", t}}),
                      {{"Authorization", Basic("admin", admin_secret_)}});
  ASSERT_EQ(revoked.status, 200);
  EXPECT_EQ(Fhir("GET", "Patient/pa", t).status, 401);
  for (auto& node : nodes) {
    int status = 0;
    for (int i = 0; i < 100 && status != 401; ++i) {
      status = on(*node, "GET", "Patient/pa", t);
      if (status != 401) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(status, 401);
  }
  // One audit log, one chain, whichever node wrote.
  app_->FlushAudit();
  for (auto& node : nodes) node->FlushAudit();
  auto verified = server::VerifyAudit(db_);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->problems.empty()) << verified->problems[0];
  auto created = Fhir("GET", "AuditEvent?entity=Patient/pz&action=C", admin_token_);
  EXPECT_EQ(AuditEventsOf(created).size(), 1u) << created.body;
  for (auto& node : nodes) node->Stop();
}

// Rate limits hold across nodes, within a sync interval: what a client spent on one node is
// taken from its bucket on the others.
TEST_P(AuthTest, SeveralNodesShareRateLimits) {
  std::vector<std::unique_ptr<server::App>> nodes;
  for (int i = 0; i < 2; ++i) {
    server::ServeConfig config;
    config.listen = "127.0.0.1:0";
    config.db = db_;
    config.base_url = base_;
    config.threads = 2;
    config.sync_interval_ms = 50;
    config.access_log = "off";
    config.rate_limit_client = "6/min:6";  // the clock stands still: no refill during the test
    config.share_rate_limits = "on";
    auto node = server::App::Start(config, &clock_, nullptr);
    ASSERT_TRUE(node) << node.error().message();
    nodes.push_back(std::move(node).value());
  }
  auto token =
      Post("/auth/token", Form({{"grant_type", "client_credentials"}, {"scope", "system/*.rs"}}),
           {{"Authorization", Basic("admin", admin_secret_)}});
  ASSERT_EQ(token.status, 200);
  std::string t(ParseJson(token.body).GetString("access_token"));
  auto read = [&](server::App& node) {
    http::Request r = test::MakeRequest("GET", "/fhir/Patient/pa");
    r.headers.emplace_back("Authorization", "Bearer " + t);
    auto response = test::Fetch("127.0.0.1", node.port(), std::move(r));
    EXPECT_TRUE(response);
    return response ? response->status : 0;
  };
  for (int i = 0; i < 4; ++i) EXPECT_EQ(read(*nodes[0]), 200);
  // Both nodes sync every 50 ms: after a few intervals the second knows of the four.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(read(*nodes[1]), 200);
  EXPECT_EQ(read(*nodes[1]), 200);
  EXPECT_EQ(read(*nodes[1]), 429);  // 4 + 2 = the burst of 6, spent across the two nodes
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(read(*nodes[0]), 429);  // and the first node knows of the second's two
  // Alone, each node would have allowed six.
  for (auto& node : nodes) node->Stop();
}

INSTANTIATE_TEST_SUITE_P(Dialects, AuthTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone
