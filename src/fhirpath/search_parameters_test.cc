// The coverage test of the FHIRPath engine: every expression of the official R4 SearchParameters
// (search-parameters.json) and of the US Core 6.1.0 SearchParameters compiles, and evaluates
// without error over every official R4 example of the parameter's base resource types. Prints
// the coverage figures. Also spot checks of known values over official examples.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
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

struct Example {
  std::string file;
  json::Value resource;
};

// The 708 official examples, parsed once, by resourceType.
const std::map<std::string, std::vector<Example>>& Examples() {
  static const auto* examples = [] {
    auto* by_type = new std::map<std::string, std::vector<Example>>();
    for (const auto& entry : std::filesystem::directory_iterator(FHIR_EXAMPLES_DIR)) {
      if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
      Result<json::Value> parsed = json::Parse(ReadFile(entry.path()));
      if (!parsed) continue;
      std::string type(parsed->GetString("resourceType"));
      (*by_type)[type].push_back({entry.path().filename().string(), std::move(*parsed)});
    }
    return by_type;
  }();
  return *examples;
}

const json::Value& ExampleResource(std::string_view file) {
  for (const auto& [type, list] : Examples()) {
    for (const Example& e : list) {
      if (e.file == file) return e.resource;
    }
  }
  static const json::Value kNone;
  ADD_FAILURE() << "no example " << file;
  return kNone;
}

// A resolver for search indexing: "Patient/123" (also absolute, or with _history) resolves to a
// placeholder {"resourceType": "Patient"}. The placeholders live as long as the resolver.
class PlaceholderResolver {
 public:
  const json::Value* Resolve(std::string_view reference) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (start <= reference.size()) {
      size_t slash = reference.find('/', start);
      if (slash == std::string_view::npos) slash = reference.size();
      parts.push_back(reference.substr(start, slash - start));
      start = slash + 1;
    }
    for (size_t i = parts.size(); i-- > 0;) {
      if (i + 1 < parts.size() && fhir::IsResourceType(parts[i])) {
        std::string type(parts[i]);
        auto it = placeholders_.find(type);
        if (it == placeholders_.end()) {
          json::Object o;
          o.emplace_back("resourceType", json::Value(type));
          it = placeholders_.emplace(type, json::Value(std::move(o))).first;
        }
        return &it->second;
      }
    }
    return nullptr;
  }
  Resolver AsResolver() {
    return [this](std::string_view ref) { return Resolve(ref); };
  }

 private:
  std::map<std::string, json::Value, std::less<>> placeholders_;
};

struct SearchParameter {
  std::string id;
  std::string expression;
  std::vector<std::string> base;
};

std::vector<SearchParameter> FromResource(const json::Value& r) {
  std::vector<SearchParameter> out;
  if (r.GetString("resourceType") != "SearchParameter") return out;
  SearchParameter p;
  p.id = std::string(r.GetString("id"));
  p.expression = std::string(r.GetString("expression"));
  if (const json::Value* base = r.Find("base"); base != nullptr && base->is_array()) {
    for (const json::Value& b : base->as_array()) {
      if (b.is_string()) p.base.push_back(b.as_string());
    }
  }
  out.push_back(std::move(p));
  return out;
}

std::vector<SearchParameter> R4SearchParameters() {
  std::vector<SearchParameter> out;
  Result<json::Value> bundle =
      json::Parse(ReadFile(std::filesystem::path(FHIR_DEFINITIONS_DIR) / "search-parameters.json"));
  if (!bundle) return out;
  const json::Value* entries = bundle->Find("entry");
  if (entries == nullptr || !entries->is_array()) return out;
  for (const json::Value& e : entries->as_array()) {
    if (const json::Value* r = e.Find("resource")) {
      for (SearchParameter& p : FromResource(*r)) out.push_back(std::move(p));
    }
  }
  return out;
}

#ifdef US_CORE_DIR
std::vector<SearchParameter> UsCoreSearchParameters() {
  std::vector<SearchParameter> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(US_CORE_DIR)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.rfind("SearchParameter-", 0) != 0 ||
        entry.path().extension() != ".json") {
      continue;
    }
    Result<json::Value> r = json::Parse(ReadFile(entry.path()));
    if (!r) continue;
    for (SearchParameter& p : FromResource(*r)) out.push_back(std::move(p));
  }
  return out;
}
#endif

// The example resource types a SearchParameter with these bases applies to.
std::vector<std::string> TypesFor(const std::vector<std::string>& bases) {
  std::set<std::string> types;
  for (const std::string& base : bases) {
    for (const auto& [type, list] : Examples()) {
      const fhir::StructureInfo* t = fhir::FindResourceType(type);
      bool matches = type == base;
      if (base == "Resource") matches = true;
      if (base == "DomainResource") matches = t != nullptr && t->base == "DomainResource";
      if (matches) types.insert(type);
    }
  }
  return {types.begin(), types.end()};
}

struct Coverage {
  int parameters = 0;
  int compiled = 0;
  int evaluated = 0;  // expressions evaluated over at least one example
  int pairs = 0;
  int non_empty = 0;
  std::vector<std::string> failures;
};

Coverage Measure(const std::vector<SearchParameter>& params) {
  Coverage c;
  PlaceholderResolver resolver;
  EvalOptions options;
  options.resolver = resolver.AsResolver();
  for (const SearchParameter& p : params) {
    if (p.expression.empty()) continue;
    ++c.parameters;
    auto compiled = Compile(p.expression);
    if (!compiled) {
      c.failures.push_back(p.id + ": compile: " + compiled.error().message());
      continue;
    }
    ++c.compiled;
    bool any = false;
    for (const std::string& type : TypesFor(p.base)) {
      for (const Example& e : Examples().at(type)) {
        Result<Collection> r = (*compiled)->Evaluate(e.resource, options);
        ++c.pairs;
        any = true;
        if (!r) {
          c.failures.push_back(p.id + " over " + e.file + ": " + r.error().message());
          continue;
        }
        if (!r->empty()) ++c.non_empty;
        // Search expressions select elements of the resource (or a boolean).
        for (const Item& item : *r) {
          if (item.node == nullptr && item.extension_node == nullptr &&
              item.type != "System.Boolean") {
            c.failures.push_back(p.id + " over " + e.file + ": computed item of type " + item.type);
          }
        }
      }
    }
    if (any) ++c.evaluated;
  }
  return c;
}

void Report(std::string_view name, const Coverage& c) {
  std::cout << "[ coverage ] " << name << ": " << c.parameters << " expressions, " << c.compiled
            << " compiled, " << c.evaluated << " evaluated over examples, " << c.pairs
            << " (expression, example) pairs evaluated, " << c.non_empty << " non-empty\n";
  for (size_t i = 0; i < c.failures.size() && i < 30; ++i) {
    std::cout << "  FAIL " << c.failures[i] << "\n";
  }
}

TEST(SearchParametersTest, EveryR4ExpressionCompilesAndEvaluates) {
  std::vector<SearchParameter> params = R4SearchParameters();
  ASSERT_EQ(params.size(), 1375u);
  size_t total = 0;
  for (const auto& [type, list] : Examples()) total += list.size();
  ASSERT_EQ(total, 708u);
  Coverage c = Measure(params);
  Report("R4 search-parameters.json", c);
  EXPECT_EQ(c.parameters, 1372);
  EXPECT_EQ(c.compiled, c.parameters);
  EXPECT_TRUE(c.failures.empty()) << c.failures.size() << " failures, first: " << c.failures[0];
  // Most parameters have an example of their base; most pairs on the common elements find values.
  EXPECT_GT(c.evaluated, 1200);
  EXPECT_GT(c.pairs, 10000);
  EXPECT_GT(c.non_empty, c.pairs / 5);
}

#ifdef US_CORE_DIR
TEST(SearchParametersTest, EveryUsCoreExpressionCompilesAndEvaluates) {
  std::vector<SearchParameter> params = UsCoreSearchParameters();
  ASSERT_GE(params.size(), 60u);
  Coverage c = Measure(params);
  Report("US Core 6.1.0", c);
  EXPECT_EQ(c.compiled, c.parameters);
  EXPECT_TRUE(c.failures.empty()) << c.failures.size() << " failures, first: " << c.failures[0];
  EXPECT_EQ(c.evaluated, c.parameters);
  EXPECT_GT(c.non_empty, 0);
}
#endif

std::vector<std::string> Strings(const Collection& c) {
  std::vector<std::string> out;
  for (const Item& item : c) {
    if (item.node != nullptr && item.node->is_string()) {
      out.push_back(item.node->as_string());
    } else if (item.value && item.value->is_string()) {
      out.push_back(item.value->as_string());
    } else {
      out.push_back("<" + item.type + ">");
    }
  }
  return out;
}

Collection Eval(std::string_view expression, const json::Value& resource,
                const EvalOptions& options = {}) {
  auto e = Compile(expression);
  EXPECT_TRUE(e) << expression << ": " << e.error().message();
  if (!e) return {};
  Result<Collection> r = (*e)->Evaluate(resource, options);
  EXPECT_TRUE(r) << expression << ": " << r.error().message();
  return r ? std::move(*r) : Collection();
}

TEST(SearchParametersTest, KnownValuesOfOfficialExamples) {
  const json::Value& patient = ExampleResource("Patient-example.json");
  EXPECT_EQ(Strings(Eval("Patient.name.given", patient)),
            (std::vector<std::string>{"Peter", "James", "Jim", "Peter", "James"}));
  EXPECT_EQ(Strings(Eval("Patient.name.given | Practitioner.name.given", patient)),
            (std::vector<std::string>{"Peter", "James", "Jim"}));
  EXPECT_EQ(Strings(Eval("Patient.name | Practitioner.name", patient)).size(), 3u);
  EXPECT_TRUE(Eval("Practitioner.name", patient).empty());
  EXPECT_EQ(Strings(Eval("Patient.name.where(use = 'official').family", patient)),
            std::vector<std::string>{"Chalmers"});
  Collection deceased = Eval("Patient.deceased.exists() and Patient.deceased != false", patient);
  ASSERT_EQ(deceased.size(), 1u);
  EXPECT_EQ(AsBoolean(deceased), false);  // deceasedBoolean: false
  EXPECT_EQ(Eval("Patient.birthDate", patient)[0].type, "date");
  EXPECT_EQ(Eval("Patient.contact.name", patient)[0].type, "HumanName");
  EXPECT_EQ(Eval("Patient.contact", patient)[0].type, "Patient.contact");
  // _birthDate carries an extension.
  Collection birth_ext = Eval(
      "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/"
      "patient-birthTime').value",
      patient);
  ASSERT_EQ(birth_ext.size(), 1u);
  EXPECT_EQ(birth_ext[0].type, "dateTime");
  // Patient.managingOrganization resolves through the resolver to a placeholder.
  PlaceholderResolver resolver;
  EvalOptions options;
  options.resolver = resolver.AsResolver();
  EXPECT_EQ(Eval("Patient.managingOrganization.where(resolve() is Organization)", patient, options)
                .size(),
            1u);
  EXPECT_TRUE(
      Eval("Patient.managingOrganization.where(resolve() is Patient)", patient, options).empty());

  // A dead patient: deceasedDateTime.
  const json::Value& dead = ExampleResource("Patient-pat3.json");
  Collection dead_result = Eval("Patient.deceased.exists() and Patient.deceased != false", dead);
  EXPECT_EQ(AsBoolean(dead_result), true);
  EXPECT_EQ(Eval("(Patient.deceased as dateTime)", dead).size(), 1u);

  const json::Value& obs = ExampleResource("Observation-example.json");
  Collection q = Eval("Observation.value.as(Quantity)", obs);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].type, "Quantity");
  EXPECT_EQ(q[0].node, obs.Find("valueQuantity"));
  EXPECT_EQ(Eval("(Observation.value as Quantity).unit", obs).size(), 1u);
  EXPECT_EQ(Eval("Observation.value.ofType(Quantity).value > 100", obs).size(), 1u);
  EXPECT_TRUE(Eval("Observation.value.as(CodeableConcept)", obs).empty());
  Collection effective = Eval("(Observation.effective as dateTime)", obs);
  ASSERT_EQ(effective.size(), 1u);
  EXPECT_EQ(effective[0].type, "dateTime");
  EXPECT_EQ(effective[0].node, obs.Find("effectiveDateTime"));

  const json::Value& document = ExampleResource("Bundle-father.json");
  Collection composition = Eval("Bundle.entry[0].resource as Composition", document);
  ASSERT_EQ(composition.size(), 1u);
  EXPECT_EQ(composition[0].type, "Composition");
  EXPECT_EQ(Eval("Bundle.entry.resource.ofType(Patient).count() >= 1", document).size(), 1u);
}

}  // namespace
}  // namespace fhirstone::fhirpath
