// Clock and IdGenerator: time and identifiers are injected so that tests control them.
// SystemClock and TimeOrderedIdGenerator are the production implementations; all three
// implementations here are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace fhirstone {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch, UTC.
  virtual int64_t NowMicros() = 0;
};

class SystemClock : public Clock {
 public:
  int64_t NowMicros() override;
};

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  // A new FHIR logical id ([A-Za-z0-9\-\.]{1,64}), unique with overwhelming probability.
  virtual std::string NewId() = 0;
};

// Random 128-bit ids rendered as UUID-shaped lowercase hex, from a per-thread generator seeded
// from the operating system.
class RandomIdGenerator : public IdGenerator {
 public:
  std::string NewId() override;
};

// Version 7 UUIDs (RFC 9562): the Unix time in milliseconds, then 74 random bits, so that ids
// made later sort after earlier ones (to the millisecond) and stay unique with overwhelming
// probability. The resource ids the server assigns: the indexes keyed by id (the resources', the
// versions', and the references to new resources) take a new resource's entry at the end of
// their range, on one page for a group of writes, instead of on a random page each.
class TimeOrderedIdGenerator : public IdGenerator {
 public:
  std::string NewId() override;
};

}  // namespace fhirstone
