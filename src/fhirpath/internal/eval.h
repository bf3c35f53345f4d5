// The FHIRPath evaluator: walks a Program over collections of Vals. One Evaluator serves one
// evaluation (it holds the %context / %resource values, the work budget and the now() value) and
// is used by one thread; the Program and EvalOptions it refers to must outlive it.
// Internal to fhirstone_fhirpath.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "fhirpath/fhirpath.h"
#include "fhirpath/internal/ast.h"
#include "fhirpath/internal/value.h"

namespace fhirstone::fhirpath::internal {

using Coll = std::vector<Val>;

// Strings longer than this are an evaluation error.
inline constexpr size_t kMaxStringLength = 1 << 20;

// What source-less terms see: $this (the focus), $index, $total.
struct Env {
  std::span<const Val> focus;
  int64_t index = -1;
  const Coll* total = nullptr;
};

class Evaluator {
 public:
  // `resource` is %resource / %rootResource.
  Evaluator(const Program& program, const EvalOptions& options, Val resource);

  // Evaluates the program with `context` as %context and the initial focus.
  Result<Coll> Run(Coll context);

 private:
  Result<Coll> Eval(int32_t index, const Env& env);
  Result<Coll> EvalMember(const Node& n, const Env& env);
  Result<Coll> EvalBinary(const Node& n, const Env& env);
  Result<Coll> EvalLogic(const Node& n, const Env& env);
  Result<Coll> EvalArithmetic(const Node& n, const Val& a, const Val& b);
  Result<Coll> EvalVariable(const Node& n);
  Result<Coll> EvalFunction(const Node& n, const Env& env);
  Result<Coll> EvalExistence(const Node& n, Function f, std::span<const Val> input, const Env& env);
  Result<Coll> EvalSubsetting(const Node& n, Function f, std::span<const Val> input,
                              const Env& env);
  Result<Coll> EvalConversion(const Node& n, Function f, std::span<const Val> input);
  Result<Coll> EvalString(const Node& n, Function f, std::span<const Val> input, const Env& env);
  Result<Coll> EvalMath(const Node& n, Function f, std::span<const Val> input, const Env& env);
  Result<Coll> EvalFhir(const Node& n, Function f, std::span<const Val> input, const Env& env);

  // Argument k of a function node, evaluated with the enclosing focus.
  Result<Coll> Arg(const Node& n, uint32_t k, const Env& env);
  // Argument k evaluated for one input item ($this = item, $index = index).
  Result<Coll> Lambda(const Node& n, uint32_t k, const Val& item, int64_t index, const Env& env);
  // The boolean of a criteria result: true / false / nullopt (empty); an error for several items.
  Result<std::optional<bool>> Truth(const Node& n, const Coll& c);
  // The single item of `c`; nullptr when empty; an error for several items.
  Result<const Val*> Single(const Node& n, std::span<const Val> c);
  // A singleton Integer argument.
  Result<std::optional<int64_t>> IntegerArg(const Node& n, uint32_t k, const Env& env);
  // A singleton String argument.
  Result<std::optional<std::string>> StringArg(const Node& n, uint32_t k, const Env& env);

  // Appends the children of `v` named `name` to `out`.
  void Children(const Val& v, std::string_view name, Coll& out) const;
  // Appends all children of `v`.
  void AllChildren(const Val& v, Coll& out) const;
  bool IsType(const Val& v, const TypeSpec& type) const;
  // Appends `items` to `out`, skipping those already equal to an item of `out`.
  void AddDistinct(std::span<const Val> items, Coll& out) const;
  bool ContainsEqual(std::span<const Val> c, const Val& v) const;
  const Val& Now();

  // Charges `n` steps of work; an error once the budget is spent.
  Status Charge(const Node& n, uint64_t steps);
  // Charges the comparisons of an operation that compares a items with b items.
  Status ChargeQuadratic(const Node& n, size_t a, size_t b);
  Error Fail(const Node& n, std::string_view message) const;

  const Program& p_;
  const EvalOptions& options_;
  Val resource_;
  Coll context_;
  uint64_t steps_left_;
  std::optional<Val> now_;
};

// The Val of a public Item (an element by its type name, or a computed System value);
// Error::Invalid for an unknown type name or a value that does not match its type.
Result<Val> ItemToVal(const Item& item);

// The FHIR type of a resource (by its resourceType), or nullptr.
const fhir::StructureInfo* ResourceTypeOf(const json::Value& resource);

}  // namespace fhirstone::fhirpath::internal
