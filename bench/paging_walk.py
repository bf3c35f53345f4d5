#!/usr/bin/env python3
"""Walks a sorted search page by page while its matches are updated, against a running server.

Usage: paging_walk.py BASE PATIENT [UPDATES]
  BASE     the FHIR base URL (http://127.0.0.1:8080/fhir), on a store with the patient's data
  PATIENT  a patient id with vital signs (e.g. the search benchmark's X)
  UPDATES  how many of the patient's vital signs to update after the first page (default 60)

Reads `Observation?patient=PATIENT&category=vital-signs&_sort=-date` whole, then again 20 per
page; after the first page it moves the dates of every other match (half of them to 2099, half
to 1900: before and after the cursor). Prints whether the pages gave every match of the first
page's order once, in that order, and each page's time. Writes to the store: run it on a copy.
"""
import json
import sys
import time
import urllib.request


def get(url):
    start = time.time()
    with urllib.request.urlopen(url) as r:
        body = json.load(r)
    return body, (time.time() - start) * 1000


def put(base, resource):
    req = urllib.request.Request(
        f"{base}/{resource['resourceType']}/{resource['id']}",
        data=json.dumps(resource).encode(),
        method="PUT",
        headers={"Content-Type": "application/fhir+json"},
    )
    with urllib.request.urlopen(req) as r:
        r.read()


def ids(bundle):
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def main():
    base, patient = sys.argv[1], sys.argv[2]
    updates = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    query = f"{base}/Observation?patient={patient}&category=vital-signs&_sort=-date"
    whole, _ = get(query + "&_count=1000")
    order = ids(whole)
    resources = {e["resource"]["id"]: e["resource"] for e in whole.get("entry", [])}

    page, ms = get(query + "&_count=20")
    seen, times = ids(page), [ms]
    for i, id_ in enumerate(order[1::2][:updates]):
        r = resources[id_]
        if "effectiveDateTime" in r:
            r["effectiveDateTime"] = "2099-01-01" if i % 2 else "1900-01-01"
            put(base, r)
    while True:
        following = [l["url"] for l in page.get("link", []) if l["relation"] == "next"]
        if not following:
            break
        page, ms = get(following[0])
        times.append(ms)
        seen += ids(page)
    print(f"matches {len(order)}, shown {len(seen)}, repeated {len(seen) - len(set(seen))}, "
          f"in the first page's order: {seen == order}")
    print("page ms: " + ", ".join(f"{t:.1f}" for t in times))


if __name__ == "__main__":
    main()
