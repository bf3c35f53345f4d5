// The audit log: one AuditRecord per access to the FHIR API and per security event, appended to
// one tamper-evident chain (each record's hash covers its content and the hash of the one
// before). Served as FHIR AuditEvent resources (https://hl7.org/fhir/R4/auditevent.html, shaped
// after IHE Basic Audit Log Patterns); see docs/decisions/0010-audit.md.
// Value types; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fhirstone::store {

// AuditEvent.type: what kind of event a record is.
enum class AuditType {
  kRest,                // a FHIR RESTful interaction (subtype: the interaction code)
  kUserAuthentication,  // DICOM 110114: login, logout, tokens issued, refreshed, revoked
  kSecurityAlert,       // DICOM 110113: access refused, failed logins
  kSecurityAttributes,  // DICOM 110137: consent given or withdrawn (what a client may do)
};

struct AuditRecord {
  // Assigned when appended.
  int64_t seq = 0;       // the position in the log (1, 2, ...) and the AuditEvent's id
  int64_t recorded = 0;  // microseconds since the epoch, never decreasing along the log
  std::string hash;      // hex SHA-256 over the previous hash and this record's content

  int64_t started = 0;  // when the activity began (microseconds), 0 when unknown
  AuditType type = AuditType::kRest;
  std::string subtype;  // the interaction (read, search-type, ...) or the security event (login..)
  char action = 'E';    // C R U D E (AuditEvent.action)
  int outcome = 0;      // 0 success, 4 minor failure, 8 serious failure, 12 major failure
  std::string outcome_desc;
  std::string user;       // the user's FHIR reference (Practitioner/1), or ""
  std::string user_name;  // the user's login name, when there is no reference (a failed login)
  std::string client_id;  // the OAuth client
  std::string address;    // the caller's network address
  std::string request_id;
  std::string entity;   // the resource concerned: Type/id, or Type alone (a search)
  int64_t version = 0;  // the version of `entity` read or written, 0 when none
  std::string query;    // the query of a search or operation (as sent, without '?')
  std::string patient;  // the id of the patient whose data this is, or ""
  // A client-submitted AuditEvent (compact JSON, id and meta set on append): rendered as is; the
  // fields above are taken from it for searching.
  std::string body;
  // Not stored: bodies of the resources read, from which the patients are found on append (one
  // record is appended per distinct patient, as the Basic Audit Log Patterns ask), and the
  // patients of resources read whose patients were known already; `without_patient` when one of
  // those belonged to no patient.
  std::vector<std::string> resources;
  std::vector<std::string> patients;
  bool without_patient = false;
  // Not stored: the patient the query is about alone, naming no one else
  // (search::QueryPatient). When that patient's data is all the record discloses, the patient's
  // record keeps the query (IHE's patient query) instead of leaving it to a record without a
  // patient.
  std::string query_patient;
};

// What `fhirstone audit verify` reports.
struct AuditVerification {
  int64_t records = 0;
  std::string head;                   // the hash of the last record (keep it to detect truncation)
  std::vector<std::string> problems;  // empty when the chain is intact
};

}  // namespace fhirstone::store
