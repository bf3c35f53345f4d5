#!/usr/bin/env python3
"""Checks resources against the US Core 6.1.0 profiles that apply to them.

Each resource of the bundles is matched to the US Core profile that applies to it (by type, and
for Observation and Condition by code or category) and checked against that profile's snapshot:
every element's minimum and maximum cardinality (in every instance of its parent that is
present), fixed and pattern values, the slices the profile requires (matched by their
patterns, fixed values or extension URL), nested slices included, and required bindings to
value sets that can be enumerated from the package and the FHIR R4 definitions (DEFINITIONS:
the folder of valuesets.json, v3-codesystems.json and v2-tables.json). Invariants (FHIRPath
constraints) and bindings to value sets defined by filters are not evaluated here. Prints one
line per problem and exits 1 when there is any; prints the number of resources checked per
profile.

With --fhirpath=PATH/TO/fhirpath_eval (tests/support), the error-severity invariants of each
profile (its own and those its snapshot inherits: ele-1, dom-*, us-core-*...) are evaluated on
every resource with the server's FHIRPath engine (not those of the extension definitions).

Usage: us_core_check.py [--fhirpath=EVALUATOR] US_CORE_PACKAGE DEFINITIONS BUNDLE.json...
"""
import collections
import io
import json
import os
import subprocess
import sys
import tarfile

PROFILE_BASE = "http://hl7.org/fhir/us/core/StructureDefinition/"

# Vital-sign LOINC codes and their US Core profiles.
VITAL_SIGNS = {
    "29463-7": "us-core-body-weight",
    "8302-2": "us-core-body-height",
    "39156-5": "us-core-bmi",
    "85354-9": "us-core-blood-pressure",
    "8867-4": "us-core-heart-rate",
    "9279-1": "us-core-respiratory-rate",
    "8310-5": "us-core-body-temperature",
    "59408-5": "us-core-pulse-oximetry",
    "9843-4": "us-core-head-circumference",
}


def load_package(package):
    """The package's resources (StructureDefinitions, ValueSets, CodeSystems)."""
    out = []
    wanted = ("StructureDefinition-", "ValueSet-", "CodeSystem-")
    if os.path.isdir(package):
        for root, _, files in os.walk(package):
            for name in files:
                if name.startswith(wanted) and name.endswith(".json"):
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        out.append(json.load(f))
    else:
        with tarfile.open(package) as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if base.startswith(wanted) and base.endswith(".json"):
                    out.append(json.load(io.TextIOWrapper(tar.extractfile(member),
                                                          encoding="utf-8")))
    return out


class Terminology:
    """Value sets and code systems by URL; the codes of a value set when they can be listed."""

    def __init__(self, resources):
        self.value_sets, self.code_systems = {}, {}
        for r in resources:
            if r.get("resourceType") == "ValueSet":
                self.value_sets.setdefault(r["url"], r)
            elif r.get("resourceType") == "CodeSystem":
                self.code_systems.setdefault(r["url"], r)
        self.cache = {}

    def system_codes(self, url):
        cs = self.code_systems.get(url)
        if not cs or cs.get("content") not in (None, "complete"):
            return None
        out = set()

        def walk(concepts):
            for c in concepts:
                out.add((url, c["code"]))
                walk(c.get("concept", []))
        walk(cs.get("concept", []))
        return out

    def codes(self, url, depth=0):
        """The (system, code) pairs of value set `url`, or None when they cannot be listed."""
        url = url.split("|")[0]
        if url in self.cache:
            return self.cache[url]
        vs = self.value_sets.get(url)
        result = None
        if vs and depth < 5:
            result = set()
            for include in vs.get("compose", {}).get("include", []):
                if include.get("filter"):
                    result = None
                    break
                part = None
                if include.get("concept"):
                    part = {(include.get("system"), c["code"]) for c in include["concept"]}
                elif include.get("system"):
                    part = self.system_codes(include["system"])
                for ref in include.get("valueSet", []):
                    inner = self.codes(ref, depth + 1)
                    if inner is None:
                        part = None
                        break
                    part = inner if part is None else part & inner
                if part is None:
                    result = None
                    break
                result |= part
            if result is not None:
                for exclude in vs.get("compose", {}).get("exclude", []):
                    result -= {(exclude.get("system"), c["code"]) for c in exclude.get("concept", [])}
        self.cache[url] = result
        return result


def load_definitions(folder):
    out = []
    for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out += [e["resource"] for e in json.load(f).get("entry", [])]
    return out


def binding_problem(element, value, terminology):
    """Why `value` is outside the required value set of `element`, or None."""
    binding = element.get("binding", {})
    if binding.get("strength") != "required" or not binding.get("valueSet"):
        return None
    allowed = terminology.codes(binding["valueSet"])
    if allowed is None:
        return None
    if isinstance(value, str):  # a code
        if any(code == value for _, code in allowed):
            return None
        return f"code '{value}' is not in {binding['valueSet']}"
    if not isinstance(value, dict):
        return None
    if "coding" in value:  # CodeableConcept: one coding from the value set
        if any((c.get("system"), c.get("code")) in allowed for c in value["coding"]):
            return None
        return f"no coding of {json.dumps(value)[:100]} is in {binding['valueSet']}"
    if "code" in value:  # Coding, Quantity
        if (value.get("system"), value.get("code")) in allowed:
            return None
        return f"{value.get('system')}|{value.get('code')} is not in {binding['valueSet']}"
    return None


def codes(concept):
    return [(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", [])]


def profile_for(resource):
    """The id of the US Core profile that applies to `resource`, or None."""
    t = resource["resourceType"]
    simple = {
        "Patient": "us-core-patient",
        "Practitioner": "us-core-practitioner",
        "PractitionerRole": "us-core-practitionerrole",
        "Organization": "us-core-organization",
        "Encounter": "us-core-encounter",
        "AllergyIntolerance": "us-core-allergyintolerance",
        "MedicationRequest": "us-core-medicationrequest",
        "Immunization": "us-core-immunization",
        "Coverage": "us-core-coverage",
        "Location": "us-core-location",
        "Procedure": "us-core-procedure",
        "Medication": "us-core-medication",
    }
    if t in simple:
        return simple[t]
    if t == "Condition":
        cats = {code for c in resource.get("category", []) for _, code in codes(c)}
        if "encounter-diagnosis" in cats:
            return "us-core-condition-encounter-diagnosis"
        return "us-core-condition-problems-health-concerns"
    if t == "DiagnosticReport":
        cats = {code for c in resource.get("category", []) for _, code in codes(c)}
        return "us-core-diagnosticreport-lab" if "LAB" in cats else "us-core-diagnosticreport-note"
    if t == "Observation":
        loinc = {code for system, code in codes(resource.get("code")) if system == "http://loinc.org"}
        for code, profile in VITAL_SIGNS.items():
            if code in loinc:
                return profile
        if "72166-2" in loinc:
            return "us-core-smokingstatus"
        cats = {code for c in resource.get("category", []) for _, code in codes(c)}
        if "laboratory" in cats:
            return "us-core-observation-lab"
        return "us-core-simple-observation"
    return None


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def matches(pattern, value):
    """FHIR pattern matching: every part of `pattern` is found in `value`."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        values = as_list(value)
        return all(any(matches(p, v) for v in values) for p in pattern)
    return pattern == value


def fixed_or_pattern(element):
    for key, v in element.items():
        if key.startswith("fixed") or key.startswith("pattern"):
            return key.startswith("fixed"), v
    return None


class Checker:
    def __init__(self, sd, terminology):
        self.terminology = terminology
        self.elements = sd["snapshot"]["element"]
        self.by_id = {e["id"]: e for e in self.elements}

    def children_of(self, node, name):
        if not isinstance(node, dict):
            return []
        if name.endswith("[x]"):
            prefix = name[:-3]
            out = []
            for key, v in node.items():
                if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
                    out += as_list(v)
            return out
        return as_list(node.get(name))

    def in_slice(self, slice_id, value):
        """Whether `value` belongs to the slice whose element id is `slice_id`."""
        element = self.by_id[slice_id]
        rule = fixed_or_pattern(element)
        if rule and not matches(rule[1], value):
            return False
        if binding_problem(element, value, self.terminology):  # sliced by value set
            return False
        for t in element.get("type", []):
            if t.get("code") == "Extension" and t.get("profile"):
                return isinstance(value, dict) and value.get("url") in t["profile"]
        # Fixed and pattern values below the slice (code, coding.system, url...) discriminate.
        prefix = slice_id + "."
        for e in self.elements:
            relative = e["id"][len(prefix):] if e["id"].startswith(prefix) else None
            if not relative or ":" in relative:
                continue
            rule = fixed_or_pattern(e)
            if not rule:
                continue
            found = [value]
            for name in relative.split("."):
                found = [c for v in found for c in self.children_of(v, name)]
            if not any(matches(rule[1], v) for v in found):
                return False
        return True

    def values(self, parents, segment, id_so_far):
        name, _, slice_name = segment.partition(":")
        out = []
        for p in parents:
            if slice_name and name.endswith("[x]"):  # a type slice: valueQuantity...
                if isinstance(p, dict):
                    out += as_list(p.get(slice_name))
                continue
            for v in self.children_of(p, name):
                if not slice_name or self.in_slice(id_so_far, v):
                    out.append(v)
        return out

    def nodes(self, resource, element_id):
        segments = element_id.split(".")
        nodes = [resource]
        so_far = segments[0]
        for segment in segments[1:]:
            so_far += "." + segment
            nodes = self.values(nodes, segment, so_far)
        return nodes

    def check(self, resource):
        problems = []
        for e in self.elements:
            element_id = e["id"]
            if "." not in element_id:
                continue
            parent_id, _, segment = element_id.rpartition(".")
            parents = self.nodes(resource, parent_id)
            if not parents:
                continue
            minimum = e.get("min", 0)
            maximum = e.get("max", "*")
            for parent in parents:
                found = self.values([parent], segment, element_id)
                if len(found) < minimum:
                    problems.append(f"{element_id}: {len(found)} found, at least {minimum} required")
                if maximum != "*" and len(found) > int(maximum):
                    problems.append(f"{element_id}: {len(found)} found, at most {maximum} allowed")
                for v in found:
                    why = binding_problem(e, v, self.terminology)
                    if why:
                        problems.append(f"{element_id}: {why}")
                rule = fixed_or_pattern(e)
                if rule and ":" not in segment:
                    for v in found:
                        if (rule[0] and v != rule[1]) or (not rule[0] and not matches(rule[1], v)):
                            problems.append(f"{element_id}: {json.dumps(v)[:80]} does not match "
                                            f"{json.dumps(rule[1])[:80]}")
        return problems


def fhirpath_literal(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def value_condition(value, prefix=""):
    """A FHIRPath condition that the element (or its child `prefix`) has pattern `value`."""
    if isinstance(value, (str, bool, int, float)):
        return f"{prefix or '$this'} = {fhirpath_literal(value)}"
    if not isinstance(value, dict):
        return None
    parts = []
    for key, v in value.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(v, (str, bool, int, float)):
            parts.append(f"{path} = {fhirpath_literal(v)}")
        elif key == "coding" and isinstance(v, list):
            for coding in v:
                inner = " and ".join(f"{k} = {fhirpath_literal(c)}" for k, c in coding.items()
                                     if isinstance(c, str))
                if not inner:
                    return None
                parts.append(f"{path}.where({inner}).exists()")
        else:
            return None
    return " and ".join(parts) if parts else None


def slice_condition(element, by_id):
    """A FHIRPath condition selecting the members of a slice from its pattern, fixed value or
    extension URL, or those of its direct children; None when it cannot be expressed so."""
    for t in element.get("type", []):
        if t.get("code") == "Extension" and t.get("profile"):
            return "url = " + fhirpath_literal(t["profile"][0])
    parts = []
    rule = fixed_or_pattern(element)
    if rule:
        parts.append(value_condition(rule[1]))
    prefix = element["id"] + "."
    for child_id, child in by_id.items():
        relative = child_id[len(prefix):] if child_id.startswith(prefix) else None
        if not relative or "." in relative or ":" in relative:
            continue
        child_rule = fixed_or_pattern(child)
        if child_rule:
            parts.append(value_condition(child_rule[1], relative.replace("[x]", "")))
    if not parts or None in parts:
        return None
    return " and ".join(parts)


def context_of(element_id, by_id):
    """The FHIRPath selecting the instances of element `element_id` (slices included) from the
    resource; None when a slice cannot be expressed."""
    segments = element_id.split(".")
    out, so_far = segments[0], segments[0]
    for segment in segments[1:]:
        so_far += "." + segment
        name, _, slice_name = segment.partition(":")
        base = name.replace("[x]", "")
        if not slice_name:
            out += "." + base
        elif name.endswith("[x]"):  # a type slice: valueQuantity
            type_name = slice_name[len(base):]
            out += f".{base}.ofType({type_name})"
        else:
            condition = slice_condition(by_id[so_far], by_id)
            if condition is None:
                return None
            out += f".{base}.where({condition})"
    return out


def constraints_of(sd):
    """(key, context, expression) of the error-severity invariants of a profile's snapshot, once
    per element (slices: on their members only), and the number left out (slices that cannot be
    selected in FHIRPath)."""
    by_id = {e["id"]: e for e in sd["snapshot"]["element"]}
    out, seen, skipped = [], set(), 0
    for e in sd["snapshot"]["element"]:
        for c in e.get("constraint", []):
            expression = c.get("expression")
            if not expression or c.get("severity") != "error":
                continue
            context = context_of(e["id"], by_id)
            if context is None:
                skipped += 1
                continue
            if (context, c["key"]) in seen:
                continue
            seen.add((context, c["key"]))
            out.append((c["key"], context, expression))
    return out, skipped


def check_invariants(evaluator, tasks):
    """Runs (label, resource, key, context, expression) tasks through the FHIRPath evaluator
    (tests/support/fhirpath_eval); returns the problems and the number of evaluations."""
    lines = "".join(json.dumps({"resource": r, "context": ctx, "expression": expr}) + "\n"
                    for _, r, _, ctx, expr in tasks)
    run = subprocess.run([evaluator], input=lines, capture_output=True, text=True, check=True)
    results = run.stdout.splitlines()
    if len(results) != len(tasks):
        return [f"the evaluator answered {len(results)} of {len(tasks)} invariants"]
    problems = []
    for (label, _, key, ctx, expr), result in zip(tasks, results):
        if result != "true":
            problems.append(f"{label}: invariant {key} on {ctx} ({expr}): {result}")
    return problems


def main():
    evaluator = None
    if len(sys.argv) > 2 and sys.argv[1].startswith("--fhirpath="):
        evaluator = sys.argv.pop(1)[len("--fhirpath="):]
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    tasks = []
    package = load_package(sys.argv[1])
    profiles = {r["id"]: r for r in package if r.get("resourceType") == "StructureDefinition"}
    by_url = {r["url"]: r for r in profiles.values() if r.get("type") == "Extension"}
    terminology = Terminology(package + load_definitions(sys.argv[2]))
    checkers = {}
    invariants = {}
    skipped_invariants = 0
    checked = collections.Counter()
    failures = 0
    for path in sys.argv[3:]:
        with open(path, encoding="utf-8") as f:
            bundle = json.load(f)
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            profile = profile_for(resource)
            if profile is None:
                continue
            if profile not in profiles:
                print(f"{path}: no profile {profile} in the package")
                failures += 1
                continue
            checker = checkers.setdefault(profile, Checker(profiles[profile], terminology))
            checked[profile] += 1
            problems = checker.check(resource)
            label = (f"{os.path.basename(path)} {resource['resourceType']}/"
                     f"{resource.get('id', '?')} ({profile})")
            if evaluator:
                if profile not in invariants:
                    invariants[profile], skipped = constraints_of(profiles[profile])
                    skipped_invariants += skipped
                tasks += [(label, resource, key, ctx, expr)
                          for key, ctx, expr in invariants[profile]]
            # US Core extensions (race, ethnicity, birth sex...) against their own definitions.
            for extension in resource.get("extension", []):
                sd = by_url.get(extension.get("url"))
                if sd is None:
                    continue
                ext_checker = checkers.setdefault(sd["id"], Checker(sd, terminology))
                checked[sd["id"]] += 1
                problems += [f"extension {sd['id']}: {p}" for p in ext_checker.check(extension)]
            for problem in problems:
                failures += 1
                if failures <= 50:
                    print(f"{label}: {problem}")
    if tasks:
        problems = check_invariants(evaluator, tasks)
        for problem in problems[:50]:
            print(problem)
        failures += len(problems)
        print(f"evaluated {len(tasks)} invariants ({skipped_invariants} on slices that cannot "
              "be selected in FHIRPath left out)")
    for profile, n in sorted(checked.items()):
        print(f"checked {n} resources against {PROFILE_BASE}{profile}")
    if failures:
        print(f"{failures} problems")
        return 1
    print("no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
