// The two patch formats of the FHIR patch interaction (https://hl7.org/fhir/R4/http.html#patch):
// JSON Patch (RFC 6902, pointers per RFC 6901) and FHIRPath Patch
// (https://hl7.org/fhir/R4/fhirpatch.html). Both take the current resource and the patch document,
// never modify their inputs and return the patched resource as a new value: a patch is applied
// entirely or not at all. Operations are numbered from 0, as in the patch document, in error
// messages. The result is not validated against the FHIR model beyond what each format requires;
// callers validate it (and check that resourceType and id are unchanged) before storing it.
// Stateless free functions: thread-safe.
#pragma once

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::patch {

// Applies a JSON Patch (RFC 6902: add, remove, replace, move, copy, test; JSON Pointer RFC 6901
// with ~0/~1 escapes and "-" for array append) to `resource`. Errors: Error::Invalid for a
// malformed patch document (not an array, an operation that is not an object, unknown op, missing
// or non-string path/from, missing value, a pointer that does not start with '/' or has a bad
// escape); Error::Unprocessable for a patch that cannot apply (path not found, test failed, move
// into its own child), each with a message naming the operation index. `test` compares numbers by
// value (1 equals 1.0) and objects regardless of member order.
Result<json::Value> ApplyJsonPatch(const json::Value& resource, const json::Value& patch);

// Applies a FHIRPath Patch: a Parameters resource with `operation` parameters, each with parts
// type (add | insert | delete | replace | move), path (a FHIRPath expression), name, value
// (value[x], a `resource`, or nested `part`s building a complex element), index, source and
// destination. Same error conventions: Error::Invalid for a malformed Parameters document (unknown
// type or part, missing part, a FHIRPath expression that does not compile), Error::NotSupported
// for a FHIRPath function the engine lacks, Error::Unprocessable when an operation cannot apply
// (no or several matches, a value of the wrong type for the element, an index out of range, an
// element that already exists). The Error's expression names the operation
// ("Parameters.parameter[1]").
//
// Semantics: add, delete and replace evaluate `path` to the element to change (exactly one; delete
// with no match does nothing). insert and move name a list: `path` ends with the list's element
// name ("Patient.name[0].given"), the part before it must select exactly one element. A choice
// element (value[x]) is written with the type of the supplied value (valueQuantity), on replace
// too. Primitive values keep their `_name` companion (id, extensions) aligned: list edits move it
// along, replace and delete replace or remove it with the value, add/replace take it from the
// value part's `_valueX`.
Result<json::Value> ApplyFhirPathPatch(const json::Value& resource, const json::Value& parameters);

}  // namespace fhirstone::patch
