#include "web/web.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/json.h"

namespace fhirstone::web {
namespace {

constexpr std::string_view kCsrf = "csrf-token-4f2a9c";

json::Value Json(std::string_view text) {
  Result<json::Value> value = json::Parse(text);
  EXPECT_TRUE(value.has_value()) << text;
  return value.has_value() ? std::move(value).value() : json::Value();
}

std::string Render(std::string_view page, std::string_view data) {
  Result<std::string> html = RenderPage(page, Json(data));
  EXPECT_TRUE(html.has_value()) << page << ": " << html.error().message();
  return html.has_value() ? *html : std::string();
}

size_t Count(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t i = haystack.find(needle); i != std::string_view::npos;
       i = haystack.find(needle, i + needle.size())) {
    ++n;
  }
  return n;
}

// The <form ...>...</form> elements of `html`.
std::vector<std::string_view> Forms(std::string_view html) {
  std::vector<std::string_view> forms;
  for (size_t begin = html.find("<form"); begin != std::string_view::npos;
       begin = html.find("<form", begin + 1)) {
    size_t end = html.find("</form>", begin);
    if (end == std::string_view::npos) {
      ADD_FAILURE() << "unterminated form";
      break;
    }
    forms.push_back(html.substr(begin, end - begin));
  }
  return forms;
}

// Every POST form carries the CSRF token; returns how many POST forms there are.
size_t ExpectCsrfInEveryPostForm(std::string_view html) {
  size_t posts = 0;
  std::string hidden = "<input type=\"hidden\" name=\"csrf\" value=\"" + std::string(kCsrf) + "\">";
  for (std::string_view form : Forms(html)) {
    if (form.find("method=\"post\"") == std::string_view::npos) {
      EXPECT_EQ(form.find(kCsrf), std::string_view::npos) << "CSRF token in a GET URL: " << form;
      continue;
    }
    ++posts;
    EXPECT_NE(form.find(hidden), std::string_view::npos) << form;
  }
  return posts;
}

const char kLogin[] = R"({
  "action": "/auth/login", "csrf": "csrf-token-4f2a9c", "request": "req-123",
  "client_name": "Growth Chart", "username": "alice", "error": "Wrong username or password."
})";

const char kPicker[] = R"({
  "action": "/auth/patient", "csrf": "csrf-token-4f2a9c", "request": "req-123",
  "client_name": "Growth Chart", "query": "smi",
  "patients": [
    {"id": "p-1", "name": "Jane Smith", "birth_date": "1980-02-03", "gender": "female", "age": 45},
    {"id": "p-2", "name": "John Smithers", "birth_date": "2019-07-30", "gender": "male", "age": 6}
  ]
})";

const char kConsent[] = R"({
  "action": "/auth/consent", "csrf": "csrf-token-4f2a9c", "request": "req-123",
  "client_name": "Growth Chart", "client_uri": "https://apps.example.org/growth",
  "user_display": "Alice Doctor", "patient_display": "Jane Smith",
  "scopes": [
    {"scope": "patient/Observation.rs", "description": "Read the patient's observations", "checked": true},
    {"scope": "offline_access", "description": "Stay connected when you are away", "checked": false}
  ]
})";

const char kApps[] = R"({
  "action": "/auth/apps/withdraw", "logout_action": "/auth/logout", "csrf": "csrf-token-4f2a9c",
  "user_display": "Alice Doctor",
  "apps": [
    {"client_id": "growth-chart", "client_name": "Growth Chart", "granted_at": "2025-03-01",
     "scopes": [{"scope": "patient/Observation.rs", "description": "Read observations"}]},
    {"client_id": "med-list", "client_name": "Medication List", "granted_at": "2025-04-11",
     "scopes": [{"scope": "launch/patient", "description": "Know the selected patient"},
                {"scope": "openid", "description": "Know who you are"}]}
  ]
})";

TEST(WebTest, LayoutWrapsEveryPage) {
  std::string html = Render("message", R"({"heading": "Signed out", "message": "Bye."})");
  EXPECT_EQ(html.rfind("<!doctype html>", 0), 0u) << html;
  EXPECT_NE(html.find("<title>Signed out · Fhirstone</title>"), std::string::npos) << html;
  EXPECT_NE(html.find("<link rel=\"stylesheet\" href=\"/static/style.css\">"), std::string::npos);
  EXPECT_NE(html.find("Fhirstone</span>"), std::string::npos);
  EXPECT_NE(html.find("<footer"), std::string::npos);
  EXPECT_NE(html.find("<h1 id=\"page-heading\">Signed out</h1>"), std::string::npos) << html;
  EXPECT_NE(html.find("<p>Bye.</p>"), std::string::npos);
  EXPECT_EQ(html.find("{{"), std::string::npos) << "template text left in the page";
}

TEST(WebTest, TitleFromDataElseHeadingElsePageDefault) {
  EXPECT_NE(Render("login", R"({"title": "Log in here"})").find("<title>Log in here · Fhirstone"),
            std::string::npos);
  EXPECT_NE(Render("login", "{}").find("<title>Sign in · Fhirstone</title>"), std::string::npos);
  EXPECT_NE(Render("error", R"({"heading": "Unknown client"})")
                .find("<title>Unknown client · Fhirstone</title>"),
            std::string::npos);
  EXPECT_NE(Render("patient_picker", "null").find("<title>Select a patient · Fhirstone</title>"),
            std::string::npos);
}

TEST(WebTest, LoginPage) {
  std::string html = Render("login", kLogin);
  EXPECT_NE(html.find("Sign in to continue to <strong>Growth Chart</strong>"), std::string::npos)
      << html;
  EXPECT_NE(html.find("<form class=\"form\" method=\"post\" action=\"/auth/login\">"),
            std::string::npos);
  EXPECT_NE(html.find("<input type=\"hidden\" name=\"request\" value=\"req-123\">"),
            std::string::npos);
  EXPECT_NE(html.find("name=\"username\" type=\"text\" value=\"alice\""), std::string::npos);
  EXPECT_NE(html.find("name=\"password\" type=\"password\""), std::string::npos);
  EXPECT_NE(html.find("role=\"alert\" id=\"login-error\">Wrong username or password.</div>"),
            std::string::npos);
  EXPECT_NE(html.find(">Sign in</button>"), std::string::npos);
  EXPECT_EQ(ExpectCsrfInEveryPostForm(html), 1u);
}

TEST(WebTest, LoginWithoutErrorHasNoAlert) {
  // Absent, empty and null optional fields all count as absent.
  for (const char* error : {"", R"(, "error": "")", R"(, "error": null)"}) {
    std::string html =
        Render("login", std::string(R"({"csrf": "t", "username": "")") + error + "}");
    EXPECT_EQ(html.find("role=\"alert\""), std::string::npos) << html;
    EXPECT_EQ(html.find("aria-invalid"), std::string::npos) << html;
    EXPECT_NE(html.find("value=\"\" autocomplete=\"username\""), std::string::npos) << html;
  }
}

TEST(WebTest, PatientPicker) {
  std::string html = Render("patient_picker", kPicker);
  EXPECT_NE(html.find("<strong>Growth Chart</strong>"), std::string::npos);
  // The search form: GET, with q prefilled and the request passed on.
  std::vector<std::string_view> forms = Forms(html);
  ASSERT_EQ(forms.size(), 3u) << html;
  EXPECT_NE(forms[0].find("method=\"get\" action=\"/auth/patient\""), std::string::npos);
  EXPECT_NE(forms[0].find("name=\"q\" type=\"search\" value=\"smi\""), std::string::npos);
  EXPECT_NE(forms[0].find("name=\"request\" value=\"req-123\""), std::string::npos);
  // One POST form per patient.
  EXPECT_NE(forms[1].find("<input type=\"hidden\" name=\"patient\" value=\"p-1\">"),
            std::string::npos);
  EXPECT_NE(forms[2].find("<input type=\"hidden\" name=\"patient\" value=\"p-2\">"),
            std::string::npos);
  EXPECT_NE(forms[2].find("name=\"request\" value=\"req-123\""), std::string::npos);
  EXPECT_NE(forms[1].find(">Continue<"), std::string::npos);
  EXPECT_NE(html.find("Jane Smith"), std::string::npos);
  EXPECT_NE(html.find("Born 1980-02-03"), std::string::npos);
  EXPECT_NE(html.find("Age 45"), std::string::npos);  // a number
  EXPECT_NE(html.find("male"), std::string::npos);
  EXPECT_EQ(html.find("No patient matches"), std::string::npos);
  EXPECT_EQ(ExpectCsrfInEveryPostForm(html), 2u);
}

TEST(WebTest, PatientPickerWithoutMatches) {
  std::string html = Render("patient_picker", R"({"csrf": "csrf-token-4f2a9c", "query": "zz",
                                                  "patients": []})");
  EXPECT_NE(html.find("No patient matches “zz”."), std::string::npos) << html;
  EXPECT_EQ(html.find("name=\"patient\""), std::string::npos);
  EXPECT_EQ(Forms(html).size(), 1u);  // only the search
}

TEST(WebTest, ConsentPage) {
  std::string html = Render("consent", kConsent);
  EXPECT_NE(html.find("Allow Growth Chart to access your data?"), std::string::npos) << html;
  EXPECT_NE(html.find("<a href=\"https://apps.example.org/growth\""), std::string::npos);
  EXPECT_NE(html.find("for patient <strong>Jane Smith</strong>"), std::string::npos);
  EXPECT_NE(html.find("Signed in as Alice Doctor"), std::string::npos);
  // Booleans drive sections: the first scope is checked, the second is not.
  EXPECT_NE(html.find("name=\"scope\" value=\"patient/Observation.rs\" checked>"),
            std::string::npos);
  EXPECT_NE(html.find("name=\"scope\" value=\"offline_access\">"), std::string::npos);
  EXPECT_EQ(Count(html, " checked>"), 1u);
  EXPECT_NE(html.find("Read the patient&apos;s observations"), std::string::npos);
  EXPECT_NE(html.find("<code class=\"scope\">offline_access</code>"), std::string::npos);
  EXPECT_NE(html.find("name=\"decision\" value=\"allow\" class=\"button button-primary\">Allow<"),
            std::string::npos);
  EXPECT_NE(html.find("name=\"decision\" value=\"deny\" class=\"button\">Deny<"),
            std::string::npos);
  EXPECT_EQ(ExpectCsrfInEveryPostForm(html), 1u);
}

TEST(WebTest, ConsentWithoutOptionalFields) {
  std::string html = Render("consent", R"({"csrf": "csrf-token-4f2a9c", "client_name": "App",
      "scopes": [{"scope": "openid", "description": "Know who you are", "checked": true}]})");
  EXPECT_EQ(html.find("<a href"), std::string::npos);
  EXPECT_EQ(html.find("for patient"), std::string::npos);
  EXPECT_EQ(html.find("Signed in as"), std::string::npos);
  EXPECT_EQ(Count(html, "name=\"scope\""), 1u);
}

TEST(WebTest, AppsPage) {
  std::string html = Render("apps", kApps);
  EXPECT_NE(html.find("Signed in as Alice Doctor"), std::string::npos);
  EXPECT_NE(html.find("Growth Chart"), std::string::npos);
  EXPECT_NE(html.find("Medication List"), std::string::npos);
  EXPECT_NE(html.find("Authorized 2025-04-11"), std::string::npos);
  // Nested arrays: each app lists its own scopes.
  EXPECT_EQ(Count(html, "<li>"), 3u);
  EXPECT_NE(html.find("Know who you are <code class=\"scope\">openid</code>"), std::string::npos);
  EXPECT_NE(html.find("<input type=\"hidden\" name=\"client_id\" value=\"growth-chart\">"),
            std::string::npos);
  EXPECT_NE(html.find("<input type=\"hidden\" name=\"client_id\" value=\"med-list\">"),
            std::string::npos);
  EXPECT_EQ(Count(html, "action=\"/auth/apps/withdraw\""), 2u);
  EXPECT_EQ(Count(html, ">Withdraw access<"), 2u);
  EXPECT_NE(html.find("action=\"/auth/logout\""), std::string::npos);
  EXPECT_EQ(html.find("You have not authorized any app."), std::string::npos);
  EXPECT_EQ(ExpectCsrfInEveryPostForm(html), 3u);
}

TEST(WebTest, AppsPageWithoutApps) {
  std::string html = Render("apps", R"({"csrf": "csrf-token-4f2a9c", "apps": [],
                                        "logout_action": "/auth/logout"})");
  EXPECT_NE(html.find("You have not authorized any app."), std::string::npos);
  EXPECT_EQ(html.find("Withdraw access"), std::string::npos);
  EXPECT_EQ(ExpectCsrfInEveryPostForm(html), 1u);  // sign out
}

TEST(WebTest, ErrorAndMessagePages) {
  std::string error = Render("error", R"({"heading": "Unknown client",
      "message": "The app \"x\" is not registered."})");
  EXPECT_NE(error.find(">Unknown client</h1>"), std::string::npos);
  EXPECT_NE(error.find("The app &quot;x&quot; is not registered."), std::string::npos);
  EXPECT_NE(Render("error", "{}").find(">Something went wrong</h1>"), std::string::npos);

  std::string message = Render("message", R"({"heading": "Access withdrawn", "message": "Done.",
      "link_href": "/auth/apps", "link_text": "Back to your apps"})");
  EXPECT_NE(message.find("<a class=\"button button-primary\" href=\"/auth/apps\">Back to your "
                         "apps</a>"),
            std::string::npos)
      << message;
  EXPECT_EQ(Render("message", R"({"heading": "Done"})").find("<a class=\"button"),
            std::string::npos);
  EXPECT_NE(Render("message", R"({"link_href": "https://example.org/"})").find(">Continue</a>"),
            std::string::npos);
}

TEST(WebTest, EscapesHtmlInData) {
  const std::string_view evil = R"(<script>alert("x")</script> & 'q')";
  const std::string_view escaped =
      "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;q&apos;";
  json::Value data = Json(kConsent);
  data.Set("client_name", std::string(evil));
  data.Set("request", std::string(evil));
  data.Set("title", std::string(evil));
  data.Set("patient_display", std::string(evil));
  json::Array& scopes = data.Find("scopes")->as_array();
  scopes[0].Set("description", std::string(evil));
  scopes[1].Set("scope", std::string(evil));
  Result<std::string> html = RenderPage("consent", data);
  ASSERT_TRUE(html.has_value());
  EXPECT_EQ(html->find("<script"), std::string::npos) << *html;
  EXPECT_EQ(html->find("\"x\""), std::string::npos);
  EXPECT_EQ(html->find("'q'"), std::string::npos);
  EXPECT_NE(html->find("<title>" + std::string(escaped) + " · Fhirstone</title>"),
            std::string::npos);
  EXPECT_NE(html->find("value=\"" + std::string(escaped) + "\""), std::string::npos);
  EXPECT_GE(Count(*html, escaped), 7u);  // title, heading, lead, request, description, scope x2
  EXPECT_EQ(ExpectCsrfInEveryPostForm(*html), 1u);
}

TEST(WebTest, TemplateSyntaxInDataIsText) {
  std::string html = Render("message", R"({"heading": "{{#x}}{{{csrf}}}{{/x}}", "csrf": "<b>"})");
  EXPECT_NE(html.find("<h1 id=\"page-heading\">{{#x}}{{{csrf}}}{{/x}}</h1>"), std::string::npos)
      << html;
  EXPECT_EQ(html.find("<b>"), std::string::npos);
}

TEST(WebTest, UnsafeUrlsCountAsAbsent) {
  for (const char* uri : {"javascript:alert(1)", "JavaScript:alert(1)", "java\\tscript:alert(1)",
                          " javascript:alert(1)", "data:text/html,<b>x</b>", "vbscript:x"}) {
    std::string data = std::string(R"({"client_name": "App", "client_uri": ")") + uri + "\"}";
    std::string html = Render("consent", data);
    EXPECT_EQ(html.find("<a href"), std::string::npos) << uri;
    EXPECT_EQ(html.find("script:"), std::string::npos) << uri;
    std::string message = Render("message", std::string(R"({"link_href": ")") + uri + "\"}");
    EXPECT_EQ(message.find("<a class=\"button"), std::string::npos) << uri;
  }
  std::string html = Render("login", R"j({"action": "javascript:alert(1)"})j");
  EXPECT_NE(html.find("action=\"\""), std::string::npos);
  for (const char* uri :
       {"https://a.example/x?y=1", "http://a.example", "/auth/apps", "apps?x=a:b", "#top"}) {
    std::string message = Render("message", std::string(R"({"link_href": ")") + uri + "\"}");
    EXPECT_NE(message.find("<a class=\"button"), std::string::npos) << uri;
  }
}

TEST(WebTest, PagesUseNoScriptInlineStyleOrExternalResource) {
  for (auto [page, data] : {std::pair{"login", kLogin}, std::pair{"patient_picker", kPicker},
                            std::pair{"consent", kConsent}, std::pair{"apps", kApps},
                            std::pair{"error", "{}"}, std::pair{"message", "{}"}}) {
    std::string html = Render(page, data);
    EXPECT_EQ(html.find("<script"), std::string::npos) << page;
    EXPECT_EQ(html.find("<style"), std::string::npos) << page;
    EXPECT_EQ(html.find("style="), std::string::npos) << page;
    EXPECT_FALSE(std::regex_search(html, std::regex(R"(\son[a-z]+\s*=)"))) << page;
    for (std::string_view attr : {"src=\"http", "href=\"http", "src=\"//", "href=\"//"}) {
      // The only absolute link allowed is the consent page's client_uri.
      size_t at = html.find(attr);
      if (at != std::string::npos) {
        EXPECT_EQ(std::string(page), "consent");
        EXPECT_EQ(html.compare(at, 34, "href=\"https://apps.example.org/gro"), 0) << page;
      }
    }
    EXPECT_EQ(html.find("{{"), std::string::npos) << page;
  }
}

TEST(WebTest, UnknownPageOrBadDataIsInternalError) {
  for (std::string_view name : {"nope", "", "layout", "login.mustache", "../login"}) {
    Result<std::string> html = RenderPage(name, json::Value::EmptyObject());
    ASSERT_FALSE(html.has_value()) << name;
    EXPECT_EQ(html.error().code(), ErrorCode::kInternal);
  }
  Result<std::string> html = RenderPage("login", json::Value("a string"));
  ASSERT_FALSE(html.has_value());
  EXPECT_EQ(html.error().code(), ErrorCode::kInternal);
}

TEST(WebTest, FindStatic) {
  std::optional<StaticFile> css = FindStatic("style.css");
  ASSERT_TRUE(css.has_value());
  EXPECT_EQ(css->content_type.substr(0, 8), "text/css");
  EXPECT_NE(css->body.find(".card"), std::string_view::npos);
  std::optional<StaticFile> icon = FindStatic("favicon.svg");
  ASSERT_TRUE(icon.has_value());
  EXPECT_EQ(icon->content_type, "image/svg+xml");
  EXPECT_EQ(icon->body.substr(0, 4), "<svg");
  for (std::string_view path : {"", "nope.css", "/style.css", "static/style.css", "../web.cc",
                                "STYLE.CSS", "login.mustache"}) {
    EXPECT_FALSE(FindStatic(path).has_value()) << path;
  }
}

TEST(WebTest, ConcurrentRendersAgree) {
  const std::string expected = Render("consent", kConsent);
  json::Value data = Json(kConsent);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        Result<std::string> html = RenderPage(i % 2 ? "consent" : "apps", data);
        if (i % 2 && (!html.has_value() || *html != expected)) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace fhirstone::web
