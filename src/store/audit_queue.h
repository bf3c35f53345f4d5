// AuditQueue: the audit records of reads and security events, appended to the audit log by one
// background thread in batches (one write per batch, group-committed with the other writes), at
// most `max_delay_ms` after they were submitted. Large batches are what keeps auditing cheap:
// each commit rewrites the index pages it touched (the patient index takes random inserts). Writes
// are audited in their own transaction instead (ResourceStore::Create and the others with an
// AuditRecord). When the log falls behind by `max_backlog` records, Submit waits: a record is never
// dropped. Thread-safe; the store outlives the queue; the destructor appends what is left.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "store/audit.h"

namespace fhirstone::store {

class ResourceStore;

class AuditQueue {
 public:
  AuditQueue(ResourceStore& store, int max_delay_ms = 1000, size_t max_backlog = 200000);
  ~AuditQueue();
  AuditQueue(const AuditQueue&) = delete;
  AuditQueue& operator=(const AuditQueue&) = delete;

  void Submit(AuditRecord record);
  // Returns once every record submitted before the call is in the log (tests, shutdown).
  void Flush();
  // Records submitted and not yet in the log.
  size_t backlog() const;
  // Batches that failed to append (logged; their records are retried with the next batch).
  int64_t failures() const;

 private:
  void Run();

  ResourceStore& store_;
  const int max_delay_ms_;
  const size_t max_backlog_;
  mutable std::mutex mu_;
  std::condition_variable wake_;     // the writer: records are waiting, or stop
  std::condition_variable written_;  // submitters and Flush: a batch was appended
  std::vector<AuditRecord> pending_;
  size_t in_flight_ = 0;   // records taken by the writer, not yet appended
  int64_t submitted_ = 0;  // records ever submitted
  int64_t appended_ = 0;   // records ever appended (in submission order)
  int64_t failures_ = 0;
  int flushing_ = 0;  // Flush calls waiting
  bool stopping_ = false;
  bool writer_done_ = false;  // the writer thread has ended (Flush returns)
  std::thread writer_;
};

}  // namespace fhirstone::store
