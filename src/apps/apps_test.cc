#include "apps/apps.h"

#include <gtest/gtest.h>

#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "apps/internal/embedded.h"

namespace fhirstone::apps {
namespace {

constexpr std::string_view kHtml = "text/html; charset=utf-8";
constexpr std::string_view kJs = "text/javascript; charset=utf-8";
constexpr std::string_view kCss = "text/css; charset=utf-8";

std::string Body(std::string_view path) {
  std::optional<File> file = Find(path);
  EXPECT_TRUE(file.has_value()) << path;
  return file ? std::string(file->body) : std::string();
}

std::vector<const internal::EmbeddedFile*> FilesOfType(std::string_view content_type) {
  std::vector<const internal::EmbeddedFile*> out;
  for (const internal::EmbeddedFile& f : internal::EmbeddedFiles()) {
    if (f.content_type == content_type) out.push_back(&f);
  }
  return out;
}

// The matches of group `group` of `pattern` (ECMAScript, case-insensitive) in `text`.
std::vector<std::string> Matches(const std::string& text, const char* pattern, int group = 0) {
  std::regex re(pattern, std::regex::ECMAScript | std::regex::icase);
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[group].str());
  }
  return out;
}

TEST(AppsTest, IndexAndLaunchPages) {
  std::optional<File> index = Find("vitals/index.html");
  ASSERT_TRUE(index.has_value());
  EXPECT_EQ(index->content_type, kHtml);
  EXPECT_NE(index->body.find("<!doctype html>"), std::string_view::npos);

  std::optional<File> folder = Find("vitals/");
  ASSERT_TRUE(folder.has_value());
  EXPECT_EQ(folder->body.data(), index->body.data());
  EXPECT_EQ(folder->content_type, kHtml);

  std::optional<File> launch = Find("vitals/launch.html");
  ASSERT_TRUE(launch.has_value());
  EXPECT_EQ(launch->content_type, kHtml);

  for (const char* path : {"vitals/app.js", "vitals/launch.js"}) {
    std::optional<File> js = Find(path);
    ASSERT_TRUE(js.has_value()) << path;
    EXPECT_EQ(js->content_type, kJs) << path;
  }
  std::optional<File> css = Find("vitals/style.css");
  ASSERT_TRUE(css.has_value());
  EXPECT_EQ(css->content_type, kCss);
  std::optional<File> icon = Find("vitals/icon.svg");
  ASSERT_TRUE(icon.has_value());
  EXPECT_EQ(icon->content_type, "image/svg+xml");
}

TEST(AppsTest, VendorBundles) {
  std::optional<File> fhirclient = Find("vitals/vendor/fhir-client.pure.min.js");
  ASSERT_TRUE(fhirclient.has_value());
  EXPECT_EQ(fhirclient->content_type, kJs);
  EXPECT_GT(fhirclient->body.size(), 20000u);
  EXPECT_NE(fhirclient->body.find("window.FHIR="), std::string_view::npos);

  std::optional<File> license = Find("vitals/vendor/fhir-client.pure.min.js.LICENSE.txt");
  ASSERT_TRUE(license.has_value());
  EXPECT_EQ(license->content_type, "text/plain; charset=utf-8");

  std::optional<File> chart = Find("vitals/vendor/chart.umd.min.js");
  ASSERT_TRUE(chart.has_value());
  EXPECT_EQ(chart->content_type, kJs);
  EXPECT_GT(chart->body.size(), 100000u);
  EXPECT_NE(chart->body.find("Chart.js v4."), std::string_view::npos);
  EXPECT_NE(chart->body.find("Released under the MIT License"), std::string_view::npos);
}

TEST(AppsTest, UnknownAndTraversalPathsAreRefused) {
  for (std::string_view path : {"",
                                "/",
                                "vitals",
                                "/vitals/",
                                "/vitals/index.html",
                                "../vitals/index.html",
                                "vitals/../vitals/index.html",
                                "vitals/./index.html",
                                "./vitals/index.html",
                                "vitals//index.html",
                                "vitals/index.html/",
                                "vitals/index.html?state=x",
                                "vitals%2Findex.html",
                                "vitals/%2e%2e/vitals/index.html",
                                "vitals\\index.html",
                                "VITALS/index.html",
                                "vitals/Index.html",
                                "vitals/nope.js",
                                "vitals/vendor/",
                                "vitals/vendor",
                                "vitals/vendor/../app.js",
                                "other/",
                                "../",
                                "..",
                                "vitals/..",
                                "vitals/../../etc/passwd",
                                "vitals/vendor/fhir-client.pure.min.js.map"}) {
    EXPECT_FALSE(Find(path).has_value()) << path;
  }
  std::string with_nul("vitals/index.html\0", 18);
  EXPECT_FALSE(Find(with_nul).has_value());
}

TEST(AppsTest, EmbeddedPathsAreSortedUniqueAndSafe) {
  std::span<const internal::EmbeddedFile> files = internal::EmbeddedFiles();
  ASSERT_FALSE(files.empty());
  for (size_t i = 0; i < files.size(); ++i) {
    std::string_view path = files[i].path;
    if (i > 0) {
      EXPECT_LT(files[i - 1].path, path);
    }
    EXPECT_FALSE(path.empty());
    EXPECT_NE(path.front(), '/') << path;
    EXPECT_EQ(path.find("//"), std::string_view::npos) << path;
    EXPECT_EQ(path.find("/."), std::string_view::npos) << path;
    EXPECT_EQ(path.find('\\'), std::string_view::npos) << path;
    EXPECT_NE(path.front(), '.') << path;
    EXPECT_FALSE(files[i].content_type.empty()) << path;
    EXPECT_FALSE(files[i].body.empty()) << path;
    std::optional<File> found = Find(path);
    ASSERT_TRUE(found.has_value()) << path;
    EXPECT_EQ(found->body.data(), files[i].body.data()) << path;
  }
}

// The pages must work under `Content-Security-Policy: default-src 'self'`: no inline script,
// style or event handler, no javascript: URL, and only files of the app itself.
TEST(AppsTest, HtmlHasNoInlineScriptStyleOrHandlers) {
  std::vector<const internal::EmbeddedFile*> pages = FilesOfType(kHtml);
  ASSERT_GE(pages.size(), 2u);
  for (const internal::EmbeddedFile* page : pages) {
    std::string html(page->body);
    SCOPED_TRACE(std::string(page->path));
    EXPECT_FALSE(Matches(html, R"(<script\b)").empty());
    for (const std::string& attrs :
         Matches(html, R"(<script\b([^>]*)>([\s\S]*?)</script\s*>)", 1)) {
      EXPECT_NE(attrs.find("src="), std::string::npos) << "script without src: " << attrs;
    }
    for (const std::string& content :
         Matches(html, R"(<script\b[^>]*>([\s\S]*?)</script\s*>)", 1)) {
      EXPECT_EQ(content.find_first_not_of(" \t\r\n"), std::string::npos)
          << "inline script: " << content;
    }
    EXPECT_TRUE(Matches(html, R"(<style\b)").empty()) << "inline <style>";
    EXPECT_TRUE(Matches(html, R"(<[^>]*\sstyle\s*=)").empty()) << "style attribute";
    EXPECT_TRUE(Matches(html, R"(<[^>]*\son[a-z]+\s*=)").empty()) << "on* handler";
    EXPECT_TRUE(Matches(html, R"(javascript:)").empty()) << "javascript: URL";
    // Every src and href is a file of the app (relative to the page's folder) or a fragment.
    std::string_view folder = page->path.substr(0, page->path.rfind('/') + 1);
    for (const std::string& url : Matches(html, R"re(\s(?:src|href)\s*=\s*"([^"]*)")re", 1)) {
      if (!url.empty() && url[0] == '#') continue;
      EXPECT_TRUE(Find(std::string(folder) + url).has_value()) << "unknown file: " << url;
    }
  }
}

TEST(AppsTest, OwnScriptsBuildNoMarkupAndNoCode) {
  for (const internal::EmbeddedFile* js : FilesOfType(kJs)) {
    if (js->path.find("/vendor/") != std::string_view::npos) continue;
    SCOPED_TRACE(std::string(js->path));
    std::string text(js->body);
    for (const char* forbidden :
         {"eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
          "setAttribute(\"style", "setTimeout(\"", "cssText"}) {
      EXPECT_EQ(text.find(forbidden), std::string::npos) << forbidden;
    }
    EXPECT_NE(text.find("\"use strict\";"), std::string::npos);
  }
}

TEST(AppsTest, EveryControlHasALabel) {
  for (const internal::EmbeddedFile* page : FilesOfType(kHtml)) {
    std::string html(page->body);
    SCOPED_TRACE(std::string(page->path));
    std::set<std::string> labelled;
    for (const std::string& id : Matches(html, R"re(<label\b[^>]*\bfor="([^"]+)")re", 1)) {
      labelled.insert(id);
    }
    for (const std::string& tag : Matches(html, R"(<(?:select|input|textarea)\b[^>]*>)")) {
      std::vector<std::string> ids = Matches(tag, R"re(\bid="([^"]+)")re", 1);
      bool aria = tag.find("aria-label") != std::string::npos;
      EXPECT_TRUE(aria || (!ids.empty() && labelled.count(ids[0]) > 0)) << tag;
    }
    EXPECT_NE(html.find("<html lang=\"en\">"), std::string::npos);
    EXPECT_FALSE(Matches(html, R"(<h1\b)").empty()) << "a page has an <h1>";
  }
}

TEST(AppsTest, IndexExposesTheSectionsBrowserTestsUse) {
  std::string html = Body("vitals/index.html");
  for (const char* id : {"error",
                         "main",
                         "patient-banner",
                         "patient-name",
                         "patient-gender",
                         "patient-birthdate",
                         "patient-age",
                         "patient-mrn",
                         "patient-message",
                         "vitals",
                         "vitals-range",
                         "vitals-message",
                         "vitals-chart",
                         "chart-blood-pressure",
                         "chart-heart-rate",
                         "chart-weight-bmi",
                         "conditions",
                         "conditions-message",
                         "conditions-list",
                         "allergies",
                         "allergies-message",
                         "allergies-list",
                         "medications",
                         "medications-message",
                         "medications-list"}) {
    EXPECT_EQ(Matches(html, (std::string("\\sid=\"") + id + "\"").c_str()).size(), 1u) << id;
  }
  EXPECT_NE(html.find("<div id=\"error\" class=\"alert\" role=\"alert\" hidden>"),
            std::string::npos);
  std::string launch = Body("vitals/launch.html");
  EXPECT_NE(launch.find("id=\"error\""), std::string::npos);
}

TEST(AppsTest, LaunchAsksForTheScopesTheAppReads) {
  std::string launch = Body("vitals/launch.js");
  for (const char* needle :
       {"FHIR.oauth2.authorize", "\"vitals\"", "pkceMode: \"required\"",
        "redirectUri: \"index.html\"", "new URL(\"/fhir\", window.location.href)",
        "\"launch/patient\"", "\"openid\"", "\"fhirUser\"", "\"patient/Patient.rs\"",
        "\"patient/Observation.rs\"", "\"patient/Condition.rs\"",
        "\"patient/AllergyIntolerance.rs\"", "\"patient/MedicationRequest.rs\"",
        "\"offline_access\""}) {
    EXPECT_NE(launch.find(needle), std::string::npos) << needle;
  }
  std::string app = Body("vitals/app.js");
  for (const char* needle :
       {"FHIR.oauth2.ready()", "need_patient_banner", "85354-9", "8480-6", "8462-4", "8867-4",
        "29463-7", "39156-5", "vital-signs", "\"clinical-status\": \"active\"",
        "status: \"active\"", "This app was not allowed to read "}) {
    EXPECT_NE(app.find(needle), std::string::npos) << needle;
  }
}

}  // namespace
}  // namespace fhirstone::apps
