#!/usr/bin/env python3
"""Generates the FHIR element metadata tables of Fhirstone (C++) from the official
StructureDefinitions.

Reads profiles-types.json and profiles-resources.json (FHIR Bundles of StructureDefinitions) from
--definitions DIR and writes one C++ source file (--output) that defines
fhirstone::fhir::internal::kMetaTables, declared in src/fhir/internal/meta_tables.h:

  * one structure per primitive type, complex datatype and resource (abstract ones included:
    Element, BackboneElement, Resource, DomainResource), then one per inline BackboneElement /
    Element of a snapshot (named by its path, e.g. "Patient.contact");
  * for each structure its child elements in definition order: JSON name ("value" for "value[x]",
    marked as a choice), min, max (1 or many), the allowed types (as structure indexes; the inline
    structure for backbone elements; the target for contentReference elements such as
    Questionnaire.item.item -> Questionnaire.item), isSummary and isModifier.

FHIRPath system types (http://hl7.org/fhirpath/System.String ...) are replaced by the FHIR type
named in their structuredefinition-fhir-type extension (Element.id -> string, Extension.url ->
uri). Resource.id is typed `id` (as the specification renders it). The `value` element of a
primitive type is not a JSON member and is left out; elements with max 0 are left out.

Strings are interned into one table; structures, elements and type lists are arrays of small
structs holding indexes, so the output compiles in about a second. Python 3 standard library only.
The output is a build product: never commit it.
"""

import argparse
import json
import os
import sys

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."

# Must match fhir::StructureKind in src/fhir/model.h.
KIND_PRIMITIVE, KIND_COMPLEX, KIND_RESOURCE, KIND_BACKBONE = 0, 1, 2, 3

# Element flag bits; must match src/fhir/internal/meta_tables.h.
FLAG_MANY, FLAG_SUMMARY, FLAG_MODIFIER, FLAG_CHOICE = 1, 2, 4, 8


def load_structure_definitions(path):
    with open(path, encoding="utf-8") as f:
        bundle = json.load(f)
    result = []
    for entry in bundle.get("entry", []):
        res = entry.get("resource", {})
        if res.get("resourceType") != "StructureDefinition":
            continue
        if res.get("kind") not in ("primitive-type", "complex-type", "resource"):
            continue
        if res.get("derivation") == "constraint":  # profiles such as SimpleQuantity
            continue
        result.append(res)
    return result


def parent_path(path):
    return path.rsplit(".", 1)[0] if "." in path else None


def type_code(t):
    code = t["code"]
    if code.startswith(SYSTEM_PREFIX):
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT and "valueUrl" in ext:
                return ext["valueUrl"]
        return "string"  # xhtml.id carries no extension
    return code


class Generator:
    def __init__(self, sds):
        order = {"primitive-type": 0, "complex-type": 1, "resource": 2}
        self.sds = sorted(sds, key=lambda sd: (order[sd["kind"]], sd["type"]))
        self.strings = []
        self.string_index = {}
        self.structures = []  # dicts: name, base, kind, abstract, sd, path, children
        self.structure_index = {}  # name (type or path) -> index
        self.fhir_version = ""

    def intern(self, s):
        if s not in self.string_index:
            self.string_index[s] = len(self.strings)
            self.strings.append(s)
        return self.string_index[s]

    def add_structure(self, name, base, kind, abstract, sd, path, children):
        if name in self.structure_index:
            raise SystemExit(f"duplicate structure {name}")
        self.structure_index[name] = len(self.structures)
        self.structures.append(dict(name=name, base=base, kind=kind, abstract=abstract, sd=sd,
                                    path=path, children=children))

    def collect(self):
        kinds = {"primitive-type": KIND_PRIMITIVE, "complex-type": KIND_COMPLEX,
                 "resource": KIND_RESOURCE}
        inline = []
        for sd in self.sds:
            self.fhir_version = self.fhir_version or sd.get("fhirVersion", "")
            elements = sd["snapshot"]["element"]
            children = {}
            for el in elements:
                if "sliceName" in el:
                    raise SystemExit(f"unexpected slice in {sd['url']}: {el['id']}")
                p = parent_path(el["path"])
                if p is not None:
                    children.setdefault(p, []).append(el)
            root = sd["type"]
            base = sd.get("baseDefinition", "").rsplit("/", 1)[-1]
            self.add_structure(root, base or root, kinds[sd["kind"]], bool(sd.get("abstract")),
                               sd, root, children.get(root, []))
            for el in elements:
                if el["path"] != root and el["path"] in children:
                    codes = [type_code(t) for t in el.get("type", [])]
                    if len(codes) != 1 or codes[0] not in ("BackboneElement", "Element"):
                        raise SystemExit(f"element with children of type {codes}: {el['path']}")
                    inline.append((el["path"], codes[0], sd, children[el["path"]]))
        for path, base, sd, kids in inline:
            self.add_structure(path, base, KIND_BACKBONE, False, sd, path, kids)

    def element_types(self, structure, el):
        path = el["path"]
        if path in self.structure_index and path != structure["name"]:
            return [self.structure_index[path]]
        if "contentReference" in el:
            target = el["contentReference"].lstrip("#")
            if target not in self.structure_index:
                raise SystemExit(f"unknown contentReference {target} at {path}")
            return [self.structure_index[target]]
        sd = structure["sd"]
        codes = [type_code(t) for t in el.get("type", [])]
        if sd["kind"] == "resource" and path == sd["type"] + ".id":
            codes = ["id"]
        if not codes:
            raise SystemExit(f"element without type: {path}")
        result = []
        for code in codes:
            if code not in self.structure_index:
                raise SystemExit(f"unknown type {code} at {path}")
            if self.structure_index[code] not in result:
                result.append(self.structure_index[code])
        return result

    def emit(self, out):
        rows_structures = []
        rows_elements = []
        type_refs = []
        max_children = 0
        for s in self.structures:
            first = len(rows_elements)
            seen_names = set()
            for el in s["children"]:
                name = el["path"].rsplit(".", 1)[-1]
                if el.get("max") == "0":
                    continue
                if s["kind"] == KIND_PRIMITIVE and name == "value":
                    continue
                flags = 0
                if name.endswith("[x]"):
                    name = name[:-3]
                    flags |= FLAG_CHOICE
                mx = el.get("max", "1")
                if mx == "*" or int(mx) > 1:
                    flags |= FLAG_MANY
                if el.get("isSummary"):
                    flags |= FLAG_SUMMARY
                if el.get("isModifier"):
                    flags |= FLAG_MODIFIER
                types = self.element_types(s, el)
                json_names = [name]
                if flags & FLAG_CHOICE:
                    json_names += [name + self.structures[t]["name"][0].upper() +
                                   self.structures[t]["name"][1:] for t in types]
                for json_name in json_names:
                    if json_name in seen_names:
                        raise SystemExit(f"JSON name {json_name} twice in {s['name']}")
                    seen_names.add(json_name)
                if len(types) > 1 and not flags & FLAG_CHOICE:
                    raise SystemExit(f"several types on a non-choice element {el['path']}")
                rows_elements.append((self.intern(name), len(type_refs), len(types),
                                      int(el.get("min", 0)), flags))
                type_refs.extend(types)
            count = len(rows_elements) - first
            max_children = max(max_children, count)
            rows_structures.append((self.intern(s["name"]), self.intern(s["base"]), s["kind"],
                                    1 if s["abstract"] else 0, first, count))

        limits = [(len(self.strings), 65535), (len(rows_elements), 65535),
                  (len(type_refs), 65535), (len(self.structures), 65535), (max_children, 255)]
        for value, limit in limits:
            if value > limit:
                raise SystemExit(f"table too large for its index type: {value} > {limit}")

        w = out.write
        w("// Generated by tools/gen_fhir_meta.py from the FHIR StructureDefinitions. Do not edit.\n")
        w('#include "fhir/internal/meta_tables.h"\n\n')
        w("namespace fhirstone::fhir::internal {\nnamespace {\n\n")
        w("constexpr std::string_view kStrings[] = {\n")
        for s in self.strings:
            w(f'    "{s}",\n')
        w("};\n\n")
        w("// name, base, kind, abstract, first_element, element_count\n")
        w("constexpr RawStructure kStructures[] = {\n")
        for row in rows_structures:
            w("    {%d, %d, %d, %d, %d, %d},\n" % row)
        w("};\n\n")
        w("// name, first_type, type_count, min, flags\n")
        w("constexpr RawElement kElements[] = {\n")
        for row in rows_elements:
            w("    {%d, %d, %d, %d, %d},\n" % row)
        w("};\n\n")
        w("constexpr uint16_t kTypeRefs[] = {\n")
        for i in range(0, len(type_refs), 16):
            w("    " + ", ".join(str(t) for t in type_refs[i:i + 16]) + ",\n")
        w("};\n\n")
        w("}  // namespace\n\n")
        w("static_assert(%d <= kMaxElementsPerStructure);\n\n" % max_children)
        w("const MetaTables kMetaTables = {\n")
        w(f'    "{self.fhir_version}", kStrings, kStructures, kElements, kTypeRefs,\n')
        w("};\n\n")
        w("}  // namespace fhirstone::fhir::internal\n")
        return len(self.structures), len(rows_elements)


def main(argv):
    parser = argparse.ArgumentParser(
        description="Generate the C++ FHIR metadata tables of Fhirstone from the R4 "
                    "StructureDefinitions (profiles-types.json, profiles-resources.json).")
    parser.add_argument("--definitions", required=True,
                        help="folder holding profiles-resources.json and profiles-types.json")
    parser.add_argument("--output", required=True, help="the C++ source file to write")
    args = parser.parse_args(argv)

    sds = []
    for name in ("profiles-types.json", "profiles-resources.json"):
        sds.extend(load_structure_definitions(os.path.join(args.definitions, name)))
    gen = Generator(sds)
    gen.collect()
    tmp = args.output + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as out:
        structures, elements = gen.emit(out)
    os.replace(tmp, args.output)
    print(f"gen_fhir_meta: {structures} structures, {elements} elements -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
