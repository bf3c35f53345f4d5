#include "store/audit_queue.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/thread.h"
#include "store/resource_store.h"

namespace fhirstone::store {

AuditQueue::AuditQueue(ResourceStore& store, int max_delay_ms, size_t max_backlog)
    : store_(store), max_delay_ms_(max_delay_ms), max_backlog_(max_backlog) {
  writer_ = std::thread([this] {
    NameThisThread("fs-audit");
    Run();
  });
}

AuditQueue::~AuditQueue() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void AuditQueue::Submit(AuditRecord record) {
  std::unique_lock lock(mu_);
  written_.wait(lock, [&] { return pending_.size() + in_flight_ < max_backlog_ || writer_done_; });
  pending_.push_back(std::move(record));
  ++submitted_;
  if (pending_.size() == 1) wake_.notify_one();
}

void AuditQueue::Flush() {
  std::unique_lock lock(mu_);
  int64_t target = submitted_;
  ++flushing_;  // the writer stops gathering
  wake_.notify_one();
  written_.wait(lock, [&] { return appended_ >= target || writer_done_; });
  --flushing_;
}

size_t AuditQueue::backlog() const {
  std::lock_guard lock(mu_);
  return pending_.size() + in_flight_;
}

int64_t AuditQueue::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

void AuditQueue::Run() {
  constexpr size_t kMaxBatch = 4096;
  constexpr int kShutdownAttempts = 25;  // 5 s of retries once stopping, then give up
  std::unique_lock lock(mu_);
  std::vector<AuditRecord> batch;  // taken from pending_, appended or being retried
  size_t taken = 0;                // records submitted in `batch` (it may grow: one per patient)
  // The storage pending_ takes over when a batch is taken, reserved while the lock is free, so
  // that Submit does not grow pending_ (moving every record queued) while requests wait on it.
  std::vector<AuditRecord> spare;
  lock.unlock();
  spare.reserve(kMaxBatch);
  lock.lock();
  int attempts_while_stopping = 0;
  while (true) {
    wake_.wait(lock, [&] { return !batch.empty() || !pending_.empty() || stopping_; });
    if (batch.empty() && pending_.empty() && stopping_) break;
    if (batch.empty()) {
      // Let a batch gather unless it is already large: at most max_delay_ms_ after the first.
      if (pending_.size() < kMaxBatch && !stopping_) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_delay_ms_);
        wake_.wait_until(lock, deadline, [&] {
          return pending_.size() >= kMaxBatch || stopping_ || flushing_ > 0;
        });
      }
      size_t n = std::min(pending_.size(), kMaxBatch);
      taken = n;
      if (n == pending_.size()) {
        batch.swap(pending_);  // no record moved while Submit waits for the lock
        pending_.swap(spare);
      } else {
        batch.assign(std::make_move_iterator(pending_.begin()),
                     std::make_move_iterator(pending_.begin() + n));
        pending_.erase(pending_.begin(), pending_.begin() + n);
      }
      in_flight_ = taken;
    }
    lock.unlock();
    Status appended = store_.AppendAudit(batch);  // on failure, batch can be passed again
    lock.lock();
    if (appended) {
      appended_ += static_cast<int64_t>(taken);
      in_flight_ = 0;
      written_.notify_all();
      // The records appended (one per patient: tens of thousands under load) are freed outside
      // the lock: freeing them took ~10 ms, during which every request's Submit waited.
      std::vector<AuditRecord> appended_records;
      appended_records.swap(batch);
      lock.unlock();
      appended_records.clear();
      if (spare.capacity() < kMaxBatch) spare.reserve(kMaxBatch);
      lock.lock();
      continue;
    }
    ++failures_;
    spdlog::error("audit: {} records could not be appended, retrying: {}", batch.size(),
                  appended.error().message());
    if (stopping_ && ++attempts_while_stopping >= kShutdownAttempts) {
      spdlog::error("audit: the database is unavailable at shutdown: {} records are lost",
                    taken + pending_.size());
      break;
    }
    // Retry the same batch after a pause (records stay in submission order).
    wake_.wait_for(lock, std::chrono::milliseconds(200), [] { return false; });
  }
  writer_done_ = true;
  written_.notify_all();
}

}  // namespace fhirstone::store
