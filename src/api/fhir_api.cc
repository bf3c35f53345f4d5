// The FHIR REST dispatcher: https://hl7.org/fhir/R4/http.html. Classify(request) -> FhirRequest,
// then format negotiation (https://hl7.org/fhir/R4/http.html#mime-type), Prefer
// (https://hl7.org/fhir/R4/http.html#ops), and the interaction.
#include "api/fhir_api.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "api/error_response.h"
#include "api/internal/request.h"
#include "common/strings.h"
#include "fhir/model.h"
#include "store/audit_queue.h"

namespace fhirstone::api {
namespace {

bool IsGet(std::string_view method) { return method == "GET" || method == "HEAD"; }

Error NotAllowed(std::string_view method, std::string_view what) {
  return Error::MethodNotAllowed(std::string(method) + " is not allowed on " + std::string(what));
}

// Fills interaction, type, id and version from the path segments after /fhir.
Status Classify(const std::vector<std::string>& segments, std::string_view method, bool has_query,
                FhirRequest& req) {
  size_t n = segments.size() - 1;  // segments[0] is "fhir"
  auto seg = [&](size_t i) -> const std::string& { return segments[i + 1]; };
  if (n == 0) {
    if (method == "POST") {
      req.interaction = Interaction::kBatch;
      return Ok();
    }
    if (IsGet(method)) {
      req.interaction = Interaction::kSearchSystem;
      return Ok();
    }
    return NotAllowed(method, "the FHIR base");
  }
  if (seg(0) == "$reindex") {
    if (n != 1) return Error::NotFound("Unknown path");
    if (method != "POST") return NotAllowed(method, "$reindex");
    req.interaction = Interaction::kReindex;
    return Ok();
  }
  if (seg(0) == "_search") {
    if (n != 1) return Error::NotFound("Unknown path");
    if (method != "POST") return NotAllowed(method, "_search");
    req.interaction = Interaction::kSearchSystem;
    return Ok();
  }
  if (seg(0) == "metadata") {
    if (n != 1) return Error::NotFound("Unknown path");
    if (!IsGet(method)) return NotAllowed(method, "metadata");
    req.interaction = Interaction::kCapabilities;
    return Ok();
  }
  if (seg(0) == "_history") {
    if (n != 1) return Error::NotFound("Unknown path");
    if (!IsGet(method)) return NotAllowed(method, "_history");
    req.interaction = Interaction::kHistorySystem;
    return Ok();
  }
  if (seg(0).starts_with("$"))
    return Error::NotSupported("Operation " + seg(0) + " is not supported");
  if (!fhir::IsResourceType(seg(0)))
    return Error::NotFound("Unknown resource type '" + seg(0) + "'");
  req.type = seg(0);
  if (n == 1) {
    if (method == "POST") {
      req.interaction = Interaction::kCreate;
      return Ok();
    }
    if (method == "PUT" && has_query) {
      req.interaction = Interaction::kConditionalUpdate;
      return Ok();
    }
    if (method == "DELETE" && has_query) {
      req.interaction = Interaction::kConditionalDelete;
      return Ok();
    }
    if (method == "PATCH" && has_query) {
      req.interaction = Interaction::kPatch;
      return Ok();
    }
    if (IsGet(method)) {
      req.interaction = Interaction::kSearchType;
      return Ok();
    }
    return NotAllowed(method, req.type);
  }
  if (seg(1) == "_history") {
    if (n != 2) return Error::NotFound("Unknown path");
    if (!IsGet(method)) return NotAllowed(method, req.type + "/_history");
    req.interaction = Interaction::kHistoryType;
    return Ok();
  }
  if (seg(1) == "_search") {
    if (n != 2) return Error::NotFound("Unknown path");
    if (method != "POST") return NotAllowed(method, req.type + "/_search");
    req.interaction = Interaction::kSearchType;
    return Ok();
  }
  if (seg(1).starts_with("$"))
    return Error::NotSupported("Operation " + seg(1) + " is not supported");
  if (!fhir::IsValidId(seg(1)))
    return Error::Invalid("'" + seg(1) + "' is not a valid resource id ([A-Za-z0-9-.]{1,64})");
  req.id = seg(1);
  if (n == 2) {
    if (IsGet(method)) {
      req.interaction = Interaction::kRead;
    } else if (method == "PUT") {
      req.interaction = Interaction::kUpdate;
    } else if (method == "DELETE") {
      req.interaction = Interaction::kDelete;
    } else if (method == "PATCH") {
      req.interaction = Interaction::kPatch;
    } else {
      return NotAllowed(method, req.type + "/" + req.id);
    }
    return Ok();
  }
  if (seg(2).starts_with("$"))
    return Error::NotSupported("Operation " + seg(2) + " is not supported");
  if (n == 3 && fhir::IsResourceType(seg(2))) {  // compartment search
    if (!IsGet(method)) return NotAllowed(method, "a compartment");
    req.compartment_type = req.type;
    req.compartment_id = req.id;
    req.type = seg(2);
    req.id.clear();
    req.interaction = Interaction::kSearchType;
    return Ok();
  }
  if (seg(2) != "_history" || n > 4) return Error::NotFound("Unknown path");
  if (!IsGet(method)) return NotAllowed(method, "a resource's history");
  if (n == 3) {
    req.interaction = Interaction::kHistoryInstance;
    return Ok();
  }
  auto version = ParseInt64(seg(3));
  if (!version || *version < 1)
    return Error::NotFound("'" + seg(3) + "' is not a version of " + req.type + "/" + req.id);
  req.version = *version;
  req.interaction = Interaction::kVRead;
  return Ok();
}

bool IsJsonMedia(std::string_view media) {
  return media == "application/fhir+json" || media == "application/json" || media == "json" ||
         media == "*/*" || media == "application/*" || media == "text/json";
}

bool IsXmlMedia(std::string_view media) {
  return media == "xml" || media == "application/fhir+xml" || media == "application/xml" ||
         media == "text/xml";
}

// Decides the response format from _format (which wins) or Accept; only JSON is produced.
Status Negotiate(const http::Request& http, const FhirRequest& req) {
  if (auto format = req.Param("_format")) {
    std::string media = AsciiLower(Trim(format->substr(0, format->find(';'))));
    if (IsJsonMedia(media)) return Ok();
    if (IsXmlMedia(media)) return Error::NotAcceptable("XML is not supported: use _format=json");
    return Error::NotAcceptable("Unknown _format '" + std::string(*format) + "': use json");
  }
  std::string_view accept = http.Header("Accept");
  if (Trim(accept).empty()) return Ok();
  for (auto range : Split(accept, ',')) {
    auto parts = Split(range, ';');
    std::string media = AsciiLower(Trim(parts[0]));
    bool refused = false;
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string param = AsciiLower(Trim(parts[i]));
      if (param == "q=0" || param == "q=0.0" || param == "q=0.00" || param == "q=0.000")
        refused = true;
    }
    if (!refused && (IsJsonMedia(media) || media == "text/html" || media == "text/*")) return Ok();
  }
  return Error::NotAcceptable("None of the media types in Accept ('" + std::string(accept) +
                              "') can be produced: this server answers application/fhir+json");
}

Result<bool> ParsePretty(const FhirRequest& req) {
  auto pretty = req.Param("_pretty");
  if (!pretty) return false;
  if (*pretty == "true") return true;
  if (*pretty == "false") return false;
  return Error::Invalid("_pretty must be true or false, not '" + std::string(*pretty) + "'");
}

PreferReturn ParsePrefer(std::string_view prefer) {
  for (auto part : Split(prefer, ',')) {
    for (auto token : Split(part, ';')) {
      token = Trim(token);
      if (token == "return=minimal") return PreferReturn::kMinimal;
      if (token == "return=OperationOutcome") return PreferReturn::kOperationOutcome;
      if (token == "return=representation") return PreferReturn::kRepresentation;
    }
  }
  return PreferReturn::kRepresentation;
}

// The restful-interaction code (http://hl7.org/fhir/restful-interaction) and the
// AuditEvent.action of an interaction, for the audit log.
std::pair<std::string_view, char> AuditInteraction(Interaction interaction) {
  switch (interaction) {
    case Interaction::kCapabilities:
      return {"capabilities", 'R'};
    case Interaction::kRead:
      return {"read", 'R'};
    case Interaction::kVRead:
      return {"vread", 'R'};
    case Interaction::kUpdate:
    case Interaction::kConditionalUpdate:
      return {"update", 'U'};
    case Interaction::kDelete:
    case Interaction::kConditionalDelete:
      return {"delete", 'D'};
    case Interaction::kCreate:
      return {"create", 'C'};
    case Interaction::kHistoryInstance:
      return {"history-instance", 'R'};
    case Interaction::kHistoryType:
      return {"history-type", 'R'};
    case Interaction::kHistorySystem:
      return {"history-system", 'R'};
    case Interaction::kSearchType:
      return {"search-type", 'E'};
    case Interaction::kSearchSystem:
      return {"search-system", 'E'};
    case Interaction::kReindex:
      return {"operation", 'E'};
    case Interaction::kBatch:
      return {"batch", 'E'};
    case Interaction::kPatch:
      return {"patch", 'U'};
  }
  return {"", 'E'};
}

}  // namespace

struct FhirApi::Impl {
  ApiContext ctx;
  std::mutex capability_mu;
  std::shared_ptr<const search::Registry> capability_registry;
  json::Value capability_statement;
  std::string capability_body;

  // Dispatch, then the audit record of what it did (unless its writes appended theirs).
  http::Response Serve(http::Request& http, const AccessContext* access) {
    bool pretty = false;
    store::AuditQueue* queue = ctx.options.audit;
    AuditTrail trail;
    if (queue) {
      store::AuditRecord& r = trail.record;
      r.started = ctx.clock.NowMicros();
      r.request_id = http.request_id;
      r.address = http.remote_address;
      if (access) {
        r.user = access->fhir_user;
        r.client_id = access->client_id;
      }
    }
    auto response = Dispatch(http, access, pretty, queue ? &trail : nullptr);
    http::Response out;
    if (response) {
      out = std::move(response).value();
    } else {
      const Error& error = response.error();
      if (error.code() == ErrorCode::kInternal)
        spdlog::error("{} {}: internal error: {}", http.method, http.Path(), error.message());
      out = ErrorResponse(error, pretty);
      if (error.code() == ErrorCode::kMethodNotAllowed)
        out.SetHeader("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE");
      trail.record.outcome_desc = error.message();
    }
    if (!queue || trail.record.subtype == "capabilities") return out;
    store::AuditRecord& r = trail.record;
    if (out.status >= 400) {
      r.outcome = out.status >= 500 ? 8 : 4;
      r.resources.clear();
      r.patients.clear();
      r.without_patient = false;
      // Refused before any data was read: the patient in the token's context, if any.
      if (r.patient.empty() && access && !access->patient.empty()) r.patient = access->patient;
      if (out.status == 403) {  // a security event: the outcome says what was refused
        r.type = store::AuditType::kSecurityAlert;
        r.subtype = "access-denied";
      }
    } else if (trail.written) {
      return out;  // appended with the data
    }
    if (r.subtype.empty() && r.action == 'E' && r.entity.empty() && http.Path() == "/fhir")
      r.subtype = http.body.find("\"transaction\"") != std::string::npos ? "transaction" : "batch";
    queue->Submit(std::move(r));
    return out;
  }

  Result<http::Response> Dispatch(http::Request& http, const AccessContext* access, bool& pretty,
                                  AuditTrail* audit) {
    auto target = ParseTarget(http.target);
    if (!target) return std::move(target).error();
    FhirRequest req;
    req.http = &http;
    req.access = access;
    req.audit = audit;
    req.params = std::move(target->params);
    auto is_pretty = ParsePretty(req);
    if (!is_pretty) return std::move(is_pretty).error();
    pretty = req.pretty = *is_pretty;
    FHIRSTONE_RETURN_IF_ERROR(Classify(target->segments, http.method, !http.Query().empty(), req));
    if (audit) {
      store::AuditRecord& r = audit->record;
      auto [subtype, action] = AuditInteraction(req.interaction);
      // Batches and transactions: each entry's write records its own interaction.
      r.subtype = req.interaction == Interaction::kBatch ? "" : subtype;
      r.action = action;
      if (!req.type.empty()) r.entity = req.id.empty() ? req.type : req.type + "/" + req.id;
      if (req.version > 0) r.version = req.version;
      if (!req.compartment_type.empty()) {
        r.entity = req.type;
        if (req.compartment_type == "Patient") r.patient = req.compartment_id;
      }
      if (req.type == "Patient" && !req.id.empty()) r.patient = req.id;
      r.query = http.Query();
      if (http.method == "POST" && req.interaction == Interaction::kSearchType)
        r.query = http.body.substr(0, 4096);  // POST _search: the form body is the query
    }
    FHIRSTONE_RETURN_IF_ERROR(Negotiate(http, req));
    req.prefer = ParsePrefer(http.Header("Prefer"));
    switch (req.interaction) {
      case Interaction::kCapabilities: {
        std::lock_guard lock(capability_mu);
        auto registry = ctx.registry.Get();
        if (registry != capability_registry) {  // custom parameters changed: describe them
          capability_statement = BuildCapabilityStatement(ctx);
          capability_body = json::Write(capability_statement);
          capability_registry = registry;
        }
        return req.pretty ? JsonResponse(200, capability_statement, true)
                          : JsonResponse(200, capability_body);
      }
      case Interaction::kReindex: {
        if (access && !access->admin)
          return Error::Forbidden("$reindex needs an administrator's access");
        if (!ctx.options.start_reindex) return Error::NotSupported("$reindex is not available");
        FHIRSTONE_RETURN_IF_ERROR(ctx.options.start_reindex());
        return JsonResponse(202,
                            InformationOutcome("Reindex started: custom SearchParameters are "
                                               "loaded and every resource is reindexed"),
                            req.pretty);
      }
      case Interaction::kRead:
        return HandleRead(ctx, req);
      case Interaction::kVRead:
        return HandleVRead(ctx, req);
      case Interaction::kCreate:
        return HandleCreate(ctx, req);
      case Interaction::kUpdate:
        return HandleUpdate(ctx, req);
      case Interaction::kDelete:
        return HandleDelete(ctx, req);
      case Interaction::kHistoryInstance:
      case Interaction::kHistoryType:
      case Interaction::kHistorySystem:
        return HandleHistory(ctx, req);
      case Interaction::kSearchType:
      case Interaction::kSearchSystem:
        return HandleSearch(ctx, req);
      case Interaction::kConditionalUpdate:
        return HandleConditionalUpdate(ctx, req);
      case Interaction::kConditionalDelete:
        return HandleConditionalDelete(ctx, req);
      case Interaction::kBatch:
        return HandleBundle(ctx, req);
      case Interaction::kPatch:
        return HandlePatch(ctx, req);
    }
    return Error::Internal("Unhandled interaction");
  }
};

FhirApi::FhirApi(store::ResourceStore& store, Clock& clock, IdGenerator& ids,
                 const search::RegistryHolder& registry, ApiOptions options)
    : impl_(
          new Impl{ApiContext{store, clock, ids, registry, options, options.base_url + "/fhir", {}},
                   {},
                   {}}) {
  // Bundle entries with GET are dispatched through the whole API, as if requested alone.
  Impl* impl = impl_.get();
  impl_->ctx.dispatch = [impl](http::Request& request, const AccessContext* access) {
    return impl->Serve(request, access);
  };
}

FhirApi::~FhirApi() = default;

const std::string& FhirApi::fhir_base() const { return impl_->ctx.base; }

http::Response FhirApi::Handle(http::Request& request, const AccessContext* access) {
  try {
    return impl_->Serve(request, access);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: unexpected exception: {}", request.method, request.Path(), e.what());
    return ErrorResponse(Error::Internal("The server failed to process the request"), false);
  }
}

}  // namespace fhirstone::api
