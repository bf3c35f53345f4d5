#include "ops/rate_limit.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <mutex>
#include <random>
#include <unordered_map>

#include "common/json.h"
#include "common/strings.h"

namespace fhirstone::ops {
namespace {

constexpr int kGroupSize = 8;  // words per group: 64 bytes, one cache line

uint64_t RandomSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

uint64_t Mix(uint64_t x) {  // the splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// FNV-1a from a seeded basis, then mixed so that every bit depends on every input bit.
uint64_t HashKey(uint64_t seed, KeyKind kind, std::string_view id) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  h = (h ^ static_cast<uint64_t>(kind)) * 0x100000001b3ULL;
  for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ULL;
  return Mix(h ^ seed ^ id.size());
}

int64_t CeilSeconds(int64_t micros) { return micros <= 0 ? 0 : (micros + 999999) / 1000000; }

// ---- RateLimiter words: tag (16 bits) | theoretical arrival time (48 bits, µs, modulo 2^48) ----

constexpr int kTatBits = 48;
constexpr uint64_t kTatMask = (uint64_t{1} << kTatBits) - 1;
constexpr int64_t kMaxWindowMicros = int64_t{86400} * 1000000;

uint64_t TagOf(uint64_t hash) {
  uint64_t tag = hash >> kTatBits;
  return tag == 0 ? 1 : tag;  // 0 marks an empty word
}

// How far the bucket's arrival time is ahead of `now` (µs): 0 for a full (idle) bucket.
// Arrival times are never more than a day ahead, so anything else is an old, idle one.
int64_t Ahead(uint64_t word, int64_t now) {
  if (word == 0) return 0;
  uint64_t d = ((word & kTatMask) - (static_cast<uint64_t>(now) & kTatMask)) & kTatMask;
  return d > static_cast<uint64_t>(kMaxWindowMicros) ? 0 : static_cast<int64_t>(d);
}

uint64_t Pack(uint64_t tag, int64_t tat) {
  return (tag << kTatBits) | (static_cast<uint64_t>(tat) & kTatMask);
}

// The word of `tag` among a group's `atomics` (loaded into `words`) and how far its arrival
// time is ahead of `now`; for a new key, the word it takes: a full (idle) word, else the active
// word closest to full (then `evicting`).
struct Slot {
  int index;
  int64_t ahead;
  bool evicting;
};
template <size_t N>
Slot FindSlot(const std::atomic<uint64_t> (&atomics)[N], uint64_t tag, int64_t now,
              uint64_t (&words)[N]) {
  int found = -1;
  for (size_t i = 0; i < N; ++i) {
    words[i] = atomics[i].load(std::memory_order_acquire);
    if (found < 0 && words[i] != 0 && (words[i] >> kTatBits) == tag) found = static_cast<int>(i);
  }
  if (found >= 0) return {found, Ahead(words[found], now), false};
  Slot slot{0, 0, false};
  int64_t least = INT64_MAX;
  for (size_t i = 0; i < N; ++i) {
    int64_t a = Ahead(words[i], now);
    if (a < least) {
      least = a;
      slot.index = static_cast<int>(i);
    }
    if (a == 0) break;
  }
  slot.evicting = least > 0;
  return slot;
}

// A limit as GCRA parameters: the interval between tokens and the bucket's depth, in µs.
struct Gcra {
  int64_t interval;
  int64_t burst;
  int64_t tau;  // burst * interval
};

Gcra ToGcra(const Limit& limit) {
  Gcra g;
  g.burst = std::clamp<int64_t>(limit.burst, 1, 1000000000);
  double interval = 1e6 / limit.per_second;
  g.interval =
      std::clamp<int64_t>(std::llround(std::min(interval, 1e15)), 1, kMaxWindowMicros / g.burst);
  g.tau = g.interval * g.burst;
  return g;
}

// ---- ConcurrencyLimiter words: tag (40 bits) | count (24 bits) ----

constexpr int kCountBits = 24;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;

uint64_t CountTagOf(uint64_t hash) {
  uint64_t tag = hash >> kCountBits;
  return tag == 0 ? 1 : tag;
}

std::string DefaultDiagnostics(const Decision& d) {
  std::string_view who = d.kind == KeyKind::kClient ? "this client"
                         : d.kind == KeyKind::kUser ? "this user"
                         : d.kind == KeyKind::kIp   ? "this address"
                                                    : "this caller";
  return "Too many requests for " + std::string(who) + " (at most " + std::to_string(d.limit) +
         " at once): retry after " + std::to_string(std::max<int64_t>(1, d.retry_after_seconds)) +
         " s";
}

http::Response ThrottledOutcome(std::string_view diagnostics) {
  http::Response response;
  response.status = 429;
  response.SetHeader("Content-Type", "application/fhir+json;charset=utf-8");
  std::string body = R"({"resourceType":"OperationOutcome","issue":[{"severity":"error",)"
                     R"("code":"throttled","diagnostics":)";
  json::WriteString(diagnostics, body);
  body += "}]}";
  response.body = std::move(body);
  return response;
}

}  // namespace

std::string_view KindName(KeyKind kind) {
  switch (kind) {
    case KeyKind::kClient:
      return "client";
    case KeyKind::kUser:
      return "user";
    case KeyKind::kIp:
      return "ip";
    case KeyKind::kOther:
      return "other";
  }
  return "other";
}

Key Key::Parse(std::string_view text) {
  if (text.starts_with("client:")) return {KeyKind::kClient, text.substr(7)};
  if (text.starts_with("user:")) return {KeyKind::kUser, text.substr(5)};
  if (text.starts_with("ip:")) return {KeyKind::kIp, text.substr(3)};
  return {KeyKind::kOther, text};
}

std::string Key::ToString() const {
  if (kind == KeyKind::kOther) return std::string(id);
  return std::string(KindName(kind)) + ":" + std::string(id);
}

Result<Limit> ParseLimit(std::string_view text) {
  text = Trim(text);
  std::string lower = AsciiLower(text);
  if (lower == "off" || lower == "unlimited") return Limit::Unlimited();
  auto bad = [&] {
    return Error::Invalid("Not a rate limit: \"" + std::string(text) +
                          "\" (expected RATE/UNIT or RATE/UNIT:BURST, UNIT s, min, h or day, "
                          "e.g. 600/min:100, or off)");
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  std::string_view rest = text.substr(slash + 1);
  std::string_view burst_text;
  if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    burst_text = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  auto rate = ParseInt64(Trim(text.substr(0, slash)));
  if (!rate || *rate <= 0) return bad();
  std::string unit = AsciiLower(Trim(rest));
  double seconds = 0;
  if (unit == "s" || unit == "sec" || unit == "second") {
    seconds = 1;
  } else if (unit == "min" || unit == "m" || unit == "minute") {
    seconds = 60;
  } else if (unit == "h" || unit == "hour") {
    seconds = 3600;
  } else if (unit == "d" || unit == "day") {
    seconds = 86400;
  } else {
    return bad();
  }
  Limit limit;
  limit.per_second = static_cast<double>(*rate) / seconds;
  limit.burst = *rate;
  if (!burst_text.empty()) {
    auto burst = ParseInt64(Trim(burst_text));
    if (!burst || *burst <= 0) return bad();
    limit.burst = *burst;
  }
  return limit;
}

// ---- RateLimiter ----

struct alignas(64) RateLimiter::Group {
  std::atomic<uint64_t> words[kGroupSize];
};

constexpr size_t kUsageShards = 16;

struct RateLimiter::UsageShard {
  std::mutex mu;
  std::unordered_map<std::string, int64_t> counts;
};

RateLimiter::RateLimiter(Clock& clock, RateLimiterOptions options)
    : clock_(clock),
      options_(std::move(options)),
      epoch_(clock.NowMicros()),
      seed_(RandomSeed()),
      capacity_(std::bit_ceil(std::max<size_t>(kGroupSize, options_.capacity))),
      group_mask_(capacity_ / kGroupSize - 1),
      groups_(new Group[capacity_ / kGroupSize]) {
  for (size_t g = 0; g <= group_mask_; ++g) {
    for (auto& w : groups_[g].words) w.store(0, std::memory_order_relaxed);
  }
}

RateLimiter::~RateLimiter() = default;

int64_t RateLimiter::NowRelative() const {
  // Times are relative to the limiter's start; a clock stepping back before it counts as 0.
  return std::max<int64_t>(0, clock_.NowMicros() - epoch_);
}

const Limit& RateLimiter::LimitFor(Key key) const {
  switch (key.kind) {
    case KeyKind::kClient: {
      auto it = options_.client_overrides.find(key.id);
      return it == options_.client_overrides.end() ? options_.client : it->second;
    }
    case KeyKind::kUser:
      return options_.user;
    case KeyKind::kIp:
      return options_.ip;
    case KeyKind::kOther:
      return options_.other;
  }
  return options_.other;
}

Decision RateLimiter::Check(Key key, int64_t cost) { return Check(key, LimitFor(key), cost); }

Decision RateLimiter::Check(Key key, const Limit& limit, int64_t cost) {
  Decision d;
  d.kind = key.kind;
  if (limit.unlimited()) return d;
  Gcra g = ToGcra(limit);
  int64_t increment = std::clamp<int64_t>(cost, 1, g.burst) * g.interval;
  d.limit = g.burst;

  uint64_t hash = HashKey(seed_, key.kind, key.id);
  uint64_t tag = TagOf(hash);
  Group& group = groups_[hash & group_mask_];
  int64_t now = NowRelative();
  for (;;) {
    uint64_t words[kGroupSize];
    auto [slot, ahead, evicting] = FindSlot(group.words, tag, now, words);
    int64_t next = ahead + increment;
    if (next > g.tau) {
      d.allowed = false;
      d.remaining = (g.tau - ahead) / g.interval;
      d.reset_seconds = CeilSeconds(ahead);
      d.retry_after_seconds = std::max<int64_t>(1, CeilSeconds(next - g.tau));
      return d;
    }
    if (group.words[slot].compare_exchange_weak(words[slot], Pack(tag, now + next),
                                                std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
      if (evicting) evictions_.fetch_add(1, std::memory_order_relaxed);
      if (recording_.load(std::memory_order_acquire)) Count(key, increment / g.interval);
      d.allowed = true;
      d.remaining = (g.tau - next) / g.interval;
      d.reset_seconds = CeilSeconds(next);
      return d;
    }
    // Another request changed the group: look again.
  }
}

void RateLimiter::Charge(Key key, int64_t cost) {
  const Limit& limit = LimitFor(key);
  if (limit.unlimited() || cost <= 0) return;
  Gcra g = ToGcra(limit);
  int64_t increment = std::min(cost, g.burst) * g.interval;
  uint64_t hash = HashKey(seed_, key.kind, key.id);
  uint64_t tag = TagOf(hash);
  Group& group = groups_[hash & group_mask_];
  int64_t now = NowRelative();
  for (;;) {
    uint64_t words[kGroupSize];
    auto [slot, ahead, evicting] = FindSlot(group.words, tag, now, words);  // as Check does
    (void)evicting;
    int64_t next = std::min(ahead + increment, g.tau);
    if (next <= ahead) return;  // already empty
    if (group.words[slot].compare_exchange_weak(words[slot], Pack(tag, now + next),
                                                std::memory_order_acq_rel,
                                                std::memory_order_relaxed))
      return;
  }
}

void RateLimiter::RecordUsage() {
  if (recording_.load(std::memory_order_acquire)) return;
  usage_.reset(new UsageShard[kUsageShards]);
  recording_.store(true, std::memory_order_release);
}

void RateLimiter::Count(Key key, int64_t cost) {
  std::string text = key.ToString();
  UsageShard& shard = usage_[std::hash<std::string>{}(text) % kUsageShards];
  std::lock_guard lock(shard.mu);
  shard.counts[std::move(text)] += cost;
}

std::vector<std::pair<std::string, int64_t>> RateLimiter::TakeUsage() {
  std::vector<std::pair<std::string, int64_t>> out;
  if (!recording_.load(std::memory_order_acquire)) return out;
  for (size_t i = 0; i < kUsageShards; ++i) {
    std::unordered_map<std::string, int64_t> counts;
    {
      std::lock_guard lock(usage_[i].mu);
      counts.swap(usage_[i].counts);
    }
    for (auto& [key, n] : counts) out.emplace_back(key, n);
  }
  return out;
}

Decision RateLimiter::CheckCaller(const Caller& caller, int64_t cost) {
  if (caller.client_id.empty()) return Check(Key{KeyKind::kIp, caller.address}, cost);
  Decision client = Check(Key{KeyKind::kClient, caller.client_id}, cost);
  if (!client.allowed || caller.user.empty()) return client;
  Decision user = Check(Key{KeyKind::kUser, caller.user}, cost);
  if (!user.allowed) return user;
  if (user.limit == 0) return client;
  if (client.limit == 0) return user;
  return user.remaining < client.remaining ? user : client;
}

size_t RateLimiter::ActiveBuckets() const {
  int64_t now = NowRelative();
  size_t n = 0;
  for (size_t g = 0; g <= group_mask_; ++g) {
    for (const auto& w : groups_[g].words) {
      if (Ahead(w.load(std::memory_order_relaxed), now) > 0) ++n;
    }
  }
  return n;
}

// ---- ConcurrencyLimiter ----

ConcurrencyLimiter::ConcurrencyLimiter(ConcurrencyOptions options)
    : options_(options), seed_(RandomSeed()) {
  size_t capacity = std::bit_ceil(std::max<size_t>(kGroupSize, options_.capacity));
  mask_ = capacity - 1;
  words_.reset(new std::atomic<uint64_t>[capacity]);
  for (size_t i = 0; i < capacity; ++i) words_[i].store(0, std::memory_order_relaxed);
}

ConcurrencyLimiter::~ConcurrencyLimiter() = default;

ConcurrencyLimiter::Permit ConcurrencyLimiter::TryAcquire(std::string_view key) {
  Permit permit;
  int64_t before = global_.fetch_add(1, std::memory_order_acq_rel);
  if (options_.max_global > 0 && before >= options_.max_global) {
    global_.fetch_sub(1, std::memory_order_acq_rel);
    permit.refusal_ = Refusal::kGlobal;
    return permit;
  }
  permit.limiter_ = this;
  permit.granted_ = true;
  if (key.empty() || options_.max_per_key <= 0) return permit;

  // One word per key (no probing), so that a key can never be counted in two places.
  uint64_t hash = HashKey(seed_, KeyKind::kOther, key);
  uint64_t tag = CountTagOf(hash);
  size_t index = hash & mask_;
  uint64_t max = static_cast<uint64_t>(std::min<int64_t>(options_.max_per_key, kCountMask));
  uint64_t word = words_[index].load(std::memory_order_acquire);
  for (;;) {
    uint64_t count = word & kCountMask;
    uint64_t desired;
    if (count == 0) {
      desired = (tag << kCountBits) | 1;  // a free word: this key's now
    } else if ((word >> kCountBits) != tag) {
      return permit;  // another key's requests hold the word: admitted untracked
    } else if (count >= max) {
      permit.Release();
      permit.refusal_ = Refusal::kPerKey;
      return permit;
    } else {
      desired = word + 1;
    }
    if (words_[index].compare_exchange_weak(word, desired, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
      permit.slot_ = static_cast<int64_t>(index);
      return permit;
    }
  }
}

void ConcurrencyLimiter::Release(int64_t slot) {
  if (slot >= 0) words_[slot].fetch_sub(1, std::memory_order_acq_rel);
  global_.fetch_sub(1, std::memory_order_acq_rel);
}

int64_t ConcurrencyLimiter::InFlight(std::string_view key) const {
  uint64_t hash = HashKey(seed_, KeyKind::kOther, key);
  uint64_t word = words_[hash & mask_].load(std::memory_order_acquire);
  if ((word >> kCountBits) != CountTagOf(hash)) return 0;
  return static_cast<int64_t>(word & kCountMask);
}

ConcurrencyLimiter::Permit::Permit(Permit&& other) noexcept
    : limiter_(other.limiter_),
      slot_(other.slot_),
      granted_(other.granted_),
      refusal_(other.refusal_) {
  other.limiter_ = nullptr;
  other.granted_ = false;
  other.slot_ = -1;
}

ConcurrencyLimiter::Permit& ConcurrencyLimiter::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = other.limiter_;
    slot_ = other.slot_;
    granted_ = other.granted_;
    refusal_ = other.refusal_;
    other.limiter_ = nullptr;
    other.granted_ = false;
    other.slot_ = -1;
  }
  return *this;
}

void ConcurrencyLimiter::Permit::Release() {
  if (granted_ && limiter_ != nullptr) limiter_->Release(slot_);
  limiter_ = nullptr;
  granted_ = false;
  slot_ = -1;
}

// ---- HTTP ----

void AddHeaders(const Decision& decision, http::Response& response) {
  if (decision.limit <= 0) return;
  response.SetHeader("RateLimit-Limit", std::to_string(decision.limit));
  response.SetHeader("RateLimit-Remaining",
                     std::to_string(std::max<int64_t>(0, decision.remaining)));
  response.SetHeader("RateLimit-Reset", std::to_string(decision.reset_seconds));
  if (!decision.allowed)
    response.SetHeader("Retry-After",
                       std::to_string(std::max<int64_t>(1, decision.retry_after_seconds)));
}

http::Response ThrottledResponse(const Decision& decision, std::string_view diagnostics) {
  std::string text = diagnostics.empty() ? DefaultDiagnostics(decision) : std::string(diagnostics);
  http::Response response = ThrottledOutcome(text);
  AddHeaders(decision, response);
  response.SetHeader("Retry-After",
                     std::to_string(std::max<int64_t>(1, decision.retry_after_seconds)));
  return response;
}

http::Response BusyResponse(std::string_view diagnostics, int64_t retry_after_seconds) {
  http::Response response = ThrottledOutcome(diagnostics);
  response.SetHeader("Retry-After", std::to_string(std::max<int64_t>(1, retry_after_seconds)));
  return response;
}

}  // namespace fhirstone::ops
