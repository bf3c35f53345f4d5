// The audit log on SQL. One row per record in `audit_event`, in `seq` order; `audit_head` holds
// the last seq and hash, so that removing the newest rows is detected too. The hash of record n
// is SHA-256(hash of n-1, then each field as a length-prefixed string), the first chained to 64
// zeros. AuditEvent rendering follows https://hl7.org/fhir/R4/auditevent.html and the IHE Basic
// Audit Log Patterns (https://profiles.ihe.net/ITI/BALP/): the user, the client application and
// the server as agents; the resource, the query and the patient as entities.
#include "store/internal/audit_sql.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>

#include "common/strings.h"
#include "common/time.h"
#include "store/internal/search_sql.h"
#include "store/resource_store.h"

namespace fhirstone::store::internal {
namespace {

constexpr std::string_view kGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";
constexpr std::string_view kColumns =
    "seq, recorded, started, type, subtype, action, outcome, outcome_desc, who_ref, who_name, "
    "client_id, address, request_id, entity, version, query, patient, body, hash";
// kColumns but body, which the records the server makes have none of (NULL).
constexpr std::string_view kColumnsWithoutBody =
    "seq, recorded, started, type, subtype, action, outcome, outcome_desc, who_ref, who_name, "
    "client_id, address, request_id, entity, version, query, patient, hash";

int TypeCode(AuditType t) { return static_cast<int>(t); }

struct TypeInfo {
  std::string_view system;
  std::string_view code;
  std::string_view display;
};

TypeInfo TypeCoding(AuditType t) {
  switch (t) {
    case AuditType::kRest:
      return {"http://terminology.hl7.org/CodeSystem/audit-event-type", "rest",
              "RESTful Operation"};
    case AuditType::kUserAuthentication:
      return {"http://dicom.nema.org/resources/ontology/DCM", "110114", "User Authentication"};
    case AuditType::kSecurityAlert:
      return {"http://dicom.nema.org/resources/ontology/DCM", "110113", "Security Alert"};
    case AuditType::kSecurityAttributes:
      return {"http://dicom.nema.org/resources/ontology/DCM", "110137",
              "User Security Attributes Changed"};
  }
  return {"", "", ""};
}

constexpr std::string_view kRestfulInteraction = "http://hl7.org/fhir/restful-interaction";
constexpr std::string_view kSecurityEventSystem = "https://fhirstone.dev/CodeSystem/security-event";

std::string_view SubtypeSystem(AuditType t) {
  return t == AuditType::kRest ? kRestfulInteraction : kSecurityEventSystem;
}

void AddField(std::string& out, std::string_view value) {
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

std::string Hex(const unsigned char* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

// The chained hash of `r` (its seq and recorded set) after `previous`.
std::string ChainHash(std::string_view previous, const AuditRecord& r) {
  std::string content;
  content.reserve(256 + r.body.size() + r.query.size());
  AddField(content, previous);
  AddField(content, std::to_string(r.seq));
  AddField(content, std::to_string(r.recorded));
  AddField(content, std::to_string(r.started));
  AddField(content, std::to_string(TypeCode(r.type)));
  AddField(content, r.subtype);
  AddField(content, std::string_view(&r.action, 1));
  AddField(content, std::to_string(r.outcome));
  AddField(content, r.outcome_desc);
  AddField(content, r.user);
  AddField(content, r.user_name);
  AddField(content, r.client_id);
  AddField(content, r.address);
  AddField(content, r.request_id);
  AddField(content, r.entity);
  AddField(content, std::to_string(r.version));
  AddField(content, r.query);
  AddField(content, r.patient);
  AddField(content, r.body);
  // Fetched once: EVP_sha256() makes each digest look the algorithm up in OpenSSL 3's provider
  // tables again (a third of the hash's time). Never freed, like the providers themselves.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(content.data(), content.size(), digest, &length, sha256 ? sha256 : EVP_sha256(),
             nullptr);
  return Hex(digest, length);
}

std::string Base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n);
  return out;
}

// Reads one row selected with kColumns.
AuditRecord RowRecord(db::Statement& s) {
  AuditRecord r;
  r.seq = s.ColumnInt(0);
  r.recorded = s.ColumnInt(1);
  r.started = s.ColumnInt(2);
  r.type = static_cast<AuditType>(s.ColumnInt(3));
  r.subtype = s.ColumnText(4);
  std::string_view action = s.ColumnText(5);
  r.action = action.empty() ? 'E' : action[0];
  r.outcome = static_cast<int>(s.ColumnInt(6));
  r.outcome_desc = s.ColumnText(7);
  r.user = s.ColumnText(8);
  r.user_name = s.ColumnText(9);
  r.client_id = s.ColumnText(10);
  r.address = s.ColumnText(11);
  r.request_id = s.ColumnText(12);
  r.entity = s.ColumnText(13);
  r.version = s.ColumnInt(14);
  r.query = s.ColumnText(15);
  r.patient = s.ColumnText(16);
  if (!s.ColumnIsNull(17)) r.body = s.ColumnText(17);
  r.hash = s.ColumnText(18);
  return r;
}

template <typename E>
E Finish(db::Statement& s, E e) {
  s.Reset();
  return e;
}

void AppendCoding(std::string& out, std::string_view system, std::string_view code,
                  std::string_view display) {
  out += "{\"system\":";
  json::WriteString(system, out);
  out += ",\"code\":";
  json::WriteString(code, out);
  if (!display.empty()) {
    out += ",\"display\":";
    json::WriteString(display, out);
  }
  out += '}';
}

std::string_view SubtypeDisplay(std::string_view code) {
  static const std::pair<std::string_view, std::string_view> kDisplays[] = {
      {"login", "Login"},
      {"login-failure", "Failed login"},
      {"logout", "Logout"},
      {"token", "Access token issued"},
      {"refresh", "Access token refreshed"},
      {"token-refused", "Token request refused"},
      {"revoke", "Token revoked"},
      {"consent-given", "Consent given to an application"},
      {"consent-withdrawn", "Consent withdrawn from an application"},
      {"access-denied", "Access denied"},
  };
  for (const auto& [c, d] : kDisplays)
    if (c == code) return d;
  return code;
}

// A reference value of a search (Type/id, an absolute URL under the base, or an id when
// `default_type` is given) as "Type/id", without a _history part; "" when it is none.
std::string LocalReference(std::string_view value, std::string_view fhir_base,
                           std::string_view default_type) {
  if (!fhir_base.empty() && value.starts_with(fhir_base) && value.size() > fhir_base.size() &&
      value[fhir_base.size()] == '/')
    value.remove_prefix(fhir_base.size() + 1);
  if (size_t h = value.find("/_history/"); h != std::string_view::npos) value = value.substr(0, h);
  size_t slash = value.find('/');
  if (slash == std::string_view::npos)
    return default_type.empty() || value.empty()
               ? std::string()
               : std::string(default_type) + "/" + std::string(value);
  if (value.find('/', slash + 1) != std::string_view::npos) return "";
  return std::string(value);
}

// The code of a token search value ("system|code" or "code"), checking the system when given.
std::optional<std::string> TokenCode(std::string_view value, std::string_view system) {
  size_t bar = value.find('|');
  if (bar == std::string_view::npos) return std::string(value);
  if (!system.empty() && bar > 0 && value.substr(0, bar) != system) return std::nullopt;
  return std::string(value.substr(bar + 1));
}

// The audit_key term of a patient ('p') or entity ('e') value: the prefix, then the value's bytes
// in hex, as SQLite's hex() writes them (AuditKeySchema fills the index with it).
std::string KeyTerm(char prefix, std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string term(1, prefix);
  term.reserve(1 + 2 * value.size());
  for (unsigned char c : value) {
    term += kHex[c >> 4];
    term += kHex[c & 15];
  }
  return term;
}

// Whether the entity of a record is indexed as such: a resource (Type/id), but Patient/x, whose
// records have patient x and are found by it. A search's entity is its type alone, which no
// `entity` criterion names (its values are references): indexed, each type would be a term of
// every search of that type, the largest lists of the index, rewritten at each of its merges.
bool EntityIndexed(std::string_view entity) {
  return entity.find('/') != std::string_view::npos && !entity.starts_with("Patient/");
}

// The audit_key text of a record ("" when it has no patient and no indexed entity).
std::string RecordKeys(const AuditRecord& r) {
  std::string keys;
  if (!r.patient.empty()) keys = KeyTerm('p', r.patient);
  if (EntityIndexed(r.entity)) {
    if (!keys.empty()) keys += ' ';
    keys += KeyTerm('e', r.entity);
  }
  return keys;
}

struct Where {
  std::string text;
  std::vector<Binding> bindings;
  // SQLite: groups of audit_key terms ("(t1 OR t2)"), one per condition on patient or entity; a
  // record that meets the conditions has a term of every group.
  bool sqlite = false;
  std::vector<std::string> key_groups;
  void And(std::string condition) {
    text += text.empty() ? " WHERE " : " AND ";
    text += condition;
  }
  // Narrows the rows to those with the terms of every group (the conditions stay: they decide).
  // The records are then read in the key index's order: From() joins it, Seq() names its rowid.
  void AndKeys() {
    if (key_groups.empty()) return;
    std::string match;
    for (const std::string& g : key_groups) match += (match.empty() ? "" : " AND ") + g;
    And("audit_key MATCH ?");
    bindings.emplace_back(std::move(match));
    key_groups.clear();
    keyed = true;
  }
  std::string From() const {
    return keyed ? " FROM audit_key JOIN audit_event ON audit_event.seq = audit_key.rowid"
                 : " FROM audit_event";
  }
  // The record's seq as the paging and the order name it: the key index's rowid when it drives
  // (so that it hands the records in order from the page's position on, not all of them).
  const char* Seq() const { return keyed ? "audit_key.rowid" : "seq"; }
  bool keyed = false;
};

// The group of terms of `values` of `column` (patient or entity): "(t1 OR t2)".
std::string KeyGroup(std::string_view column, const std::vector<Binding>& values) {
  std::string group = "(";
  for (const Binding& b : values) {
    if (group.size() > 1) group += " OR ";
    group += KeyTerm(column == "patient" ? 'p' : 'e', std::get<std::string>(b));
  }
  return group + ")";
}

// "(column IN (?, ?))" with the values bound, or "1 = 0" when there is none. The columns with a
// partial index (who_ref, client_id; patient and entity on PostgreSQL) repeat the index's
// condition, without which the database does not use it. On SQLite, patient and entity values
// also become a group of audit_key terms.
void InCondition(Where& w, std::string_view column, const std::vector<Binding>& values) {
  if (values.empty()) {
    w.And("1 = 0");
    return;
  }
  if (w.sqlite && (column == "patient" || column == "entity"))
    w.key_groups.push_back(KeyGroup(column, values));
  std::string c = "(";
  if (column == "patient" || column == "who_ref" || column == "client_id")
    c += std::string(column) + " <> '' AND ";
  if (column == "entity") c += "entity <> '' AND substr(entity, 1, 8) <> 'Patient/' AND ";
  c += std::string(column) + " IN (";
  for (size_t i = 0; i < values.size(); ++i) {
    c += i ? ", ?" : "?";
    w.bindings.push_back(values[i]);
  }
  w.And(c + "))");
}

Status CriterionCondition(const search::Criterion& c, std::string_view fhir_base, Where& w) {
  if (!c.chain.empty() || !c.has.empty())
    return Error::Invalid("Chained parameters and _has are not supported on AuditEvent");
  const std::string& code = c.param->code;
  auto refuse_modifier = [&]() {
    return Error::Invalid("The modifier :" + c.modifier + " is not supported on AuditEvent." +
                          code);
  };
  std::vector<Binding> values;
  if (code == "_id") {
    if (!c.modifier.empty()) return refuse_modifier();
    for (const auto& v : c.values) {
      int64_t seq = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seq);
      if (ec == std::errc() && end == v.data() + v.size()) values.emplace_back(seq);
    }
    InCondition(w, "seq", values);
    return Ok();
  }
  if (code == "date" || code == "_lastUpdated") {
    if (!c.modifier.empty()) return refuse_modifier();
    std::string any;
    for (const auto& v : c.values) {
      auto sql = DateValueSql(v, "recorded", "(recorded + 1)");
      if (!sql) return std::move(sql).error();
      any += any.empty() ? "(" : " OR ";
      any += sql->text;
      for (auto& b : sql->bindings) w.bindings.push_back(std::move(b));
    }
    w.And(any + ")");
    return Ok();
  }
  if (code == "patient") {
    if (!c.modifier.empty() && c.modifier != "Patient") return refuse_modifier();
    for (const auto& v : c.values) {
      std::string ref = LocalReference(v, fhir_base, "Patient");
      if (ref.starts_with("Patient/")) values.emplace_back(ref.substr(8));
    }
    InCondition(w, "patient", values);
    return Ok();
  }
  if (code == "agent") {
    if (c.modifier == "identifier") {
      for (const auto& v : c.values) {
        size_t bar = v.find('|');
        values.emplace_back(bar == std::string::npos ? v : v.substr(bar + 1));
      }
      InCondition(w, "client_id", values);
      return Ok();
    }
    if (!c.modifier.empty() && c.modifier.find_first_of("abcdefghijklmnopqrstuvwxyz") == 0)
      return refuse_modifier();
    for (const auto& v : c.values) {
      std::string ref = LocalReference(v, fhir_base, c.modifier);
      if (!ref.empty()) values.emplace_back(ref);
    }
    InCondition(w, "who_ref", values);
    return Ok();
  }
  if (code == "entity") {
    if (!c.modifier.empty() && c.modifier.find_first_of("abcdefghijklmnopqrstuvwxyz") == 0)
      return refuse_modifier();
    // A record about Patient/x always has patient x: those are found by patient.
    std::vector<Binding> patients;
    for (const auto& v : c.values) {
      std::string ref = LocalReference(v, fhir_base, c.modifier);
      if (ref.starts_with("Patient/")) {
        patients.emplace_back(ref.substr(8));
      } else if (!ref.empty()) {
        values.emplace_back(ref);
      }
    }
    if (values.empty() || patients.empty()) {
      InCondition(w, patients.empty() ? "entity" : "patient", patients.empty() ? values : patients);
      return Ok();
    }
    Where e, p;
    InCondition(e, "entity", values);
    InCondition(p, "patient", patients);
    w.And("(" + e.text.substr(7) + " OR " + p.text.substr(7) + ")");  // without " WHERE "
    if (w.sqlite)
      w.key_groups.push_back("(" + KeyGroup("entity", values) + " OR " +
                             KeyGroup("patient", patients) + ")");
    for (auto* part : {&e, &p})
      for (auto& b : part->bindings) w.bindings.push_back(std::move(b));
    return Ok();
  }
  if (code == "type" || code == "subtype" || code == "outcome" || code == "action") {
    if (!c.modifier.empty()) return refuse_modifier();
    for (const auto& v : c.values) {
      if (code == "type") {
        for (AuditType t : {AuditType::kRest, AuditType::kUserAuthentication,
                            AuditType::kSecurityAlert, AuditType::kSecurityAttributes}) {
          TypeInfo info = TypeCoding(t);
          auto wanted = TokenCode(v, info.system);
          if (wanted && *wanted == info.code) values.emplace_back(int64_t{TypeCode(t)});
        }
      } else if (code == "subtype") {
        size_t bar = v.find('|');
        std::string_view system =
            bar == std::string::npos ? std::string_view() : std::string_view(v).substr(0, bar);
        if (!system.empty() && system != kRestfulInteraction && system != kSecurityEventSystem)
          continue;
        values.emplace_back(v.substr(bar == std::string::npos ? 0 : bar + 1));
      } else if (code == "outcome") {
        auto wanted = TokenCode(v, "http://hl7.org/fhir/audit-event-outcome");
        int64_t n = 0;
        if (wanted && !wanted->empty() &&
            std::from_chars(wanted->data(), wanted->data() + wanted->size(), n).ptr ==
                wanted->data() + wanted->size())
          values.emplace_back(n);
      } else {
        auto wanted = TokenCode(v, "http://hl7.org/fhir/audit-event-action");
        if (wanted) values.emplace_back(*wanted);
      }
    }
    InCondition(w,
                code == "type"      ? "type"
                : code == "subtype" ? "subtype"
                : code == "outcome" ? "outcome"
                                    : "action",
                values);
    return Ok();
  }
  if (code == "address") {
    if (c.modifier == "exact") {
      for (const auto& v : c.values) values.emplace_back(v);
      InCondition(w, "address", values);
      return Ok();
    }
    if (!c.modifier.empty()) return refuse_modifier();
    std::string any;
    for (const auto& v : c.values) {
      any += any.empty() ? "(" : " OR ";
      any += "substr(address, 1, ?) = ?";
      w.bindings.emplace_back(static_cast<int64_t>(v.size()));
      w.bindings.emplace_back(v);
    }
    w.And(any + ")");
    return Ok();
  }
  return Error::Invalid("The search parameter '" + code +
                        "' is not supported on AuditEvent: use date, agent, entity, patient, "
                        "type, subtype, outcome, action, address or _id");
}

}  // namespace

const char* AuditSchema() {
  return "CREATE TABLE audit_event ("
         "  seq INTEGER PRIMARY KEY, recorded INTEGER NOT NULL, started INTEGER NOT NULL,"
         "  type INTEGER NOT NULL, subtype TEXT NOT NULL, action TEXT NOT NULL,"
         "  outcome INTEGER NOT NULL, outcome_desc TEXT NOT NULL, who_ref TEXT NOT NULL,"
         "  who_name TEXT NOT NULL, client_id TEXT NOT NULL, address TEXT NOT NULL,"
         "  request_id TEXT NOT NULL, entity TEXT NOT NULL, version INTEGER NOT NULL,"
         "  query TEXT NOT NULL, patient TEXT NOT NULL, body BLOB, hash TEXT NOT NULL);"
         "CREATE INDEX audit_event_recorded ON audit_event (recorded);"
         "CREATE INDEX audit_event_patient ON audit_event (patient, seq) WHERE patient <> '';"
         "CREATE INDEX audit_event_who ON audit_event (who_ref, seq) WHERE who_ref <> '';"
         "CREATE INDEX audit_event_entity ON audit_event (entity, seq)"
         "  WHERE entity <> '' AND substr(entity, 1, 8) <> 'Patient/';"
         "CREATE INDEX audit_event_client ON audit_event (client_id, seq) WHERE client_id <> '';"
         "CREATE TABLE audit_head (one INTEGER PRIMARY KEY CHECK (one = 1),"
         "  seq INTEGER NOT NULL, recorded INTEGER NOT NULL, hash TEXT NOT NULL);"
         "INSERT INTO audit_head (one, seq, recorded, hash) VALUES (1, 0, 0, "
         "'0000000000000000000000000000000000000000000000000000000000000000');";
}

const char* AuditKeySchema() {
  // The ascii tokenizer folds case: harmless on hex digits.
  return "CREATE VIRTUAL TABLE audit_key USING fts5(k, content = '', detail = 'none',"
         "  columnsize = 0, tokenize = 'ascii');"
         "INSERT INTO audit_key (rowid, k) SELECT seq,"
         "  CASE WHEN patient <> '' THEN 'p' || hex(patient) ELSE '' END || ' ' ||"
         "  CASE WHEN entity <> '' AND substr(entity, 1, 8) <> 'Patient/' THEN 'e' || hex(entity)"
         "  ELSE '' END FROM audit_event"
         "  WHERE patient <> '' OR (entity <> '' AND substr(entity, 1, 8) <> 'Patient/');"
         "DROP INDEX audit_event_patient;"
         "DROP INDEX audit_event_entity;";
}

Status AppendAuditRecords(db::Connection& conn, int64_t now, std::vector<AuditRecord>& records) {
  if (records.empty()) return Ok();
  auto head = conn.Prepare("SELECT seq, recorded, hash FROM audit_head WHERE one = 1");
  if (!head) return std::move(head).error();
  auto row = (*head)->Step();
  if (!row) return Finish(**head, std::move(row).error());
  if (!*row) return Finish(**head, Error::Internal("The audit log has no head"));
  int64_t seq = (*head)->ColumnInt(0);
  int64_t recorded = std::max(now, (*head)->ColumnInt(1));
  std::string hash((*head)->ColumnText(2));
  (*head)->Reset();
  auto insert =
      conn.Prepare("INSERT INTO audit_event (" + std::string(kColumnsWithoutBody) +
                   ", body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert) return std::move(insert).error();
  db::Statement& s = **insert;
  db::Statement* keys = nullptr;
  if (conn.dialect() == db::Dialect::kSqlite) {
    auto prepared = conn.Prepare("INSERT INTO audit_key (rowid, k) VALUES (?, ?)");
    if (!prepared) return std::move(prepared).error();
    keys = *prepared;
  }
  for (AuditRecord& r : records) {
    r.seq = ++seq;
    r.recorded = recorded;
    for (std::string* field : {&r.subtype, &r.outcome_desc, &r.user, &r.user_name, &r.client_id,
                               &r.address, &r.request_id, &r.entity, &r.query, &r.patient})
      MakeValidUtf8(*field);  // as PostgreSQL stores them, and so as hashed
    if (!r.body.empty()) {    // a client's AuditEvent: its id and meta are the log's
      auto parsed = json::Parse(r.body);
      if (parsed && parsed->is_object()) {
        parsed->Set("id", json::Value(std::to_string(r.seq)));
        json::Value meta = json::Value::EmptyObject();
        meta.Set("versionId", json::Value("1"));
        meta.Set("lastUpdated", json::Value(FormatInstant(r.recorded)));
        if (const json::Value* old = parsed->Find("meta"); old && old->is_object())
          for (const auto& [k, v] : old->as_object())
            if (k != "versionId" && k != "lastUpdated") meta.Set(k, v);
        parsed->Set("meta", std::move(meta));
        // resourceType, id and meta first, as every stored resource.
        json::Object& members = parsed->as_object();
        std::stable_partition(members.begin(), members.end(), [](const json::Member& m) {
          return m.first == "resourceType" || m.first == "id" || m.first == "meta";
        });
        r.body = json::Write(*parsed);
      }
    }
    r.hash = ChainHash(hash, r);
    const db::Value values[] = {int64_t{r.seq},
                                int64_t{r.recorded},
                                int64_t{r.started},
                                int64_t{TypeCode(r.type)},
                                std::string_view(r.subtype),
                                std::string_view(&r.action, 1),
                                int64_t{r.outcome},
                                std::string_view(r.outcome_desc),
                                std::string_view(r.user),
                                std::string_view(r.user_name),
                                std::string_view(r.client_id),
                                std::string_view(r.address),
                                std::string_view(r.request_id),
                                std::string_view(r.entity),
                                int64_t{r.version},
                                std::string_view(r.query),
                                std::string_view(r.patient),
                                std::string_view(r.hash)};
    // PostgreSQL: the records without a body go by one COPY (db::Connection::QueueRow, in the
    // order queued; the INSERT of a record with a body sends those before it first, the rest are
    // sent at the end) instead of one INSERT round trip each: a batch of 4,096 records took half
    // a second, and the writes queued behind it waited.
    if (conn.dialect() == db::Dialect::kPostgres && r.body.empty() &&
        conn.QueueRow("audit_event", kColumnsWithoutBody, values)) {
      hash = r.hash;
      continue;
    }
    s.BindValues(values);
    if (r.body.empty()) {
      s.BindNull(19);
    } else {
      s.BindBlob(19, r.body);
    }
    auto done = s.Run();
    if (!done) return std::move(done).error();
    if (keys) {
      std::string k = RecordKeys(r);
      // Queued (db::Connection::QueueRow): the index takes the terms of all the transaction's
      // records at its commit, as one segment, instead of one per write's savepoint.
      const db::Value values[] = {int64_t{r.seq}, std::string_view(k)};
      if (!k.empty() && !conn.QueueRow("audit_key", "rowid, k", values)) {
        keys->BindValues(values);
        auto keyed = keys->Run();
        if (!keyed) return std::move(keyed).error();
      }
    }
    hash = r.hash;
  }
  // The queued records are sent now: a batch that fails fails its own write (a write of a group
  // commit rolls back to its savepoint alone), not the group's commit.
  FHIRSTONE_RETURN_IF_ERROR(conn.SendQueued("audit_event"));
  auto update = conn.Prepare("UPDATE audit_head SET seq = ?, recorded = ?, hash = ? WHERE one = 1");
  if (!update) return std::move(update).error();
  (*update)->BindInt(1, seq);
  (*update)->BindInt(2, recorded);
  (*update)->BindText(3, hash);
  auto done = (*update)->Run();
  if (!done) return std::move(done).error();
  return Ok();
}

void AuditFieldsFromBody(const json::Value& event, AuditRecord& r) {
  std::string_view type_system, type_code;
  if (const json::Value* type = event.Find("type"); type && type->is_object()) {
    type_system = type->GetString("system");
    type_code = type->GetString("code");
  }
  r.type = AuditType::kRest;
  for (AuditType t : {AuditType::kUserAuthentication, AuditType::kSecurityAlert,
                      AuditType::kSecurityAttributes}) {
    TypeInfo info = TypeCoding(t);
    if (type_system == info.system && type_code == info.code) r.type = t;
  }
  if (const json::Value* subtypes = event.Find("subtype"); subtypes && subtypes->is_array() &&
                                                           !subtypes->as_array().empty() &&
                                                           subtypes->as_array()[0].is_object())
    r.subtype = subtypes->as_array()[0].GetString("code");
  std::string_view action = event.GetString("action");
  r.action =
      action.size() == 1 && std::string_view("CRUDE").find(action[0]) != std::string_view::npos
          ? action[0]
          : 'E';
  std::string_view outcome = event.GetString("outcome");
  r.outcome = 0;
  std::from_chars(outcome.data(), outcome.data() + outcome.size(), r.outcome);
  r.outcome_desc = event.GetString("outcomeDesc");
  auto patient_of = [](std::string_view ref) -> std::string {
    if (ref.starts_with("Patient/") && ref.find('/', 8) == std::string_view::npos)
      return std::string(ref.substr(8));
    return "";
  };
  if (const json::Value* agents = event.Find("agent"); agents && agents->is_array()) {
    for (const auto& agent : agents->as_array()) {
      if (!agent.is_object()) continue;
      const json::Value* who = agent.Find("who");
      if (!who || !who->is_object()) continue;
      std::string_view ref = who->GetString("reference");
      const json::Value* requestor = agent.Find("requestor");
      if (!ref.empty() &&
          (r.user.empty() || (requestor && requestor->is_bool() && requestor->as_bool())))
        r.user = ref;
      if (r.patient.empty()) r.patient = patient_of(ref);
    }
  }
  if (const json::Value* entities = event.Find("entity"); entities && entities->is_array()) {
    for (const auto& entity : entities->as_array()) {
      if (!entity.is_object()) continue;
      const json::Value* what = entity.Find("what");
      if (!what || !what->is_object()) continue;
      std::string_view ref = what->GetString("reference");
      if (ref.empty()) continue;
      std::string local = LocalReference(ref, "", "");
      std::string patient = patient_of(local);
      if (!patient.empty()) {
        r.patient = patient;
      } else if (r.entity.empty() && !local.empty()) {
        r.entity = local;
      }
    }
  }
  if (r.entity.empty() && !r.patient.empty()) r.entity = "Patient/" + r.patient;
}

std::string RenderAuditEvent(const AuditRecord& r, std::string_view fhir_base) {
  if (!r.body.empty()) return r.body;
  std::string out;
  out.reserve(1024);
  std::string recorded = FormatInstant(r.recorded);
  out += "{\"resourceType\":\"AuditEvent\",\"id\":\"";
  out += std::to_string(r.seq);
  out += "\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"";
  out += recorded;
  out += "\"},\"type\":";
  TypeInfo type = TypeCoding(r.type);
  AppendCoding(out, type.system, type.code, type.display);
  if (!r.subtype.empty()) {
    out += ",\"subtype\":[";
    AppendCoding(
        out, SubtypeSystem(r.type), r.subtype,
        r.type == AuditType::kRest ? std::string_view(r.subtype) : SubtypeDisplay(r.subtype));
    out += ']';
  }
  out += ",\"action\":\"";
  out += r.action;
  out += '"';
  if (r.started > 0) {
    out += ",\"period\":{\"start\":\"";
    out += FormatInstant(std::min(r.started, r.recorded));
    out += "\",\"end\":\"";
    out += recorded;
    out += "\"}";
  }
  out += ",\"recorded\":\"";
  out += recorded;
  out += "\",\"outcome\":\"";
  out += std::to_string(r.outcome);
  out += '"';
  if (!r.outcome_desc.empty()) {
    out += ",\"outcomeDesc\":";
    json::WriteString(r.outcome_desc, out);
  }
  // Agents: the user, the client application (with the caller's address) and this server.
  out += ",\"agent\":[";
  bool has_user = !r.user.empty() || !r.user_name.empty();
  if (has_user) {
    out += "{\"type\":{\"coding\":[";
    AppendCoding(out, "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP",
                 "information recipient");
    out += "]},\"who\":{";
    if (!r.user.empty()) {
      out += "\"reference\":";
      json::WriteString(r.user, out);
    } else {
      out += "\"display\":";
      json::WriteString(r.user_name, out);
    }
    out += "},\"requestor\":true";
    if (r.client_id.empty() && !r.address.empty()) {
      out += ",\"network\":{\"address\":";
      json::WriteString(r.address, out);
      out += ",\"type\":\"2\"}";
    }
    out += "},";
  }
  if (!r.client_id.empty() || (!has_user && !r.address.empty())) {
    out += "{\"type\":{\"coding\":[";
    AppendCoding(out, "http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID");
    out += "]}";
    if (!r.client_id.empty()) {
      out += ",\"who\":{\"identifier\":{\"system\":";
      json::WriteString(std::string(fhir_base.substr(0, fhir_base.rfind('/'))) + "/auth/clients",
                        out);
      out += ",\"value\":";
      json::WriteString(r.client_id, out);
      out += "}}";
    }
    out += has_user ? ",\"requestor\":false" : ",\"requestor\":true";
    if (!r.address.empty()) {
      out += ",\"network\":{\"address\":";
      json::WriteString(r.address, out);
      out += ",\"type\":\"2\"}";
    }
    out += "},";
  }
  out += "{\"type\":{\"coding\":[";
  AppendCoding(out, "http://dicom.nema.org/resources/ontology/DCM", "110152",
               "Destination Role ID");
  out += "]},\"who\":{\"display\":\"Fhirstone\"},\"requestor\":false}]";
  out += ",\"source\":{\"site\":";
  json::WriteString(fhir_base, out);
  out += ",\"observer\":{\"display\":\"Fhirstone\"},\"type\":[";
  AppendCoding(out, "http://terminology.hl7.org/CodeSystem/security-source-type", "4",
               "Application Server");
  out += "]}";
  // Entities: the resource (or the type searched), the query, the patient, the request id.
  std::string entities;
  auto entity = [&](std::string_view body) {
    entities += entities.empty() ? "" : ",";
    entities += body;
  };
  if (r.entity.find('/') != std::string::npos) {
    std::string e = "{\"what\":{\"reference\":";
    json::WriteString(
        r.version > 0 ? r.entity + "/_history/" + std::to_string(r.version) : r.entity, e);
    e += "},\"type\":";
    AppendCoding(e, "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2",
                 "System Object");
    e += ",\"role\":";
    AppendCoding(e, "http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource");
    e += '}';
    entity(e);
  }
  if (!r.query.empty() || (!r.entity.empty() && r.entity.find('/') == std::string::npos)) {
    std::string e = "{\"type\":";
    AppendCoding(e, "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2",
                 "System Object");
    e += ",\"role\":";
    AppendCoding(e, "http://terminology.hl7.org/CodeSystem/object-role", "24", "Query");
    if (!r.entity.empty() && r.entity.find('/') == std::string::npos) {
      e += ",\"name\":";
      json::WriteString(r.entity, e);
    }
    if (!r.query.empty()) {
      e += ",\"query\":\"";
      e += Base64(r.query);
      e += '"';
    }
    e += '}';
    entity(e);
  }
  if (!r.patient.empty()) {
    std::string e = "{\"what\":{\"reference\":";
    json::WriteString("Patient/" + r.patient, e);
    e += "},\"type\":";
    AppendCoding(e, "http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person");
    e += ",\"role\":";
    AppendCoding(e, "http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient");
    e += '}';
    entity(e);
  }
  if (!r.request_id.empty()) {
    std::string e = "{\"what\":{\"identifier\":{\"value\":";
    json::WriteString(r.request_id, e);
    e += "}},\"type\":";
    AppendCoding(e, "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                 "XrequestId", "X-Request-Id");
    e += '}';
    entity(e);
  }
  if (!entities.empty()) {
    out += ",\"entity\":[";
    out += entities;
    out += ']';
  }
  out += '}';
  return out;
}

Result<std::string> ReadAuditEvent(db::Connection& conn, int64_t seq, std::string_view fhir_base) {
  auto stmt = conn.Prepare("SELECT " + std::string(kColumns) + " FROM audit_event WHERE seq = ?");
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  s.BindInt(1, seq);
  auto row = s.Step();
  if (!row) return Finish(s, std::move(row).error());
  if (!*row)
    return Finish(s,
                  Error::NotFound("Resource AuditEvent/" + std::to_string(seq) + " is not known"));
  AuditRecord r = RowRecord(s);
  s.Reset();
  return RenderAuditEvent(r, fhir_base);
}

Result<SearchResult> SearchAuditEvents(db::Connection& conn, const search::SearchQuery& query,
                                       std::string_view fhir_base, bool in_transaction) {
  if (!query.includes.empty())
    return Error::Invalid("_include and _revinclude are not supported on AuditEvent");
  Where w;
  w.sqlite = conn.dialect() == db::Dialect::kSqlite;
  for (const auto& c : query.criteria)
    FHIRSTONE_RETURN_IF_ERROR(CriterionCondition(c, fhir_base, w));
  if (query.compartment) {
    if (query.compartment->type != "Patient")
      return Error::Invalid("AuditEvent is searched in the Patient compartment only");
    w.And("patient = ?");
    w.bindings.emplace_back(query.compartment->id);
    if (w.sqlite) w.key_groups.push_back(KeyGroup("patient", {query.compartment->id}));
  }
  w.AndKeys();
  bool descending = true;  // newest first unless _sort=date
  if (!query.sort.empty()) {
    const std::string& code = query.sort.front().param->code;
    if (query.sort.size() > 1 || (code != "date" && code != "_lastUpdated" && code != "_id"))
      return Error::Invalid("AuditEvent searches sort by date only (_sort=date or -date)");
    descending = query.sort.front().descending;
  }
  std::optional<int64_t> after;
  if (query.page) {
    int64_t cursor = 0;
    const std::string& p = *query.page;
    auto [end, ec] = std::from_chars(p.data() + (p.empty() ? 0 : 1), p.data() + p.size(), cursor);
    if (p.empty() || p[0] != 'a' || ec != std::errc() || end != p.data() + p.size())
      return Error::Invalid("Malformed _page value");
    after = cursor;
  }
  std::optional<db::Transaction> snapshot;  // the page and its total see the same rows
  if (!in_transaction) {
    auto begun = db::Transaction::Begin(conn, /*write=*/false);
    if (!begun) return std::move(begun).error();
    snapshot.emplace(std::move(begun).value());
  }
  SearchResult result;
  if (query.total == search::TotalMode::kAccurate || query.summary == search::SummaryMode::kCount) {
    auto count = conn.Prepare("SELECT count(*)" + w.From() + w.text);
    if (!count) return std::move(count).error();
    int i = 1;
    Bind(**count, i, w.bindings);
    auto row = (*count)->Step();
    if (!row) return Finish(**count, std::move(row).error());
    result.total = (*count)->ColumnInt(0);
    (*count)->Reset();
  }
  if (query.summary == search::SummaryMode::kCount) return result;
  Where page = w;
  if (after) {
    page.And(std::string(w.Seq()) + (descending ? " < ?" : " > ?"));
    page.bindings.emplace_back(*after);
  }
  std::string sql = "SELECT " + std::string(kColumns) + w.From() + page.text + " ORDER BY " +
                    w.Seq() + (descending ? " DESC" : "") + " LIMIT ?";
  auto stmt = conn.Prepare(sql);
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  int i = 1;
  Bind(s, i, page.bindings);
  s.BindInt(i, query.count + 1);
  int64_t last = 0;
  while (true) {
    auto row = s.Step();
    if (!row) return Finish(s, std::move(row).error());
    if (!*row) break;
    if (static_cast<int>(result.matches.size()) == query.count) {
      result.next_page = "a" + std::to_string(last);
      break;
    }
    AuditRecord r = RowRecord(s);
    last = r.seq;
    ResourceVersion v;
    v.type = "AuditEvent";
    v.id = std::to_string(r.seq);
    v.version = 1;
    v.last_updated = r.recorded;
    v.body = RenderAuditEvent(r, fhir_base);
    result.matches.push_back(std::move(v));
  }
  s.Reset();
  result.plan = sql;
  return result;
}

Result<AuditVerification> VerifyAuditChain(db::Connection& conn) {
  auto tx = db::Transaction::Begin(conn, /*write=*/false);
  if (!tx) return std::move(tx).error();
  AuditVerification out;
  auto stmt =
      conn.PrepareScan("SELECT " + std::string(kColumns) + " FROM audit_event ORDER BY seq");
  if (!stmt) return std::move(stmt).error();
  db::Statement& s = **stmt;
  std::string previous(kGenesis);
  int64_t expected = 1;
  int64_t last_recorded = 0;
  constexpr size_t kMaxProblems = 100;
  auto problem = [&](std::string text) {
    if (out.problems.size() < kMaxProblems) out.problems.push_back(std::move(text));
  };
  while (true) {
    auto row = s.Step();
    if (!row) return Finish(s, std::move(row).error());
    if (!*row) break;
    AuditRecord r = RowRecord(s);
    ++out.records;
    if (r.seq != expected)
      problem(r.seq > expected ? "records " + std::to_string(expected) + " to " +
                                     std::to_string(r.seq - 1) + " were removed"
                               : "record " + std::to_string(r.seq) + " is out of order");
    if (ChainHash(previous, r) != r.hash) {
      problem("record " + std::to_string(r.seq) +
              " was changed (its hash does not match its content and the record before it)");
    }
    if (r.recorded < last_recorded)
      problem("record " + std::to_string(r.seq) + " is dated before the record preceding it");
    last_recorded = r.recorded;
    previous = r.hash;
    expected = r.seq + 1;
  }
  s.Reset();
  auto head = conn.Prepare("SELECT seq, hash FROM audit_head WHERE one = 1");
  if (!head) return std::move(head).error();
  auto row = (*head)->Step();
  if (!row) return Finish(**head, std::move(row).error());
  if (!*row) {
    problem("the head of the audit log was removed");
  } else {
    int64_t head_seq = (*head)->ColumnInt(0);
    std::string head_hash((*head)->ColumnText(1));
    if (head_seq != expected - 1)
      problem(head_seq > expected - 1 ? "the newest records " + std::to_string(expected) + " to " +
                                            std::to_string(head_seq) + " were removed"
                                      : "the head of the audit log is behind its last record");
    else if (head_hash != previous)
      problem("the last record does not match the head of the audit log");
  }
  (*head)->Reset();
  out.head = previous;
  return out;
}

}  // namespace fhirstone::store::internal
