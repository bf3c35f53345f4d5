// Rate-limit buckets shared by the nodes that serve one database, approximately.
//
// Each node keeps its own buckets (ops::RateLimiter: no lock and no database on the request
// path) and, every sync interval, exchanges what it served through the table `rate_usage`: it
// writes how many tokens each key took on this node in the current 10-second period, reads
// what the other nodes wrote since its last look, and takes those tokens from its own buckets
// (RateLimiter::Charge). A client limited to N requests a minute therefore gets about N a minute
// across all nodes: what the nodes serve between two syncs (at most each node's burst within
// one interval) can go over, nothing else does. A node that starts charges what the others
// served in the last two periods.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/result.h"
#include "db/database.h"
#include "ops/rate_limit.h"

namespace fhirstone::server {

class SharedRateLimits {
 public:
  // Applies the schema, names this node (random) and starts recording the limiter's usage.
  // The database, limiter and clock outlive this object.
  static Result<std::unique_ptr<SharedRateLimits>> Open(db::Database& db, ops::RateLimiter& limiter,
                                                        Clock& clock);

  // Writes this node's usage since the previous call (keys not written, as when the database
  // fails, are written at the next call), charges the other nodes' and, once a minute, removes
  // rows older than ten minutes. Each write commits alone, outside any write transaction.
  Status Sync();

  const std::string& node() const { return node_; }

 private:
  SharedRateLimits(db::Database& db, ops::RateLimiter& limiter, Clock& clock, std::string node)
      : db_(db), limiter_(limiter), clock_(clock), node_(std::move(node)) {}

  struct Count {
    int64_t period = -1;
    int64_t used = 0;
  };
  db::Database& db_;
  ops::RateLimiter& limiter_;
  Clock& clock_;
  std::string node_;
  std::map<std::string, Count, std::less<>> mine_;  // key -> this node's count
  std::set<std::string, std::less<>> dirty_;        // keys of mine_ changed and not yet written
  std::map<std::pair<std::string, std::string>, Count> seen_;  // (node, key) -> last read
  int64_t last_prune_ = 0;
};

}  // namespace fhirstone::server
