// Rng: the generator's pseudo-random source, xoshiro256** seeded through splitmix64, with only
// integer and basic IEEE arithmetic (no <random> distributions, no libm), so that a seed gives the
// same numbers with every compiler and standard library. Also the deterministic UUIDs of the
// generated resources. Value type; an Rng is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace fhirstone::generate::internal {

// One step of splitmix64: advances `state` and returns the next output.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A well-mixed 64-bit value of the pair (a, b): seeds of independent streams.
inline uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t state = a ^ (b * 0xd6e8feb86659fd93ull);
  SplitMix64(state);
  return SplitMix64(state);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t state = seed;
    for (uint64_t& s : s_) s = SplitMix64(state);
  }

  uint64_t Next() {
    uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1), 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [lo, hi] (multiply-shift; the bias is below 2^-60 for small ranges).
  int64_t Int(int64_t lo, int64_t hi) {
    uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(
                    static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * range) >> 64));
  }
  bool Chance(double p) { return Uniform() < p; }
  // Approximately standard normal (Irwin-Hall sum of four uniforms, rescaled): within +-3.46.
  double Normal() {
    double sum = 0;
    for (int i = 0; i < 4; ++i) sum += Uniform();  // sequenced: the same on every compiler
    return (sum - 2.0) * 1.7320508075688772;
  }
  double Normal(double mean, double sd) { return mean + sd * Normal(); }

  // REQUIRES: !items.empty().
  template <typename T>
  const T& Pick(std::span<const T> items) {
    return items[static_cast<size_t>(Int(0, static_cast<int64_t>(items.size()) - 1))];
  }
  // An index drawn with probability proportional to weights[i]. REQUIRES: a positive sum.
  size_t Weighted(std::span<const double> weights) {
    double total = 0;
    for (double w : weights) total += w;
    double x = Uniform() * total;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (x < weights[i]) return i;
      x -= weights[i];
    }
    return weights.size() - 1;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Version-4-shaped UUIDs from a counter on a fixed stream: the n-th call gives the same UUID for
// the same seed.
class UuidSource {
 public:
  explicit UuidSource(uint64_t seed) : state_(seed) {}
  std::string Next() {
    uint64_t hi = SplitMix64(state_);
    uint64_t lo = SplitMix64(state_);
    hi = (hi & ~0xf000ull) | 0x4000ull;                         // version 4
    lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // RFC 4122 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(36, '-');
    int pos = 0;
    auto put = [&](uint64_t v, int nibbles) {
      for (int i = nibbles - 1; i >= 0; --i) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
        out[pos++] = kHex[(v >> (4 * i)) & 0xf];
      }
    };
    put(hi, 16);
    put(lo, 16);
    return out;
  }

 private:
  uint64_t state_;
};

}  // namespace fhirstone::generate::internal
