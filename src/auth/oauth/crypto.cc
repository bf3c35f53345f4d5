#include "auth/oauth/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include <stdexcept>

#include "auth/jose/jose.h"

namespace fhirstone::oauth {

std::string RandomToken(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("the random number generator failed");
  return jose::Base64UrlEncode(raw);
}

std::string HashSecret(std::string_view secret) {
  std::string digest = jose::Sha256(secret);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char c : digest) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string HashPassword(std::string_view password) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(),
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw std::runtime_error("out of memory hashing a password");
  return out;
}

bool VerifyPassword(std::string_view password, std::string_view hash) {
  if (sodium_init() < 0) return false;
  std::string stored(hash);  // NUL-terminated
  return crypto_pwhash_str_verify(stored.c_str(), password.data(), password.size()) == 0;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool VerifyPkceS256(std::string_view verifier, std::string_view challenge) {
  return ConstantTimeEquals(jose::Base64UrlEncode(jose::Sha256(verifier)), challenge);
}

}  // namespace fhirstone::oauth
