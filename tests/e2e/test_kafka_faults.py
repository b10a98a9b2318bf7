"""Faults on the Kafka cluster while HTTP ingestion and a processor run (mock cluster through
spate-test-kafka): leader changes, failed produce requests, a broker down and up, coordinator
moves, then every broker down for longer than the delivery timeout.

What must hold: every event answered 202 is in Kafka exactly once (the idempotent producer's
retries add no duplicates); during the outage ingestion answers 503 with Retry-After and /ready
is 503; after it everything recovers, and the processor's output holds every acknowledged event."""
import http.client
import json
import os
import shutil
import subprocess
import threading
import time

from spate_e2e import *
from kafka_fixture import MockKafka

kafka = MockKafka([("events", 3), ("copies", 3)])
data = tempdir()
port = free_port()
cfg = os.path.join(data, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write(f"""
name: kafka-faults
data_dir: {data}
server: {{port: {port}}}
log:
  kind: kafka
  kafka:
    bootstrap_servers: "{kafka.bootstrap}"
    delivery_timeout_ms: 3000
    request_timeout_ms: 1000
    linger_ms: 2
topics:
  - {{name: events, partitions: 3}}
  - {{name: copies, partitions: 3}}
ingestion:
  ack: durable
  key_field: id
  default_topic: events
processors:
  - name: copier
    inputs: [events]
    output: copies
    steps:
      - map:
          - {{set: copied, expr: 'true'}}
""")
proc = subprocess.Popen([SPATE, "run", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
acked, refused, other = [], [], []
retry_after_ok = [True]
stop = threading.Event()


def load(worker):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    while not stop.is_set():
        ids = [f"w{worker}-{n + i}" for i in range(50)]
        n += 50
        body = "".join(json.dumps({"id": i, "v": 1}) + "\n" for i in ids)
        try:
            c.request("POST", "/ingest/events", body=body,
                      headers={"Content-Type": "application/x-ndjson"})
            r = c.getresponse()
            r.read()
        except (OSError, http.client.HTTPException) as e:
            other.append(str(e))
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if r.status == 202:
            acked.extend(ids)
        elif r.status == 503:
            refused.extend(ids)
            if not r.getheader("Retry-After"):
                retry_after_ok[0] = False
        else:
            other.append(r.status)


def during(seconds):
    end = time.time() + seconds
    while time.time() < end and proc.poll() is None:
        time.sleep(0.05)


try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), "/ready turns 200")
    threads = [threading.Thread(target=load, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    during(1.5)
    n0 = len(acked)
    check(n0 > 0, f"events are acknowledged before the faults ({n0})")
    kafka.command("leader events 0 2")
    kafka.command("leader events 1 3")
    during(1)
    kafka.command("errors 0 6 5")   # Produce: NOT_LEADER_FOR_PARTITION x5 (retried)
    kafka.command("errors 0 7 3")   # Produce: REQUEST_TIMED_OUT x3 (retried, idempotent)
    during(1)
    kafka.command("coordinator group spate.processor.copier 3")
    kafka.command("down 2")
    during(1.5)
    kafka.command("up 2")
    during(1.5)
    n1 = len(acked)
    check(n1 > n0, f"acknowledgements go on through leader changes and a broker restart ({n0} -> {n1})")
    # Every broker down for longer than the delivery timeout (3 s).
    for b in (1, 2, 3):
        kafka.command(f"down {b}")
    saw_unready = wait_for(lambda: http_get(port, "/ready")[0] == 503, timeout=20)
    # Requests in flight fail once the delivery timeout (3 s) has passed for each of their
    # appends; stay down until one has been answered (bounded).
    wait_for(lambda: len(refused) > 0, timeout=60, interval=0.2)
    check(saw_unready, "/ready is 503 while the cluster is unreachable")
    print(f"during the outage: {len(acked)} acknowledged so far, {len(refused)} refused", flush=True)
    check(refused, "ingestion refuses events it cannot store (503) during the outage")
    check(retry_after_ok[0], "every 503 carries Retry-After")
    for b in (1, 2, 3):
        kafka.command(f"up {b}")
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "/ready recovers")
    n2 = len(acked)
    wait_for(lambda: len(acked) > n2 + 500, timeout=30, interval=0.2)
    stop.set()
    for t in threads:
        t.join()
    check(len(acked) > n2, f"acknowledgements resume after the outage ({n2} -> {len(acked)})")
    check(not other, f"no other answers or errors: {other[:5]}")

    def read_ids(topic):
        r = kafka.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", timeout=120)
        ids = []
        for line in r.stdout.decode().splitlines():
            try:
                ids.append(json.loads(line)["id"])
            except (ValueError, KeyError):
                pass
        return ids
    stored = read_ids("events")
    counts = {}
    for i in stored:
        counts[i] = counts.get(i, 0) + 1
    missing = [i for i in acked if counts.get(i, 0) == 0]
    dups = [i for i, n in counts.items() if n > 1]
    check(not missing, f"every acknowledged event is in Kafka ({len(missing)} of {len(acked)} missing: {missing[:5]})")
    check(not dups, f"no event is stored twice ({len(dups)} duplicated: {dups[:5]})")
    check(set(counts) <= set(acked) | set(refused), "Kafka holds no event that was never sent")

    # The processor catches up: every acknowledged event is copied (at-least-once).
    def copied():
        ids = set(read_ids("copies"))
        return ids if set(acked) <= ids else None
    check(wait_for(copied, timeout=90, interval=1), "the processor copied every acknowledged event")
finally:
    stop.set()
    out, err = stop_process(proc)
    kafka.close()
check(proc.returncode == 0, f"SIGTERM stops cleanly (got {proc.returncode}): {err[-3000:]}")
shutil.rmtree(data, ignore_errors=True)
finish("kafka faults")
