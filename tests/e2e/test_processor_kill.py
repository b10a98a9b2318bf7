"""A processor under SIGKILL: events are ingested over HTTP into `in` while the `tag` processor
turns them into `out`; spate is killed with SIGKILL five times at random moments and restarted.
Afterwards every event acknowledged by ingestion is in `out`, transformed (at-least-once: none
is missing; duplicates are allowed and reported)."""
import http.client
import json
import os
import random
import signal
import subprocess
import time

from spate_e2e import *

tmp = tempdir()
cfg = os.path.join(tmp, "pipeline.yaml")
with open(cfg, "w") as f:
    f.write("""
name: proc-kill
data_dir: %s
log: {fsync: {interval_ms: 10}}
topics:
  - {name: in, partitions: 3}
  - {name: out, partitions: 2}
ingestion: {key_field: k}
processors:
  - name: tag
    inputs: [in]
    output: out
    batch_size: 50
    poll_timeout: 5ms
    steps:
      - map: [{set: tagged, value: true}, {rename: n, to: seq}]
""" % os.path.join(tmp, "data"))


def start():
    return start_run(cfg)


rng = random.Random(7)
acked = set()
n = 0
proc, port = start()
for round_ in range(5):
    deadline = time.time() + rng.uniform(0.5, 1.5)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.time() < deadline:
        ids = list(range(n, n + 20))
        n += 20
        body = "".join(json.dumps({"k": f"k{i % 11}", "n": i}) + "\n" for i in ids)
        try:
            conn.request("POST", "/ingest/in", body=body, headers={"Content-Type": "application/x-ndjson"})
            r = conn.getresponse()
            if r.status == 202 and json.loads(r.read())["accepted"] == 20:
                acked.update(ids)
        except (OSError, http.client.HTTPException):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc, port = start()

# Let the processor catch up, then stop cleanly and read `out`.
def caught_up():
    _, m = http_get(port, "/metrics")
    lags = [float(l.split()[-1]) for l in m.splitlines() if l.startswith("stream_consumer_lag{")]
    return lags and all(x == 0 for x in lags)
check(wait_for(caught_up, timeout=60), "the processor catches up (lag 0)")
proc.send_signal(signal.SIGTERM)
proc.wait(timeout=30)
out = spate("consume", "-c", cfg, "--topic", "out", "--from-beginning", timeout=120)
check(out.returncode == 0, f"consume out: {out.stderr}")
seqs = []
for line in out.stdout.splitlines():
    v = json.loads(line)
    check(v.get("tagged") is True and "n" not in v, f"transformed: {v}")
    seqs.append(v["seq"])
missing = acked - set(seqs)
check(len(acked) > 100, f"enough events were acknowledged ({len(acked)})")
check(not missing, f"{len(missing)} acknowledged events missing from out, e.g. {sorted(missing)[:5]}")
print(f"acknowledged {len(acked)}, in out {len(seqs)} ({len(seqs) - len(set(seqs))} duplicates)")
finish("test_processor_kill")
