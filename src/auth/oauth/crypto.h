// Secrets for the authorization server: random tokens, their hashes (what the database keeps),
// Argon2id password hashes (libsodium crypto_pwhash) and constant-time comparison.
// Free functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace fhirstone::oauth {

// `bytes` random bytes from the operating system's CSPRNG, base64url without padding.
std::string RandomToken(size_t bytes = 32);
// Lowercase hex SHA-256 of `secret`: how codes, refresh tokens, sessions and client secrets are
// stored (they are high-entropy random values, so a fast hash suffices).
std::string HashSecret(std::string_view secret);
// Argon2id (interactive limits) in libsodium's self-describing string form.
std::string HashPassword(std::string_view password);
bool VerifyPassword(std::string_view password, std::string_view hash);
// Compares in time independent of where the strings differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// BASE64URL(SHA256(verifier)) == challenge (RFC 7636 §4.6), in constant time.
bool VerifyPkceS256(std::string_view verifier, std::string_view challenge);

}  // namespace fhirstone::oauth
