#include "common/clock.h"

#include <chrono>
#include <random>

namespace fhirstone {

int64_t SystemClock::NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

uint64_t Random64() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  return rng();
}

// The 128 bits as a UUID: lowercase hex in groups of 8-4-4-4-12.
std::string UuidText(uint64_t hi, uint64_t lo) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](uint64_t v) {
    for (int i = 15; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      out[pos++] = kHex[(v >> (i * 4)) & 0xf];
    }
  };
  put(hi);
  put(lo);
  return out;
}

constexpr uint64_t kVariant = 0x8000000000000000ULL;  // the RFC's variant: bits 10
constexpr uint64_t kVariantMask = 0x3fffffffffffffffULL;

}  // namespace

std::string RandomIdGenerator::NewId() {
  uint64_t hi = Random64(), lo = Random64();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  return UuidText(hi, (lo & kVariantMask) | kVariant);
}

std::string TimeOrderedIdGenerator::NewId() {
  auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
  uint64_t hi = ((ms & 0xffffffffffffULL) << 16) | 0x7000ULL | (Random64() & 0x0fffULL);
  return UuidText(hi, (Random64() & kVariantMask) | kVariant);
}

}  // namespace fhirstone
