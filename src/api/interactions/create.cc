// create: https://hl7.org/fhir/R4/http.html#create. The server assigns the id (an id in the body
// is ignored, as the spec says) and answers 201 with Location, ETag and Last-Modified.
// Conditional create (https://hl7.org/fhir/R4/http.html#ccreate): with If-None-Exist, no match
// creates, one match answers 200 with it and creates nothing, several answer 412; the search and
// the create run in one write transaction, so two concurrent conditional creates never both create.
#include "api/internal/request.h"
#include "common/strings.h"

namespace fhirstone::api {

Result<http::Response> HandleCreate(const ApiContext& ctx, const FhirRequest& req) {
  auto grant = Authorize(req, req.type, kPermCreate);
  if (!grant) return std::move(grant).error();
  // An AuditEvent names any patient and any agent: only user/ and system/ access may record one
  // (a patient's app could otherwise file events under someone else's record).
  if (req.type == "AuditEvent" && !grant->unrestricted)
    return Error::Forbidden(
        "Recording an AuditEvent needs user/ or system/ access to AuditEvent, not patient/");
  auto resource = ParseResourceBody(req, req.type);
  if (!resource) return std::move(resource).error();
  FHIRSTONE_RETURN_IF_ERROR(CheckResource(ctx, req, kPermCreate, *resource));
  std::string_view if_none_exist = Trim(req.http->Header("If-None-Exist"));
  if (if_none_exist.starts_with("?")) if_none_exist.remove_prefix(1);
  if (if_none_exist.empty()) {
    auto created = ctx.store.Create(std::move(resource).value(), AuditOf(req));
    if (!created) return std::move(created).error();
    // An AuditEvent is appended as sent: who sent it is recorded as a create of its own.
    if (req.type != "AuditEvent") NoteWritten(req);
    return WriteResponse(201, *created, req, ctx,
                         "Created " + created->type + "/" + created->id + " version 1");
  }
  FHIRSTONE_RETURN_IF_ERROR(CheckConditional(ctx, req, req.type, if_none_exist));
  store::ResourceVersion result;
  bool created = false;
  FHIRSTONE_RETURN_IF_ERROR(ctx.store.InTransaction(
      [&](store::StoreTransaction& tx) -> Status {
        auto matches = MatchConditional(ctx, tx, req.type, if_none_exist, 2);
        if (!matches) return std::move(matches).error();
        if (matches->size() > 1)
          return Error::PreconditionFailed(
              "If-None-Exist matches " + std::to_string(matches->size()) +
              " or more resources: the criteria are not selective enough");
        if (matches->size() == 1) {
          result = std::move(matches->front());
          return Ok();
        }
        auto v = tx.Create(std::move(resource).value(), "");
        if (!v) return std::move(v).error();
        result = std::move(v).value();
        created = true;
        return Ok();
      },
      AuditOf(req)));
  if (created) {
    NoteWritten(req);
  } else {
    NoteDisclosed(req, result);
  }
  if (created)
    return WriteResponse(201, result, req, ctx,
                         "Created " + result.type + "/" + result.id + " version 1");
  return WriteResponse(
      200, result, req, ctx,
      "A matching resource exists: " + result.type + "/" + result.id + "; nothing was created");
}

namespace {

// The search a conditional operation or reference runs (see MatchConditional), with the registry
// its parameters point into: held until the search is done (a reindex may replace it meanwhile).
struct ConditionalSearch {
  std::shared_ptr<const search::Registry> registry;
  search::SearchQuery query;
};

Result<ConditionalSearch> ConditionalQuery(const ApiContext& ctx, std::string_view type,
                                           std::string_view query, int limit) {
  auto target = ParseTarget("/?" + std::string(query));
  if (!target) return Error::Invalid("Malformed conditional criteria '" + std::string(query) + "'");
  if (target->params.empty())
    return Error::Invalid("A conditional operation needs search criteria");
  search::ParseOptions options;
  options.strict = true;
  options.max_count = limit;
  ConditionalSearch out;
  out.registry = ctx.registry.Get();
  auto parsed = search::ParseQuery(*out.registry, {std::string(type)}, target->params, options);
  if (!parsed) return std::move(parsed).error();
  out.query = std::move(parsed).value();
  out.query.count = limit;
  out.query.total = search::TotalMode::kNone;
  out.query.includes.clear();
  return out;
}

}  // namespace

Result<std::vector<store::ResourceVersion>> MatchConditional(const ApiContext& ctx,
                                                             store::StoreTransaction& tx,
                                                             std::string_view type,
                                                             std::string_view query, int limit) {
  auto conditional = ConditionalQuery(ctx, type, query, limit);
  if (!conditional) return std::move(conditional).error();
  auto found = tx.Search(conditional->query);
  if (!found) return std::move(found).error();
  return std::move(found->matches);
}

Result<std::vector<store::ResourceVersion>> MatchConditional(const ApiContext& ctx,
                                                             std::string_view type,
                                                             std::string_view query, int limit) {
  auto conditional = ConditionalQuery(ctx, type, query, limit);
  if (!conditional) return std::move(conditional).error();
  auto found = ctx.store.Search(conditional->query);
  if (!found) return std::move(found).error();
  return std::move(found->matches);
}

}  // namespace fhirstone::api
