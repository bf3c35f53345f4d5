#include "apps/apps.h"

#include <algorithm>
#include <string>

#include "apps/internal/embedded.h"

namespace fhirstone::apps {

std::optional<File> Find(std::string_view path) {
  if (path.empty()) return std::nullopt;
  std::string full(path);
  if (full.back() == '/') full += "index.html";
  std::span<const internal::EmbeddedFile> files = internal::EmbeddedFiles();
  auto it = std::lower_bound(
      files.begin(), files.end(), std::string_view(full),
      [](const internal::EmbeddedFile& f, std::string_view p) { return f.path < p; });
  if (it == files.end() || it->path != full) return std::nullopt;
  return File{it->body, it->content_type};
}

}  // namespace fhirstone::apps
