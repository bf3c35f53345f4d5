// The FHIR invariants of the R4 StructureDefinitions (constraint.expression in
// profiles-resources.json and profiles-types.json) compile, and evaluate without error over the
// official examples, each at its context elements; the examples satisfy them but for the few
// known violations of the published examples. Prints the figures.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/json.h"
#include "fhir/model.h"
#include "fhirpath/fhirpath.h"

namespace fhirstone::fhirpath {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Constraint {
  std::string key;
  std::string path;  // the context element: "Patient", "Patient.contact", "Quantity"
  std::string expression;
  bool on_resource;  // from a resource's StructureDefinition, else a datatype's
  bool error;        // severity error (else warning)
  std::unique_ptr<const Expression> compiled;
  std::unique_ptr<const Expression> context;  // the context elements from the resource root
};

std::vector<Constraint> LoadConstraints(std::vector<std::string>& compile_failures) {
  std::vector<Constraint> out;
  std::set<std::string> seen;
  for (const char* file : {"profiles-resources.json", "profiles-types.json"}) {
    Result<json::Value> bundle =
        json::Parse(ReadFile(std::filesystem::path(FHIR_DEFINITIONS_DIR) / file));
    if (!bundle) continue;
    for (const json::Value& entry : bundle->Find("entry")->as_array()) {
      const json::Value* sd = entry.Find("resource");
      if (sd == nullptr || sd->GetString("resourceType") != "StructureDefinition") continue;
      std::string_view kind = sd->GetString("kind");
      if (kind != "resource" && kind != "complex-type" && kind != "primitive-type") continue;
      if (sd->GetString("derivation") == "constraint") continue;  // SimpleQuantity...
      std::string_view type = sd->GetString("type");
      const json::Value* snapshot = sd->Find("snapshot");
      if (snapshot == nullptr) continue;
      for (const json::Value& element : snapshot->Find("element")->as_array()) {
        std::string path(element.GetString("path"));
        // Inherited constraints are checked where they are defined.
        if (path.rfind(std::string(type), 0) != 0) continue;
        const json::Value* constraints = element.Find("constraint");
        if (constraints == nullptr) continue;
        for (const json::Value& c : constraints->as_array()) {
          std::string expression(c.GetString("expression"));
          std::string key(c.GetString("key"));
          if (expression.empty()) continue;
          // A constraint inherited from a base type (ele-1 on every element) is kept once, at
          // its base.
          std::string source(c.GetString("source"));
          if (!source.empty() && source.substr(source.rfind('/') + 1) != type) continue;
          if (!seen.insert(path + "|" + key).second) continue;
          Constraint k{
              key,     path,   expression, kind == "resource", c.GetString("severity") == "error",
              nullptr, nullptr};
          auto compiled = Compile(expression);
          if (!compiled) {
            compile_failures.push_back(key + " (" + path + "): " + compiled.error().message());
            continue;
          }
          k.compiled = std::move(*compiled);
          // The context elements: Patient.contact from the resource; Quantity (and subtypes)
          // wherever it occurs, with the rest of a datatype path after it.
          std::string root = path.substr(0, path.find('.'));
          std::string rest = path.size() > root.size() ? path.substr(root.size()) : "";
          std::string select = k.on_resource ? path : "descendants().ofType(" + root + ")" + rest;
          if (!k.on_resource && path == root) select = "descendants().ofType(" + root + ")";
          auto context = Compile(select);
          if (!context) {
            compile_failures.push_back(key + " context " + select + ": " +
                                       context.error().message());
            continue;
          }
          k.context = std::move(*context);
          out.push_back(std::move(k));
        }
      }
    }
  }
  return out;
}

// Whether a resource's constraints rooted at `root` apply to a resource of type `type`
// (DomainResource's to Patient).
bool Applies(const std::string& root, const std::string& type) {
  for (const fhir::StructureInfo* t = fhir::FindResourceType(type); t != nullptr;
       t = t->base == t->name ? nullptr : fhir::FindStructure(t->base)) {
    if (t->name == root) return true;
  }
  return false;
}

TEST(InvariantsTest, R4InvariantsHoldOverOfficialExamples) {
  std::vector<std::string> compile_failures;
  std::vector<Constraint> constraints = LoadConstraints(compile_failures);
  EXPECT_TRUE(compile_failures.empty())
      << compile_failures.size() << " failures, first: " << compile_failures[0];
  ASSERT_GT(constraints.size(), 200u);

  std::vector<json::Value> examples;
  for (const auto& entry : std::filesystem::directory_iterator(FHIR_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    Result<json::Value> parsed = json::Parse(ReadFile(entry.path()));
    if (parsed) examples.push_back(std::move(*parsed));
  }
  ASSERT_EQ(examples.size(), 708u);

  int evaluations = 0, holds = 0, empty = 0;
  std::vector<std::string> errors;
  std::map<std::string, int> violations;  // "key (path) in Type/id" -> count
  int error_violations = 0;
  std::set<std::string> evaluated_keys;
  for (const json::Value& example : examples) {
    std::string type(example.GetString("resourceType"));
    EvalOptions options;
    options.root_resource = &example;
    for (const Constraint& c : constraints) {
      if (c.on_resource && !Applies(c.path.substr(0, c.path.find('.')), type)) continue;
      Result<Collection> contexts = c.context->Evaluate(example, options);
      if (!contexts) {
        errors.push_back(c.key + " context over " + type + ": " + contexts.error().message());
        continue;
      }
      for (const Item& item : *contexts) {
        Result<Collection> r = c.compiled->EvaluateItems({item}, options);
        ++evaluations;
        evaluated_keys.insert(c.key);
        if (!r) {
          errors.push_back(c.key + " over " + type + "/" + std::string(example.GetString("id")) +
                           ": " + r.error().message());
          continue;
        }
        std::optional<bool> b = AsBoolean(*r);
        if (!b) {
          ++empty;
        } else if (*b) {
          ++holds;
        } else {
          if (c.error) ++error_violations;
          ++violations[std::string(c.error ? "error " : "warning ") + c.key + " (" + c.path +
                       ") in " + type + "/" + std::string(example.GetString("id"))];
        }
      }
    }
  }
  std::cout << "[ coverage ] R4 invariants: " << constraints.size() << " compiled, "
            << evaluated_keys.size() << " evaluated over examples, " << evaluations
            << " evaluations, " << holds << " true, " << empty << " empty, " << violations.size()
            << " (invariant, example) violations, " << errors.size() << " errors\n";
  for (const auto& [what, n] : violations) std::cout << "  violated: " << what << " x" << n << "\n";
  for (size_t i = 0; i < errors.size() && i < 20; ++i)
    std::cout << "  error: " << errors[i] << "\n";
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors[0];
  // The published examples break only warnings (dom-6 narrative, pdf-0 / tst-0 names).
  EXPECT_EQ(error_violations, 0);
  EXPECT_LE(violations.size(), 10u);
  EXPECT_GT(evaluations, 100000);
  EXPECT_GT(evaluated_keys.size(), 130u);
}

}  // namespace
}  // namespace fhirstone::fhirpath
