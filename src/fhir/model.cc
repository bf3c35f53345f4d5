#include "fhir/model.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>

#include "fhir/internal/meta_tables.h"

namespace fhirstone::fhir {
namespace {

using internal::kMetaTables;

constexpr uint16_t kNoStructure = 0xFFFF;  // key of the structure-name entries
constexpr uint8_t kChoiceBase = 0xFF;      // type slot of "value" for "value[x]" (not a JSON name)

uint64_t Hash(uint16_t structure, std::string_view name) {
  uint64_t h = 1469598103934665603ULL ^ structure;  // FNV-1a
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

// The immutable lookup tables: structures, elements, and one open-addressing hash table keyed by
// (structure index, name) that serves both element and structure-name lookups.
class Registry {
 public:
  static const Registry& Get() {
    static const Registry registry;
    return registry;
  }

  std::span<const StructureInfo> structures() const { return structures_; }
  const std::vector<std::string_view>& resource_types() const { return resource_types_; }

  struct Slot {
    std::string_view name;
    uint16_t structure = 0;
    uint16_t target = 0;  // element index within the structure, or a structure index
    uint8_t type = 0;     // index into the element's types, or kChoiceBase
    bool used = false;
  };

  const Slot* Lookup(uint16_t structure, std::string_view name) const {
    size_t i = Hash(structure, name) & mask_;
    while (slots_[i].used) {
      const Slot& s = slots_[i];
      if (s.structure == structure && s.name == name) return &s;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

 private:
  Registry() {
    const auto& t = kMetaTables;
    structures_.resize(t.structures.size());
    elements_.resize(t.elements.size());
    type_refs_.resize(t.type_refs.size());
    for (size_t i = 0; i < t.type_refs.size(); ++i) type_refs_[i] = &structures_[t.type_refs[i]];

    size_t choice_chars = 0, entries = t.structures.size();
    for (const auto& e : t.elements) {
      ++entries;
      if (e.flags & internal::kFlagChoice) {
        for (size_t k = 0; k < e.type_count; ++k) {
          const auto& type = t.structures[t.type_refs[e.first_type + k]];
          choice_chars += t.strings[e.name].size() + t.strings[type.name].size();
          ++entries;
        }
      }
    }
    choice_names_ = std::make_unique<char[]>(choice_chars);
    size_t capacity = 1;
    while (capacity < entries * 2) capacity <<= 1;
    slots_.resize(capacity);
    mask_ = capacity - 1;

    char* out = choice_names_.get();
    for (size_t si = 0; si < t.structures.size(); ++si) {
      const auto& raw = t.structures[si];
      StructureInfo& s = structures_[si];
      s.name = t.strings[raw.name];
      s.base = t.strings[raw.base];
      s.kind = static_cast<StructureKind>(raw.kind);
      s.is_abstract = raw.is_abstract != 0;
      if (s.kind == StructureKind::kPrimitiveType) s.primitive = PrimitiveTypeFromName(s.name);
      s.index = static_cast<uint16_t>(si);
      s.elements = std::span<const ElementInfo>(&elements_[raw.first_element], raw.element_count);
      Insert(kNoStructure, s.name, s.index, 0);
      if (s.kind == StructureKind::kResource && !s.is_abstract) resource_types_.push_back(s.name);

      for (size_t ei = 0; ei < raw.element_count; ++ei) {
        const auto& re = t.elements[raw.first_element + ei];
        ElementInfo& e = elements_[raw.first_element + ei];
        e.name = t.strings[re.name];
        e.parent = &s;
        e.types = std::span<const StructureInfo* const>(&type_refs_[re.first_type], re.type_count);
        e.index = static_cast<uint8_t>(ei);
        e.min = re.min;
        e.many = re.flags & internal::kFlagMany;
        e.is_summary = re.flags & internal::kFlagSummary;
        e.is_modifier = re.flags & internal::kFlagModifier;
        e.is_choice = re.flags & internal::kFlagChoice;
        if (!e.is_choice) {
          Insert(s.index, e.name, static_cast<uint16_t>(ei), 0);
          continue;
        }
        Insert(s.index, e.name, static_cast<uint16_t>(ei), kChoiceBase);
        for (size_t k = 0; k < re.type_count; ++k) {
          std::string_view type = t.strings[t.structures[t.type_refs[re.first_type + k]].name];
          char* start = out;
          out = std::copy(e.name.begin(), e.name.end(), out);
          *out++ =
              static_cast<char>(type[0] >= 'a' && type[0] <= 'z' ? type[0] - 'a' + 'A' : type[0]);
          out = std::copy(type.begin() + 1, type.end(), out);
          Insert(s.index, std::string_view(start, out - start), static_cast<uint16_t>(ei),
                 static_cast<uint8_t>(k));
        }
      }
    }
    std::sort(resource_types_.begin(), resource_types_.end());
  }

  void Insert(uint16_t structure, std::string_view name, uint16_t target, uint8_t type) {
    size_t i = Hash(structure, name) & mask_;
    while (slots_[i].used) i = (i + 1) & mask_;
    slots_[i] = Slot{name, structure, target, type, true};
  }

  std::vector<StructureInfo> structures_;
  std::vector<ElementInfo> elements_;
  std::vector<const StructureInfo*> type_refs_;
  std::unique_ptr<char[]> choice_names_;  // "valueQuantity"... that the slots point into
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  std::vector<std::string_view> resource_types_;
};

}  // namespace

const ElementInfo* StructureInfo::FindElement(std::string_view name) const {
  const Registry::Slot* slot = Registry::Get().Lookup(index, name);
  if (slot == nullptr) return nullptr;
  const ElementInfo& e = elements[slot->target];
  if (e.is_choice && slot->type != kChoiceBase) return nullptr;  // "valueQuantity"
  return &e;
}

ElementMatch StructureInfo::Resolve(std::string_view json_name) const {
  const Registry::Slot* slot = Registry::Get().Lookup(index, json_name);
  if (slot == nullptr || slot->type == kChoiceBase) return {};
  const ElementInfo& e = elements[slot->target];
  return {&e, e.types[slot->type]};
}

std::string_view FhirVersion() { return kMetaTables.fhir_version; }

std::span<const StructureInfo> AllStructures() { return Registry::Get().structures(); }

const StructureInfo* FindStructure(std::string_view name) {
  const Registry& r = Registry::Get();
  const Registry::Slot* slot = r.Lookup(kNoStructure, name);
  return slot == nullptr ? nullptr : &r.structures()[slot->target];
}

const StructureInfo* FindResourceType(std::string_view name) {
  const StructureInfo* s = FindStructure(name);
  return s != nullptr && s->kind == StructureKind::kResource && !s->is_abstract ? s : nullptr;
}

const ElementInfo* FindElementByPath(std::string_view path) {
  size_t dot = path.find('.');
  const StructureInfo* s = FindStructure(path.substr(0, dot));
  const ElementInfo* e = nullptr;
  while (dot != std::string_view::npos) {
    path.remove_prefix(dot + 1);
    dot = path.find('.');
    std::string_view segment = path.substr(0, dot);
    if (s == nullptr) return nullptr;
    if (ElementMatch m = s->Resolve(segment)) {
      e = m.element;
      s = m.type;
    } else {
      e = s->FindElement(segment);
      if (e == nullptr) return nullptr;
      s = e->is_choice ? nullptr : &e->type();
    }
  }
  return e;
}

bool IsResourceType(std::string_view name) { return FindResourceType(name) != nullptr; }

const std::vector<std::string_view>& ResourceTypes() { return Registry::Get().resource_types(); }

}  // namespace fhirstone::fhir
