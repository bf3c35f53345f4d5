// Time formats: FHIR instants and dateTimes (https://hl7.org/fhir/R4/datatypes.html#dateTime) and
// HTTP dates (RFC 9110 IMF-fixdate). Times are microseconds since the Unix epoch, UTC.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fhirstone {

// "2026-11-29T02:08:02.123Z" (millisecond precision).
std::string FormatInstant(int64_t micros);
// "Sun, 29 Nov 2026 02:08:02 GMT".
std::string FormatHttpDate(int64_t micros);
// An IMF-fixdate; nullopt when malformed.
std::optional<int64_t> ParseHttpDate(std::string_view s);

// The interval [low, high) that a FHIR date, dateTime or instant covers at its precision:
// "2020" covers the whole year, "2020-03-01T10:00:00Z" one second, "...00.5Z" 100 ms.
// A time without a zone is read as UTC. nullopt when malformed.
struct TimeRange {
  int64_t low;
  int64_t high;
};
std::optional<TimeRange> ParseFhirDateTime(std::string_view s);

}  // namespace fhirstone
