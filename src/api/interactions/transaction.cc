// batch and transaction: https://hl7.org/fhir/R4/http.html#transaction.
// A transaction runs in one write transaction: entries are processed in the spec's order
// (DELETE, POST, PUT, GET), urn:uuid / urn:oid fullUrls (and every other fullUrl) are replaced
// by the ids they get in every reference, forward references included, conditional references
// (Type?criteria) and ifNoneExist are resolved inside it; any failure rolls everything back and
// the answer names the entry. A batch answers entry by entry, each in its own transaction.
// GET entries are answered through the API after the writes (of a transaction: once committed).
#include <map>
#include <set>

#include "api/error_response.h"
#include "api/internal/request.h"
#include "common/strings.h"
#include "common/time.h"
#include "fhir/model.h"
#include "fhir/validate.h"
#include "store/audit_queue.h"

namespace fhirstone::api {
namespace {

enum class Verb { kDelete, kPost, kPut, kPatch, kGet };

struct Entry {
  size_t index;
  Verb verb;
  std::string url;  // request.url as sent
  std::string type;
  std::string id;        // for PUT/DELETE/GET Type/id
  std::string criteria;  // for conditional PUT/DELETE (after '?')
  std::string full_url;
  std::string if_none_exist;
  std::optional<int64_t> if_match;
  json::Value resource;  // POST/PUT
  // Set by PrepareAhead, before the write transaction: the resource's search index (the
  // resource is valid), or why the resource is invalid (reported where the write would have
  // validated it, after the access checks and the entries processed before).
  std::shared_ptr<store::PreparedIndex> prepared;
  std::optional<Error> invalid;
  // Outcome
  int status = 0;
  std::optional<store::ResourceVersion> version;
  std::string location;
  http::Response get_response;
};

std::string Where(size_t index) { return "Bundle.entry[" + std::to_string(index) + "]"; }

// The audit record of a batch entry that was refused (those that succeed are recorded with their
// writes; GET entries are dispatched and recorded as requests of their own).
void AuditRefusedEntry(const ApiContext& ctx, const FhirRequest& req, const Entry& e,
                       const Error& error) {
  if (!req.audit || !ctx.options.audit) return;
  store::AuditRecord r = req.audit->record;
  r.resources.clear();
  r.patients.clear();
  r.without_patient = false;
  r.query.clear();
  switch (e.verb) {
    case Verb::kDelete:
      r.subtype = "delete";
      r.action = 'D';
      break;
    case Verb::kPost:
      r.subtype = "create";
      r.action = 'C';
      break;
    case Verb::kPut:
      r.subtype = "update";
      r.action = 'U';
      break;
    case Verb::kPatch:
      r.subtype = "patch";
      r.action = 'U';
      break;
    case Verb::kGet:
      return;
  }
  r.entity = e.id.empty() ? e.type : e.type + "/" + e.id;
  if (e.type == "Patient" && !e.id.empty()) r.patient = e.id;
  int status = HttpStatus(error.code());
  r.outcome = status >= 500 ? 8 : 4;
  r.outcome_desc = Where(e.index) + ": " + error.message();
  if (status == 403) {
    r.type = store::AuditType::kSecurityAlert;
    r.subtype = "access-denied";
  }
  ctx.options.audit->Submit(std::move(r));
}

Error AtEntry(const Error& e, size_t index) {
  Error out(e.code(), Where(index) + ": " + e.message(),
            e.issues().front().expression.empty() ? Where(index) : e.issues().front().expression);
  for (size_t i = 1; i < e.issues().size(); ++i)
    out.AddIssue(e.issues()[i].message, e.issues()[i].expression);
  return out;
}

std::string_view Str(const json::Value* v) {
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// Reads one entry's request; refuses what cannot be processed.
Result<Entry> ReadEntry(const json::Value& e, size_t index) {
  Entry entry;
  entry.index = index;
  const json::Value* request = e.Find("request");
  if (!request) return Error::Invalid(Where(index) + " has no request", Where(index) + ".request");
  std::string_view method = Str(request->Find("method"));
  entry.url = std::string(Str(request->Find("url")));
  if (entry.url.empty())
    return Error::Invalid(Where(index) + ".request.url is missing", Where(index) + ".request.url");
  if (entry.url.starts_with("/")) entry.url.erase(0, 1);
  entry.full_url = std::string(Str(e.Find("fullUrl")));
  entry.if_none_exist = std::string(Str(request->Find("ifNoneExist")));
  if (auto if_match = Str(request->Find("ifMatch")); !if_match.empty()) {
    entry.if_match = ParseETagVersion(if_match);
    if (!entry.if_match)
      return Error::Invalid(Where(index) + ".request.ifMatch is not a version ETag",
                            Where(index) + ".request.ifMatch");
  }
  if (!e.is_object()) return Error::Invalid(Where(index) + " is not an object", Where(index));
  if (const json::Value* r = e.Find("resource")) entry.resource = *r;
  std::string_view path = entry.url;
  size_t q = path.find('?');
  if (q != std::string_view::npos) {
    entry.criteria = std::string(path.substr(q + 1));
    path = path.substr(0, q);
  }
  auto parts = Split(path, '/');
  entry.type = std::string(parts[0]);
  if (method == "GET" || method == "HEAD") {
    entry.verb = Verb::kGet;
    return entry;
  }
  if (!fhir::IsResourceType(entry.type))
    return Error::NotFound(Where(index) + ": unknown resource type in '" + entry.url + "'");
  if (method == "POST") {
    entry.verb = Verb::kPost;
    if (parts.size() != 1 || !entry.criteria.empty())
      return Error::Invalid(Where(index) + ": POST goes to a type, not '" + entry.url + "'");
  } else if (method == "PUT" || method == "DELETE") {
    entry.verb = method == "PUT" ? Verb::kPut : Verb::kDelete;
    if (entry.criteria.empty()) {
      if (parts.size() != 2 || !fhir::IsValidId(parts[1]))
        return Error::Invalid(Where(index) + ": expected Type/id or Type?criteria, not '" +
                              entry.url + "'");
      entry.id = std::string(parts[1]);
    } else if (parts.size() != 1) {
      return Error::Invalid(Where(index) + ": expected Type?criteria, not '" + entry.url + "'");
    }
  } else if (method == "PATCH") {
    entry.verb = Verb::kPatch;
    if (parts.size() != 2 || !fhir::IsValidId(parts[1]) || !entry.criteria.empty())
      return Error::Invalid(Where(index) + ": PATCH goes to Type/id, not '" + entry.url + "'");
    entry.id = std::string(parts[1]);
    std::string_view kind = entry.resource.GetString("resourceType");
    if (kind != "Parameters" && kind != "Binary")
      return Error::Invalid(Where(index) +
                                ": a PATCH entry carries a Parameters (FHIRPath Patch) "
                                "or a Binary (JSON Patch) resource",
                            Where(index) + ".resource");
  } else {
    return Error::Invalid(Where(index) + ".request.method '" + std::string(method) +
                          "' is not valid");
  }
  if (entry.verb == Verb::kPost || entry.verb == Verb::kPut) {
    if (!entry.resource.is_object())
      return Error::Invalid(Where(index) + " needs a resource", Where(index) + ".resource");
    if (entry.resource.GetString("resourceType") != entry.type)
      return Error::Invalid(Where(index) + ": the resource is not a " + entry.type,
                            Where(index) + ".resource");
    if (entry.verb == Verb::kPut && !entry.id.empty()) {
      std::string_view body_id = entry.resource.GetString("id");
      if (body_id != entry.id)
        return Error::Invalid(Where(index) + ": the resource id does not match '" + entry.url + "'",
                              Where(index) + ".resource.id");
    }
  }
  return entry;
}

// A conditional reference: Type?criteria.
bool IsConditional(std::string_view ref) {
  size_t q = ref.find('?');
  return q != std::string_view::npos && fhir::IsResourceType(ref.substr(0, q));
}

// Collects the conditional references (Type?criteria) found in `v`.
void CollectConditionalReferences(const json::Value& v, std::set<std::string>& out) {
  switch (v.type()) {
    case json::Type::kArray:
      for (const auto& item : v.as_array()) CollectConditionalReferences(item, out);
      return;
    case json::Type::kObject:
      for (const auto& [key, value] : v.as_object()) {
        if (key == "reference" && value.type() == json::Type::kString &&
            IsConditional(value.as_string())) {
          out.insert(value.as_string());
          continue;
        }
        CollectConditionalReferences(value, out);
      }
      return;
    default:
      return;
  }
}

// Replaces references: fullUrls by what they became, and Type?criteria by the one match.
class ReferenceRewriter {
 public:
  // `resolved`: conditional references already resolved (Type?criteria -> Type/id). Without a
  // transaction (`tx` nullptr), any other conditional reference is an internal error: the caller
  // resolved them all (PrepareAhead).
  ReferenceRewriter(const ApiContext& ctx, store::StoreTransaction* tx,
                    std::map<std::string, std::string> ids,
                    std::map<std::string, std::string> resolved = {})
      : ctx_(ctx), tx_(tx), ids_(std::move(ids)), resolved_(std::move(resolved)) {}

  Status Rewrite(json::Value& v, bool in_reference) {
    switch (v.type()) {
      case json::Type::kString: {
        auto it = ids_.find(v.as_string());
        if (it != ids_.end()) {
          v = json::Value(it->second);
        } else if (in_reference) {
          const std::string& ref = v.as_string();
          if (IsConditional(ref)) {
            size_t q = ref.find('?');
            auto resolved = Resolve(ref.substr(0, q), ref.substr(q + 1));
            if (!resolved) return std::move(resolved).error();
            v = json::Value(*resolved);
          } else if (ref.starts_with("urn:uuid:") || ref.starts_with("urn:oid:")) {
            return Error::NotFound("Reference '" + ref + "' names no entry of the Bundle");
          }
        }
        return Ok();
      }
      case json::Type::kArray:
        for (auto& item : v.as_array()) FHIRSTONE_RETURN_IF_ERROR(Rewrite(item, false));
        return Ok();
      case json::Type::kObject:
        for (auto& [key, value] : v.as_object())
          FHIRSTONE_RETURN_IF_ERROR(Rewrite(value, key == "reference"));
        return Ok();
      default:
        return Ok();
    }
  }

 private:
  Result<std::string> Resolve(const std::string& type, const std::string& criteria) {
    std::string key = type + "?" + criteria;
    auto cached = resolved_.find(key);
    if (cached != resolved_.end()) return cached->second;
    if (!tx_) return Error::Internal("A conditional reference was met outside the transaction");
    auto matches = MatchConditional(ctx_, *tx_, type, criteria, 2);
    if (!matches) return std::move(matches).error();
    if (matches->size() != 1)
      return Error::PreconditionFailed("The conditional reference '" + key + "' matches " +
                                       std::string(matches->empty() ? "no" : "several") +
                                       " resources");
    std::string out = type + "/" + matches->front().id;
    resolved_[key] = out;
    return out;
  }

  const ApiContext& ctx_;
  store::StoreTransaction* tx_;
  const std::map<std::string, std::string> ids_;
  std::map<std::string, std::string> resolved_;
};

std::string StatusText(int status) {
  switch (status) {
    case 200:
      return "200 OK";
    case 201:
      return "201 Created";
    case 204:
      return "204 No Content";
    default:
      return std::to_string(status);
  }
}

// A PATCH entry: a Parameters resource is a FHIRPath Patch; a Binary holds a JSON Patch
// (contentType application/json-patch+json, base64 data).
Result<store::ResourceVersion> PatchEntry(store::StoreTransaction& tx, const Entry& e) {
  std::string media = "application/fhir+json";
  json::Value document = e.resource;
  if (e.resource.GetString("resourceType") == "Binary") {
    media = AsciiLower(e.resource.GetString("contentType"));
    if (media != "application/json-patch+json")
      return Error::UnsupportedMediaType(
          "A Binary PATCH entry must hold application/json-patch+json");
    auto decoded = DecodeBase64(e.resource.GetString("data"));
    if (!decoded) return Error::Invalid("The Binary's data is not base64");
    auto parsed = json::Parse(*decoded);
    if (!parsed) return std::move(parsed).error();
    document = std::move(parsed).value();
  }
  auto current = tx.Read(e.type, e.id);
  if (!current) return std::move(current).error();
  if (e.if_match && *e.if_match != current->version)
    return Error::PreconditionFailed("ifMatch: " + e.type + "/" + e.id + " is at version " +
                                     std::to_string(current->version));
  auto parsed = json::Parse(current->body);
  if (!parsed) return Error::Internal("A stored resource could not be parsed");
  auto patched = ApplyPatch(media, *parsed, document);
  if (!patched) return std::move(patched).error();
  auto checked = PatchedResource(*parsed, *patched);
  if (!checked) return std::move(checked).error();
  auto updated = tx.Update(std::move(checked).value(), current->version);
  if (!updated) return std::move(updated).error();
  return std::move(updated->resource);
}

// Performs one write entry inside `tx` (ids and references already resolved).
Status PerformUnchecked(const ApiContext& ctx, store::StoreTransaction& tx, Entry& e);

// Under restricted access, each write is checked as the same request alone would be.
Status Perform(const ApiContext& ctx, const FhirRequest& req, store::StoreTransaction& tx,
               Entry& e) {
  if (req.access && e.verb != Verb::kGet) {
    Permission permission = e.verb == Verb::kDelete ? kPermDelete
                            : e.verb == Verb::kPost ? kPermCreate
                                                    : kPermUpdate;
    FHIRSTONE_RETURN_IF_ERROR(Authorize(req, e.type, permission));
    if (!e.criteria.empty())
      FHIRSTONE_RETURN_IF_ERROR(CheckConditional(ctx, req, e.type, e.criteria));
    if (e.verb == Verb::kPost && !e.version)
      FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermCreate, e.resource));
    if (e.verb == Verb::kPut)
      FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermUpdate, e.resource));
    if (!e.id.empty() && e.verb != Verb::kPost) {
      auto existing = tx.Read(e.type, e.id);
      if (existing) {
        FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, permission, *existing));
      } else if (e.verb == Verb::kPut) {
        FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermCreate, e.resource));
      }
    }
  }
  Status performed = PerformUnchecked(ctx, tx, e);
  if (performed && req.access && e.verb == Verb::kPatch && e.version)
    FHIRSTONE_RETURN_IF_ERROR(CheckStored(ctx, req, kPermUpdate, *e.version));
  return performed;
}

// Performs one write entry inside `tx` (ids and references already resolved).
Status PerformUnchecked(const ApiContext& ctx, store::StoreTransaction& tx, Entry& e) {
  switch (e.verb) {
    case Verb::kDelete: {
      std::vector<std::pair<std::string, std::string>> targets;
      if (!e.criteria.empty()) {
        auto matches = MatchConditional(ctx, tx, e.type, e.criteria, 2);
        if (!matches) return std::move(matches).error();
        if (matches->size() > 1)
          return Error::PreconditionFailed("The delete criteria match several resources");
        for (const auto& m : *matches) targets.emplace_back(m.type, m.id);
      } else {
        targets.emplace_back(e.type, e.id);
      }
      for (const auto& [type, id] : targets) {
        auto r = tx.Delete(type, id, e.if_match);
        if (!r) return std::move(r).error();
      }
      e.status = 204;
      return Ok();
    }
    case Verb::kPost: {
      if (e.version) {  // ifNoneExist found it
        e.status = 200;
        return Ok();
      }
      if (e.invalid) return *e.invalid;
      if (!e.prepared) FHIRSTONE_RETURN_IF_ERROR(fhir::ValidateResource(e.resource));
      // The entry's resource is not read after its write: moved, not copied.
      auto v = tx.Create(std::move(e.resource), e.id, e.prepared.get());
      e.prepared.reset();  // its index rows are written
      if (!v) return std::move(v).error();
      e.version = std::move(v).value();
      e.status = 201;
      return Ok();
    }
    case Verb::kPut: {
      if (e.invalid) return *e.invalid;
      if (!e.prepared) FHIRSTONE_RETURN_IF_ERROR(fhir::ValidateResource(e.resource));
      auto r = tx.Update(std::move(e.resource), e.if_match, e.prepared.get());
      e.prepared.reset();
      if (!r) return std::move(r).error();
      e.status = r->created ? 201 : 200;
      e.version = std::move(r->resource);
      return Ok();
    }
    case Verb::kPatch: {
      auto patched = PatchEntry(tx, e);
      if (!patched) return std::move(patched).error();
      e.status = 200;
      e.version = std::move(patched).value();
      return Ok();
    }
    case Verb::kGet:
      return Ok();
  }
  return Ok();
}

// Resolves ifNoneExist and conditional PUT targets: fixes the id each POST/PUT entry gets.
Status ResolveTargets(const ApiContext& ctx, store::StoreTransaction& tx,
                      std::vector<Entry>& entries) {
  for (Entry& e : entries) {
    if (e.verb == Verb::kPost) {
      if (!e.if_none_exist.empty()) {
        std::string_view criteria = e.if_none_exist;
        if (criteria.starts_with(e.type + "?")) criteria.remove_prefix(e.type.size() + 1);
        if (criteria.starts_with("?")) criteria.remove_prefix(1);
        auto matches = MatchConditional(ctx, tx, e.type, criteria, 2);
        if (!matches) return AtEntry(matches.error(), e.index);
        if (matches->size() > 1)
          return AtEntry(Error::PreconditionFailed("ifNoneExist matches several resources"),
                         e.index);
        if (matches->size() == 1) {
          e.id = matches->front().id;
          e.version = matches->front();
          continue;
        }
      }
      e.id = ctx.ids.NewId();
    } else if (e.verb == Verb::kPut && !e.criteria.empty()) {
      auto matches = MatchConditional(ctx, tx, e.type, e.criteria, 2);
      if (!matches) return AtEntry(matches.error(), e.index);
      if (matches->size() > 1)
        return AtEntry(Error::PreconditionFailed("The update criteria match several resources"),
                       e.index);
      std::string_view body_id = e.resource.GetString("id");
      if (matches->size() == 1) {
        if (!body_id.empty() && body_id != matches->front().id)
          return AtEntry(Error::Invalid("The resource id is not the id of the match"), e.index);
        e.id = matches->front().id;
      } else {
        e.id = body_id.empty() ? ctx.ids.NewId() : std::string(body_id);
      }
      e.resource.Set("id", e.id);
    }
  }
  return Ok();
}

// What each fullUrl of the written entries becomes (Type/id).
std::map<std::string, std::string> FullUrlIds(const std::vector<Entry>& entries) {
  std::map<std::string, std::string> ids;
  for (const Entry& e : entries)
    if (!e.full_url.empty() && !e.id.empty() && e.verb != Verb::kGet)
      ids[e.full_url] = e.type + "/" + e.id;
  return ids;
}

// What PrepareAhead fixed before the write transaction.
struct Prepared {
  // Each conditional reference (Type?criteria) and the one match it had before the write
  // (Type/id): checked again inside the write transaction (CheckResolvedAhead).
  std::map<std::string, std::string> conditional;
};

// When no entry of a transaction needs the write transaction to know its id (no ifNoneExist, no
// conditional update or delete), fixes the ids and references, validates the resources and
// extracts their search index before the write transaction, where that work would hold up the
// other writes: returns what it resolved. Conditional references are resolved on the latest
// snapshot; each must have one match (else nothing is prepared, and the write transaction meets
// the failure where it would have). Otherwise changes nothing and returns nullopt
// (ResolveTargets and the rewriting then run inside). A validation failure is kept in the entry
// and reported where the write would have found it (Entry::invalid).
Result<std::optional<Prepared>> PrepareAhead(const ApiContext& ctx, std::vector<Entry>& entries) {
  std::set<std::string> conditional;
  for (const Entry& e : entries) {
    if (e.verb == Verb::kGet) continue;
    if (!e.if_none_exist.empty() || !e.criteria.empty()) return std::optional<Prepared>();
    if (e.verb == Verb::kPost || e.verb == Verb::kPut)
      CollectConditionalReferences(e.resource, conditional);
  }
  Prepared prepared;
  for (const std::string& key : conditional) {
    size_t q = key.find('?');
    auto matches = MatchConditional(ctx, key.substr(0, q), key.substr(q + 1), 2);
    if (!matches || matches->size() != 1) return std::optional<Prepared>();
    prepared.conditional[key] = key.substr(0, q) + "/" + matches->front().id;
  }
  for (Entry& e : entries)
    if (e.verb == Verb::kPost) e.id = ctx.ids.NewId();
  ReferenceRewriter rewriter(ctx, nullptr, FullUrlIds(entries), prepared.conditional);
  for (Entry& e : entries) {
    if (e.verb != Verb::kPost && e.verb != Verb::kPut) continue;
    if (auto status = rewriter.Rewrite(e.resource, false); !status)
      return AtEntry(status.error(), e.index);
  }
  for (Entry& e : entries) {
    if (e.verb != Verb::kPost && e.verb != Verb::kPut) continue;
    if (auto status = fhir::ValidateResource(e.resource); !status) {
      e.invalid = std::move(status).error();
    } else if (e.type != "AuditEvent") {  // an AuditEvent is appended to the log, not indexed
      e.prepared = ctx.store.PrepareIndex(e.resource);
    }
  }
  return std::optional<Prepared>(std::move(prepared));
}

// Inside the write transaction: whether each conditional reference resolved ahead still has
// that one match (a write committed in between may have changed it).
// A search that fails here counts as a change: the transaction runs again resolved inside, where
// the failure is reported with the entry that met it.
bool CheckResolvedAhead(const ApiContext& ctx, store::StoreTransaction& tx,
                        const Prepared& prepared) {
  for (const auto& [key, target] : prepared.conditional) {
    size_t q = key.find('?');
    auto matches = MatchConditional(ctx, tx, key.substr(0, q), key.substr(q + 1), 2);
    if (!matches || matches->size() != 1 || key.substr(0, q) + "/" + matches->front().id != target)
      return false;
  }
  return true;
}

void AppendResponseEntry(std::string& out, const ApiContext& ctx, const Entry& e,
                         bool with_resource) {
  out += "{";
  if (e.version && e.verb != Verb::kDelete) {
    out += "\"fullUrl\":";
    json::WriteString(ctx.base + "/" + e.version->type + "/" + e.version->id, out);
    out += ",";
    if (with_resource && !e.version->body.empty()) {
      out += "\"resource\":";
      out += e.version->body;
      out += ",";
    }
  }
  if (e.verb == Verb::kGet) {
    if (!e.get_response.body.empty() && e.get_response.status < 300) {
      out += "\"resource\":";
      out += e.get_response.body;
      out += ",";
    }
    out += "\"response\":{\"status\":";
    json::WriteString(std::to_string(e.get_response.status), out);
    if (!e.get_response.body.empty() && e.get_response.status >= 400) {
      out += ",\"outcome\":";
      out += e.get_response.body;
    }
    out += "}}";
    return;
  }
  out += "\"response\":{\"status\":";
  json::WriteString(StatusText(e.status), out);
  if (e.version && e.verb != Verb::kDelete) {
    out += ",\"location\":";
    json::WriteString(
        e.version->type + "/" + e.version->id + "/_history/" + std::to_string(e.version->version),
        out);
    out += ",\"etag\":";
    json::WriteString(ETag(e.version->version), out);
    out += ",\"lastModified\":";
    json::WriteString(FormatInstant(e.version->last_updated), out);
  }
  out += "}}";
}

void RunGet(const ApiContext& ctx, const FhirRequest& req, Entry& e) {
  http::Request get;
  get.method = "GET";
  get.target = "/fhir/" + e.url;
  get.remote_address = req.http->remote_address;
  e.get_response = ctx.dispatch(get, req.access);
}

std::string ResponseBundle(const ApiContext& ctx, const std::vector<Entry>& entries,
                           const char* type, bool with_resource,
                           const std::vector<std::optional<Error>>* errors) {
  std::string out = "{\"resourceType\":\"Bundle\",\"id\":";
  json::WriteString(ctx.ids.NewId(), out);
  out += ",\"type\":\"";
  out += type;
  out += "\",\"entry\":[";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ",";
    if (errors && (*errors)[i]) {
      const Error& error = *(*errors)[i];
      out += "{\"response\":{\"status\":";
      json::WriteString(std::to_string(HttpStatus(error.code())), out);
      out += ",\"outcome\":";
      out += json::Write(OperationOutcome(error));
      out += "}}";
      continue;
    }
    AppendResponseEntry(out, ctx, entries[i], with_resource);
  }
  out += "]}";
  return out;
}

}  // namespace

namespace {

// `prepare_ahead`: a transaction may be prepared before its write transaction (PrepareAhead).
Result<http::Response> HandleBundle(const ApiContext& ctx, const FhirRequest& req,
                                    bool prepare_ahead) {
  // Each entry's resource is validated on its own (a batch answers per entry); the Bundle's
  // own shape is checked here.
  auto bundle = ParseResourceBody(req, "Bundle", /*validate=*/false);
  if (!bundle) return std::move(bundle).error();
  if (const json::Value* list = bundle->Find("entry"); list && !list->is_array())
    return Error::Invalid("Bundle.entry must be an array", "Bundle.entry");
  std::string_view type = bundle->GetString("type");
  if (type != "batch" && type != "transaction")
    return Error::Invalid(
        "Only Bundles of type batch or transaction can be posted to the base, not '" +
            std::string(type) + "'",
        "Bundle.type");
  const bool transaction = type == "transaction";
  const bool with_resource =
      req.prefer == PreferReturn::kRepresentation &&
      req.http->Header("Prefer").find("return=representation") != std::string_view::npos;
  std::vector<Entry> entries;
  std::vector<std::optional<Error>> errors;
  if (const json::Value* list = bundle->Find("entry"); list && list->is_array()) {
    for (size_t i = 0; i < list->as_array().size(); ++i) {
      auto entry = ReadEntry(list->as_array()[i], i);
      if (!entry) {
        if (transaction) return std::move(entry).error();
        errors.emplace_back(std::move(entry).error());
        entries.push_back(Entry{i, Verb::kGet});
        continue;
      }
      errors.emplace_back();
      entries.push_back(std::move(entry).value());
    }
  }

  if (req.access) {  // conditional entries and references search first: they need unrestricted
                     // search, on every type their criteria read
    for (size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (errors[i]) continue;
      std::vector<std::pair<std::string, std::string>> searched;  // type, criteria
      if (!e.if_none_exist.empty()) searched.emplace_back(e.type, e.if_none_exist);
      if (!e.criteria.empty()) searched.emplace_back(e.type, e.criteria);
      if (e.verb == Verb::kPost || e.verb == Verb::kPut) {
        std::set<std::string> references;
        CollectConditionalReferences(e.resource, references);
        for (const std::string& ref : references) {
          size_t q = ref.find('?');
          searched.emplace_back(ref.substr(0, q), ref.substr(q + 1));
        }
      }
      for (const auto& [type, criteria] : searched) {
        if (auto status = CheckConditional(ctx, req, type, criteria); !status) {
          if (transaction) return AtEntry(status.error(), e.index);
          errors[i] = std::move(status).error();
          break;
        }
      }
    }
  }
  if (!transaction) {
    for (Entry& e : entries) {
      if (errors[e.index]) continue;
      if (e.verb == Verb::kGet) {
        RunGet(ctx, req, e);
        continue;
      }
      Status status = ctx.store.InTransaction(
          [&](store::StoreTransaction& tx) -> Status {
            std::vector<Entry> one;
            one.push_back(std::move(e));
            FHIRSTONE_RETURN_IF_ERROR(ResolveTargets(ctx, tx, one));
            ReferenceRewriter rewriter(ctx, &tx, {});
            if (one[0].verb != Verb::kDelete)
              FHIRSTONE_RETURN_IF_ERROR(rewriter.Rewrite(one[0].resource, false));
            Status performed = Perform(ctx, req, tx, one[0]);
            e = std::move(one[0]);
            return performed;
          },
          AuditOf(req));
      if (status) NoteWritten(req);
      if (!status) errors[e.index] = std::move(status).error();
    }
    for (const Entry& e : entries)
      if (errors[e.index]) AuditRefusedEntry(ctx, req, e, *errors[e.index]);
    return JsonResponse(200,
                        ResponseBundle(ctx, entries, "batch-response", with_resource, &errors));
  }

  // Transaction: fullUrls must be unique; each names what its entry becomes.
  std::set<std::string> full_urls;
  for (const Entry& e : entries) {
    if (e.full_url.empty()) continue;
    if (!full_urls.insert(e.full_url).second)
      return Error::Invalid(Where(e.index) + ": the fullUrl '" + e.full_url + "' appears twice",
                            Where(e.index) + ".fullUrl");
  }
  std::set<std::string> written;
  for (const Entry& e : entries) {
    if (e.verb == Verb::kGet || e.id.empty()) continue;
    if (!written.insert(e.type + "/" + e.id).second)
      return Error::Invalid(Where(e.index) + ": " + e.type + "/" + e.id +
                            " is written twice in one transaction");
  }
  std::optional<Prepared> ahead;
  if (prepare_ahead) {
    auto prepared = PrepareAhead(ctx, entries);
    if (!prepared) return std::move(prepared).error();
    ahead = std::move(prepared).value();
  }
  bool moved = false;  // a conditional reference resolved ahead has another match now
  Status done = ctx.store.InTransaction(
      [&](store::StoreTransaction& tx) -> Status {
        if (ahead) {
          if (!CheckResolvedAhead(ctx, tx, *ahead)) {
            moved = true;
            return Error::Conflict("A conditional reference changed its match before the write");
          }
        } else {
          FHIRSTONE_RETURN_IF_ERROR(ResolveTargets(ctx, tx, entries));
          ReferenceRewriter rewriter(ctx, &tx, FullUrlIds(entries));
          for (Entry& e : entries) {
            if (e.verb != Verb::kPost && e.verb != Verb::kPut) continue;
            if (auto status = rewriter.Rewrite(e.resource, false); !status)
              return AtEntry(status.error(), e.index);
          }
        }
        // The spec's order: DELETE, POST, PUT and PATCH (in entry order), then GET.
        for (int step = 0; step < 3; ++step) {
          for (Entry& e : entries) {
            bool now = step == 0   ? e.verb == Verb::kDelete
                       : step == 1 ? e.verb == Verb::kPost
                                   : e.verb == Verb::kPut || e.verb == Verb::kPatch;
            if (!now) continue;
            if (auto status = Perform(ctx, req, tx, e); !status)
              return AtEntry(status.error(), e.index);
          }
        }
        return Ok();
      },
      AuditOf(req));
  // Rolled back: run again, everything resolved inside the write transaction this time.
  if (moved) return HandleBundle(ctx, req, /*prepare_ahead=*/false);
  FHIRSTONE_RETURN_IF_ERROR(done);
  NoteWritten(req);
  for (Entry& e : entries)
    if (e.verb == Verb::kGet) RunGet(ctx, req, e);
  return JsonResponse(200,
                      ResponseBundle(ctx, entries, "transaction-response", with_resource, nullptr));
}

}  // namespace

Result<http::Response> HandleBundle(const ApiContext& ctx, const FhirRequest& req) {
  return HandleBundle(ctx, req, /*prepare_ahead=*/true);
}

}  // namespace fhirstone::api
