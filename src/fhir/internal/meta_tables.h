// The raw FHIR metadata tables that tools/gen_fhir_meta.py generates from the R4
// StructureDefinitions into the build folder (fhir_meta_tables.cc). fhir/model.h is the public
// view built on them; nothing outside src/fhir may include this header. Constant data, shared by
// all threads.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace fhirstone::fhir::internal {

// The most child elements one structure may have (so that a validator can track them on the stack).
inline constexpr int kMaxElementsPerStructure = 64;

// RawElement::flags bits.
inline constexpr uint8_t kFlagMany = 1;      // max is greater than 1
inline constexpr uint8_t kFlagSummary = 2;   // isSummary
inline constexpr uint8_t kFlagModifier = 4;  // isModifier
inline constexpr uint8_t kFlagChoice = 8;    // a choice element `name[x]`

struct RawStructure {
  uint16_t name;           // index into MetaTables::strings
  uint16_t base;           // string index: base type ("BackboneElement" for inline structures)
  uint8_t kind;            // fhir::StructureKind
  uint8_t is_abstract;     // 0 or 1
  uint16_t first_element;  // index into MetaTables::elements
  uint8_t element_count;
};

struct RawElement {
  uint16_t name;        // string index of the JSON name ("value" for "value[x]")
  uint16_t first_type;  // index into MetaTables::type_refs
  uint8_t type_count;
  uint8_t min;
  uint8_t flags;  // kFlag* bits
};

struct MetaTables {
  std::string_view fhir_version;
  std::span<const std::string_view> strings;
  std::span<const RawStructure> structures;
  std::span<const RawElement> elements;
  std::span<const uint16_t> type_refs;  // structure indexes
};

// Defined in the generated source.
extern const MetaTables kMetaTables;

}  // namespace fhirstone::fhir::internal
