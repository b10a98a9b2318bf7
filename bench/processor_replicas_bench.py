#!/usr/bin/env python3
"""Processor throughput in one process vs. replica processes over the owner's log API.

Usage: bench/processor_replicas_bench.py [SPATE_BINARY] [EVENTS]

Writes EVENTS (default 1,000,000) JSON events into topic `in` (4 partitions) once, copies the
data directory per variant, and times an exactly-once processor (map step, batch 5000) draining
the backlog into `out`:
  in-process   `spate run` with the processor inside the log's owner (the embedded log directly)
  remote x1    owner `--role log` + 1 replica process `--log-url` (every call over loopback HTTP)
  remote x2    owner + 2 replica processes (0/2, 1/2)
The rate is EVENTS / (time from the first consumed event to lag 0 on every partition), sampled
every 20 ms from the processes' /status and /metrics. Prints one line per variant and the
ratio of the remote variants to in-process in the same run.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

SPATE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/spate"
EVENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except Exception as e:  # noqa: BLE001 - a benchmark polls through restarts
        return None, str(e)


def wait(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise SystemExit("timed out")


def pipeline(data_dir):
    return f"""
name: bench
data_dir: {data_dir}
log: {{fsync: {{interval_ms: 50}}}}
ingestion: {{enabled: false}}
topics:
  - {{name: in, partitions: 4}}
  - {{name: out, partitions: 4}}
processors:
  - name: eos
    inputs: [in]
    output: out
    exactly_once: true
    batch_size: 5000
    steps:
      - filter: 'level != "debug"'
      - map: [{{set: seen, value: true}}, {{rename: msg, to: message}}]
"""


def start(cfg, *args):
    port = free_port()
    p = subprocess.Popen([SPATE, "run", cfg, "--port", str(port), *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: get(port, "/ready")[0] == 200, 60)
    return p, port


def consumed(ports):
    total = 0
    for port in ports:
        code, body = get(port, "/status")
        if code == 200:
            total += sum(p["consumed"] for p in json.loads(body)["processors"])
    return total


def drained(ports):
    lags = []
    for port in ports:
        code, m = get(port, "/metrics")
        if code != 200:
            return False
        lags += [float(l.split()[-1]) for l in m.splitlines() if l.startswith("stream_consumer_lag{")]
    return len(lags) == 4 and all(x == 0 for x in lags)


def run_variant(base, name, replicas):
    d = os.path.join(base, name)
    shutil.copytree(os.path.join(base, "seed"), d)
    cfg = os.path.join(d, "pipeline.yaml")
    with open(cfg, "w") as f:
        f.write(pipeline(d))
    procs = []
    if replicas == 0:
        p, port = start(cfg)
        procs.append(p)
        ports = [port]
    else:
        owner, oport = start(cfg, "--role", "log")
        procs.append(owner)
        ports = []
        for i in range(replicas):
            p, port = start(cfg, "--role", "processors", "--replica", f"{i}/{replicas}",
                            "--log-url", f"http://127.0.0.1:{oport}")
            procs.append(p)
            ports.append(port)
    t0 = None
    while t0 is None:
        if consumed(ports) > 0:
            t0 = time.time()
        else:
            time.sleep(0.005)
    wait(lambda: drained(ports), 600)
    t1 = time.time()
    for p in reversed(procs):
        p.terminate()
        p.wait()
    shutil.rmtree(d)
    return EVENTS / (t1 - t0)


def main():
    base = tempfile.mkdtemp(prefix="spate-bench-replicas-")
    seed = os.path.join(base, "seed")
    os.makedirs(seed)
    cfg = os.path.join(seed, "pipeline.yaml")
    with open(cfg, "w") as f:
        f.write(pipeline(seed))
    lines = "".join(
        json.dumps({"id": i, "user": f"u{i % 1000}", "level": "debug" if i % 10 == 0 else "info",
                    "msg": "request served", "ms": i % 250}) + "\n" for i in range(EVENTS))
    r = subprocess.run([SPATE, "produce", "-c", cfg, "--topic", "in", "--key-field", "user",
                        "--batch-size", "5000"], input=lines, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    results = {}
    for name, replicas in (("in-process", 0), ("remote x1", 1), ("remote x2", 2)):
        results[name] = run_variant(base, name.replace(" ", "_"), replicas)
        print(f"{name:12s} {results[name] / 1e3:8.0f}k events/s", flush=True)
    base_rate = results["in-process"]
    print("ratios to in-process: " + ", ".join(
        f"{k} {v / base_rate:.2f}x" for k, v in results.items() if k != "in-process"))
    shutil.rmtree(base)


main()
