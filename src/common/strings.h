// Small string helpers shared by every layer (ASCII only; FHIR's case-insensitive tokens are
// ASCII). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fhirstone {

std::string AsciiLower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string_view Trim(std::string_view s);
// Splits on `sep`; keeps empty pieces.
std::vector<std::string_view> Split(std::string_view s, char sep);
// A base-10 integer that fills all of `s` (optional leading '-'), without overflow.
std::optional<int64_t> ParseInt64(std::string_view s);
// Constant-time comparison of two secrets (time depends on the lengths only).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Appends code point `cp` encoded in UTF-8 (1 to 4 bytes). REQUIRES: cp <= 0x10FFFF.
void AppendUtf8(uint32_t cp, std::string& out);

// Makes `text` valid UTF-8 without NUL bytes: every byte that does not start a well-formed
// sequence, and every NUL, becomes U+FFFD (what PostgreSQL text and C strings can hold).
void MakeValidUtf8(std::string& text);

}  // namespace fhirstone
