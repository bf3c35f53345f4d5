// Internal to store/: the audit log's table, its hash chain, its rendering as FHIR AuditEvent
// resources and the translation of AuditEvent searches into SQL over it. Not for other libraries.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/result.h"
#include "db/database.h"
#include "search/query.h"
#include "store/audit.h"

namespace fhirstone::store {
struct SearchResult;
}

namespace fhirstone::store::internal {

// The schema of the audit log (a migration).
const char* AuditSchema();

// SQLite only (a migration): the audit log's patients and entities are found through `audit_key`,
// a full-text index (FTS5, contentless, rowids only) with one term per patient and per entity of
// each record, instead of B-tree indexes on those columns. A B-tree index takes each record's
// patient as a random insert: with many patients, every record rewrites a page of it, and reads,
// each of which is audited, spent a fifth of their time there. FTS5 gathers a batch's terms in
// memory and writes them as one segment, merged later. The terms are the values in hex, so that
// any value is one term (FTS5 keeps a term's first 32 KiB: values longer than 16 KiB may share
// one); searches still compare the columns themselves.
const char* AuditKeySchema();

// Appends `records` in order, assigning seq, recorded (at least `now`) and the chained hash.
// REQUIRES: a write transaction on `conn`; records already split per patient.
Status AppendAuditRecords(db::Connection& conn, int64_t now, std::vector<AuditRecord>& records);

// The fields of a client-submitted AuditEvent (REQUIRES: a valid AuditEvent) that searches use.
void AuditFieldsFromBody(const json::Value& event, AuditRecord& record);

// The AuditEvent of record `seq` (NotFound when absent), rendered; `fhir_base` names the server.
Result<std::string> ReadAuditEvent(db::Connection& conn, int64_t seq, std::string_view fhir_base);

// A search on AuditEvent (date, agent, entity, patient, type, subtype, outcome, action, address,
// _id; _sort by date; _count and paging); Invalid for what the audit log cannot answer. Runs in
// its own read transaction unless `in_transaction`.
Result<SearchResult> SearchAuditEvents(db::Connection& conn, const search::SearchQuery& query,
                                       std::string_view fhir_base, bool in_transaction);

// Recomputes the chain from the first record to the last.
Result<AuditVerification> VerifyAuditChain(db::Connection& conn);

// The JSON of a record as a FHIR AuditEvent.
std::string RenderAuditEvent(const AuditRecord& record, std::string_view fhir_base);

}  // namespace fhirstone::store::internal
