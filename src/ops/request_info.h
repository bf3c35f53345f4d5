// What the operational code needs to know about a request without running it: its metric labels
// (the FHIR interaction and resource type, https://hl7.org/fhir/R4/http.html), whether it is an
// expensive search, and the caller's address behind trusted proxies. Bounded vocabularies only,
// so that metric label sets stay small whatever clients send. Pure functions, thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "http/message.h"

namespace fhirstone::ops {

struct RequestLabels {
  // A FHIR interaction code (read, vread, update, patch, delete, history-instance, history-type,
  // history-system, create, search-type, search-system, capabilities), "batch-transaction",
  // "operation" ($name), or for the other endpoints: authorize, token, introspect, revoke,
  // login, auth (the rest of /auth/), smart-configuration, bulk, apps, sandbox, static,
  // metrics, health; "other" for anything else.
  std::string_view interaction;
  // A resource type the FHIR R4 model knows (a view into the target), or "".
  std::string_view resource_type;
};

// The labels of `method` on `target` (path and query, as sent). The views live as long as
// `target` or are static.
RequestLabels ClassifyRequest(std::string_view method, std::string_view target);

// Whether a search is costly enough for the expensive-search limits: a system-wide search, or
// one using _include, _revinclude, _has, chains (a '.' in a name), _text, _content, _filter,
// _query, the :contains, :text, :above, :below, :in or :not-in modifiers, _total=accurate or
// _count above 100. `form_body` is the body of POST [type]/_search (application/x-www-form-
// urlencoded). False for anything that is not a search. Names are percent-decoded first.
bool IsExpensiveSearch(std::string_view method, std::string_view target,
                       std::string_view form_body = {});

// The caller's address: request.remote_address, unless that is one of `trusted_proxies` (exact
// addresses, e.g. the load balancer's); then the rightmost X-Forwarded-For entry that is not a
// trusted proxy (or the leftmost entry when all are). A malformed entry stops the walk and the
// nearest proxy's address is returned. The view lives as long as `request`.
std::string_view ClientAddress(const http::Request& request,
                               std::span<const std::string> trusted_proxies);

}  // namespace fhirstone::ops
