"""Consumer-group rebalancing on Kafka (mock cluster): a processor in one `spate run` owns all
partitions; a second process with the same pipeline joins and the cooperative-sticky protocol
splits them; when it leaves (SIGTERM) the first takes them all back. Events produced by kcat
throughout are all processed (at-least-once: some may be processed twice around a move)."""
import json
import os
import shutil
import subprocess

from spate_e2e import *
from kafka_fixture import MockKafka

kafka = MockKafka([("in", 6), ("out", 6)])
root = tempdir()


def pipeline(name):
    d = os.path.join(root, name)
    os.makedirs(d)
    cfg = os.path.join(d, "pipeline.yaml")
    with open(cfg, "w") as f:
        f.write(f"""
name: rebalance-{name}
data_dir: {d}
server: {{port: 0}}
log:
  kind: kafka
  kafka: {{bootstrap_servers: "{kafka.bootstrap}"}}
processors:
  - name: copier
    inputs: [in]
    output: out
    session_timeout: 6s
    steps:
      - map:
          - {{set: copied, expr: 'true'}}
""")
    return cfg


def start(name):
    port = free_port()
    p = subprocess.Popen([SPATE, "run", pipeline(name), "--role", "processors", "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), f"{name} is ready")
    return p, port


def proc_status(port):
    code, body = http_get(port, "/status")
    if code != 200:
        return None
    ps = json.loads(body)["processors"]
    return ps[0] if ps else None


def partitions(port):
    s = proc_status(port)
    return s["partitions"] if s else -1


def produce(first, n):
    lines = "".join(f"k{i}\t" + json.dumps({"id": i}) + "\n" for i in range(first, first + n))
    r = kafka.kcat("-P", "-t", "in", "-K", "\t", input=lines.encode())
    check(r.returncode == 0, f"kcat produce: {r.stderr}")


def out_ids():
    r = kafka.kcat("-C", "-t", "out", "-o", "beginning", "-e", "-q", timeout=120)
    ids = []
    for line in r.stdout.decode().splitlines():
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("copied") is True:
            ids.append(v["id"])
    return ids


def all_copied(n):
    return wait_for(lambda: set(range(n)) <= set(out_ids()), timeout=90, interval=1)


a = b = None
try:
    a, pa = start("a")
    check(wait_for(lambda: partitions(pa) == 6, timeout=60), f"the only member owns all 6 partitions ({partitions(pa)})")
    produce(0, 2000)
    check(all_copied(2000), "the first 2000 events are processed")

    b, pb = start("b")
    split = wait_for(lambda: partitions(pa) > 0 and partitions(pb) > 0 and
                     partitions(pa) + partitions(pb) == 6, timeout=60)
    check(split, f"a second member gets a share: a={partitions(pa)} b={partitions(pb)}")
    consumed_a = proc_status(pa)["consumed"]
    produce(2000, 2000)
    check(all_copied(4000), "the events produced while both run are processed")
    check(wait_for(lambda: proc_status(pb)["consumed"] > 0, timeout=30),
          f"the second member processed some: {proc_status(pb)}")
    check(proc_status(pa)["consumed"] > consumed_a, "so did the first")

    out, err = stop_process(b)
    check(b.returncode == 0, f"the second member stops cleanly: {err[-2000:]}")
    b = None
    check(wait_for(lambda: partitions(pa) == 6, timeout=60),
          f"when it leaves, the first takes all partitions back ({partitions(pa)})")
    produce(4000, 2000)
    check(all_copied(6000), "the events produced after it left are processed")
    ids = out_ids()
    dups = len(ids) - len(set(ids))
    print(f"{len(ids)} outputs for 6000 events ({dups} processed twice around the moves)")
    check(dups <= 2000, f"duplicates are bounded by the work in flight at the moves ({dups})")
finally:
    for p in (a, b):
        if p is not None:
            stop_process(p)
    kafka.close()
check(a.returncode == 0, "the first member stops cleanly")
shutil.rmtree(root, ignore_errors=True)
finish("kafka rebalance")
