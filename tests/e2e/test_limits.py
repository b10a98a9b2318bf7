"""Limits on everything a client controls, each with a clear answer, and the server healthy after:

  connections over server.max_connections   503 with Retry-After, then served again once some close
  request headers over server.max_header_count, or over 64 KiB          431
  a request trickled slower than server.request_timeout (slow loris)    the connection is closed
  a body over ingestion.max_body_bytes                                  413
  more events than ingestion.max_events_per_request                     413 naming the limit
  an event over max_event_bytes, or nested deeper than max_depth        that event rejected with its reason, the rest stored
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

from spate_e2e import *

tmp = tempdir()
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write(f"""
name: limits-e2e
data_dir: {tmp}/data
log: {{fsync: never}}
server: {{max_connections: 20, max_header_count: 30, request_timeout: 2s, io_threads: 1}}
topics: [{{name: events, partitions: 1}}]
ingestion:
  default_topic: events
  max_body_bytes: 64KiB
  max_event_bytes: 1KiB
  max_depth: 8
  max_events_per_request: 100
""")
port = free_port()
proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port), "--no-status-line"], stdout=subprocess.DEVNULL,
                        stderr=open(os.path.join(tmp, "stderr.log"), "w"))


def post(body, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ingest", data=body, method="POST",
                                 headers={"Content-Type": "application/x-ndjson", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def raw_request(data, read_timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(rest) >= n[0]:
                    break
        return out.decode(errors="replace")
    finally:
        s.close()


try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "spate run is ready")

    # ---------------------------------------------------------------- connections
    held = []
    for _ in range(20):
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    time.sleep(0.2)  # the server has accepted them
    answer = raw_request(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    check(answer.startswith("HTTP/1.1 503") and "Retry-After: 1" in answer and "too many connections" in answer,
          f"connection 21 of 20 is answered 503 with the reason: {answer[:200]!r}")
    for s in held[:5]:
        s.close()
    check(wait_for(lambda: http_get(port, "/health")[0] == 200, timeout=10), "served again once connections close")
    for s in held[5:]:
        s.close()

    # ---------------------------------------------------------------- headers
    many = "".join(f"X-H{i}: v\r\n" for i in range(31))
    answer = raw_request(f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    check(answer.startswith("HTTP/1.1 431") and "more than 30 request headers" in answer,
          f"31 extra headers: 431: {answer[:200]!r}")
    some = "".join(f"X-H{i}: v\r\n" for i in range(20))
    answer = raw_request(f"GET /health HTTP/1.1\r\nHost: x\r\n{some}Connection: close\r\n\r\n".encode())
    check(answer.startswith("HTTP/1.1 200"), f"20 headers are fine: {answer[:100]!r}")
    answer = raw_request(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 70000}\r\n\r\n".encode())
    check(answer.startswith("HTTP/1.1 431"), f"a 70 KB header: 431: {answer[:100]!r}")

    # ---------------------------------------------------------------- slow loris
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 20:
        try:
            s.sendall(b"X")  # one byte of a header that never ends, every 200 ms
            s.settimeout(0.2)
            if s.recv(4096) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    took = time.monotonic() - started
    s.close()
    check(closed and took < 15, f"a trickled request is cut off (request_timeout 2s): closed={closed} after {took:.1f} s")

    # ---------------------------------------------------------------- bodies and events
    code, body = post(b"x" * (70 * 1024))
    check(code == 413, f"a 70 KiB body over max_body_bytes 64KiB: 413: {code} {body}")
    code, body = post(b"".join(b'{"n":%d}\n' % i for i in range(101)))
    check(code == 413 and "max_events_per_request (100)" in body, f"101 events: 413 naming the limit: {code} {body}")
    code, body = post(b"".join(b'{"n":%d}\n' % i for i in range(100)))
    check(code == 202 and json.loads(body)["accepted"] == 100, f"100 events are fine: {code} {body}")
    big = json.dumps({"pad": "p" * 2000})
    deep = "[" * 20 + "]" * 20
    code, body = post(f'{{"ok":1}}\n{big}\n{{"deep":{deep}}}\n'.encode())
    r = json.loads(body)
    reasons = {e["index"]: e["reason"] for e in r.get("errors", [])}
    check(code == 202 and r["accepted"] == 1 and r["rejected"] == 2, f"the good event is stored, the two bad ones rejected: {body}")
    check("over the limit" in reasons.get(1, ""), f"the big event's reason: {reasons}")
    check("too deep" in reasons.get(2, ""), f"the deep event's reason: {reasons}")

    check(http_get(port, "/health")[0] == 200 and proc.poll() is None, "the server is healthy after all of it")
finally:
    proc.terminate()
    proc.wait(timeout=60)
check(proc.returncode == 0, f"spate run exits 0: {proc.returncode}")
finish("test_limits")
