// The FHIRPath lexer and parser (http://hl7.org/fhirpath/N1/#grammar): a hand-written lexer and a
// precedence-climbing parser that build a Program (ast.h). Nesting is bounded (kMaxDepth) so that
// neither parsing nor evaluation can exhaust the stack. Stateless functions: thread-safe.
// Internal to fhirstone_fhirpath.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "fhirpath/internal/ast.h"

namespace fhirstone::fhirpath::internal {

// Deepest nesting of parentheses, function arguments and operators, and the tallest expression
// tree, that Parse() accepts.
inline constexpr int kMaxDepth = 200;
// Longest expression text Parse() accepts.
inline constexpr size_t kMaxTextLength = 64 * 1024;

// Error::Invalid ("... at position N") for syntax errors, unknown types and bad literals;
// Error::NotSupported for functions this engine does not implement.
Result<Program> Parse(std::string_view text);

// The tree as an S-expression, for tests: "(+ 1 (* 2 3))", "Patient.name.where((= use 'x'))".
std::string DebugString(const Program& program);

}  // namespace fhirstone::fhirpath::internal
