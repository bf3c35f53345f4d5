// FHIRPath (http://hl7.org/fhirpath/N1/) over FHIR JSON resources: Compile() parses an expression
// once into an immutable Expression; Evaluate() runs it over a resource and returns a collection
// of Items. Items point into the evaluated json::Value (which must outlive the result) or hold
// values computed by the expression (literals, function results).
// An Expression is immutable and thread-safe to evaluate concurrently.
//
// Evaluation is bounded: expressions nest at most 200 deep (Compile() refuses deeper ones),
// EvalOptions::max_steps caps the work of one evaluation, strings are capped at 1 MiB, and the
// regular expressions of matches() / replaceMatches() are limited in size and input length.
// At the deepest nesting, evaluation needs about 0.5 MiB of stack.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone {
class Clock;
}  // namespace fhirstone

namespace fhirstone::fhirpath {

// One element of a collection.
struct Item {
  // The JSON node for elements of the resource (nullptr for computed values, and for a primitive
  // element that has only its `_field` companion: no value, only id / extensions).
  const json::Value* node = nullptr;
  // The `_field` companion of a primitive element (id/extension), if any.
  const json::Value* extension_node = nullptr;
  // The FHIR type name ("HumanName", "string", "Patient", "Reference"...; for an element with
  // inline children its path, "Patient.contact"; for a JSON member the model does not know, ""
  // or the primitive type of its JSON value) or, for computed values, a System type
  // ("System.String", "System.Integer", "System.Decimal", "System.Boolean", "System.Date",
  // "System.DateTime", "System.Time", "System.Quantity").
  std::string type;
  // For computed values: the value (strings, numbers as text, booleans, dates as text); for a
  // System.Quantity, `value` holds the number text and `unit` the unit.
  std::optional<json::Value> value;
  std::string unit;
};

using Collection = std::vector<Item>;

// Answers resolve() for a reference string ("Patient/123", "urn:uuid:...", "#contained", an
// absolute URL): the resource, or nullptr when it cannot be resolved. For search indexing a
// resolver may return a placeholder that only carries resourceType (enough for `resolve() is X`).
using Resolver = std::function<const json::Value*(std::string_view reference)>;

struct EvalOptions {
  Resolver resolver;  // empty: resolve() yields resources only for contained references
  // %resource / %rootResource default to the evaluated resource.
  const json::Value* root_resource = nullptr;
  // Further %name variables (looked up before the built-in ones: %context, %resource, %ucum...).
  // Their Items follow the rules of Item (nodes must outlive the evaluation).
  std::vector<std::pair<std::string, Collection>> variables;
  // now(), today(), timeOfDay(); nullptr: the system clock. Read once per evaluation.
  Clock* clock = nullptr;
  // Upper bound on the items (and string bytes / 64) one evaluation produces; past it the
  // evaluation fails with Error::Invalid instead of running away.
  uint64_t max_steps = 10'000'000;
};

class Expression {
 public:
  virtual ~Expression() = default;
  // The expression's text as compiled.
  virtual const std::string& text() const = 0;
  // Evaluates over `resource` (a FHIR resource as JSON). Errors are FHIRPath evaluation errors
  // (e.g. a singleton expected where a collection was found), as Error::Invalid.
  virtual Result<Collection> Evaluate(const json::Value& resource,
                                      const EvalOptions& options = {}) const = 0;
  // Evaluates over an input collection, e.g. an element of a resource for an invariant whose
  // context is that element (Item{&contact, nullptr, "Patient.contact"}), with
  // options.root_resource as %resource. Items of unknown type name fail with Error::Invalid.
  virtual Result<Collection> EvaluateItems(const Collection& input,
                                           const EvalOptions& options = {}) const = 0;
};

// Parses `text`; Error::Invalid with the position of the first syntax error, or NotSupported for
// functions this engine does not implement.
Result<std::unique_ptr<const Expression>> Compile(std::string_view text);

// Convenience: the boolean value of a collection per FHIRPath's singleton evaluation rules
// (empty -> nullopt; a single non-Boolean item -> true; several items -> nullopt).
std::optional<bool> AsBoolean(const Collection& c);

}  // namespace fhirstone::fhirpath
