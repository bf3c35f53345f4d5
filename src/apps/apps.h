// The sample SMART apps that Fhirstone serves under /apps/ (today: "vitals", a SMART on FHIR
// app built on SMART's fhirclient and Chart.js). Every file of an app, and the vendor bundles it
// loads from npm, is embedded into the binary at build time (src/apps/embed.py), so the server
// needs no files at run time. The pages contain no inline script, style or event handler and
// load only their own files, so they work under
// `Content-Security-Policy: default-src 'self'; img-src 'self' data:; frame-ancestors 'self'`.
// Thread-safe: the files are constants.
#pragma once

#include <optional>
#include <string_view>

namespace fhirstone::apps {

// A file of an embedded app: its bytes and its Content-Type.
struct File {
  std::string_view body;
  std::string_view content_type;
};

// A file of an embedded app by its path under /apps/ (e.g. "vitals/index.html",
// "vitals/vendor/fhir-client.pure.min.js"); "vitals/" maps to "vitals/index.html"; nullopt when
// unknown. `path` is matched exactly (no query string, no percent-decoding): "..", "." and empty
// segments, a leading "/" or a backslash never match. A folder without its trailing slash
// ("vitals") is unknown too: the server should redirect it to "vitals/" (when
// Find("vitals/") has a value) so that the page's relative URLs resolve.
std::optional<File> Find(std::string_view path);

}  // namespace fhirstone::apps
