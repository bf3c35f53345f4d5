// The FHIR R4 type model: resource types, complex and primitive datatypes and their child
// elements (JSON name, cardinality, types, isSummary, isModifier), generated at build time from the
// official StructureDefinitions by tools/gen_fhir_meta.py.
//
// Every StructureInfo / ElementInfo lives in one immutable registry built on first use (thread-safe
// static initialisation) and never freed: pointers and string_views returned here stay valid for
// the life of the process. All functions are thread-safe; lookups are hash lookups by string_view
// and do not allocate.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "fhir/primitives.h"

namespace fhirstone::fhir {

enum class StructureKind : uint8_t {
  kPrimitiveType,    // boolean, string, dateTime... (children: id, extension)
  kComplexType,      // HumanName, Quantity, Extension, Element, BackboneElement...
  kResource,         // Patient, Bundle... and the abstract Resource and DomainResource
  kBackboneElement,  // an element with inline children, named by its path: "Patient.contact"
};

struct StructureInfo;

// One child element of a structure.
struct ElementInfo {
  std::string_view name;  // JSON name; "value" for the choice element "value[x]"
  const StructureInfo* parent;
  // The allowed types: several only for a choice element; for an element with inline children
  // the kBackboneElement structure; for a contentReference (Questionnaire.item.item) its target;
  // for contained / Bundle.entry.resource the abstract "Resource".
  std::span<const StructureInfo* const> types;
  uint8_t index;  // position in parent->elements
  uint8_t min;    // 0 or more
  bool many;      // max > 1 (the JSON value is an array)
  bool is_summary;
  bool is_modifier;
  bool is_choice;  // "value[x]": the JSON name is name + the type name capitalised

  // The type of a non-choice element.
  const StructureInfo& type() const { return *types.front(); }
};

// What a JSON member name resolves to within a structure.
struct ElementMatch {
  const ElementInfo* element = nullptr;
  const StructureInfo* type = nullptr;  // the concrete type: Quantity for "valueQuantity"
  explicit operator bool() const { return element != nullptr; }
};

// A resource, datatype or inline backbone element and its child elements.
struct StructureInfo {
  std::string_view name;  // "Patient", "HumanName", "dateTime", "Patient.contact"
  std::string_view base;  // "DomainResource", "Element", "BackboneElement", "Quantity" (for Age)...
  StructureKind kind;
  bool is_abstract;                        // Element, BackboneElement, Resource, DomainResource
  std::optional<PrimitiveType> primitive;  // set exactly for kPrimitiveType
  uint16_t index;                          // dense, 0 .. AllStructures().size() - 1
  std::span<const ElementInfo> elements;   // in definition order

  // The element named `name` ("value" for "value[x]"; "given"), or nullptr.
  const ElementInfo* FindElement(std::string_view name) const;
  // The element a JSON member name denotes ("valueQuantity", "given"; without a leading '_'),
  // with its concrete type; empty when there is none ("value" alone does not match "value[x]").
  ElementMatch Resolve(std::string_view json_name) const;

  bool is_primitive() const { return kind == StructureKind::kPrimitiveType; }
  bool is_resource() const { return kind == StructureKind::kResource; }
};

// "4.0.1".
std::string_view FhirVersion();
// Every structure, indexed by StructureInfo::index.
std::span<const StructureInfo> AllStructures();
// A structure by name ("Patient", "HumanName", "string", "Resource", "Patient.contact"), or
// nullptr.
const StructureInfo* FindStructure(std::string_view name);
// A concrete (non-abstract) resource type by name, or nullptr.
const StructureInfo* FindResourceType(std::string_view name);
// The element at a dotted path from a structure name: "Patient.contact.name.family",
// "Observation.value" (the choice element), "Observation.valueQuantity.unit"; nullptr when a
// segment is unknown or follows a choice element given without its type.
const ElementInfo* FindElementByPath(std::string_view path);
// True for the 146 concrete resource types of R4 (Patient, Bundle, Parameters, Binary...).
bool IsResourceType(std::string_view name);
// The concrete resource type names, sorted.
const std::vector<std::string_view>& ResourceTypes();
// IsValidId(std::string_view), [A-Za-z0-9\-\.]{1,64}, is declared in fhir/primitives.h.

}  // namespace fhirstone::fhir
