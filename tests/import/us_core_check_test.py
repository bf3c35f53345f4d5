#!/usr/bin/env python3
"""The US Core checker finds what it claims to find: each mutation of a conforming generated
resource is reported.
Usage: us_core_check_test.py FHIRPATH_EVAL US_CORE_PACKAGE DEFINITIONS BUNDLE.json"""
import copy
import json
import os
import subprocess
import sys
import tempfile

evaluator, package, definitions, bundle_path = sys.argv[1:5]
checker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "us_core_check.py")
with open(bundle_path, encoding="utf-8") as f:
    entries = [e["resource"] for e in json.load(f)["entry"]]


def first(resource_type, code=None):
    for r in entries:
        if r["resourceType"] == resource_type and (
                code is None or any(c.get("code") == code for c in r["code"]["coding"])):
            return copy.deepcopy(r)
    sys.exit(f"no {resource_type} {code or ''} in {bundle_path}")


def weight():
    return first("Observation", "29463-7")


def blood_pressure():
    return first("Observation", "85354-9")


mutations = []
r = first("Patient"); r.pop("identifier"); mutations.append((r, "Patient.identifier: 0 found"))
r = first("Patient"); r.pop("gender"); mutations.append((r, "Patient.gender: 0 found"))
r = weight(); r["category"] = [{"coding": [{"system": "x", "code": "y"}]}]
mutations.append((r, "Observation.category:VSCat: 0 found"))
r = weight(); r["valueQuantity"]["system"] = "http://example.org"
mutations.append((r, "valueQuantity.system"))
r = weight(); r["valueQuantity"]["code"] = "m"
mutations.append((r, "code 'm' is not in http://hl7.org/fhir/ValueSet/ucum-bodyweight"))
r = weight(); r["status"] = "done"
mutations.append((r, "code 'done' is not in http://hl7.org/fhir/ValueSet/observation-status"))
r = blood_pressure(); r["component"] = r["component"][:1]
mutations.append((r, "Observation.component:diastolic: 0 found"))
r = first("Encounter"); r.pop("class"); mutations.append((r, "Encounter.class: 0 found"))
r = first("MedicationRequest"); r.pop("subject")
mutations.append((r, "MedicationRequest.subject: 0 found"))
r = first("Condition")
r["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                   "code": "gone"}]}
mutations.append((r, "Condition.clinicalStatus: no coding"))

# Invariants (FHIRPath), through the server's engine.
r = first("Patient"); r["name"] = [{"text": "Someone"}]
mutations.append((r, "invariant us-core-6"))
r = weight(); r.pop("valueQuantity")
mutations.append((r, "invariant vs-2"))
r = weight(); r["valueQuantity"]["extension"] = [{"url": "http://example.org/x"}]
mutations.append((r, "invariant ext-1"))

failures = 0
with tempfile.TemporaryDirectory() as work:
    paths = []
    for i, (resource, _) in enumerate([(first("Patient"), None)] + mutations):
        paths.append(os.path.join(work, f"case-{i:02d}.json"))
        with open(paths[-1], "w", encoding="utf-8") as f:
            json.dump({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": resource}]}, f)
    run = subprocess.run([sys.executable, checker, "--fhirpath=" + evaluator, package, definitions]
                         + paths, capture_output=True, text=True)
    if run.returncode != 1:
        failures += 1
        print(f"the checker exited with {run.returncode}")
    for i, (_, expected) in enumerate([(None, None)] + mutations):
        lines = [l for l in run.stdout.splitlines() if l.startswith(f"case-{i:02d}.json ")]
        ok = not lines if expected is None else any(expected in l for l in lines)
        if not ok:
            failures += 1
            print(f"case {i}: expected {expected or 'no problem'}, got: {lines}")
print(f"{len(mutations)} mutations, {failures} not reported as expected")
sys.exit(1 if failures else 0)
