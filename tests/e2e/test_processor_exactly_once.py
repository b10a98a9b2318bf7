"""Exactly-once under SIGKILL: a processor with `exactly_once: true` turns a stream of events
carrying per-key sequence numbers into `out`. The input grows in chunks (written with
`spate produce` while spate is down); spate is SIGKILLed at a random moment after each start,
at least 12 times, mostly while it is processing. Afterwards, reading `out` read_committed,
every (key, seq) of the input is there exactly once: no gap, no duplicate, in order per key.
The same run read_uncommitted shows whether aborted output exists (it must be hidden)."""
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
name: eos-kill
data_dir: %s
log: {fsync: {interval_ms: 10}}
ingestion: {enabled: false}
topics:
  - {name: in, partitions: 4}
  - {name: out, partitions: 3}
  - {name: evens, partitions: 2}
processors:
  - name: eos
    inputs: [in]
    output: out
    exactly_once: true
    workers: 2
    batch_size: 200
    poll_timeout: 5ms
    steps:
      - map: [{set: done, value: true}]
      - route:
          - {when: 'seq %% 2 == 0', topics: [out, evens]}
""" % os.path.join(tmp, "data"))

KEYS = 20
rng = random.Random(11)
next_seq = [0] * KEYS
total = 0


def produce_chunk(per_key):
    global total
    lines = []
    for _ in range(per_key):
        for k in range(KEYS):
            lines.append(json.dumps({"k": f"key{k}", "seq": next_seq[k]}))
            next_seq[k] += 1
    rng.shuffle(lines)  # keys interleave; each key's seqs keep their order (same partition)
    lines.sort(key=lambda l: json.loads(l)["seq"])
    r = spate("produce", "-c", cfg, "--topic", "in", "--key-field", "k", "--batch-size", "500",
              input="\n".join(lines) + "\n", timeout=120)
    check(r.returncode == 0, f"produce: {r.stderr}")
    total += len(lines)


def start():
    port = free_port()
    p = subprocess.Popen([SPATE, "run", cfg, "--port", str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    check(wait_for(lambda: http_get(port, "/ready")[0] == 200, timeout=30), "spate run becomes ready")
    return p, port


def status(port):
    code, body = http_get(port, "/status")
    return json.loads(body)["processors"][0] if code == 200 else None


kills = 0
killed_mid_batch = 0
def lag(port):
    _, m = http_get(port, "/metrics")
    return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("stream_consumer_lag{"))


for round_ in range(12):
    produce_chunk(rng.randint(2000, 4000))
    proc, port = start()
    # Kill at a random moment once processing is under way (a slow, loaded machine takes a
    # while to start; a fast one may finish a chunk quickly — the lag tells which happened).
    wait_for(lambda: (status(port) or {}).get("consumed", 0) > 0, timeout=20)
    time.sleep(rng.uniform(0, 0.2))
    behind = lag(port)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills += 1
    if behind > 0:
        killed_mid_batch += 1

# Final run: let it finish, then stop cleanly.
proc, port = start()
def caught_up():
    _, m = http_get(port, "/metrics")
    lags = [float(l.split()[-1]) for l in m.splitlines() if l.startswith("stream_consumer_lag{")]
    return lags and all(x == 0 for x in lags)
check(wait_for(caught_up, timeout=120), "the processor catches up (lag 0)")
st = status(port)
proc.send_signal(signal.SIGTERM)
proc.wait(timeout=30)


def read(topic, isolation):
    r = spate("consume", "-c", cfg, "--topic", topic, "--from-beginning", "--isolation", isolation,
              timeout=300)
    check(r.returncode == 0, f"consume {topic}: {r.stderr}")
    return [json.loads(l) for l in r.stdout.splitlines()]


def check_exactly_once(records, want_seq, what):
    per_key = {}
    for v in records:
        check(v.get("done") is True, f"{what}: transformed: {v}")
        per_key.setdefault(v["k"], []).append(v["seq"])
    for k in range(KEYS):
        got = per_key.get(f"key{k}", [])
        want = [s for s in range(next_seq[k]) if want_seq(s)]
        if got != want:
            dup = len(got) - len(set(got))
            missing = sorted(set(want) - set(got))
            check(False, f"{what}: key{k}: {len(got)} records, want {len(want)}; "
                         f"{dup} duplicates, missing {missing[:5]}, order ok: {got == sorted(got)}")


out = read("out", "read_committed")
check_exactly_once(out, lambda s: True, "out")
evens = read("evens", "read_committed")
check_exactly_once(evens, lambda s: s % 2 == 0, "evens")
raw = read("out", "read_uncommitted")
check(len(raw) >= len(out), "read_uncommitted sees at least the committed records")
check(kills >= 12 and killed_mid_batch >= 10,
      f"killed {kills} times, {killed_mid_batch} of them while processing")
print(f"input {total} events; out {len(out)} exactly once; read_uncommitted {len(raw)} "
      f"({len(raw) - len(out)} aborted records hidden); {kills} kills ({killed_mid_batch} mid-run); "
      f"aborts in the last run {st['aborts'] if st else '?'}")
finish("test_processor_exactly_once")
