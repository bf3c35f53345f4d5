// The table of embedded app files, generated at build time by src/apps/embed.py. Internal to
// fhirstone_apps (and its test): use apps::Find.
#pragma once

#include <span>
#include <string_view>

namespace fhirstone::apps::internal {

struct EmbeddedFile {
  std::string_view path;  // under /apps/, e.g. "vitals/index.html"
  std::string_view content_type;
  std::string_view body;
};

// Every embedded file, sorted by path (byte order), paths unique.
std::span<const EmbeddedFile> EmbeddedFiles();

}  // namespace fhirstone::apps::internal
