// JWK: https://www.rfc-editor.org/rfc/rfc7517, JWS: https://www.rfc-editor.org/rfc/rfc7515,
// JWA: https://www.rfc-editor.org/rfc/rfc7518 (RS256/RS384 section 3.3, ES256/ES384 section 3.4,
// key parameters section 6), JWT: https://www.rfc-editor.org/rfc/rfc7519.
//
// libcjose imports, generates and exports the keys and signs and verifies. It is given only what we
// have checked ourselves first (key type against alg, curve, signature length, the header alg), so
// that the weaknesses of older cjose releases (HMAC with a public key as secret, unchecked ECDSA
// signature lengths) are never reached. OpenSSL provides base64url and SHA-256.
#include "auth/jose/jose.h"

#include <cjose/cjose.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <utility>

namespace fhirstone::jose {
namespace {

constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;

struct JwkRelease {
  void operator()(cjose_jwk_t* jwk) const { cjose_jwk_release(jwk); }
};
struct JwsRelease {
  void operator()(cjose_jws_t* jws) const { cjose_jws_release(jws); }
};
struct HeaderRelease {
  void operator()(cjose_header_t* header) const { cjose_header_release(header); }
};
struct CjoseFree {
  void operator()(char* s) const { cjose_get_dealloc()(s); }
};
using JwkPtr = std::unique_ptr<cjose_jwk_t, JwkRelease>;
using JwsPtr = std::unique_ptr<cjose_jws_t, JwsRelease>;
using HeaderPtr = std::unique_ptr<cjose_header_t, HeaderRelease>;
using CjoseString = std::unique_ptr<char, CjoseFree>;

cjose_err NoError() { return cjose_err{CJOSE_ERR_NONE, nullptr, nullptr, nullptr, 0}; }

std::string Describe(const cjose_err& err) {
  return err.message != nullptr ? std::string(err.message) : std::string("unknown cjose error");
}

enum class Curve { kP256, kP384 };

std::optional<Curve> ParseCurve(std::string_view name) {
  if (name == "P-256") return Curve::kP256;
  if (name == "P-384") return Curve::kP384;
  return std::nullopt;
}

std::string_view CurveName(Curve crv) { return crv == Curve::kP256 ? "P-256" : "P-384"; }

// The octets of one coordinate (and of the private scalar, and of r and s in a signature).
size_t CoordinateSize(Curve crv) { return crv == Curve::kP256 ? 32 : 48; }

bool IsRsaAlg(Alg alg) { return alg == Alg::kRS256 || alg == Alg::kRS384; }

Curve CurveOf(Alg alg) { return alg == Alg::kES256 ? Curve::kP256 : Curve::kP384; }

Alg EcAlgOf(Curve crv) { return crv == Curve::kP256 ? Alg::kES256 : Alg::kES384; }

std::string Quote(std::string_view s) {
  std::string out = "'";
  out += s;
  out += "'";
  return out;
}

// Members of a JWK that carry private or secret key material (RFC 7518 section 6).
bool IsPrivateMember(std::string_view name) {
  return name == "d" || name == "p" || name == "q" || name == "dp" || name == "dq" ||
         name == "qi" || name == "oth" || name == "k";
}

json::Value WithoutPrivateMembers(const json::Value& jwk) {
  json::Object out;
  for (const auto& [name, value] : jwk.as_object()) {
    if (!IsPrivateMember(name)) out.emplace_back(name, value);
  }
  return json::Value(std::move(out));
}

// The base64url member `name` of `jwk`, decoded; Error::Invalid when absent or not base64url.
Result<std::string> DecodeMember(const json::Value& jwk, std::string_view name) {
  const json::Value* value = jwk.Find(name);
  if (value == nullptr) return Error::Invalid("'" + std::string(name) + "' is missing");
  if (!value->is_string()) return Error::Invalid("'" + std::string(name) + "' must be a string");
  std::optional<std::string> bytes = Base64UrlDecode(value->as_string());
  if (!bytes || bytes->empty()) {
    return Error::Invalid("'" + std::string(name) + "' is not base64url");
  }
  return std::move(*bytes);
}

std::string StripLeadingZeros(std::string bytes) {
  size_t zeros = 0;
  while (zeros + 1 < bytes.size() && bytes[zeros] == '\0') ++zeros;
  bytes.erase(0, zeros);
  return bytes;
}

int BitLength(const std::string& unsigned_big_endian) {
  std::string n = StripLeadingZeros(unsigned_big_endian);
  int bits = static_cast<int>(n.size()) * 8;
  for (unsigned char top = static_cast<unsigned char>(n[0]); bits > 0 && (top & 0x80) == 0;
       top <<= 1) {
    --bits;
  }
  return bits;
}

// A JWK member that, when present, must be a string; nullopt when absent.
Result<std::optional<std::string>> OptionalString(const json::Value& jwk, std::string_view name) {
  const json::Value* value = jwk.Find(name);
  if (value == nullptr) return std::optional<std::string>();
  if (!value->is_string()) return Error::Invalid("'" + std::string(name) + "' must be a string");
  return std::optional<std::string>(value->as_string());
}

// The key material of an RSA or EC key, decoded and normalised (RSA: no leading zeros; EC:
// coordinates and scalar at full size), ready to be handed to cjose.
struct KeyMaterial {
  bool rsa = true;
  Curve crv = Curve::kP256;
  std::string n, e;  // RSA public
  std::string x, y;  // EC public
  // Private members in JWK order (RSA: d p q dp dq qi; EC: d); empty for a public key.
  std::vector<std::pair<std::string, std::string>> private_members;

  // The JWK members of the key material only (kty first), for cjose or for export.
  json::Object ToJwkMembers(bool with_private) const {
    json::Object out;
    out.emplace_back("kty", rsa ? "RSA" : "EC");
    if (rsa) {
      out.emplace_back("n", Base64UrlEncode(n));
      out.emplace_back("e", Base64UrlEncode(e));
    } else {
      out.emplace_back("crv", CurveName(crv));
      out.emplace_back("x", Base64UrlEncode(x));
      out.emplace_back("y", Base64UrlEncode(y));
    }
    if (with_private) {
      for (const auto& [name, bytes] : private_members) {
        out.emplace_back(name, Base64UrlEncode(bytes));
      }
    }
    return out;
  }

  // The key handed to cjose: built from our own checked JSON, never from the caller's text.
  Result<JwkPtr> Import(bool with_private) const {
    std::string text = json::Write(json::Value(ToJwkMembers(with_private)));
    cjose_err err = NoError();
    JwkPtr jwk(cjose_jwk_import(text.data(), text.size(), &err));
    if (jwk == nullptr) return Error::Invalid("the key is not valid: " + Describe(err));
    return jwk;
  }
};

// Why a key of a known type is unusable for our algorithms (an empty string when it is usable).
struct Checked {
  KeyMaterial material;
  std::string unusable;
};

// Reads the key material of `jwk` (kty already known to be "RSA" or "EC"). Error::Invalid when
// malformed; `unusable` set when well-formed but unsupported (a curve other than P-256/P-384, RSA
// under 2048 or over 8192 bits).
Result<Checked> ReadKeyMaterial(const json::Value& jwk, bool with_private) {
  Checked out;
  KeyMaterial& m = out.material;
  m.rsa = jwk.GetString("kty") == "RSA";
  if (m.rsa) {
    auto n = DecodeMember(jwk, "n");
    if (!n) return std::move(n).error();
    auto e = DecodeMember(jwk, "e");
    if (!e) return std::move(e).error();
    m.n = StripLeadingZeros(std::move(*n));
    m.e = StripLeadingZeros(std::move(*e));
    unsigned char e_last = static_cast<unsigned char>(m.e.back());
    if (m.e.size() > 8 || (e_last & 1) == 0 || (m.e.size() == 1 && e_last < 3)) {
      return Error::Invalid("'e' is not a valid RSA public exponent");
    }
    int bits = BitLength(m.n);
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      out.unusable = "an RSA key of " + std::to_string(bits) +
                     " bits (allowed: " + std::to_string(kMinRsaBits) + " to " +
                     std::to_string(kMaxRsaBits) + ")";
      return out;
    }
    if (with_private) {
      auto d = DecodeMember(jwk, "d");
      if (!d) return std::move(d).error();
      m.private_members.emplace_back("d", std::move(*d));
      static constexpr std::array<std::string_view, 5> kCrt = {"p", "q", "dp", "dq", "qi"};
      size_t present = 0;
      for (std::string_view name : kCrt) present += jwk.Find(name) != nullptr ? 1 : 0;
      if (jwk.Find("oth") != nullptr) {
        return Error::Invalid("multi-prime RSA keys ('oth') are not supported");
      }
      if (present != 0 && present != kCrt.size()) {
        return Error::Invalid("'p', 'q', 'dp', 'dq' and 'qi' must be all present or all absent");
      }
      for (size_t i = 0; present != 0 && i < kCrt.size(); ++i) {
        auto value = DecodeMember(jwk, kCrt[i]);
        if (!value) return std::move(value).error();
        m.private_members.emplace_back(std::string(kCrt[i]), std::move(*value));
      }
    }
    return out;
  }

  auto crv_name = OptionalString(jwk, "crv");
  if (!crv_name) return std::move(crv_name).error();
  if (!*crv_name) return Error::Invalid("'crv' is missing");
  std::optional<Curve> crv = ParseCurve(**crv_name);
  if (!crv) {
    out.unusable = "an EC key on curve " + Quote(**crv_name) + " (allowed: P-256, P-384)";
    return out;
  }
  m.crv = *crv;
  size_t size = CoordinateSize(m.crv);
  auto x = DecodeMember(jwk, "x");
  if (!x) return std::move(x).error();
  auto y = DecodeMember(jwk, "y");
  if (!y) return std::move(y).error();
  // RFC 7518 section 6.2.1.2 wants full-size coordinates, but some writers (older cjose among
  // them) drop leading zero octets: accept those and restore the full size.
  if (x->size() > size || y->size() > size) {
    return Error::Invalid("'x' and 'y' must be " + std::to_string(size) + " bytes on " +
                          std::string(CurveName(m.crv)));
  }
  m.x = std::string(size - x->size(), '\0') + *x;
  m.y = std::string(size - y->size(), '\0') + *y;
  if (with_private) {
    auto d = DecodeMember(jwk, "d");
    if (!d) return std::move(d).error();
    if (d->size() > size) return Error::Invalid("'d' is longer than the curve order");
    m.private_members.emplace_back("d", std::string(size - d->size(), '\0') + *d);
  }
  return out;
}

}  // namespace

namespace internal {

struct PrivateKey {
  JwkPtr jwk;
  std::string kid;
  Alg alg = Alg::kRS256;
  KeyMaterial material;  // includes the private members
  json::Value public_jwk;
};

struct PublicKey {
  JwkPtr jwk;
  json::Value public_jwk;  // as given, private members dropped
  std::string kid;         // "" when the JWK has none
  std::optional<Alg> alg;  // the JWK's "alg", when present
  bool rsa = true;
  Curve crv = Curve::kP256;
  size_t rsa_modulus_size = 0;  // octets; an RSA signature has exactly this length
};

}  // namespace internal

namespace {

json::Value MakePublicJwk(const internal::PrivateKey& key) {
  json::Object out;
  out.emplace_back("kty", key.material.rsa ? "RSA" : "EC");
  out.emplace_back("kid", key.kid);
  out.emplace_back("use", "sig");
  out.emplace_back("alg", AlgName(key.alg));
  json::Object members = key.material.ToJwkMembers(/*with_private=*/false);
  for (auto& member : members) {
    if (member.first != "kty") out.push_back(std::move(member));
  }
  return json::Value(std::move(out));
}

// Reads the key material of a key cjose generated, through its private JWK export.
Result<KeyMaterial> ExportMaterial(const cjose_jwk_t* jwk) {
  cjose_err err = NoError();
  CjoseString text(cjose_jwk_to_json(jwk, /*priv=*/true, &err));
  if (text == nullptr) return Error::Internal("cannot export a generated key: " + Describe(err));
  auto parsed = json::Parse(text.get());
  if (!parsed || !parsed->is_object()) return Error::Internal("cjose wrote an unreadable JWK");
  auto checked = ReadKeyMaterial(*parsed, /*with_private=*/true);
  if (!checked) return Error::Internal("cjose wrote a bad JWK: " + checked.error().message());
  if (!checked->unusable.empty()) return Error::Internal("cjose made " + checked->unusable);
  return std::move(checked->material);
}

Status CheckKid(const std::string& kid) {
  if (kid.empty()) return Error::Invalid("a signing key needs a non-empty kid");
  return Ok();
}

// What a public JWK is: a key to use, a key to skip (with the reason), or an error.
struct Classified {
  std::shared_ptr<const internal::PublicKey> key;  // null when skipped
  std::string skip_reason;
};

Result<Classified> ClassifyPublicKey(const json::Value& jwk) {
  Classified out;
  if (!jwk.is_object()) return Error::Invalid("a JWK must be a JSON object");
  auto kty = OptionalString(jwk, "kty");
  if (!kty) return std::move(kty).error();
  if (!*kty) return Error::Invalid("'kty' is missing");
  auto kid = OptionalString(jwk, "kid");
  if (!kid) return std::move(kid).error();
  auto use = OptionalString(jwk, "use");
  if (!use) return std::move(use).error();
  auto alg_name = OptionalString(jwk, "alg");
  if (!alg_name) return std::move(alg_name).error();
  bool can_verify = true;
  if (const json::Value* ops = jwk.Find("key_ops")) {
    if (!ops->is_array()) return Error::Invalid("'key_ops' must be an array of strings");
    can_verify = false;
    for (const json::Value& op : ops->as_array()) {
      if (!op.is_string()) return Error::Invalid("'key_ops' must be an array of strings");
      if (op.as_string() == "verify") can_verify = true;
    }
  }

  if (**kty != "RSA" && **kty != "EC") {
    out.skip_reason = "key type " + Quote(**kty) + " is not supported (allowed: RSA, EC)";
    return out;
  }
  if (*use && **use != "sig") {
    out.skip_reason = "the key's use is " + Quote(**use) + ", not 'sig'";
    return out;
  }
  if (!can_verify) {
    out.skip_reason = "the key's key_ops lack 'verify'";
    return out;
  }
  std::optional<Alg> alg;
  if (*alg_name) {
    alg = ParseAlg(**alg_name);
    if (!alg) {
      out.skip_reason = "the key's alg " + Quote(**alg_name) +
                        " is not supported (allowed: RS256, RS384, ES256, ES384)";
      return out;
    }
  }
  auto checked = ReadKeyMaterial(jwk, /*with_private=*/false);
  if (!checked) return std::move(checked).error();
  if (!checked->unusable.empty()) {
    out.skip_reason = checked->unusable + " is not supported";
    return out;
  }
  const KeyMaterial& m = checked->material;
  if (alg && (IsRsaAlg(*alg) != m.rsa || (!m.rsa && CurveOf(*alg) != m.crv))) {
    return Error::Invalid("alg " + std::string(AlgName(*alg)) + " does not fit a" +
                          (m.rsa ? "n RSA key" : " key on " + std::string(CurveName(m.crv))));
  }
  auto imported = m.Import(/*with_private=*/false);
  if (!imported) return std::move(imported).error();
  auto key = std::make_shared<internal::PublicKey>();
  key->jwk = std::move(*imported);
  key->public_jwk = WithoutPrivateMembers(jwk);
  key->kid = kid->value_or("");
  key->alg = alg;
  key->rsa = m.rsa;
  key->crv = m.crv;
  key->rsa_modulus_size = m.n.size();
  out.key = std::move(key);
  return out;
}

bool Fits(const internal::PublicKey& key, Alg alg) {
  if (key.alg && *key.alg != alg) return false;
  if (IsRsaAlg(alg)) return key.rsa;
  return !key.rsa && key.crv == CurveOf(alg);
}

size_t SignatureSize(const internal::PublicKey& key) {
  return key.rsa ? key.rsa_modulus_size : 2 * CoordinateSize(key.crv);
}

Error Malformed(std::string why) { return Error::Unauthorized("malformed JWT: " + why); }

}  // namespace

std::optional<Alg> ParseAlg(std::string_view name) {
  if (name == "RS256") return Alg::kRS256;
  if (name == "RS384") return Alg::kRS384;
  if (name == "ES256") return Alg::kES256;
  if (name == "ES384") return Alg::kES384;
  return std::nullopt;
}

std::string_view AlgName(Alg alg) {
  switch (alg) {
    case Alg::kRS256:
      return "RS256";
    case Alg::kRS384:
      return "RS384";
    case Alg::kES256:
      return "ES256";
    case Alg::kES384:
      return "ES384";
  }
  return "RS256";
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  constexpr size_t kChunk = 3 * 4096;  // whole 3-byte groups, so chunks concatenate
  std::string buffer(kChunk / 3 * 4 + 1, '\0');
  for (size_t pos = 0; pos < bytes.size(); pos += kChunk) {
    size_t len = std::min(kChunk, bytes.size() - pos);
    int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(buffer.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data() + pos),
                                  static_cast<int>(len));
    out.append(buffer.data(), static_cast<size_t>(written));
  }
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1 || text.size() > static_cast<size_t>(INT_MAX) - 4) return std::nullopt;
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return std::nullopt;  // also '=', '+', '/', white space
    }
  }
  // Unused low bits of the last character must be zero (RFC 4648 section 3.5), so that each byte
  // string has one encoding: 2 characters carry 1 byte (4 spare bits), 3 carry 2 (2 spare bits).
  size_t tail = standard.size() % 4;
  if (tail != 0) {
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t last = kAlphabet.find(standard.back());
    if ((last & (tail == 2 ? 0x0f : 0x03)) != 0) return std::nullopt;
    standard.append(4 - tail, '=');
  }
  std::string out(standard.size() / 4 * 3, '\0');
  int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(standard.data()),
                            static_cast<int>(standard.size()));
  if (len < 0 || static_cast<size_t>(len) != out.size()) return std::nullopt;
  out.resize(out.size() - (tail == 0 ? 0 : 4 - tail));
  return out;
}

std::string Sha256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
             EVP_sha256(), nullptr);
  return out;
}

// SigningKey

SigningKey::SigningKey(std::unique_ptr<internal::PrivateKey> key) : key_(std::move(key)) {}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

Result<SigningKey> SigningKey::GenerateRsa(std::string kid, int bits, Alg alg) {
  FHIRSTONE_RETURN_IF_ERROR(CheckKid(kid));
  if (bits < kMinRsaBits || bits > kMaxRsaBits || bits % 8 != 0) {
    return Error::Invalid("RSA key size must be a multiple of 8 from 2048 to 8192 bits");
  }
  if (!IsRsaAlg(alg)) return Error::Invalid("an RSA key signs with RS256 or RS384");
  static constexpr uint8_t kExponent[] = {0x01, 0x00, 0x01};
  cjose_err err = NoError();
  JwkPtr jwk(
      cjose_jwk_create_RSA_random(static_cast<size_t>(bits), kExponent, sizeof(kExponent), &err));
  if (jwk == nullptr) return Error::Internal("RSA key generation failed: " + Describe(err));
  auto material = ExportMaterial(jwk.get());
  if (!material) return std::move(material).error();
  auto key = std::make_unique<internal::PrivateKey>();
  key->jwk = std::move(jwk);
  key->kid = std::move(kid);
  key->alg = alg;
  key->material = std::move(*material);
  key->public_jwk = MakePublicJwk(*key);
  return SigningKey(std::move(key));
}

Result<SigningKey> SigningKey::GenerateEc(std::string kid, Alg alg) {
  FHIRSTONE_RETURN_IF_ERROR(CheckKid(kid));
  if (IsRsaAlg(alg)) return Error::Invalid("an EC key signs with ES256 or ES384");
  cjose_err err = NoError();
  JwkPtr jwk(cjose_jwk_create_EC_random(
      CurveOf(alg) == Curve::kP256 ? CJOSE_JWK_EC_P_256 : CJOSE_JWK_EC_P_384, &err));
  if (jwk == nullptr) return Error::Internal("EC key generation failed: " + Describe(err));
  auto material = ExportMaterial(jwk.get());
  if (!material) return std::move(material).error();
  auto key = std::make_unique<internal::PrivateKey>();
  key->jwk = std::move(jwk);
  key->kid = std::move(kid);
  key->alg = alg;
  key->material = std::move(*material);
  key->public_jwk = MakePublicJwk(*key);
  return SigningKey(std::move(key));
}

Result<SigningKey> SigningKey::FromPrivateJwk(std::string_view jwk_json) {
  auto parsed = json::Parse(jwk_json);
  if (!parsed) return Error::Invalid("private JWK: " + parsed.error().message());
  const json::Value& jwk = *parsed;
  if (!jwk.is_object()) return Error::Invalid("private JWK: not a JSON object");
  std::string_view kty = jwk.GetString("kty");
  if (kty != "RSA" && kty != "EC") {
    return Error::Invalid("private JWK: 'kty' must be RSA or EC");
  }
  auto kid = OptionalString(jwk, "kid");
  if (!kid) return Error::Invalid("private JWK: " + kid.error().message());
  if (!*kid || (*kid)->empty()) return Error::Invalid("private JWK: 'kid' is missing");
  auto checked = ReadKeyMaterial(jwk, /*with_private=*/true);
  if (!checked) return Error::Invalid("private JWK: " + checked.error().message());
  if (!checked->unusable.empty()) {
    return Error::Invalid("private JWK: " + checked->unusable + " is not supported");
  }
  KeyMaterial& m = checked->material;
  auto alg_name = OptionalString(jwk, "alg");
  if (!alg_name) return Error::Invalid("private JWK: " + alg_name.error().message());
  Alg alg = m.rsa ? Alg::kRS256 : EcAlgOf(m.crv);
  if (*alg_name) {
    std::optional<Alg> named = ParseAlg(**alg_name);
    if (!named || IsRsaAlg(*named) != m.rsa || (!m.rsa && CurveOf(*named) != m.crv)) {
      return Error::Invalid("private JWK: alg " + Quote(**alg_name) + " does not fit the key");
    }
    alg = *named;
  }
  auto imported = m.Import(/*with_private=*/true);
  if (!imported) return Error::Invalid("private JWK: " + imported.error().message());
  auto key = std::make_unique<internal::PrivateKey>();
  key->jwk = std::move(*imported);
  key->kid = std::move(**kid);
  key->alg = alg;
  key->material = std::move(m);
  key->public_jwk = MakePublicJwk(*key);
  SigningKey signing_key(std::move(key));

  // The private and public halves must belong together: sign once and verify.
  KeySet public_keys;
  FHIRSTONE_RETURN_IF_ERROR(public_keys.Add(signing_key.PublicJwk()));
  auto token = SignJwt(signing_key, json::Value(json::Object{{"self-test", true}}));
  if (!token) return Error::Invalid("private JWK: cannot sign: " + token.error().message());
  auto jws = ParseJws(*token);
  if (!jws || !public_keys.Verify(*jws)) {
    return Error::Invalid("private JWK: the private key does not match the public key");
  }
  return signing_key;
}

std::string SigningKey::PrivateJwk() const {
  json::Object out;
  out.emplace_back("kty", key_->material.rsa ? "RSA" : "EC");
  out.emplace_back("kid", key_->kid);
  out.emplace_back("use", "sig");
  out.emplace_back("alg", AlgName(key_->alg));
  json::Object members = key_->material.ToJwkMembers(/*with_private=*/true);
  for (auto& member : members) {
    if (member.first != "kty") out.push_back(std::move(member));
  }
  return json::Write(json::Value(std::move(out)));
}

json::Value SigningKey::PublicJwk() const { return key_->public_jwk; }

const std::string& SigningKey::kid() const { return key_->kid; }

Alg SigningKey::alg() const { return key_->alg; }

Result<std::string> SignJwt(const SigningKey& key, const json::Value& claims) {
  if (!claims.is_object()) return Error::Invalid("JWT claims must be a JSON object");
  cjose_err err = NoError();
  HeaderPtr header(cjose_header_new(&err));
  if (header == nullptr) return Error::Internal("JWS header: " + Describe(err));
  std::string alg(AlgName(key.key_->alg));
  if (!cjose_header_set(header.get(), CJOSE_HDR_ALG, alg.c_str(), &err) ||
      !cjose_header_set(header.get(), CJOSE_HDR_KID, key.key_->kid.c_str(), &err) ||
      !cjose_header_set(header.get(), "typ", "JWT", &err)) {
    return Error::Internal("JWS header: " + Describe(err));
  }
  std::string payload = json::Write(claims);
  JwsPtr jws(cjose_jws_sign(key.key_->jwk.get(), header.get(),
                            reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                            &err));
  if (jws == nullptr) return Error::Internal("JWS signing failed: " + Describe(err));
  const char* compact = nullptr;
  if (!cjose_jws_export(jws.get(), &compact, &err) || compact == nullptr) {
    return Error::Internal("JWS export failed: " + Describe(err));
  }
  return std::string(compact);
}

// Jws

Result<Jws> ParseJws(std::string_view compact) {
  size_t first = compact.find('.');
  size_t second = first == std::string_view::npos ? first : compact.find('.', first + 1);
  if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos) {
    return Malformed("a compact JWS has three parts separated by '.'");
  }
  std::string_view header_part = compact.substr(0, first);
  std::string_view payload_part = compact.substr(first + 1, second - first - 1);
  std::string_view signature_part = compact.substr(second + 1);

  std::optional<std::string> header_text = Base64UrlDecode(header_part);
  if (!header_text) return Malformed("the header is not base64url");
  std::optional<std::string> payload_text = Base64UrlDecode(payload_part);
  if (!payload_text) return Malformed("the payload is not base64url");
  std::optional<std::string> signature = Base64UrlDecode(signature_part);
  if (!signature) return Malformed("the signature is not base64url");
  if (signature->empty()) return Malformed("the signature is empty");

  Jws jws;
  auto header = json::Parse(*header_text);
  if (!header || !header->is_object()) return Malformed("the header is not a JSON object");
  jws.header = std::move(*header);
  const json::Value* alg = jws.header.Find("alg");
  if (alg == nullptr || !alg->is_string()) return Malformed("the header has no alg");
  std::optional<Alg> parsed_alg = ParseAlg(alg->as_string());
  if (!parsed_alg) {
    return Malformed("alg " + Quote(alg->as_string()) +
                     " is not accepted (allowed: RS256, RS384, ES256, ES384)");
  }
  jws.alg = *parsed_alg;
  if (jws.header.Find("crit") != nullptr) {
    return Malformed("the header has 'crit'; no JWS extension is supported");
  }
  if (const json::Value* kid = jws.header.Find("kid")) {
    if (!kid->is_string()) return Malformed("the header's kid is not a string");
    jws.kid = kid->as_string();
  }
  auto claims = json::Parse(*payload_text);
  if (!claims || !claims->is_object()) return Malformed("the payload is not a JSON object");
  jws.claims = std::move(*claims);
  jws.signing_input = std::string(compact.substr(0, second));
  jws.signature = std::move(*signature);
  return jws;
}

// KeySet

Result<KeySet> KeySet::FromJwks(const json::Value& jwks) {
  const json::Value* keys = jwks.is_object() ? jwks.Find("keys") : nullptr;
  if (keys == nullptr || !keys->is_array()) {
    return Error::Invalid("a JWK Set must be a JSON object with a 'keys' array");
  }
  if (keys->as_array().size() > kMaxKeys) {
    return Error::Invalid("a JWK Set may hold at most " + std::to_string(kMaxKeys) + " keys");
  }
  KeySet set;
  std::string skipped;
  for (size_t i = 0; i < keys->as_array().size(); ++i) {
    std::string where = "keys[" + std::to_string(i) + "]";
    auto classified = ClassifyPublicKey(keys->as_array()[i]);
    if (!classified) return Error::Invalid(where + ": " + classified.error().message());
    if (classified->key == nullptr) {
      skipped += skipped.empty() ? "" : "; ";
      skipped += where + ": " + classified->skip_reason;
      continue;
    }
    set.keys_.push_back(std::move(classified->key));
  }
  if (set.keys_.empty()) {
    return Error::Invalid("the JWK Set has no usable signature verification key" +
                          (skipped.empty() ? std::string() : " (" + skipped + ")"));
  }
  return set;
}

Status KeySet::Add(const json::Value& public_jwk) {
  if (keys_.size() >= kMaxKeys) {
    return Error::Invalid("a key set holds at most " + std::to_string(kMaxKeys) + " keys");
  }
  auto classified = ClassifyPublicKey(public_jwk);
  if (!classified) return std::move(classified).error();
  if (classified->key == nullptr) return Error::Invalid(classified->skip_reason);
  keys_.push_back(std::move(classified->key));
  return Ok();
}

size_t KeySet::size() const { return keys_.size(); }

Status KeySet::Verify(const Jws& jws) const {
  std::string alg(AlgName(jws.alg));
  std::vector<const internal::PublicKey*> named;
  for (const auto& key : keys_) {
    if (jws.kid.empty() || key->kid == jws.kid) named.push_back(key.get());
  }
  if (named.empty()) {
    return Error::Unauthorized(jws.kid.empty() ? "the key set is empty"
                                               : "no key with kid " + Quote(jws.kid));
  }
  std::vector<const internal::PublicKey*> fitting;
  for (const internal::PublicKey* key : named) {
    if (Fits(*key, jws.alg)) fitting.push_back(key);
  }
  if (fitting.empty()) {
    return Error::Unauthorized(jws.kid.empty() ? "no key can verify " + alg
                                               : "key " + Quote(jws.kid) + " cannot verify " + alg);
  }
  Error failure =
      Error::Unauthorized(jws.kid.empty() ? "signature does not verify"
                                          : "signature does not verify with key " + Quote(jws.kid));

  // cjose takes the compact form; the signature re-encodes to the same bytes.
  std::string compact = jws.signing_input + "." + Base64UrlEncode(jws.signature);
  cjose_err err = NoError();
  JwsPtr parsed(cjose_jws_import(compact.data(), compact.size(), &err));
  if (parsed == nullptr) return failure;
  // cjose picks the algorithm from the header it parses: it must be the one the keys were chosen
  // for (a hand-made Jws could disagree with its own signing input).
  const char* header_alg = cjose_header_get(cjose_jws_get_protected(parsed.get()), "alg", &err);
  if (header_alg == nullptr || alg != header_alg) {
    return Error::Unauthorized("the header alg does not match " + alg);
  }
  for (const internal::PublicKey* key : fitting) {
    if (jws.signature.size() != SignatureSize(*key)) continue;
    if (cjose_jws_verify(parsed.get(), key->jwk.get(), &err)) return Ok();
  }
  return failure;
}

json::Value KeySet::ToJwks() const {
  json::Array keys;
  keys.reserve(keys_.size());
  for (const auto& key : keys_) keys.push_back(key->public_jwk);
  return json::Value(json::Object{{"keys", json::Value(std::move(keys))}});
}

}  // namespace fhirstone::jose
