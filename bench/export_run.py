#!/usr/bin/env python3
"""One timed bulk export for bench/export.sh.

Usage: export_run.py BASE_URL BULK_DIR SERVER_PID POLL_MS [TOKEN]
       export_run.py --compare NDJSON JOB_DIR

--compare: whether the files of an export (JOB_DIR/TYPE-PART.ndjson) hold exactly the lines of
NDJSON (the ceiling's file), in any order, each in its type's file; prints "yes" or "no: why".

Kicks off GET BASE_URL/fhir/$export (Accept: application/fhir+json, Prefer: respond-async, and
a bearer token when given), polls the status URL every POLL_MS ms on one keep-alive connection
until the 200 manifest, and prints one line:

  RESULT seconds=S setup_s=T resources=N bytes=B files=F polls=P cpu_s=C hwm_kb=H anon_kb=A
         file_kb=F0 idle_kb=I job=ID

seconds: kick-off sent to manifest received. resources: the sum of the manifest's counts.
setup_s: kick-off to the first poll whose X-Progress says
"Exporting" (the worker has taken the job, read its snapshot time and written a first resource),
to within POLL_MS. bytes: the sum of the sizes of the job's files under BULK_DIR (read before the job is deleted).
cpu_s: user + system CPU time of the server process over the export. hwm_kb: VmHWM of the
server after the export, its peak resident set having been reset (clear_refs 5) just before the
kick-off, so the peak of this export; anon_kb and file_kb: the largest RssAnon and RssFile seen
at the polls. idle_kb: VmRSS before the kick-off. The job is then deleted (DELETE on the status
URL), which removes its files.
"""
import hashlib
import http.client
import json
import os
import sys
import time
import urllib.parse


def status_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(ndjson, job_dir):
    def digest(line):
        return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")

    want_n = want_sum = 0
    with open(ndjson, "rb") as f:
        for line in f:
            want_n += 1
            want_sum = (want_sum + digest(line)) % 2**64
    got_n = got_sum = 0
    for name in sorted(os.listdir(job_dir)):
        prefix = b'{"resourceType":"' + name.rsplit("-", 1)[0].encode() + b'"'
        with open(os.path.join(job_dir, name), "rb") as f:
            for line in f:
                if not line.startswith(prefix):
                    return f"no: a line of {name} is not a {prefix[17:-1].decode()}"
                got_n += 1
                got_sum = (got_sum + digest(line)) % 2**64
    if (got_n, got_sum) != (want_n, want_sum):
        return f"no: {got_n} lines exported, {want_n} in the ceiling's file, or other bytes"
    return "yes"


def main():
    if sys.argv[1] == "--compare":
        print(compare(sys.argv[2], sys.argv[3]))
        return
    base, bulk_dir, pid, poll_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    token = sys.argv[5] if len(sys.argv) > 5 else ""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    headers = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
    if token:
        headers["Authorization"] = "Bearer " + token
    idle_kb = status_kb(pid).get("VmRSS", 0)
    try:  # the peak resident set of this export only (needs the right to write clear_refs)
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    cpu0 = cpu_seconds(pid)
    start = time.monotonic()
    conn.request("GET", "/fhir/$export", headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 202:
        sys.exit(f"kick-off answered {r.status}: {body[:300]!r}")
    location = urllib.parse.urlsplit(r.getheader("Content-Location")).path
    polls = 0
    setup = None
    anon = file_kb = 0
    while True:
        time.sleep(poll_ms / 1000)
        conn.request("GET", location, headers={"Authorization": headers.get("Authorization", "")}
                     if token else {})
        r = conn.getresponse()
        body = r.read()
        polls += 1
        s = status_kb(pid)
        anon = max(anon, s.get("RssAnon", 0))
        file_kb = max(file_kb, s.get("RssFile", 0))
        if setup is None and (r.status == 200 or
                              (r.getheader("X-Progress") or "").startswith("Exporting")):
            setup = time.monotonic() - start
        if r.status == 200:
            break
        if r.status != 202:
            sys.exit(f"status answered {r.status}: {body[:300]!r}")
    seconds = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu0
    s = status_kb(pid)
    hwm = s.get("VmHWM", 0) if reset else 0
    manifest = json.loads(body)
    resources = sum(o.get("count", 0) for o in manifest.get("output", []))
    job = location.rsplit("/", 1)[1]
    job_dir = os.path.join(bulk_dir, job)
    names = os.listdir(job_dir)
    size = sum(os.path.getsize(os.path.join(job_dir, n)) for n in names)
    if len(names) != len(manifest.get("output", [])):
        sys.exit(f"{len(names)} files in {job_dir}, {len(manifest['output'])} in the manifest")
    if os.environ.get("KEEP_FILES"):  # bench/export.sh compares the bytes with the ceiling's
        print(f"FILES {job_dir}")
    else:
        conn.request("DELETE", location, headers={"Authorization": headers.get("Authorization", "")}
                     if token else {})
        conn.getresponse().read()
    print(f"RESULT seconds={seconds:.3f} setup_s={setup:.3f} resources={resources} bytes={size} files={len(names)} "
          f"polls={polls} cpu_s={cpu:.2f} hwm_kb={hwm} anon_kb={anon} file_kb={file_kb} "
          f"idle_kb={idle_kb} job={job}")


if __name__ == "__main__":
    main()
