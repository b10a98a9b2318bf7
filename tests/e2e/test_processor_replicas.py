"""Several processes of one consumer group on the embedded log, exactly-once, under SIGKILL.

One `spate run --role log,ingestion` owns the embedded log and serves it on /log/v1/; two
`spate run --role processors --replica i/2 --log-url ...` processes run the same exactly-once
processor over it, each taking its explicit share of the partitions. Input with per-key
sequence numbers is written through the owner with `spate produce --log-url`. SIGKILL hits a
random process — mostly a replica, sometimes the owner itself, with the replicas carrying on
and reconnecting — at least 12 times. Afterwards `out`, read read_committed, holds every
(key, seq) exactly once, in order per key; the replicas split the partitions between them."""
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
name: replicas
data_dir: %s
log: {fsync: {interval_ms: 10}}
server: {log_api_txn_timeout: 5s}
topics:
  - {name: in, partitions: 4}
  - {name: out, partitions: 3}
processors:
  - name: eos
    inputs: [in]
    output: out
    exactly_once: true
    batch_size: 200
    poll_timeout: 5ms
    steps:
      - map: [{set: done, value: true}]
""" % os.path.join(tmp, "data"))

KEYS = 16
rng = random.Random(7)
next_seq = [0] * KEYS
total = 0
owner_port = free_port()
url = f"http://127.0.0.1:{owner_port}"


def start_owner():
    p = subprocess.Popen([SPATE, "run", cfg, "--role", "log,ingestion", "--port", str(owner_port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(wait_for(lambda: http_get(owner_port, "/ready")[0] == 200, timeout=30), "owner ready")
    return p


def start_replica(i):
    port = free_port()
    p = subprocess.Popen([SPATE, "run", cfg, "--role", "processors", "--replica", f"{i}/2",
                          "--log-url", url, "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=60), f"replica {i} ready")
    return p, port


def produce_chunk(per_key):
    global total
    lines = []
    for _ in range(per_key):
        for k in range(KEYS):
            lines.append(json.dumps({"k": f"key{k}", "seq": next_seq[k]}))
            next_seq[k] += 1
    r = spate("produce", "--log-url", url, "--topic", "in", "--key-field", "k", "--batch-size",
              "300", input="\n".join(lines) + "\n", timeout=120)
    check(r.returncode == 0, f"produce through the owner: {r.stderr}")
    total += len(lines)


def metrics(port, name):
    code, m = http_get(port, "/metrics")
    if code != 200:
        return {}
    out = {}
    for line in m.splitlines():
        if line.startswith(name + "{"):
            labels = line[line.index("{") + 1:line.index("}")]
            out[labels] = float(line.split()[-1])
    return out


def status(port):
    code, body = http_get(port, "/status")
    return json.loads(body)["processors"][0] if code == 200 else {}


owner = start_owner()
replicas = [start_replica(0), start_replica(1)]
kills = {"owner": 0, "replica": 0}
mid_run = 0
for round_ in range(14):
    before = sum(status(p).get("consumed", 0) for _, p in replicas)
    produce_chunk(rng.randint(900, 1800))
    # Let processing get under way, then kill somebody at a random moment.
    wait_for(lambda: sum(status(p).get("consumed", 0) for _, p in replicas) > before, timeout=20)
    # Early in the chunk (a fast machine processes a whole chunk in ~100 ms: kills after it
    # would all land between chunks, which tests less).
    time.sleep(rng.uniform(0, 0.02))
    if sum(sum(metrics(p, "stream_consumer_lag").values()) for _, p in replicas) > 0:
        mid_run += 1
    if round_ % 5 == 2:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        kills["owner"] += 1
        time.sleep(rng.uniform(0, 0.5))  # the replicas see the owner gone and retry
        owner = start_owner()
    else:
        i = rng.randrange(2)
        replicas[i][0].send_signal(signal.SIGKILL)
        replicas[i][0].wait()
        kills["replica"] += 1
        replicas[i] = start_replica(i)

# Both replicas running: wait until their partitions are drained (lag 0 everywhere).
def caught_up():
    lags = {}
    for _, port in replicas:
        lags.update(metrics(port, "stream_consumer_lag"))
    return len(lags) == 4 and all(v == 0 for v in lags.values()) and lags


lags = wait_for(caught_up, timeout=180)
check(lags, "the replicas catch up (lag 0 on all 4 partitions)")
# Each replica owns its explicit share: replica 0 partitions 0 and 2, replica 1 partitions 1, 3.
for i, (_, port) in enumerate(replicas):
    parts = sorted(int(l.split('partition="')[1].split('"')[0])
                   for l in metrics(port, "stream_consumer_lag"))
    check(parts == [i, i + 2], f"replica {i} consumes partitions {[i, i + 2]}, got {parts}")
    st = status(port)
    check(st.get("replica") == i and st.get("replicas") == 2, f"replica {i} /status: {st}")
_, sbody = http_get(replicas[0][1], "/status")
check(json.loads(sbody)["components"][0].get("url") == url, "/status names the remote log")

for p, _ in replicas:
    stop_process(p)
stop_process(owner)

r = spate("consume", "-c", cfg, "--topic", "out", "--from-beginning", "--isolation",
          "read_committed", timeout=300)
check(r.returncode == 0, f"consume out: {r.stderr}")
per_key = {}
for line in r.stdout.splitlines():
    v = json.loads(line)
    check(v.get("done") is True, f"transformed: {v}")
    per_key.setdefault(v["k"], []).append(v["seq"])
count = 0
for k in range(KEYS):
    got = per_key.get(f"key{k}", [])
    count += len(got)
    want = list(range(next_seq[k]))
    if got != want:
        dup = len(got) - len(set(got))
        missing = sorted(set(want) - set(got))
        check(False, f"key{k}: {len(got)} records, want {len(want)}; {dup} duplicates, "
                     f"missing {missing[:5]}, in order: {got == sorted(got)}")
# The test must have killed processes while work was in flight (not only between chunks): at
# least 6 of the 14 kills (a loaded CI machine once saw 7 of 14 when 8 were required).
check(kills["owner"] >= 2 and kills["owner"] + kills["replica"] >= 12 and mid_run >= 6,
      f"kills: {kills}, {mid_run} while there was work in flight")
print(f"input {total} events; out {count} exactly once; kills {kills} ({mid_run} with work in "
      f"flight)")
finish("test_processor_replicas")
