"""An exactly_once processor on Kafka (mock cluster): its outputs and input offsets go through
Kafka transactions (one transactional producer per member, send_offsets_to_transaction).
Every input event is copied exactly once while it runs. (The mock ignores read_committed and
does not store offsets sent with a transaction, so restarts are not checked here; docs/kafka.md.)"""
import json
import os
import shutil
import subprocess

from spate_e2e import *
from kafka_fixture import MockKafka

kafka = MockKafka([("in", 4), ("out", 4)])
root = tempdir()
cfg = os.path.join(root, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write(f"""
name: kafka-eos
data_dir: {root}
server: {{port: 0}}
log:
  kind: kafka
  kafka: {{bootstrap_servers: "{kafka.bootstrap}"}}
processors:
  - name: copier
    inputs: [in]
    output: out
    exactly_once: true
    steps:
      - map:
          - {{set: copied, expr: 'true'}}
""")
port = free_port()
proc = subprocess.Popen([SPATE, "run", cfg, "--port", str(port)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)


def out_ids():
    r = kafka.kcat("-C", "-t", "out", "-o", "beginning", "-e", "-q", timeout=120)
    return [json.loads(l)["id"] for l in r.stdout.decode().splitlines() if l.startswith("{")]


try:
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), "ready")
    st = json.loads(http_get(port, "/status")[1])["processors"][0]
    check(st["exactly_once"] is True and st["partitions"] == 4,
          f"exactly-once processor with explicit assignment of all 4 partitions: {st}")
    for part in range(3):
        lines = "".join(f"k{i}\t" + json.dumps({"id": i}) + "\n"
                        for i in range(part * 1000, part * 1000 + 1000))
        r = kafka.kcat("-P", "-t", "in", "-K", "\t", input=lines.encode())
        check(r.returncode == 0, f"kcat produce: {r.stderr}")
    got = wait_for(lambda: (lambda ids: ids if len(set(ids)) >= 3000 else None)(out_ids()),
                   timeout=90, interval=1) or out_ids()
    check(sorted(set(got)) == list(range(3000)), f"every event copied ({len(set(got))} of 3000)")
    check(len(got) == 3000, f"and none twice ({len(got)} outputs)")
    st = json.loads(http_get(port, "/status")[1])["processors"][0]
    check(st["consumed"] == 3000 and st["aborts"] == 0, f"processor counts: {st}")
finally:
    out, err = stop_process(proc)
    kafka.close()
check(proc.returncode == 0, f"stops cleanly: {err[-3000:]}")
shutil.rmtree(root, ignore_errors=True)
finish("kafka exactly-once")
