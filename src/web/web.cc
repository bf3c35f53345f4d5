#include "web/web.h"

#include <kainjow/mustache.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/strings.h"
#include "web/internal/embedded.h"

namespace fhirstone::web {
namespace {

namespace mustache = kainjow::mustache;

constexpr std::string_view kLayout = "layout";
// A page template may open with "{{! title: Sign in }}": its <title> when the data has none.
constexpr std::string_view kTitlePrefix = "{{! title:";

// One parsed template.
struct Template {
  std::string_view name;
  std::string default_title;
  mustache::mustache parsed;
};

// All embedded templates, parsed once and never changed afterwards.
class Templates {
 public:
  static const Templates& Get() {
    static const Templates* const templates = new Templates();  // never destroyed
    return *templates;
  }

  const Template* Find(std::string_view name) const {
    for (const Template& t : templates_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

 private:
  Templates() {
    for (const internal::EmbeddedTemplate& embedded : internal::EmbeddedTemplates()) {
      std::string default_title;
      if (embedded.text.starts_with(kTitlePrefix)) {
        size_t end = embedded.text.find("}}");
        default_title = Trim(embedded.text.substr(kTitlePrefix.size(), end - kTitlePrefix.size()));
      }
      templates_.push_back(Template{embedded.name, std::move(default_title),
                                    mustache::mustache(std::string(embedded.text))});
    }
  }

  std::vector<Template> templates_;
};

// Renders a parsed template. kainjow's render() is not const, yet it writes into the template
// only on a lambda or partial error: the data built by ToData() holds no lambdas or partials,
// and embed.py rejects partial tags in templates. So one parsed template serves concurrent
// renders, each with its own context.
std::string Render(const mustache::mustache& tmpl, const mustache::data& data) {
  return const_cast<mustache::mustache&>(tmpl).render(data);
}

bool IsUrlKey(std::string_view key) {
  return key == "action" || key.ends_with("_action") || key.ends_with("_uri") ||
         key.ends_with("_url") || key.ends_with("_href");
}

// Whether `url` is safe in an href or action: a relative reference or an http(s) URL. Browsers
// drop whitespace and control characters inside a scheme ("java\tscript:"), so any rejects.
bool IsSafeUrl(std::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  size_t end = url.find_first_of(":/?#");
  if (end == std::string_view::npos || url[end] != ':') return true;  // relative
  std::string scheme = AsciiLower(url.substr(0, end));
  return scheme == "http" || scheme == "https";
}

mustache::data ToData(const json::Value& value) {
  switch (value.type()) {
    case json::Type::kNull:
      return mustache::data(false);
    case json::Type::kBool:
      return mustache::data(value.as_bool());
    case json::Type::kNumber:
      return mustache::data(value.as_string());
    case json::Type::kString:
      if (value.as_string().empty()) return mustache::data(false);
      return mustache::data(value.as_string());
    case json::Type::kArray: {
      mustache::data list(mustache::data::type::list);
      for (const json::Value& item : value.as_array()) list.push_back(ToData(item));
      return list;
    }
    case json::Type::kObject: {
      mustache::data object(mustache::data::type::object);
      for (const auto& [key, member] : value.as_object()) {
        bool unsafe = IsUrlKey(key) && member.is_string() && !IsSafeUrl(member.as_string());
        object[key] = unsafe ? mustache::data(false) : ToData(member);
      }
      return object;
    }
  }
  return mustache::data(false);
}

}  // namespace

Result<std::string> RenderPage(std::string_view name, const json::Value& data) {
  const Templates& templates = Templates::Get();
  const Template* page = name == kLayout ? nullptr : templates.Find(name);
  if (page == nullptr) return Error::Internal("no page template \"" + std::string(name) + "\"");
  const Template* layout = templates.Find(kLayout);
  for (const Template* t : {page, layout}) {
    if (t == nullptr) return Error::Internal("the layout template is missing");
    if (!t->parsed.is_valid()) {
      return Error::Internal("template \"" + std::string(t->name) +
                             "\": " + t->parsed.error_message());
    }
  }
  if (!data.is_object() && !data.is_null()) {
    return Error::Internal("the data of page \"" + std::string(name) + "\" is not a JSON object");
  }

  std::string body = Render(
      page->parsed, data.is_null() ? mustache::data(mustache::data::type::object) : ToData(data));
  std::string title(data.GetString("title"));
  if (title.empty()) title = data.GetString("heading");
  if (title.empty()) title = page->default_title;

  mustache::data layout_data(mustache::data::type::object);
  layout_data["title"] = title.empty() ? mustache::data(false) : mustache::data(title);
  layout_data["body"] = mustache::data(body);
  return Render(layout->parsed, layout_data);
}

std::optional<StaticFile> FindStatic(std::string_view path) {
  for (const internal::EmbeddedStatic& file : internal::EmbeddedStatics()) {
    if (file.name == path) return StaticFile{file.body, file.content_type};
  }
  return std::nullopt;
}

}  // namespace fhirstone::web
