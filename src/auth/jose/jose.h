// JOSE for Fhirstone's authorization server: JSON Web Keys (RFC 7517), compact JSON Web Signatures
// (RFC 7515) and JSON Web Tokens (RFC 7519) with the four algorithms SMART App Launch 2.2 asks for,
// RS256, RS384, ES256 and ES384 (RFC 7518 section 3); never "none" and never HMAC.
//
//   SigningKey  a private RSA or EC key the server signs with. Move-only, owns its key material.
//               Thread-safe: any number of threads may call SignJwt and the const accessors on one
//               key at once (signing only reads the key; OpenSSL locks its own blinding state).
//   KeySet      a set of public keys (a JWKS) that verifies signatures. Copyable value type whose
//               copies share the immutable keys; thread-compatible: const methods (Verify, ToJwks,
//               size) may run concurrently, Add needs exclusive access.
//   Jws         a compact JWS split and decoded, NOT verified. Plain data.
//
// ParseJws checks the form and the header; KeySet::Verify checks the signature. Claims (iss, sub,
// aud, exp, jti...) are the caller's business. Failures of ParseJws and Verify are
// Error::Unauthorized, since a token or assertion is a credential; bad key data (a JWKS, a stored
// private JWK) and bad arguments are Error::Invalid. libcjose and OpenSSL stay inside jose.cc.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::jose {

namespace internal {
struct PrivateKey;  // the libcjose key of a SigningKey, defined in jose.cc
struct PublicKey;   // one key of a KeySet, defined in jose.cc
}  // namespace internal

enum class Alg { kRS256, kRS384, kES256, kES384 };

// "RS384" -> kRS384; nullopt for any other name ("none", "HS256", "rs256", "PS256"...).
std::optional<Alg> ParseAlg(std::string_view name);
std::string_view AlgName(Alg alg);

// base64url (RFC 4648 section 5) without padding. Decoding refuses '=' padding, characters outside
// the alphabet, a length of 4n+1 and non-zero trailing bits, so each byte string has exactly one
// accepted encoding (as RFC 7515 section 2 requires for JWS).
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

// SHA-256 of `data`: 32 raw bytes (e.g. PKCE S256: Base64UrlEncode(Sha256(code_verifier))).
std::string Sha256(std::string_view data);

// A private key the server signs with: RSA (at least 2048 bits) or EC P-256/P-384.
class SigningKey {
 public:
  // A fresh RSA key with public exponent 65537. An empty kid, bits outside [2048, 8192] or not a
  // multiple of 8, or an alg other than kRS256/kRS384 give Error::Invalid.
  static Result<SigningKey> GenerateRsa(std::string kid, int bits = 2048, Alg alg = Alg::kRS256);
  // A fresh EC key: kES256 -> P-256, kES384 -> P-384; an RS* alg or an empty kid is Error::Invalid.
  static Result<SigningKey> GenerateEc(std::string kid, Alg alg);
  // A key from its private JWK as PrivateJwk() writes it (for keys persisted in the DB). Needs
  // kty, a non-empty kid, the private members (RSA: n, e, d and optionally p, q, dp, dq, qi; EC:
  // crv, x, y, d) and optionally alg (else RS256 / by curve). Other members (use, key_ops, ext...)
  // are ignored. The key is checked by signing and verifying once. Error::Invalid on any problem.
  static Result<SigningKey> FromPrivateJwk(std::string_view jwk_json);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey();

  // The private JWK as compact JSON: kty, kid, use "sig", alg and the key members (RSA: n, e, d
  // and, unless loaded without them, p, q, dp, dq, qi; EC: crv, x, y, d). Secret: keep it
  // protected.
  std::string PrivateJwk() const;
  // The public JWK: kty, kid, use "sig", alg, then n, e or crv, x, y. No private members.
  json::Value PublicJwk() const;
  const std::string& kid() const;
  Alg alg() const;

 private:
  friend Result<std::string> SignJwt(const SigningKey& key, const json::Value& claims);
  explicit SigningKey(std::unique_ptr<internal::PrivateKey> key);

  std::unique_ptr<internal::PrivateKey> key_;  // never null except after a move
};

// Signs `claims` (REQUIRES: a JSON object, else Error::Invalid) as a compact JWS with header
// {"alg": AlgName(key.alg()), "kid": key.kid(), "typ": "JWT"}.
Result<std::string> SignJwt(const SigningKey& key, const json::Value& claims);

// A compact JWS split and decoded but NOT verified: never trust `claims` before KeySet::Verify.
struct Jws {
  json::Value header;  // the parsed protected header (a JSON object)
  json::Value claims;  // the parsed payload (a JSON object)
  Alg alg = Alg::kRS256;
  std::string kid;  // the header's kid, "" when absent
  // For Verify: the signing input ASCII(BASE64URL(header) '.' BASE64URL(payload)) as received,
  // and the signature bytes (base64url-decoded).
  std::string signing_input;
  std::string signature;
};

// Splits and decodes a compact JWS. Error::Unauthorized ("malformed JWT: ...") when: not exactly
// three dot-separated parts, a part that is not canonical unpadded base64url, an empty signature,
// header or payload not a JSON object, alg missing or not one of Alg (so never "none" nor HS*),
// a non-string kid, or a "crit" header (no extension is understood).
Result<Jws> ParseJws(std::string_view compact);

// A set of public signing keys (a JWKS): a client's registered keys or the server's own.
class KeySet {
 public:
  static constexpr size_t kMaxKeys = 100;

  // An empty set (Verify fails on it until keys are added).
  KeySet() = default;
  // Parses {"keys":[...]} (RFC 7517 section 5). Takes RSA keys of 2048 to 8192 bits and EC keys
  // on P-256 or P-384; ignores extra members (kid, alg, use, key_ops, ext, x5c...) and drops any
  // private members. Skips, without failing, keys that cannot verify one of our algorithms: unknown
  // kty or crv, "use" other than "sig", "key_ops" without "verify", an "alg" other than RS256,
  // RS384, ES256, ES384, RSA keys of another size. Error::Invalid when `jwks` is not an object with
  // a "keys" array, when a key of a supported type is malformed (a missing or bad n/e/x/y, a point
  // not on its curve), when more than kMaxKeys keys are given, or when no usable key remains.
  static Result<KeySet> FromJwks(const json::Value& jwks);

  // Copies share the immutable keys.
  KeySet(const KeySet&) = default;
  KeySet& operator=(const KeySet&) = default;
  KeySet(KeySet&&) noexcept = default;
  KeySet& operator=(KeySet&&) noexcept = default;
  ~KeySet() = default;

  // Adds one public key (e.g. a SigningKey's PublicJwk()); private members are dropped. The same
  // rules as FromJwks, but a key that would be skipped there is Error::Invalid here, saying why.
  Status Add(const json::Value& public_jwk);
  size_t size() const;

  // Verifies the signature of `jws` with the keys named by jws.kid (when jws.kid is empty: every
  // key). A key is tried only when its type fits jws.alg (RSA for RS*, EC P-256 for ES256, EC P-384
  // for ES384) and its "alg", when it has one, equals jws.alg. Error::Unauthorized, with a message
  // such as "no key with kid 'k1'", "key 'k1' cannot verify ES384" or "signature does not verify",
  // when no key verifies.
  Status Verify(const Jws& jws) const;

  // {"keys":[...]}: the public JWKs as added, private members dropped, in order.
  json::Value ToJwks() const;

 private:
  std::vector<std::shared_ptr<const internal::PublicKey>> keys_;
};

}  // namespace fhirstone::jose
