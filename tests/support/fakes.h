// Test fakes for the injected Clock and IdGenerator: a clock that moves only when told and ids
// counted from 1. Thread-safe (atomics), so that concurrency tests can share them.
#pragma once

#include <atomic>
#include <string>

#include "common/clock.h"

namespace fhirstone::test {

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_micros = 1700000000000000) : now_(start_micros) {}
  int64_t NowMicros() override { return now_.fetch_add(step_); }
  void Advance(int64_t micros) { now_ += micros; }
  void Set(int64_t micros) { now_ = micros; }
  // Each NowMicros() call advances the clock by `step` (default 1 ms) so that writes are ordered.
  void SetStep(int64_t step) { step_ = step; }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> step_{1000};
};

class SequentialIdGenerator : public IdGenerator {
 public:
  std::string NewId() override { return "id" + std::to_string(++next_); }

 private:
  std::atomic<int64_t> next_{0};
};

}  // namespace fhirstone::test
