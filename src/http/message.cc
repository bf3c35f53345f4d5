#include "http/message.h"

#include <algorithm>
#include <cstddef>

namespace fhirstone::http {
namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return AsciiLower(x) == AsciiLower(y);
         });
}

const std::pair<std::string, std::string>* Find(const Headers& headers, std::string_view name) {
  for (const auto& header : headers) {
    if (EqualsIgnoreCase(header.first, name)) return &header;
  }
  return nullptr;
}

}  // namespace

std::string_view FindHeader(const Headers& headers, std::string_view name) {
  const auto* header = Find(headers, name);
  return header == nullptr ? std::string_view() : std::string_view(header->second);
}

bool HasHeader(const Headers& headers, std::string_view name) {
  return Find(headers, name) != nullptr;
}

std::string_view Request::Path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::Query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

void Response::SetHeader(std::string name, std::string value) {
  auto it = std::find_if(headers.begin(), headers.end(),
                         [&](const auto& header) { return EqualsIgnoreCase(header.first, name); });
  if (it == headers.end()) {
    headers.emplace_back(std::move(name), std::move(value));
    return;
  }
  it->first = std::move(name);
  it->second = std::move(value);
  // Later duplicates would contradict the value just set.
  headers.erase(
      std::remove_if(std::next(it), headers.end(),
                     [&](const auto& header) { return EqualsIgnoreCase(header.first, it->first); }),
      headers.end());
}

}  // namespace fhirstone::http
