// fhirpath_eval: evaluates FHIR invariants for scripts (tests/import/us_core_check.py). Reads
// JSON lines {"resource": {...}, "context": "Observation.component", "expression": "..."} on
// stdin; for each, evaluates `expression` on every element `context` selects from the resource
// (with %resource the resource) and writes one line: "true" when it holds on all of them (or
// there are none), "false N" when it fails on N of them, "error MESSAGE" when the expression or
// the context cannot be evaluated. Never linked into the server.
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "common/json.h"
#include "fhirpath/fhirpath.h"

namespace {

using fhirstone::fhirpath::Compile;
using fhirstone::fhirpath::Expression;

const Expression* Compiled(std::map<std::string, std::unique_ptr<const Expression>>& cache,
                           const std::string& text, std::string* error) {
  auto it = cache.find(text);
  if (it != cache.end()) return it->second.get();
  auto compiled = Compile(text);
  if (!compiled) {
    *error = compiled.error().message();
    return nullptr;
  }
  return cache.emplace(text, std::move(*compiled)).first->second.get();
}

std::string Evaluate(const std::string& line,
                     std::map<std::string, std::unique_ptr<const Expression>>& cache) {
  auto task = fhirstone::json::Parse(line);
  if (!task || !task->is_object()) return "error malformed task";
  const fhirstone::json::Value* resource = task->Find("resource");
  if (resource == nullptr) return "error no resource";
  std::string error;
  const Expression* context = Compiled(cache, std::string(task->GetString("context")), &error);
  if (context == nullptr) return "error context: " + error;
  const Expression* expression =
      Compiled(cache, std::string(task->GetString("expression")), &error);
  if (expression == nullptr) return "error expression: " + error;
  fhirstone::fhirpath::EvalOptions options;
  options.root_resource = resource;
  auto items = context->Evaluate(*resource, options);
  if (!items) return "error context: " + items.error().message();
  int failed = 0;
  for (const auto& item : *items) {
    auto r = expression->EvaluateItems({item}, options);
    if (!r) return "error " + r.error().message();
    std::optional<bool> holds = fhirstone::fhirpath::AsBoolean(*r);
    if (holds && !*holds) ++failed;
  }
  return failed ? "false " + std::to_string(failed) : "true";
}

}  // namespace

int main() {
  std::map<std::string, std::unique_ptr<const Expression>> cache;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::string out = Evaluate(line, cache);
    for (char& c : out)
      if (c == '\n') c = ' ';
    std::cout << out << '\n';
  }
  return 0;
}
