#include "auth/scopes/scopes.h"

#include <gtest/gtest.h>

namespace fhirstone::scopes {
namespace {

constexpr std::string_view kLabQuery =
    "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

ScopeSet MustParse(std::string_view s) {
  auto set = Parse(s);
  EXPECT_TRUE(set.has_value()) << s << ": " << (set ? "" : set.error().message());
  return set ? *set : ScopeSet();
}

ResourceScope MustParseOne(std::string_view s) {
  auto scope = ParseResourceScope(s);
  EXPECT_TRUE(scope.has_value()) << s << ": " << (scope ? "" : scope.error().message());
  return scope ? *scope : ResourceScope();
}

void ExpectInvalid(std::string_view s, std::string_view named) {
  auto set = Parse(s);
  ASSERT_FALSE(set.has_value()) << s;
  EXPECT_EQ(set.error().code(), ErrorCode::kInvalid);
  EXPECT_NE(set.error().message().find(named), std::string::npos) << set.error().message();
}

TEST(ScopesTest, V1Forms) {
  ResourceScope read = MustParseOne("patient/Observation.read");
  EXPECT_EQ(read.context, Context::kPatient);
  EXPECT_EQ(read.type, "Observation");
  EXPECT_EQ(read.permissions, kRead | kSearch);
  EXPECT_TRUE(read.v1);
  EXPECT_EQ(read.text, "patient/Observation.read");
  EXPECT_EQ(read.query, "");

  ResourceScope write = MustParseOne("user/Patient.write");
  EXPECT_EQ(write.context, Context::kUser);
  EXPECT_EQ(write.permissions, kCreate | kUpdate | kDelete);
  EXPECT_TRUE(write.v1);

  ResourceScope all = MustParseOne("system/*.*");
  EXPECT_EQ(all.context, Context::kSystem);
  EXPECT_EQ(all.type, "*");
  EXPECT_EQ(all.permissions, kAllPermissions);
  EXPECT_TRUE(all.v1);

  EXPECT_EQ(MustParseOne("patient/*.read").type, "*");
  EXPECT_EQ(MustParseOne("user/Encounter.*").permissions, kAllPermissions);
}

TEST(ScopesTest, V2Forms) {
  struct Case {
    std::string_view perms;
    uint8_t mask;
  };
  const Case cases[] = {
      {"c", kCreate},
      {"r", kRead},
      {"u", kUpdate},
      {"d", kDelete},
      {"s", kSearch},
      {"rs", kRead | kSearch},
      {"cud", kCreate | kUpdate | kDelete},
      {"cs", kCreate | kSearch},
      {"crs", kCreate | kRead | kSearch},
      {"cruds", kAllPermissions},
  };
  for (const Case& c : cases) {
    std::string token = "patient/Observation." + std::string(c.perms);
    ResourceScope scope = MustParseOne(token);
    EXPECT_EQ(scope.permissions, c.mask) << token;
    EXPECT_FALSE(scope.v1) << token;
    EXPECT_EQ(PermissionLetters(scope.permissions), c.perms);
  }
  ResourceScope wildcard = MustParseOne("user/*.cruds");
  EXPECT_EQ(wildcard.type, "*");
  EXPECT_EQ(wildcard.permissions, kAllPermissions);
  EXPECT_EQ(ContextName(MustParseOne("system/Patient.rs").context), "system");
}

TEST(ScopesTest, QueryRestriction) {
  std::string token = "patient/Observation.rs?" + std::string(kLabQuery);
  ResourceScope scope = MustParseOne(token);
  EXPECT_EQ(scope.type, "Observation");
  EXPECT_EQ(scope.permissions, kRead | kSearch);
  EXPECT_EQ(scope.query, kLabQuery);
  ASSERT_EQ(scope.query_params.size(), 1u);
  EXPECT_EQ(scope.query_params[0].first, "category");
  EXPECT_EQ(scope.query_params[0].second,
            "http://terminology.hl7.org/CodeSystem/observation-category|laboratory");
  EXPECT_EQ(scope.text, token);

  // Percent-encoding in names and values, several parameters, '=' inside a value, '+' as space.
  ResourceScope encoded = MustParseOne(
      "user/Observation.s?code=http%3A%2F%2Floinc.org%7C1234-5&status=final&na%6De=a=b&t=x+y");
  EXPECT_EQ(encoded.query, "code=http%3A%2F%2Floinc.org%7C1234-5&status=final&na%6De=a=b&t=x+y");
  ASSERT_EQ(encoded.query_params.size(), 4u);
  EXPECT_EQ(encoded.query_params[0],
            (std::pair<std::string, std::string>("code", "http://loinc.org|1234-5")));
  EXPECT_EQ(encoded.query_params[1], (std::pair<std::string, std::string>("status", "final")));
  EXPECT_EQ(encoded.query_params[2], (std::pair<std::string, std::string>("name", "a=b")));
  EXPECT_EQ(encoded.query_params[3], (std::pair<std::string, std::string>("t", "x y")));

  // UTF-8 percent-encoded is fine.
  EXPECT_EQ(MustParseOne("patient/Patient.r?name=Z%C3%BCrich").query_params[0].second,
            "Z\xC3\xBCrich");
}

TEST(ScopesTest, InvalidResourceScopes) {
  ExpectInvalid("openid patient/Observation.sr", "patient/Observation.sr");
  ExpectInvalid("patient/Observation.rr", "patient/Observation.rr");
  ExpectInvalid("patient/Observation.x", "patient/Observation.x");
  ExpectInvalid("patient/Observation.Read", "patient/Observation.Read");
  ExpectInvalid("patient/Foo.rs", "unknown resource type 'Foo'");
  ExpectInvalid("patient/observation.rs", "patient/observation.rs");
  ExpectInvalid("patient/Observation.read?x=y", "v1");
  ExpectInvalid("patient/Observation.*?x=y", "v1");
  ExpectInvalid("patient/Observation.", "patient/Observation.");
  ExpectInvalid("patient/.rs", "missing resource type");
  ExpectInvalid("patient/Observation", "patient/Observation");
  ExpectInvalid("user/Observation.r.s", "user/Observation.r.s");
  ExpectInvalid("system/Observation.rs?", "empty query");
  ExpectInvalid("system/Observation.rs?a=1&&b=2", "empty parameter");
  ExpectInvalid("system/Observation.rs?code", "no value");
  ExpectInvalid("system/Observation.rs?code=", "empty value");
  ExpectInvalid("system/Observation.rs?=x", "without a name");
  ExpectInvalid("system/Observation.rs?code=%ZZ", "percent-encoding");
  ExpectInvalid("system/Observation.rs?code=%0A", "control character");
  ExpectInvalid("system/Observation.rs?code=%FF", "UTF-8");

  EXPECT_FALSE(ParseResourceScope("openid").has_value());
  EXPECT_FALSE(ParseResourceScope("").has_value());
  EXPECT_FALSE(ParseResourceScope("patient/Observation.rs x").has_value());
}

TEST(ScopesTest, UnknownContextsAndScopesAreKeptAsOther) {
  ScopeSet set = MustParse("unknownctx/Observation.rs Patient/Observation.read foo launch/other");
  EXPECT_TRUE(set.resources.empty());
  EXPECT_EQ(set.other,
            (std::vector<std::string>{"unknownctx/Observation.rs", "Patient/Observation.read",
                                      "foo", "launch/other"}));
  EXPECT_EQ(set.tokens, set.other);
}

TEST(ScopesTest, ParseWholeString) {
  ScopeSet set = MustParse(
      "launch launch/patient launch/encounter openid fhirUser profile offline_access "
      "online_access patient/*.rs user/Observation.read custom:thing");
  EXPECT_TRUE(set.launch);
  EXPECT_TRUE(set.launch_patient);
  EXPECT_TRUE(set.launch_encounter);
  EXPECT_TRUE(set.openid);
  EXPECT_TRUE(set.fhir_user);
  EXPECT_TRUE(set.profile);
  EXPECT_TRUE(set.offline_access);
  EXPECT_TRUE(set.online_access);
  ASSERT_EQ(set.resources.size(), 2u);
  EXPECT_EQ(set.resources[0].text, "patient/*.rs");
  EXPECT_EQ(set.resources[1].text, "user/Observation.read");
  EXPECT_EQ(set.other, std::vector<std::string>{"custom:thing"});
  EXPECT_EQ(set.tokens.size(), 11u);
  EXPECT_TRUE(set.Has("openid"));
  EXPECT_TRUE(set.Has("patient/*.rs"));
  EXPECT_FALSE(set.Has("patient/*.read"));
  EXPECT_FALSE(set.Has("open"));

  ScopeSet none = MustParse("openid");
  EXPECT_FALSE(none.launch);
  EXPECT_FALSE(none.fhir_user);
  EXPECT_FALSE(none.offline_access);
}

TEST(ScopesTest, EmptyStringIsAnEmptySet) {
  ScopeSet set = MustParse("");
  EXPECT_TRUE(set.tokens.empty());
  EXPECT_EQ(set.ToString(), "");
  EXPECT_TRUE(MustParse("   ").tokens.empty());
}

TEST(ScopesTest, DuplicatesAndSpaces) {
  ScopeSet set = MustParse("  openid   patient/Observation.rs openid  patient/Observation.rs  ");
  EXPECT_EQ(set.tokens, (std::vector<std::string>{"openid", "patient/Observation.rs"}));
  EXPECT_EQ(set.resources.size(), 1u);
  EXPECT_EQ(set.ToString(), "openid patient/Observation.rs");

  ScopeSet others = MustParse("x y x");
  EXPECT_EQ(others.other, (std::vector<std::string>{"x", "y"}));
}

TEST(ScopesTest, IllegalCharacters) {
  ExpectInvalid("openid \"quoted\"", "%22quoted%22");
  ExpectInvalid("openid back\\slash", "back%5Cslash");
  ExpectInvalid("openid\tprofile", "openid%09profile");
  ExpectInvalid("openid\nprofile", "%0A");
  ExpectInvalid("patient/Patient.r?name=Z\xC3\xBC", "%C3%BC");
  ExpectInvalid(std::string_view("a\0b", 3), "a%00b");
  // The message is itself a valid error_description: no '"' nor '\'.
  auto set = Parse("\"\\");
  ASSERT_FALSE(set.has_value());
  EXPECT_EQ(set.error().message().find('"'), std::string::npos);
  EXPECT_EQ(set.error().message().find('\\'), std::string::npos);
  // Long tokens are cut in the message.
  auto long_set = Parse("patient/Foo.rs?x=" + std::string(1000, 'a'));
  ASSERT_FALSE(long_set.has_value());
  EXPECT_LT(long_set.error().message().size(), 250u);
}

TEST(ScopesTest, Matching) {
  ScopeSet set = MustParse(
      "patient/Observation.rs user/*.r system/Patient.cruds patient/Condition.c openid "
      "patient/Observation.s?category=laboratory");
  auto texts = [](const std::vector<const ResourceScope*>& scopes) {
    std::vector<std::string> out;
    for (const ResourceScope* s : scopes) out.push_back(s->text);
    return out;
  };
  EXPECT_EQ(texts(Matching(set, "Observation", kRead)),
            (std::vector<std::string>{"patient/Observation.rs", "user/*.r"}));
  EXPECT_EQ(texts(Matching(set, "Observation", kSearch)),
            (std::vector<std::string>{"patient/Observation.rs",
                                      "patient/Observation.s?category=laboratory"}));
  EXPECT_EQ(texts(Matching(set, "Observation", kRead, {Context::kPatient})),
            std::vector<std::string>{"patient/Observation.rs"});
  EXPECT_EQ(texts(Matching(set, "Observation", kRead, {Context::kUser, Context::kSystem})),
            std::vector<std::string>{"user/*.r"});
  EXPECT_EQ(texts(Matching(set, "Patient", kDelete)),
            std::vector<std::string>{"system/Patient.cruds"});
  EXPECT_TRUE(Matching(set, "Patient", kDelete, {Context::kPatient}).empty());
  EXPECT_EQ(texts(Matching(set, "Condition", kCreate)),
            std::vector<std::string>{"patient/Condition.c"});
  EXPECT_TRUE(Matching(set, "Condition", kUpdate).empty());
  EXPECT_EQ(texts(Matching(set, "Encounter", kRead)), std::vector<std::string>{"user/*.r"});
  EXPECT_TRUE(Matching(set, "Encounter", kSearch).empty());
  // A combined mask needs every bit.
  EXPECT_EQ(texts(Matching(set, "Observation", static_cast<Permission>(kRead | kSearch))),
            std::vector<std::string>{"patient/Observation.rs"});
  // v1 read is read + search.
  ScopeSet v1 = MustParse("patient/*.read");
  EXPECT_EQ(Matching(v1, "Observation", kSearch).size(), 1u);
  EXPECT_TRUE(Matching(v1, "Observation", kCreate).empty());
}

TEST(ScopesTest, IsCoveredBy) {
  ScopeSet granted = MustParse(
      "launch/patient openid fhirUser offline_access patient/Observation.rs user/Patient.read "
      "patient/Condition.s?category=problem-list-item&clinical-status=active");

  // The exact original set.
  EXPECT_TRUE(IsCoveredBy(granted, granted));
  // The same tokens in another order, and an empty request.
  EXPECT_TRUE(IsCoveredBy(MustParse("openid patient/Observation.rs"), granted));
  EXPECT_TRUE(IsCoveredBy(MustParse(""), granted));
  // Narrowing.
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/Observation.r"), granted));
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/Observation.s openid"), granted));
  EXPECT_TRUE(IsCoveredBy(MustParse("user/Patient.rs"), granted));
  // The same query restriction, parameters in another order or encoded differently.
  EXPECT_TRUE(IsCoveredBy(
      MustParse("patient/Condition.s?clinical-status=active&category=problem-list-item"), granted));
  EXPECT_TRUE(IsCoveredBy(
      MustParse("patient/Condition.s?category=problem%2Dlist%2Ditem&clinical-status=active"),
      granted));
  // A restriction-free grant covers a restricted request.
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/Observation.s?category=laboratory"), granted));

  // Widening.
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Observation.rus"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Observation.write"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/*.rs"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Encounter.r"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("launch"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("openid online_access"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("custom"), granted));
  // Another context is never covered.
  EXPECT_FALSE(IsCoveredBy(MustParse("user/Observation.r"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("system/Observation.r"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Patient.r"), granted));
  // Dropping or changing a query restriction.
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Condition.s"), granted));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Condition.s?category=problem-list-item"), granted));
  EXPECT_FALSE(IsCoveredBy(
      MustParse("patient/Condition.s?category=encounter-diagnosis&clinical-status=active"),
      granted));

  // v1 and v2 equivalents.
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/Observation.rs"), MustParse("patient/*.read")));
  EXPECT_TRUE(
      IsCoveredBy(MustParse("patient/Observation.read"), MustParse("patient/Observation.rs")));
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/*.read"), MustParse("patient/*.rs")));
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/*.rs"), MustParse("patient/*.read")));
  EXPECT_TRUE(IsCoveredBy(MustParse("user/Patient.cud"), MustParse("user/*.write")));
  EXPECT_TRUE(IsCoveredBy(MustParse("user/Patient.*"), MustParse("user/Patient.cruds")));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Observation.read"), MustParse("patient/*.r")));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/*.*"), MustParse("patient/*.read")));

  // Several granted scopes together.
  EXPECT_TRUE(IsCoveredBy(MustParse("patient/Observation.rs"),
                          MustParse("patient/Observation.r patient/*.s")));
  EXPECT_FALSE(IsCoveredBy(MustParse("patient/Observation.rs"),
                           MustParse("patient/Observation.r patient/*.s?category=laboratory")));
}

TEST(ScopesTest, Restrict) {
  ScopeSet allowed =
      MustParse("launch/patient openid fhirUser patient/*.read user/Observation.rs?status=final");
  ScopeSet requested = MustParse(
      "openid offline_access patient/Observation.rs patient/Patient.read patient/Condition.cud "
      "fhirUser user/Observation.rs?status=final user/Observation.rs custom launch/patient");
  ScopeSet out = Restrict(requested, allowed);
  EXPECT_EQ(out.ToString(),
            "openid patient/Observation.rs patient/Patient.read fhirUser "
            "user/Observation.rs?status=final launch/patient");
  EXPECT_TRUE(out.openid);
  EXPECT_TRUE(out.fhir_user);
  EXPECT_TRUE(out.launch_patient);
  EXPECT_FALSE(out.offline_access);
  EXPECT_TRUE(out.other.empty());
  ASSERT_EQ(out.resources.size(), 3u);
  EXPECT_EQ(out.resources[0].text, "patient/Observation.rs");
  EXPECT_EQ(out.resources[2].query_params,
            (std::vector<std::pair<std::string, std::string>>{{"status", "final"}}));
  EXPECT_TRUE(IsCoveredBy(out, allowed));
  EXPECT_TRUE(IsCoveredBy(out, requested));

  // Everything allowed: unchanged. Nothing allowed: empty.
  EXPECT_EQ(Restrict(requested, requested).ToString(), requested.ToString());
  EXPECT_TRUE(Restrict(requested, ScopeSet()).tokens.empty());
  // An unknown scope is kept only when the client registered it exactly.
  EXPECT_EQ(Restrict(MustParse("custom other"), MustParse("custom")).other,
            std::vector<std::string>{"custom"});
}

TEST(ScopesTest, Describe) {
  EXPECT_EQ(Describe("patient/Observation.rs?" + std::string(kLabQuery)),
            "Read and search observations of the patient in context (laboratory category only)");
  EXPECT_EQ(Describe("patient/*.cruds"),
            "Create, read, update, delete and search all data of the patient in context");
  EXPECT_EQ(Describe("patient/*.*"), Describe("patient/*.cruds"));
  EXPECT_EQ(Describe("user/AllergyIntolerance.read"),
            "Read and search allergy intolerances you have access to");
  EXPECT_EQ(Describe("system/ImagingStudy.write"),
            "Create, update and delete imaging studies on the whole server");
  EXPECT_EQ(Describe("user/MedicationRequest.c"), "Create medication requests you have access to");
  EXPECT_EQ(Describe("system/RiskEvidenceSynthesis.r"),
            "Read risk evidence syntheses on the whole server");
  EXPECT_EQ(Describe("patient/Observation.s?code=http://loinc.org|1234-5,http://loinc.org|"
                     "9999-9&status=final"),
            "Search observations of the patient in context (1234-5 or 9999-9 code and final "
            "status only)");
  EXPECT_EQ(Describe("patient/Observation.s?category:not=laboratory"),
            "Search observations of the patient in context (category:not laboratory only)");
  EXPECT_EQ(Describe("openid"), "Know who you are (OpenID Connect)");
  EXPECT_EQ(Describe("offline_access"),
            "Stay signed in to the app when you are not using it (offline access)");
  for (std::string_view token :
       {"launch", "launch/patient", "launch/encounter", "fhirUser", "profile", "online_access",
        "custom", "patient/Foo.rs", "unknownctx/Observation.rs", ""}) {
    EXPECT_FALSE(Describe(token).empty()) << token;
  }
  EXPECT_NE(Describe("patient/Foo.rs").find("patient/Foo.rs"), std::string::npos);
  EXPECT_NE(Describe("custom").find("custom"), std::string::npos);
}

}  // namespace
}  // namespace fhirstone::scopes
