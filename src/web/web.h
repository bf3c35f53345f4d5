// The HTML pages and static files of Fhirstone's browser-facing endpoints (login, patient
// picker, consent, authorized apps, error and message pages). Templates (templates/*.mustache)
// and static files (static/*) are embedded into the binary at build time; pages are rendered
// with logic-less mustache templates, every value HTML-escaped. Pages load only
// /static/style.css and /static/favicon.svg and contain no script or inline style, so they work
// under `Content-Security-Policy: default-src 'self'`.
// Thread-safe: the templates are parsed once, on first use, and never change afterwards.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::web {

// Renders the embedded template `name` (e.g. "login") inside the common layout with `data`, a
// JSON object (null counts as empty). Strings and numbers render as text, booleans and arrays
// (of objects) drive sections, objects nest. An empty string or null counts as absent (false),
// so optional fields may be left out or sent empty. A URL field (named `action`, `*_action`,
// `*_uri`, `*_url` or `*_href`) whose scheme is not http or https (e.g. `javascript:`) counts as
// absent too. The layout's <title> is `title`, else `heading`, else the page's own default.
// Unknown template or data that is not an object -> Error::Internal.
Result<std::string> RenderPage(std::string_view name, const json::Value& data);

// A static file embedded at build time: its bytes and its Content-Type.
struct StaticFile {
  std::string_view body;
  std::string_view content_type;
};

// The static file served at /static/<path> (e.g. FindStatic("style.css")); nullopt when
// unknown. `path` is a file name, matched exactly: no folders, no "..".
std::optional<StaticFile> FindStatic(std::string_view path);

}  // namespace fhirstone::web
