// The compiled form of a FHIRPath expression: a flat vector of nodes that refer to each other by
// index, plus side tables (names, literals, type specifiers, precompiled regular expressions).
// Built once by Parse() (parser.h) and immutable afterwards: safe to read from many threads.
// Internal to fhirstone_fhirpath.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/model.h"
#include "fhirpath/internal/regex.h"
#include "fhirpath/internal/value.h"

namespace fhirstone::fhirpath::internal {

enum class NodeKind : uint8_t {
  kEmpty,     // {}
  kLiteral,   // data: index into Program::literals
  kMember,    // lhs (or -1: the focus) '.' name; data: index into Program::names
  kFunction,  // lhs (or -1: the focus) '.' function(args); op: Function
  kThis,      // $this
  kIndex,     // $index
  kTotal,     // $total
  kVariable,  // %name; data: index into Program::names
  kIndexer,   // lhs[rhs]
  kNegate,    // -lhs
  kBinary,    // lhs op rhs; op: BinaryOp
  kIs,        // lhs is type; data: index into Program::types
  kAs,        // lhs as type; data: index into Program::types
};

enum class BinaryOp : uint8_t {
  kMul,
  kDiv,
  kIntDiv,
  kMod,
  kAdd,
  kSub,
  kConcat,
  kUnion,
  kLt,
  kGt,
  kLe,
  kGe,
  kEq,
  kNe,
  kEquiv,
  kNotEquiv,
  kIn,
  kContains,
  kAnd,
  kOr,
  kXor,
  kImplies,
};

enum class Function : uint8_t {
  // Existence.
  kEmpty,
  kExists,
  kAll,
  kAllTrue,
  kAnyTrue,
  kAllFalse,
  kAnyFalse,
  kSubsetOf,
  kSupersetOf,
  kCount,
  kDistinct,
  kIsDistinct,
  // Filtering and projection.
  kWhere,
  kSelect,
  kRepeat,
  kOfType,
  // Subsetting.
  kSingle,
  kFirst,
  kLast,
  kTail,
  kSkip,
  kTake,
  kIntersect,
  kExclude,
  // Combining.
  kUnion,
  kCombine,
  // Conversion.
  kIif,
  kToBoolean,
  kConvertsToBoolean,
  kToInteger,
  kConvertsToInteger,
  kToDecimal,
  kConvertsToDecimal,
  kToString,
  kConvertsToString,
  kToDate,
  kConvertsToDate,
  kToDateTime,
  kConvertsToDateTime,
  kToTime,
  kConvertsToTime,
  kToQuantity,
  kConvertsToQuantity,
  // Strings.
  kIndexOf,
  kSubstring,
  kStartsWith,
  kEndsWith,
  kContains,
  kUpper,
  kLower,
  kReplace,
  kMatches,
  kReplaceMatches,
  kLength,
  kToChars,
  kTrim,
  kSplit,
  kJoin,
  // Math.
  kAbs,
  kCeiling,
  kExp,
  kFloor,
  kLn,
  kLog,
  kPower,
  kRound,
  kSqrt,
  kTruncate,
  // Tree navigation.
  kChildren,
  kDescendants,
  // Utility.
  kTrace,
  kNow,
  kTimeOfDay,
  kToday,
  kNot,
  kIs,
  kAs,
  kAggregate,
  // FHIR (https://hl7.org/fhir/R4/fhirpath.html#functions).
  kExtension,
  kResolve,
  kHasValue,
  kGetValue,
  kHtmlChecks,
};

// How a function's arguments are evaluated.
struct FunctionInfo {
  std::string_view name;
  Function function;
  uint8_t min_args;
  uint8_t max_args;
  uint8_t lambda_mask;  // bit i: argument i is evaluated once per input item ($this, $index)
  bool type_arg;        // the single argument is a type specifier (is, as, ofType)
};

// The function named `name`, or nullptr.
const FunctionInfo* FindFunction(std::string_view name);
const FunctionInfo& GetFunctionInfo(Function f);

// A type named in `is` / `as` / ofType(): a FHIR type, a System type, or (unqualified) either.
struct TypeSpec {
  std::string name;                           // as written ("FHIR.Patient", "Quantity")
  const fhir::StructureInfo* fhir = nullptr;  // matches elements of this type or a subtype
  SysType system = SysType::kNode;            // kNode: no System type
};

struct Node {
  NodeKind kind;
  uint8_t op = 0;          // BinaryOp or Function
  uint8_t arg_count = 0;   // kFunction
  int32_t lhs = -1;        // the input / left operand; -1: the focus
  int32_t rhs = -1;        // kBinary, kIndexer
  uint32_t first_arg = 0;  // kFunction: index of the first argument in Program::args
  uint32_t data = 0;       // see NodeKind; kFunction: kMatches/kReplaceMatches regex index + 1
  uint32_t pos = 0;        // offset in the text, for messages
};

struct Program {
  std::string text;
  std::vector<Node> nodes;
  std::vector<int32_t> args;
  std::vector<std::string> names;
  std::vector<Val> literals;
  std::vector<TypeSpec> types;
  std::vector<std::unique_ptr<const Regex>> regexes;
  int32_t root = -1;
};

}  // namespace fhirstone::fhirpath::internal
