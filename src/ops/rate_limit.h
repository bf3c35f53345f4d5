// Rate limits (token buckets per client, per user and, for unauthenticated callers, per IP) and
// concurrency limits (in-flight requests per key and overall), with the HTTP answers that go
// with them: RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset on every limited response
// (draft-ietf-httpapi-ratelimit-headers) and 429 Too Many Requests with Retry-After and an
// OperationOutcome (code "throttled") when refused.
//
// No lock anywhere on the request path. RateLimiter keeps each bucket in one 64-bit word (a
// 16-bit tag of the key's hash and the bucket's "theoretical arrival time", GCRA: the token
// bucket algorithm in one number), in a fixed table of 8-word groups (one cache line per key);
// a check is one load of that line and one compare-exchange. A bucket whose arrival time has
// passed is full, i.e. indistinguishable from a new one, so its word is reused by the next new
// key of the group: memory is fixed at construction and idle buckets need no sweeping. When all
// eight buckets of a group are active, the one closest to full is evicted (evictions()).
// Keys are hashed with a per-process random seed; two keys share a bucket only if their hashes
// pick the same group and the same 16-bit tag (about 1 in 8,000 per new key when its group is
// full of active buckets, which only makes both a little stricter).
//
// ConcurrencyLimiter counts in-flight requests overall (one atomic) and per key (one word per
// key, picked by the key's hash: a 40-bit tag and a 24-bit count, claimed when its count is 0);
// a Permit gives its place back when destroyed.
//
// Thread-safe: every member function may be called concurrently. The Clock outlives the limiter.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "http/message.h"

namespace fhirstone::ops {

// Who a bucket belongs to.
enum class KeyKind { kClient, kUser, kIp, kOther };

// "client", "user", "ip", "other": the `kind` label of fhirstone_rate_limited_total.
std::string_view KindName(KeyKind kind);

struct Key {
  KeyKind kind = KeyKind::kOther;
  std::string_view id;

  // "client:ID", "user:ID", "ip:ADDR"; any other text is kOther with the whole text as id.
  static Key Parse(std::string_view text);
  std::string ToString() const;
};

// A token bucket: up to `burst` requests at once, refilled at `per_second` requests a second.
// Buckets that take longer than a day to refill are shortened to a day (the rate is raised).
struct Limit {
  double per_second = 0;  // <= 0: unlimited
  int64_t burst = 0;      // <= 0: unlimited

  bool unlimited() const { return per_second <= 0 || burst <= 0; }
  static Limit Unlimited() { return {}; }
};

// "RATE/UNIT" or "RATE/UNIT:BURST" with UNIT s, min, h or day, e.g. "20/s:40", "600/min",
// "10000/day"; the burst defaults to RATE (600/min allows 600 at once, then 10 a second).
// "off" or "unlimited": no limit. Error::Invalid otherwise.
Result<Limit> ParseLimit(std::string_view text);

struct RateLimiterOptions {
  Limit client{50, 100};  // per OAuth client (requests with a valid token)
  Limit user{20, 60};     // per end user (fhirUser or subject), across clients
  Limit ip{10, 40};       // callers without a valid token, per address
  Limit other{10, 40};    // keys of kind kOther
  // Limits for particular clients (by client_id), in place of `client`.
  std::map<std::string, Limit, std::less<>> client_overrides;
  // Buckets kept: rounded up to a power of two, at least 8; 8 bytes each.
  size_t capacity = 1 << 16;
};

// The outcome of one check, and what the RateLimit headers say.
struct Decision {
  bool allowed = true;
  KeyKind kind = KeyKind::kOther;   // the bucket that decided
  int64_t limit = 0;                // the bucket's size (burst); 0: unlimited, no headers
  int64_t remaining = 0;            // requests left now
  int64_t reset_seconds = 0;        // until the bucket is full again (rounded up)
  int64_t retry_after_seconds = 0;  // refused: until this request would pass (>= 1); else 0
};

class RateLimiter {
 public:
  RateLimiter(Clock& clock, RateLimiterOptions options);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes `cost` tokens (clamped to 1..burst) from the key's bucket if it has them. The limit is
  // the kind's default, or the client's override. A refused check takes nothing.
  Decision Check(Key key, int64_t cost = 1);
  Decision Check(std::string_view key, int64_t cost = 1) { return Check(Key::Parse(key), cost); }
  // Same, with an explicit limit (e.g. one stored with a client's registration). A key's state
  // does not depend on its limit: a changed limit applies from the next check.
  Decision Check(Key key, const Limit& limit, int64_t cost = 1);

  // Who a request is: with a valid token, its client and user; without, its address.
  struct Caller {
    std::string_view client_id;  // "" when unauthenticated
    std::string_view user;       // fhirUser or subject; "" when none
    std::string_view address;    // the client address (see ClientAddress in request_info.h)
  };
  // The client's bucket then the user's bucket (with a token), or the address's bucket
  // (without). The first refusal decides (a refusal by the user's bucket has taken one token
  // from the client's); when all allow, the decision with the fewest remaining requests.
  Decision CheckCaller(const Caller& caller, int64_t cost = 1);

  // The limit Check(key) applies.
  const Limit& LimitFor(Key key) const;

  // ---- Sharing buckets between nodes (see server/shared_rate_limits.h) ----
  // From now on, every allowed check also counts its cost per key, for TakeUsage(). Costs a
  // lock of one of 16 shards and a map update per check: for several nodes only.
  void RecordUsage();
  // The counts since the previous call, as (key text as Key::ToString(), tokens taken).
  std::vector<std::pair<std::string, int64_t>> TakeUsage();
  // Takes `cost` tokens from the key's bucket, down to empty but never below, whatever it
  // holds: requests served by other nodes. Nothing for an unlimited key.
  void Charge(Key key, int64_t cost);

  size_t capacity() const { return capacity_; }
  // Buckets not full (O(capacity): for tests and occasional metrics).
  size_t ActiveBuckets() const;
  // Active buckets dropped because a new key found its group full.
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct Group;
  int64_t NowRelative() const;

  Clock& clock_;
  RateLimiterOptions options_;
  int64_t epoch_;
  uint64_t seed_;
  size_t capacity_;
  size_t group_mask_;
  std::unique_ptr<Group[]> groups_;
  std::atomic<uint64_t> evictions_{0};
  struct UsageShard;
  std::unique_ptr<UsageShard[]> usage_;  // null until RecordUsage()
  std::atomic<bool> recording_{false};
  void Count(Key key, int64_t cost);
};

struct ConcurrencyOptions {
  int64_t max_global = 256;  // in-flight requests overall; <= 0: unlimited
  int64_t max_per_key = 16;  // in-flight requests per key; <= 0: unlimited
  // Words for per-key counts (rounded up to a power of two; 8 bytes each). Keep it well above
  // max_global: a key whose word another key's requests hold is admitted untracked.
  size_t capacity = 1 << 14;
};

class ConcurrencyLimiter {
 public:
  enum class Refusal { kNone, kGlobal, kPerKey };

  // A place among the in-flight requests, given back on destruction (or Release()). Move-only.
  // A refused permit holds nothing. The limiter outlives its permits.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    ~Permit() { Release(); }

    bool granted() const { return granted_; }
    explicit operator bool() const { return granted_; }
    Refusal refusal() const { return refusal_; }
    void Release();

   private:
    friend class ConcurrencyLimiter;
    ConcurrencyLimiter* limiter_ = nullptr;
    int64_t slot_ = -1;  // the per-key word, -1 when untracked
    bool granted_ = false;
    Refusal refusal_ = Refusal::kNone;
  };

  explicit ConcurrencyLimiter(ConcurrencyOptions options);
  ~ConcurrencyLimiter();
  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // A permit if both the global and the key's count are under their maxima. An empty key
  // counts only globally. A key whose word holds another key's in-flight requests (a hash
  // collision, at most max_global / capacity likely) is admitted untracked: the global maximum
  // still holds.
  Permit TryAcquire(std::string_view key);

  int64_t in_flight() const { return global_.load(std::memory_order_relaxed); }
  // In-flight requests of `key` (for tests and metrics).
  int64_t InFlight(std::string_view key) const;

 private:
  void Release(int64_t slot);

  ConcurrencyOptions options_;
  uint64_t seed_;
  size_t mask_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::atomic<int64_t> global_{0};
};

// Sets RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (and Retry-After when refused).
// Nothing when the decision is unlimited.
void AddHeaders(const Decision& decision, http::Response& response);

// 429 with an OperationOutcome (severity error, code throttled), Content-Type
// application/fhir+json, Retry-After and the RateLimit headers. `diagnostics` defaults to a
// sentence naming the limit and the wait.
http::Response ThrottledResponse(const Decision& decision, std::string_view diagnostics = {});
// 429 for a concurrency refusal: Retry-After `retry_after_seconds` and the OperationOutcome.
http::Response BusyResponse(std::string_view diagnostics, int64_t retry_after_seconds = 1);

}  // namespace fhirstone::ops
