"""Start-up time of a server: starts COMMAND... (its output to LOG), then polls
127.0.0.1:PORT every millisecond with GET /fhir/metadata until it answers 200, and prints the
milliseconds from the start to that answer and the server's pid. The server keeps running.
Measured here rather than from a shell (a curl started per attempt, or this interpreter's own
start-up, costs more than the start-up measured). Exits 1 if there is no answer within 30 s.

Usage: startup.py LOG PORT COMMAND...
"""
import socket
import subprocess
import sys
import time

log, port, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
request = b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
with open(log, "wb") as out:
    start = time.monotonic()
    server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
while time.monotonic() < start + 30:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(request)
            if s.recv(16).startswith(b"HTTP/1.1 200"):
                print(round((time.monotonic() - start) * 1000), server.pid)
                sys.exit(0)
    except OSError:
        pass
    if server.poll() is not None:
        break
    time.sleep(0.001)
print("no answer", server.pid)
sys.exit(1)
