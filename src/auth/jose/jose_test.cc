#include "auth/jose/jose.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace fhirstone::jose {
namespace {

// Made once with the openssl command line (genpkey, dgst -sign) and a python3 script that wrote the
// JWKs and converted the ECDSA signatures from DER to r||s: an implementation independent of ours.
constexpr std::string_view kInteropRsaJwk =
    R"({"kty": "RSA", "kid": "interop-rsa", "use": "sig", "alg": "RS384", "n": "7Us5L8M5zDBLME6rcrltBPuAKErvY-d4eZvjJTejCJn9bROX9G8wOE3gBMuz2a02Z0xLKKYAf8VTD_PKqxGxSm6FFMPNEmnjivYRFfZNWGbzhuNSuGTTgRUteptTtJuj2fL8AyKMZ1vwtWR5f6igXA2vpm6yJ3RhYdREq57OvKulNsK9al9FXjpbAwZ8FwFHTdXNsE7XRU5FFIWH-FbopSzVBLXSNhFWaM0D6L0XBv1NbFGAFxga9rF9WcOHcXKLFXC_W0mqVIEQbfKk5OxucVjmSiQg9JAXWbyQZXBlRz0Cx3vjqkXTNuulcs-ARp7pdKD8SFs-_fBsrovHF8_yiQ", "e": "AQAB"})";
constexpr std::string_view kInteropRs384Jwt =
    "eyJhbGciOiJSUzM4NCIsImtpZCI6ImludGVyb3AtcnNhIiwidHlwIjoiSldUIn0."
    "eyJpc3MiOiJpbnRlcm9wLWNsaWVudCIsInN1YiI6ImludGVyb3AtY2xpZW50IiwiYXVkIjoiaHR0cHM6Ly9maGlyc3Rv"
    "bmUuZXhhbXBsZS90b2tlbiIsImp0aSI6ImI4ZjFmNGQwIiwiZXhwIjoxOTAwMDAwMDAwfQ."
    "om1le8c8dOCrRYLlyeU4Uk6povEW6iSsKrtCZS32dRcuhoYg-Pap80xiGUJGkjXqmTNnWrfr2-7G_Oe0FJ-h9Idu1zeOV3"
    "mquJsTfeaA8fx3ERdJBnl1QfRde8G_j--41jO78Rzb60_W4_1GElpMG8VpebQnLiwBR4v5x0rtJloaz5CvpFXBgvNa-qo1"
    "mFCPqIhUaUFdTaJXYdWXGvL1psZopccHtEknGYEhUQq4p1UV7XqPa5BRvSP8GWKN6jTe_EKuv8nZm370nsjkbP9Voi6sRy"
    "DIeOuVWDQgRXicev3PEMwZERyXSZXA9ZNIda-Vvx4KV8GCu-680XCkMnTebg";
// A JWKS as SMART's certification suite (and WebCrypto) writes it: a private key for "sign" and
// its public key for "verify", both with kid, alg, key_ops and ext.
constexpr std::string_view kInteropEcJwks =
    R"({"keys": [{"kty": "EC", "crv": "P-384", "d": "bUlGOvRfyk6Cnoz4i4gllwXf_a5MSl9NlKUVP4PTw8wZpbLWkBZZKyMkhZq0IqcA", "x": "h0plSoxpiyV96n2hXLXQXhbfOJnq1SsEqIwXOhvDVDDNnKZaCwnvjV2kn47XwFBs", "y": "NulTKJwZBG5KDdN5uMaI-LJL0x6BwmHOR5pCDBUZ4R9v1J7gUIR1oVJXGopg3yTN", "key_ops": ["sign"], "ext": true, "kid": "interop-ec384", "alg": "ES384"}, {"kty": "EC", "crv": "P-384", "x": "h0plSoxpiyV96n2hXLXQXhbfOJnq1SsEqIwXOhvDVDDNnKZaCwnvjV2kn47XwFBs", "y": "NulTKJwZBG5KDdN5uMaI-LJL0x6BwmHOR5pCDBUZ4R9v1J7gUIR1oVJXGopg3yTN", "key_ops": ["verify"], "ext": true, "kid": "interop-ec384", "alg": "ES384"}]})";
constexpr std::string_view kInteropEs384Jwt =
    "eyJhbGciOiJFUzM4NCIsImtpZCI6ImludGVyb3AtZWMzODQiLCJ0eXAiOiJKV1QifQ."
    "eyJpc3MiOiJpbnRlcm9wLWNsaWVudCIsInN1YiI6ImludGVyb3AtY2xpZW50IiwiYXVkIjoiaHR0cHM6Ly9maGlyc3Rv"
    "bmUuZXhhbXBsZS90b2tlbiIsImp0aSI6ImI4ZjFmNGQwIiwiZXhwIjoxOTAwMDAwMDAwfQ."
    "EWKYLWtF7lkGu59Uvg9EJK32owOSOF2cZ-YTd7PJD9C6EyD-IhVr8IUWianmB-YTGlJZFc5-OhNnbZngFRaTGn3UDDyoVj"
    "MHUB_2tUTkmwTPCYc6LQg2OrJ9nZQiovRz";
constexpr std::string_view kInteropEc256Jwk =
    R"({"kty": "EC", "crv": "P-256", "x": "b6BIx3U85QqPVWset6_h7OQvci_fTX6dJpMaBARFoPw", "y": "YVqYMAZ5BNeY4vQ7L8bWFB5mm-nfS61HaecA25UvBDY", "key_ops": ["verify"], "ext": true, "kid": "interop-ec256", "alg": "ES256"})";
constexpr std::string_view kInteropEs256Jwt =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImludGVyb3AtZWMyNTYiLCJ0eXAiOiJKV1QifQ."
    "eyJpc3MiOiJpbnRlcm9wLWNsaWVudCIsInN1YiI6ImludGVyb3AtY2xpZW50IiwiYXVkIjoiaHR0cHM6Ly9maGlyc3Rv"
    "bmUuZXhhbXBsZS90b2tlbiIsImp0aSI6ImI4ZjFmNGQwIiwiZXhwIjoxOTAwMDAwMDAwfQ."
    "wuNKfi89BwYHpEpJz9UKxXzPk0EQ6hZRrg5m7Aa0_hw22XU-KoOrH3ImMlANKQuqs2iqTK-bLpiwfWno8t3xNQ";

json::Value ParseJson(std::string_view text) {
  auto v = json::Parse(text);
  EXPECT_TRUE(v) << v.error().message();
  return v ? std::move(*v) : json::Value();
}

json::Value Claims() {
  return ParseJson(R"({"iss":"client-1","sub":"client-1","aud":"https://ex.org/token","jti":"j1",
                       "exp":1900000000})");
}

std::string B64(std::string_view s) { return Base64UrlEncode(s); }

// Three compact parts from already-encoded JSON texts and raw signature bytes.
std::string Compact(std::string_view header, std::string_view payload, std::string_view sig) {
  return B64(header) + "." + B64(payload) + "." + B64(sig);
}

KeySet SetOf(const SigningKey& key) {
  KeySet set;
  Status added = set.Add(key.PublicJwk());
  EXPECT_TRUE(added) << added.error().message();
  return set;
}

// Test keys are made once per suite: RSA generation takes a while.
SigningKey* NewKey(Result<SigningKey> key) {
  if (!key) {
    ADD_FAILURE() << key.error().message();
    std::abort();
  }
  return new SigningKey(std::move(key).value());
}

class JoseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rs256_ = NewKey(SigningKey::GenerateRsa("rsa-256", 2048));
    rs384_ = NewKey(SigningKey::GenerateRsa("rsa-384", 2048, Alg::kRS384));
    es256_ = NewKey(SigningKey::GenerateEc("ec-256", Alg::kES256));
    es384_ = NewKey(SigningKey::GenerateEc("ec-384", Alg::kES384));
  }
  static void TearDownTestSuite() {
    delete rs256_;
    delete rs384_;
    delete es256_;
    delete es384_;
  }
  static std::vector<const SigningKey*> AllKeys() { return {rs256_, rs384_, es256_, es384_}; }

  static SigningKey* rs256_;
  static SigningKey* rs384_;
  static SigningKey* es256_;
  static SigningKey* es384_;
};

SigningKey* JoseTest::rs256_ = nullptr;
SigningKey* JoseTest::rs384_ = nullptr;
SigningKey* JoseTest::es256_ = nullptr;
SigningKey* JoseTest::es384_ = nullptr;

TEST(Base64UrlTest, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [bytes, text] : vectors) {
    EXPECT_EQ(Base64UrlEncode(bytes), text);
    EXPECT_EQ(Base64UrlDecode(text), std::string(bytes)) << text;
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");  // the URL-safe alphabet
  EXPECT_EQ(Base64UrlDecode("-_8"), std::string("\xfb\xff"));
}

TEST(Base64UrlTest, RoundTripsEveryByteAndLongInput) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(Base64UrlDecode(Base64UrlEncode(all)), all);
  std::string large;
  for (int i = 0; i < 40001; ++i) large += static_cast<char>(i * 7);
  std::string encoded = Base64UrlEncode(large);
  EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
  EXPECT_EQ(Base64UrlDecode(encoded), large);
}

TEST(Base64UrlTest, RefusesNonCanonicalInput) {
  for (std::string_view bad : {"Zg==", "Zm8=", "Z", "Zm9vY", "Zh", "Zm9", "Zm9v!", "Zm 9v", "+/8",
                               "Zm9v\n", "=", "Zg=="}) {
    EXPECT_FALSE(Base64UrlDecode(bad)) << "accepted: " << bad;
  }
}

TEST(Sha256Test, KnownDigestsAndPkce) {
  EXPECT_EQ(B64(Sha256("")), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
  EXPECT_EQ(B64(Sha256("abc")), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  // RFC 7636 appendix B.
  EXPECT_EQ(B64(Sha256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(AlgTest, NamesRoundTrip) {
  for (Alg alg : {Alg::kRS256, Alg::kRS384, Alg::kES256, Alg::kES384}) {
    EXPECT_EQ(ParseAlg(AlgName(alg)), alg);
  }
  EXPECT_EQ(ParseAlg("RS384"), Alg::kRS384);
  for (std::string_view bad :
       {"none", "None", "HS256", "HS384", "RS512", "PS256", "ES512", "rs256", "EdDSA", ""}) {
    EXPECT_FALSE(ParseAlg(bad)) << bad;
  }
}

TEST_F(JoseTest, SignThenVerifyEachAlg) {
  const size_t signature_sizes[] = {256, 256, 64, 96};
  std::vector<const SigningKey*> keys = AllKeys();
  for (size_t i = 0; i < keys.size(); ++i) {
    const SigningKey& key = *keys[i];
    SCOPED_TRACE(std::string(AlgName(key.alg())));
    auto token = SignJwt(key, Claims());
    ASSERT_TRUE(token) << token.error().message();
    auto jws = ParseJws(*token);
    ASSERT_TRUE(jws) << jws.error().message();
    EXPECT_EQ(jws->alg, key.alg());
    EXPECT_EQ(jws->kid, key.kid());
    EXPECT_EQ(jws->header.GetString("alg"), AlgName(key.alg()));
    EXPECT_EQ(jws->header.GetString("typ"), "JWT");
    EXPECT_EQ(jws->header.GetString("kid"), key.kid());
    EXPECT_EQ(jws->claims, Claims());
    EXPECT_EQ(jws->signature.size(), signature_sizes[i]);
    Status verified = SetOf(key).Verify(*jws);
    EXPECT_TRUE(verified) << verified.error().message();
  }
}

TEST_F(JoseTest, KeyAccessorsAndPublicJwk) {
  EXPECT_EQ(rs256_->alg(), Alg::kRS256);
  EXPECT_EQ(rs384_->alg(), Alg::kRS384);
  EXPECT_EQ(es256_->alg(), Alg::kES256);
  EXPECT_EQ(es384_->alg(), Alg::kES384);
  json::Value rsa = rs384_->PublicJwk();
  EXPECT_EQ(rsa.GetString("kty"), "RSA");
  EXPECT_EQ(rsa.GetString("kid"), "rsa-384");
  EXPECT_EQ(rsa.GetString("use"), "sig");
  EXPECT_EQ(rsa.GetString("alg"), "RS384");
  EXPECT_EQ(rsa.GetString("e"), "AQAB");
  EXPECT_EQ(Base64UrlDecode(rsa.GetString("n"))->size(), 256u);
  json::Value ec = es384_->PublicJwk();
  EXPECT_EQ(ec.GetString("kty"), "EC");
  EXPECT_EQ(ec.GetString("crv"), "P-384");
  EXPECT_EQ(ec.GetString("alg"), "ES384");
  EXPECT_EQ(Base64UrlDecode(ec.GetString("x"))->size(), 48u);
  EXPECT_EQ(Base64UrlDecode(ec.GetString("y"))->size(), 48u);
  EXPECT_EQ(es256_->PublicJwk().GetString("crv"), "P-256");
  for (const SigningKey* key : AllKeys()) {
    json::Value pub = key->PublicJwk();
    for (const char* secret : {"d", "p", "q", "dp", "dq", "qi"}) {
      EXPECT_EQ(pub.Find(secret), nullptr) << secret;
    }
  }
}

TEST_F(JoseTest, PrivateJwkRoundTripSignsForTheOriginalPublicKey) {
  for (const SigningKey* original : AllKeys()) {
    SCOPED_TRACE(std::string(AlgName(original->alg())));
    std::string stored = original->PrivateJwk();
    json::Value private_jwk = ParseJson(stored);
    EXPECT_NE(private_jwk.Find("d"), nullptr);
    if (original->alg() == Alg::kRS256 || original->alg() == Alg::kRS384) {
      for (const char* member : {"n", "e", "p", "q", "dp", "dq", "qi"}) {
        EXPECT_NE(private_jwk.Find(member), nullptr) << member;
      }
    }
    auto loaded = SigningKey::FromPrivateJwk(stored);
    ASSERT_TRUE(loaded) << loaded.error().message();
    EXPECT_EQ(loaded->kid(), original->kid());
    EXPECT_EQ(loaded->alg(), original->alg());
    EXPECT_EQ(loaded->PublicJwk(), original->PublicJwk());
    EXPECT_EQ(loaded->PrivateJwk(), stored);
    auto token = SignJwt(*loaded, Claims());
    ASSERT_TRUE(token);
    auto jws = ParseJws(*token);
    ASSERT_TRUE(jws);
    EXPECT_TRUE(SetOf(*original).Verify(*jws));
  }
}

TEST_F(JoseTest, KeySetRoundTripsThroughJwks) {
  KeySet set;
  for (const SigningKey* key : AllKeys()) ASSERT_TRUE(set.Add(key->PublicJwk()));
  EXPECT_EQ(set.size(), 4u);
  auto copy = KeySet::FromJwks(set.ToJwks());
  ASSERT_TRUE(copy) << copy.error().message();
  EXPECT_EQ(copy->size(), 4u);
  EXPECT_EQ(copy->ToJwks(), set.ToJwks());
  for (const SigningKey* key : AllKeys()) {
    auto jws = ParseJws(*SignJwt(*key, Claims()));
    ASSERT_TRUE(jws);
    EXPECT_TRUE(copy->Verify(*jws)) << key->kid();
  }
}

TEST_F(JoseTest, KeySetCopiesOutliveTheOriginal) {
  auto jws = ParseJws(*SignJwt(*es256_, Claims()));
  ASSERT_TRUE(jws);
  KeySet copy;
  {
    KeySet original = SetOf(*es256_);
    copy = original;
  }
  EXPECT_TRUE(copy.Verify(*jws));
  KeySet moved = std::move(copy);
  EXPECT_TRUE(moved.Verify(*jws));
}

TEST_F(JoseTest, TamperedPayloadFails) {
  for (const SigningKey* key : AllKeys()) {
    std::string token = *SignJwt(*key, Claims());
    size_t first = token.find('.');
    size_t second = token.find('.', first + 1);
    json::Value claims = Claims();
    claims.Set("sub", "someone-else");
    std::string forged =
        token.substr(0, first + 1) + B64(json::Write(claims)) + token.substr(second);
    auto jws = ParseJws(forged);
    ASSERT_TRUE(jws);
    Status verified = SetOf(*key).Verify(*jws);
    ASSERT_FALSE(verified) << key->kid();
    EXPECT_EQ(verified.error().code(), ErrorCode::kUnauthorized);
    EXPECT_EQ(verified.error().message(),
              "signature does not verify with key '" + key->kid() + "'");
  }
}

TEST_F(JoseTest, TamperedSignatureFails) {
  for (const SigningKey* key : AllKeys()) {
    auto jws = ParseJws(*SignJwt(*key, Claims()));
    ASSERT_TRUE(jws);
    KeySet set = SetOf(*key);
    Jws flipped = *jws;
    flipped.signature[flipped.signature.size() / 2] ^= 0x01;
    EXPECT_FALSE(set.Verify(flipped)) << key->kid();
    Jws truncated = *jws;
    truncated.signature.pop_back();
    EXPECT_FALSE(set.Verify(truncated)) << key->kid();
    Jws extended = *jws;
    extended.signature += '\0';
    EXPECT_FALSE(set.Verify(extended)) << key->kid();
  }
  // The same through the compact form.
  std::string token = *SignJwt(*es384_, Claims());
  token[token.size() - 10] = token[token.size() - 10] == 'A' ? 'B' : 'A';
  auto jws = ParseJws(token);
  ASSERT_TRUE(jws);
  EXPECT_FALSE(SetOf(*es384_).Verify(*jws));
}

TEST_F(JoseTest, WrongKidOrWrongKeyFails) {
  auto jws = ParseJws(*SignJwt(*es256_, Claims()));
  ASSERT_TRUE(jws);
  KeySet others;
  ASSERT_TRUE(others.Add(rs256_->PublicJwk()));
  ASSERT_TRUE(others.Add(es384_->PublicJwk()));
  Status verified = others.Verify(*jws);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(verified.error().message(), "no key with kid 'ec-256'");

  // A different P-256 key registered under the same kid.
  auto impostor = SigningKey::GenerateEc("ec-256", Alg::kES256);
  ASSERT_TRUE(impostor);
  verified = SetOf(*impostor).Verify(*jws);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().message(), "signature does not verify with key 'ec-256'");
}

TEST_F(JoseTest, WithoutKidEveryFittingKeyIsTried) {
  KeySet set;
  for (const SigningKey* key : AllKeys()) ASSERT_TRUE(set.Add(key->PublicJwk()));
  for (const SigningKey* key : AllKeys()) {
    auto jws = ParseJws(*SignJwt(*key, Claims()));
    ASSERT_TRUE(jws);
    jws->kid.clear();
    EXPECT_TRUE(set.Verify(*jws)) << key->kid();
  }
  auto jws = ParseJws(*SignJwt(*es384_, Claims()));
  ASSERT_TRUE(jws);
  jws->kid.clear();
  Status verified = SetOf(*es256_).Verify(*jws);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().message(), "no key can verify ES384");
  EXPECT_FALSE(KeySet().Verify(*jws));
}

TEST_F(JoseTest, KeyTypeMustFitTheAlg) {
  // An RSA key named in an ES384 header.
  std::string token =
      Compact(R"({"alg":"ES384","kid":"rsa-256"})", R"({"sub":"x"})", std::string(96, '\x01'));
  auto jws = ParseJws(token);
  ASSERT_TRUE(jws);
  Status verified = SetOf(*rs256_).Verify(*jws);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(verified.error().message(), "key 'rsa-256' cannot verify ES384");

  // A P-256 key named in an ES384 header, and a P-384 key in an ES256 one.
  jws->kid = "ec-256";
  EXPECT_FALSE(SetOf(*es256_).Verify(*jws));
  auto es256_token = ParseJws(*SignJwt(*es256_, Claims()));
  ASSERT_TRUE(es256_token);
  es256_token->kid = "ec-384";
  verified = SetOf(*es384_).Verify(*es256_token);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().message(), "key 'ec-384' cannot verify ES256");

  // A JWK whose alg is RS256 does not verify RS384, even with the right RSA key.
  json::Value pinned = rs384_->PublicJwk();
  pinned.Set("alg", "RS256");
  KeySet set;
  ASSERT_TRUE(set.Add(pinned));
  auto rs384_token = ParseJws(*SignJwt(*rs384_, Claims()));
  ASSERT_TRUE(rs384_token);
  verified = set.Verify(*rs384_token);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().message(), "key 'rsa-384' cannot verify RS384");

  // A JWK without alg accepts either RSA alg.
  json::Value unpinned = rs384_->PublicJwk();
  unpinned.Erase("alg");
  KeySet loose;
  ASSERT_TRUE(loose.Add(unpinned));
  EXPECT_TRUE(loose.Verify(*rs384_token));
}

TEST_F(JoseTest, HandMadeJwsCannotSwitchTheAlg) {
  auto jws = ParseJws(*SignJwt(*rs256_, Claims()));
  ASSERT_TRUE(jws);
  jws->alg = Alg::kRS384;  // the signing input still says RS256
  Status verified = SetOf(*rs256_).Verify(*jws);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().code(), ErrorCode::kUnauthorized);
}

TEST(ParseJwsTest, RefusesNoneAndHmac) {
  for (std::string_view header :
       {R"({"alg":"none"})", R"({"alg":"HS256"})", R"({"alg":"HS384"})", R"({"alg":"HS512"})",
        R"({"alg":"RS512"})", R"({"alg":"PS256"})", R"({"alg":"NONE"})", R"({"alg":"rs256"})"}) {
    auto jws = ParseJws(Compact(header, R"({"sub":"x"})", "signature"));
    ASSERT_FALSE(jws) << header;
    EXPECT_EQ(jws.error().code(), ErrorCode::kUnauthorized);
  }
  auto none = ParseJws(Compact(R"({"alg":"none"})", R"({"sub":"x"})", "x"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message(),
            "malformed JWT: alg 'none' is not accepted (allowed: RS256, RS384, ES256, ES384)");
  // The classic unsigned token: empty signature part.
  EXPECT_FALSE(ParseJws(B64(R"({"alg":"none"})") + "." + B64(R"({"sub":"x"})") + "."));
  EXPECT_FALSE(ParseJws(B64(R"({"alg":"RS256"})") + "." + B64(R"({"sub":"x"})") + "."));
}

TEST(ParseJwsTest, RefusesMalformedCompactStrings) {
  std::string header = B64(R"({"alg":"RS256","kid":"k"})");
  std::string payload = B64(R"({"sub":"x"})");
  std::string sig = B64("sig");
  const std::string bad[] = {
      "",
      header,
      header + "." + payload,                             // two parts
      header + "." + payload + "." + sig + "." + sig,     // four parts
      header + "." + payload + "." + sig + ".",           // four parts, last empty
      "e30!." + payload + "." + sig,                      // not base64url
      header + "." + payload + "=." + sig,                // padding
      header + "." + payload + "." + sig + "=",           // padding
      header + "." + "eyJzdWIiOiJ4In0" + "x." + sig,      // length 4n+1
      header + "." + payload + "." + "a+b/",              // base64, not base64url
      header + "." + B64("[1,2]") + "." + sig,            // payload an array
      header + "." + B64("\"claims\"") + "." + sig,       // payload a string
      header + "." + B64("not json") + "." + sig,         // payload not JSON
      header + "." + "." + sig,                           // payload empty
      "." + payload + "." + sig,                          // header empty
      B64("[]") + "." + payload + "." + sig,              // header an array
      B64(R"({"kid":"k"})") + "." + payload + "." + sig,  // no alg
      B64(R"({"alg":256})") + "." + payload + "." + sig,  // alg not a string
      B64(R"({"alg":"RS256","kid":7})") + "." + payload + "." + sig,
      B64(R"({"alg":"RS256","crit":["exp"],"exp":1})") + "." + payload + "." + sig,
      B64(R"({"alg":"RS256","b64":false,"crit":["b64"]})") + "." + payload + "." + sig,
      B64(R"({"alg":"RS256","alg":"RS256"})") + "." + payload + "." + sig,  // duplicate member
  };
  for (const std::string& compact : bad) {
    auto jws = ParseJws(compact);
    EXPECT_FALSE(jws) << "accepted: " << compact;
    if (!jws) {
      EXPECT_EQ(jws.error().code(), ErrorCode::kUnauthorized) << compact;
    }
  }
  auto ok = ParseJws(header + "." + payload + "." + sig);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->kid, "k");
  EXPECT_EQ(ok->signing_input, header + "." + payload);
  EXPECT_EQ(ok->signature, "sig");
  auto no_kid = ParseJws(B64(R"({"alg":"ES256"})") + "." + payload + "." + sig);
  ASSERT_TRUE(no_kid);
  EXPECT_EQ(no_kid->kid, "");
  EXPECT_EQ(no_kid->alg, Alg::kES256);
}

TEST(InteropTest, VerifiesRs384FromOpenssl) {
  KeySet set;
  ASSERT_TRUE(set.Add(ParseJson(kInteropRsaJwk)));
  auto jws = ParseJws(kInteropRs384Jwt);
  ASSERT_TRUE(jws) << jws.error().message();
  EXPECT_EQ(jws->alg, Alg::kRS384);
  EXPECT_EQ(jws->kid, "interop-rsa");
  EXPECT_EQ(jws->claims.GetString("aud"), "https://fhirstone.example/token");
  Status verified = set.Verify(*jws);
  EXPECT_TRUE(verified) << verified.error().message();
  jws->signature[0] ^= 0x80;
  EXPECT_FALSE(set.Verify(*jws));
}

TEST(InteropTest, VerifiesEs256FromOpenssl) {
  KeySet set;
  ASSERT_TRUE(set.Add(ParseJson(kInteropEc256Jwk)));
  auto jws = ParseJws(kInteropEs256Jwt);
  ASSERT_TRUE(jws);
  EXPECT_EQ(jws->signature.size(), 64u);
  Status verified = set.Verify(*jws);
  EXPECT_TRUE(verified) << verified.error().message();
}

TEST(InteropTest, AcceptsSmartStyleJwksAndVerifiesEs384FromOpenssl) {
  auto set = KeySet::FromJwks(ParseJson(kInteropEcJwks));
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set->size(), 1u);  // the key_ops ["sign"] entry is skipped
  json::Value jwks = set->ToJwks();
  ASSERT_EQ(jwks.Find("keys")->as_array().size(), 1u);
  const json::Value& only = jwks.Find("keys")->as_array()[0];
  EXPECT_EQ(only.Find("d"), nullptr);
  EXPECT_EQ(only.GetString("kid"), "interop-ec384");
  auto jws = ParseJws(kInteropEs384Jwt);
  ASSERT_TRUE(jws);
  EXPECT_EQ(jws->signature.size(), 96u);
  Status verified = set->Verify(*jws);
  EXPECT_TRUE(verified) << verified.error().message();
}

TEST(InteropTest, LoadsAnOpensslPrivateJwkAndSignsForItsPublicKey) {
  json::Value jwks = ParseJson(kInteropEcJwks);
  std::string private_jwk = json::Write(jwks.Find("keys")->as_array()[0]);
  auto key = SigningKey::FromPrivateJwk(private_jwk);
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(key->alg(), Alg::kES384);
  EXPECT_EQ(key->kid(), "interop-ec384");
  auto set = KeySet::FromJwks(jwks);
  ASSERT_TRUE(set);
  auto jws = ParseJws(*SignJwt(*key, Claims()));
  ASSERT_TRUE(jws);
  EXPECT_TRUE(set->Verify(*jws));
}

TEST_F(JoseTest, JwksSkipsKeysThatCannotVerify) {
  json::Value enc = rs256_->PublicJwk();
  enc.Set("use", "enc");
  enc.Set("kid", "enc-key");
  json::Value wrap_only = es384_->PublicJwk();
  wrap_only.Set("key_ops", json::Value(json::Array{"wrapKey"}));
  wrap_only.Set("kid", "wrap-key");
  json::Value okp = ParseJson(
      R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})");
  json::Value oct =
      ParseJson(R"({"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"})");
  json::Value p521 = ParseJson(R"({"kty":"EC","crv":"P-521","x":"AA","y":"AA"})");
  json::Value rs512 = rs256_->PublicJwk();
  rs512.Set("alg", "RS512");
  rs512.Set("kid", "rs512-key");
  json::Value small_rsa = json::Value(json::Object{
      {"kty", "RSA"}, {"kid", "rsa-1024"}, {"n", B64(std::string(128, '\xc5'))}, {"e", "AQAB"}});
  json::Value good = es256_->PublicJwk();

  json::Value jwks(json::Object{
      {"keys", json::Value(json::Array{enc, wrap_only, okp, oct, p521, rs512, small_rsa, good})}});
  auto set = KeySet::FromJwks(jwks);
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set->size(), 1u);
  EXPECT_EQ(set->ToJwks().Find("keys")->as_array()[0], good);
  auto jws = ParseJws(*SignJwt(*rs256_, Claims()));
  ASSERT_TRUE(jws);
  jws->kid = "enc-key";
  EXPECT_EQ(set->Verify(*jws).error().message(), "no key with kid 'enc-key'");

  // Nothing usable left: an error that lists why each key was skipped.
  json::Value only_enc(json::Object{{"keys", json::Value(json::Array{enc})}});
  auto none = KeySet::FromJwks(only_enc);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kInvalid);
  EXPECT_NE(none.error().message().find("keys[0]: the key's use is 'enc', not 'sig'"),
            std::string::npos)
      << none.error().message();

  // Add says why, instead of skipping.
  KeySet direct;
  for (const json::Value& unusable : {enc, wrap_only, okp, oct, p521, rs512, small_rsa}) {
    Status added = direct.Add(unusable);
    EXPECT_FALSE(added) << json::Write(unusable);
  }
  EXPECT_EQ(direct.size(), 0u);
}

TEST_F(JoseTest, JwksKeepsVerifyKeysWithExtraMembers) {
  json::Value key = es384_->PublicJwk();
  key.Set("key_ops", json::Value(json::Array{"verify", "sign"}));
  key.Set("ext", true);
  key.Set("x5t#S256", "ignored");
  json::Value jwks(json::Object{{"keys", json::Value(json::Array{key})}});
  auto set = KeySet::FromJwks(jwks);
  ASSERT_TRUE(set) << set.error().message();
  auto jws = ParseJws(*SignJwt(*es384_, Claims()));
  ASSERT_TRUE(jws);
  EXPECT_TRUE(set->Verify(*jws));
}

TEST_F(JoseTest, JwksDropsPrivateMembers) {
  json::Value private_jwk = ParseJson(es256_->PrivateJwk());
  KeySet set;
  ASSERT_TRUE(set.Add(private_jwk));
  json::Value jwks = set.ToJwks();
  const json::Value& only = jwks.Find("keys")->as_array()[0];
  EXPECT_EQ(only.Find("d"), nullptr);
  EXPECT_EQ(only, es256_->PublicJwk());
}

TEST_F(JoseTest, MalformedJwksIsAnError) {
  json::Value no_n = rs256_->PublicJwk();
  no_n.Erase("n");
  json::Value bad_x = es256_->PublicJwk();
  bad_x.Set("x", "not base64url!");
  json::Value off_curve = es256_->PublicJwk();
  std::string y(off_curve.GetString("y"));
  y[0] = y[0] == 'A' ? 'B' : 'A';
  off_curve.Set("y", y);
  json::Value long_x = es256_->PublicJwk();
  long_x.Set("x", B64(std::string(33, '\x01')));
  json::Value wrong_alg = es256_->PublicJwk();
  wrong_alg.Set("alg", "ES384");
  json::Value rsa_es = rs256_->PublicJwk();
  rsa_es.Set("alg", "ES256");
  json::Value ops_not_array = es256_->PublicJwk();
  ops_not_array.Set("key_ops", "verify");
  json::Value kid_number = es256_->PublicJwk();
  kid_number.Set("kid", json::Value::Number(7));
  json::Value no_kty = es256_->PublicJwk();
  no_kty.Erase("kty");
  for (const json::Value& key : {no_n, bad_x, off_curve, long_x, wrong_alg, rsa_es, ops_not_array,
                                 kid_number, no_kty, json::Value("a string")}) {
    json::Value jwks(json::Object{{"keys", json::Value(json::Array{key, es384_->PublicJwk()})}});
    auto set = KeySet::FromJwks(jwks);
    EXPECT_FALSE(set) << json::Write(key);
    if (!set) {
      EXPECT_EQ(set.error().code(), ErrorCode::kInvalid);
      EXPECT_EQ(set.error().message().rfind("keys[0]: ", 0), 0u) << set.error().message();
    }
  }
  for (std::string_view text : {"[]", "{}", R"({"keys":{}})", R"({"keys":[]})", "null"}) {
    EXPECT_FALSE(KeySet::FromJwks(ParseJson(text))) << text;
  }
  json::Array many;
  for (size_t i = 0; i <= KeySet::kMaxKeys; ++i) many.push_back(es256_->PublicJwk());
  EXPECT_FALSE(KeySet::FromJwks(json::Value(json::Object{{"keys", json::Value(many)}})));
}

TEST_F(JoseTest, FromPrivateJwkRefusesBadKeys) {
  EXPECT_FALSE(SigningKey::FromPrivateJwk("not json"));
  EXPECT_FALSE(SigningKey::FromPrivateJwk("[]"));
  // Public only.
  EXPECT_FALSE(SigningKey::FromPrivateJwk(json::Write(es256_->PublicJwk())));
  EXPECT_FALSE(SigningKey::FromPrivateJwk(json::Write(rs256_->PublicJwk())));
  // No kid.
  json::Value no_kid = ParseJson(es256_->PrivateJwk());
  no_kid.Erase("kid");
  EXPECT_FALSE(SigningKey::FromPrivateJwk(json::Write(no_kid)));
  // An alg that does not fit the curve.
  json::Value wrong_alg = ParseJson(es256_->PrivateJwk());
  wrong_alg.Set("alg", "ES384");
  EXPECT_FALSE(SigningKey::FromPrivateJwk(json::Write(wrong_alg)));
  // A private scalar from another key.
  auto other = SigningKey::GenerateEc("other", Alg::kES256);
  ASSERT_TRUE(other);
  json::Value mixed = ParseJson(es256_->PrivateJwk());
  mixed.Set("d", ParseJson(other->PrivateJwk()).GetString("d"));
  auto loaded = SigningKey::FromPrivateJwk(json::Write(mixed));
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), ErrorCode::kInvalid);
  // Part of the RSA CRT members only.
  json::Value partial = ParseJson(rs256_->PrivateJwk());
  partial.Erase("qi");
  EXPECT_FALSE(SigningKey::FromPrivateJwk(json::Write(partial)));
  // Without any CRT member, n, e and d suffice.
  json::Value minimal = ParseJson(rs256_->PrivateJwk());
  for (const char* member : {"p", "q", "dp", "dq", "qi"}) minimal.Erase(member);
  auto from_minimal = SigningKey::FromPrivateJwk(json::Write(minimal));
  ASSERT_TRUE(from_minimal) << from_minimal.error().message();
  auto jws = ParseJws(*SignJwt(*from_minimal, Claims()));
  ASSERT_TRUE(jws);
  EXPECT_TRUE(SetOf(*rs256_).Verify(*jws));
  // Without alg: RS256 for RSA, by curve for EC.
  json::Value no_alg = ParseJson(es384_->PrivateJwk());
  no_alg.Erase("alg");
  auto by_curve = SigningKey::FromPrivateJwk(json::Write(no_alg));
  ASSERT_TRUE(by_curve);
  EXPECT_EQ(by_curve->alg(), Alg::kES384);
}

TEST(SigningKeyTest, GenerateRefusesBadArguments) {
  EXPECT_FALSE(SigningKey::GenerateRsa("k", 1024));
  EXPECT_FALSE(SigningKey::GenerateRsa("k", 2047));
  EXPECT_FALSE(SigningKey::GenerateRsa("k", 2048, Alg::kES256));
  EXPECT_FALSE(SigningKey::GenerateRsa("", 2048));
  EXPECT_FALSE(SigningKey::GenerateEc("k", Alg::kRS256));
  EXPECT_FALSE(SigningKey::GenerateEc("", Alg::kES256));
}

TEST_F(JoseTest, SignJwtNeedsAnObject) {
  auto token = SignJwt(*es256_, json::Value("just a string"));
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().code(), ErrorCode::kInvalid);
}

TEST_F(JoseTest, ConcurrentSigningAndVerifyingWithOneKey) {
  for (const SigningKey* key : {rs256_, es384_}) {
    const KeySet set = SetOf(*key);
    std::vector<int> verified(4, 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < verified.size(); ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          json::Value claims = Claims();
          claims.Set("jti", std::to_string(t) + "-" + std::to_string(i));
          auto token = SignJwt(*key, claims);
          if (!token) continue;
          auto jws = ParseJws(*token);
          if (jws && set.Verify(*jws) && jws->claims == claims) ++verified[t];
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (int count : verified) EXPECT_EQ(count, 20) << key->kid();
  }
}

}  // namespace
}  // namespace fhirstone::jose
