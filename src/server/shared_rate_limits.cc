#include "server/shared_rate_limits.h"

#include <random>
#include <vector>

namespace fhirstone::server {
namespace {

constexpr int64_t kPeriodMicros = 10'000'000;      // counts restart every 10 s
constexpr int64_t kKeepMicros = 600'000'000;       // rows older than 10 min are removed
constexpr int64_t kPruneEveryMicros = 60'000'000;  // by whichever node looks, once a minute
constexpr size_t kMaxKeysPerSync = 2000;           // upserts per sync; the rest at the next

std::vector<db::Migration> Migrations() {
  return {{5001, "shared rate limits",
           "CREATE TABLE rate_usage (node TEXT NOT NULL, bucket TEXT NOT NULL, slot INTEGER NOT "
           "NULL, used INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (node, bucket));"
           "CREATE INDEX rate_usage_updated ON rate_usage (updated);"}};
}

std::string RandomNode() {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    uint32_t v = rd();
    for (int j = 0; j < 8; ++j, v >>= 4) id += kHex[v & 15];
  }
  return id;
}

}  // namespace

Result<std::unique_ptr<SharedRateLimits>> SharedRateLimits::Open(db::Database& db,
                                                                 ops::RateLimiter& limiter,
                                                                 Clock& clock) {
  FHIRSTONE_RETURN_IF_ERROR(db.Migrate(Migrations()));
  limiter.RecordUsage();
  return std::unique_ptr<SharedRateLimits>(new SharedRateLimits(db, limiter, clock, RandomNode()));
}

Status SharedRateLimits::Sync() {
  int64_t now = clock_.NowMicros();
  int64_t period = now / kPeriodMicros;
  for (auto& [key, n] : limiter_.TakeUsage()) {
    auto it = mine_.try_emplace(key).first;
    if (it->second.period != period) it->second = {period, 0};
    it->second.used += n;
    dirty_.insert(key);
  }
  // Counts of past periods are no longer written; forget them.
  std::erase_if(mine_, [&](const auto& entry) { return entry.second.period < period; });
  std::erase_if(dirty_, [&](const std::string& key) { return !mine_.contains(key); });

  auto lease = db_.Acquire();
  if (!lease) return std::move(lease).error();  // the dirty keys wait for the next sync
  db::Connection& conn = **lease;
  // Each upsert commits alone (no write transaction: on PostgreSQL that would take the lock
  // every write waits for); at most kMaxKeysPerSync a time, the rest at the next sync.
  if (!dirty_.empty()) {
    auto upsert = conn.Prepare(
        "INSERT INTO rate_usage (node, bucket, slot, used, updated) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (node, bucket) DO UPDATE SET slot = excluded.slot, used = "
        "excluded.used, updated = excluded.updated");
    if (!upsert) return std::move(upsert).error();
    size_t written = 0;
    for (auto it = dirty_.begin(); it != dirty_.end() && written < kMaxKeysPerSync;) {
      const Count& count = mine_.at(*it);
      (*upsert)->BindText(1, node_);
      (*upsert)->BindText(2, *it);
      (*upsert)->BindInt(3, count.period);
      (*upsert)->BindInt(4, count.used);
      (*upsert)->BindInt(5, now);
      auto done = (*upsert)->Run();
      if (!done) return std::move(done).error();  // kept dirty: written at the next sync
      it = dirty_.erase(it);
      ++written;
    }
  }
  if (now - last_prune_ >= kPruneEveryMicros) {
    auto prune = conn.Prepare("DELETE FROM rate_usage WHERE updated < ?");
    if (!prune) return std::move(prune).error();
    (*prune)->BindInt(1, now - kKeepMicros);
    auto done = (*prune)->Run();
    if (!done) return std::move(done).error();
    last_prune_ = now;
  }

  auto tx = db::Transaction::Begin(conn, /*write=*/false);
  if (!tx) return std::move(tx).error();
  auto others = conn.Prepare(
      "SELECT node, bucket, slot, used FROM rate_usage WHERE updated >= ? AND slot >= ? AND "
      "node <> ?");
  if (!others) return std::move(others).error();
  (*others)->BindInt(1, now - 2 * kPeriodMicros);
  (*others)->BindInt(2, period - 1);
  (*others)->BindText(3, node_);
  struct Row {
    std::string node, key;
    int64_t period, used;
  };
  std::vector<Row> rows;
  for (;;) {
    auto row = (*others)->Step();
    if (!row) {
      (*others)->Reset();
      return std::move(row).error();
    }
    if (!*row) break;
    rows.push_back({std::string((*others)->ColumnText(0)), std::string((*others)->ColumnText(1)),
                    (*others)->ColumnInt(2), (*others)->ColumnInt(3)});
  }
  (*others)->Reset();
  FHIRSTONE_RETURN_IF_ERROR(tx->Commit());
  for (auto& row : rows) {
    Count& seen = seen_[{row.node, row.key}];
    // The same period: what was added since the last look. A new period (or a first look):
    // all of it.
    int64_t delta = seen.period == row.period ? row.used - seen.used : row.used;
    if (seen.period > row.period) delta = 0;  // an older row than already read
    if (delta > 0) limiter_.Charge(ops::Key::Parse(row.key), delta);
    if (seen.period <= row.period) seen = {row.period, row.used};
  }
  std::erase_if(seen_, [&](const auto& entry) { return entry.second.period < period - 1; });
  return Ok();
}

}  // namespace fhirstone::server
