"""Waits until the server on 127.0.0.1:PORT answers GET /fhir/metadata with 200, polling every
millisecond over a socket (a curl started per attempt costs more than the start-up measured),
then prints the time (nanoseconds since the epoch, as `date +%s%N`). Exits 1 after 30 s."""
import socket
import sys
import time

port = int(sys.argv[1])
deadline = time.monotonic() + 30
request = b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(request)
            if s.recv(16).startswith(b"HTTP/1.1 200"):
                print(time.time_ns())
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.001)
sys.exit(1)
