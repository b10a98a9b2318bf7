"""`spate orchestrate` (local backend): automatic, lag-driven scaling against real processes.

A deployment of an embedded-log pipeline (log owner, one exactly-once processor, HTTP ingestion)
whose processor is deliberately slow: an HTTP sink step posts each batch to an endpoint in this
test that answers after 10 ms per event, so one replica handles about 100 events/s. The
processor component scales on consumer lag (min 1, max 4 replicas, target 200 per replica) over
an input topic of 3 partitions (so at most 3 replicas are useful).

Phase 1: events go in over HTTP faster than one replica drains them; consumer lag builds up and
the orchestrator must scale the processor up on its own — never above the 3 partitions, and
with at least `scale_up_cooldown` between two scalings.
Phase 2: the load stops; once the lag drains the orchestrator must hold the replicas for the
stabilisation window ("held by the stabilisation window" in /status) and then scale back down to
1 — never sooner than the window after the last scale-up, nor the scale-down cooldown after the
scaling before it.
Finally every acknowledged event is in the output topic exactly once (read_committed; no
duplicates across the rescales) and SIGTERM stops the orchestrator and every replica it ran.

Only ordering and minimum durations are asserted; the timeouts are generous (shared machine)."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from spate_e2e import *

PARTITIONS = 3
MAX_REPLICAS = 4
TARGET_LAG = 200
UP_COOLDOWN_MS = 2000
DOWN_COOLDOWN_MS = 3000
STABILIZATION_MS = 8000
SINK_MS_PER_EVENT = 10     # the slow downstream: ~100 events/s per replica
LOAD_PER_SECOND = 400      # > 3 replicas' worth, so the lag grows until the partition cap
# The monitor decides with the time its tick started and records the operation a little later
# (after probing the replicas), so an operation's at_ms may trail its decision by the probes'
# duration: the stabilisation check allows for that (the cooldowns need no slack).
DECISION_SLACK_MS = 1000

tmp = tempdir()
ingest_port = free_port()
orch_port = free_port()

# --- the slow downstream (HTTP sink endpoint) ---------------------------------------------------
sink_seqs = set()
sink_requests = [0]
sink_lock = threading.Lock()


class SlowSink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n).decode()
        seqs = []
        for line in body.splitlines():
            line = line.strip()
            if line:
                try:
                    seqs.append(json.loads(line)["seq"])
                except (ValueError, KeyError):
                    pass
        time.sleep(SINK_MS_PER_EVENT / 1000.0 * max(1, len(seqs)))
        with sink_lock:
            sink_seqs.update(seqs)
            sink_requests[0] += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


sink_server = ThreadingHTTPServer(("127.0.0.1", 0), SlowSink)
sink_server.daemon_threads = True
sink_port = sink_server.server_address[1]
threading.Thread(target=sink_server.serve_forever, daemon=True).start()

# --- pipeline and deployment --------------------------------------------------------------------
pipeline = os.path.join(tmp, "pipeline.yaml")
with open(pipeline, "w") as f:
    f.write(f"""
name: autoscale
data_dir: {tmp}/data
server: {{port: {ingest_port}}}
log: {{fsync: {{interval_ms: 10}}}}
topics:
  - {{name: in, partitions: {PARTITIONS}}}
  - {{name: out, partitions: 1}}
ingestion: {{ack: durable, key_field: id, default_topic: in}}
processors:
  - name: slow
    inputs: [in]
    output: out
    exactly_once: true
    batch_size: 20
    poll_timeout: 5ms
    steps:
      - {{type: sink, kind: http, url: "http://127.0.0.1:{sink_port}/sink", batch: true}}
      - {{map: [{{set: tagged, value: true}}]}}
""")
deployment = os.path.join(tmp, "deployment.yaml")
with open(deployment, "w") as f:
    f.write(f"""
name: autoscale
pipeline: pipeline.yaml
state_dir: {tmp}/state
server: {{port: {orch_port}}}
monitor: {{interval: 500ms, probe_timeout: 2s}}
healing: {{backoff_initial: 200ms, backoff_max: 2s}}
components:
  - {{name: ingest, type: ingestion}}
  - name: proc
    type: processor
    replicas: 1
    scaling:
      min_replicas: 1
      max_replicas: {MAX_REPLICAS}
      target_consumer_lag: {TARGET_LAG}
      scale_up_cooldown: {UP_COOLDOWN_MS}ms
      scale_down_cooldown: {DOWN_COOLDOWN_MS}ms
      scale_down_stabilization: {STABILIZATION_MS}ms
""")

r = spate("orchestrate", deployment, "--check")
check(r.returncode == 0, f"--check accepts the deployment: {r.stdout} {r.stderr}")


def status():
    code, body = http_get(orch_port, "/status")
    try:
        return json.loads(body) if code == 200 else None
    except ValueError:
        return None


def component(s, name):
    return next((c for c in (s or {}).get("components", []) if c["name"] == name), None)


def post(port, path, body=b""):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"content-type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return None, str(e)


# --- load ----------------------------------------------------------------------------------------
sent = set()
rejected = []
next_id = [0]
stop_load = threading.Event()


def ingest(n):
    ids, lines = [], []
    for _ in range(n):
        i = next_id[0]
        next_id[0] += 1
        ids.append(i)
        lines.append(json.dumps({"id": f"k{i % 30}", "seq": i}))
    code, body = post(ingest_port, "/ingest/in", ("\n".join(lines) + "\n").encode())
    if code == 202:
        sent.update(ids)
    else:
        rejected.append((code, body[:200]))
    return code


def load():
    chunk = max(1, LOAD_PER_SECOND // 10)
    while not stop_load.is_set():
        t0 = time.time()
        ingest(chunk)
        time.sleep(max(0.0, 0.1 - (time.time() - t0)))


# --- observation ---------------------------------------------------------------------------------
seen_pids = set()
max_replicas_seen = [0]
reasons = []  # (time, replicas, total lag, reason)


def observe():
    s = status()
    c = component(s, "proc")
    if not c:
        return s, None, None
    for comp in s["components"]:
        for i in comp["instances"]:
            if i["pid"] > 0:
                seen_pids.add(i["pid"])
    max_replicas_seen[0] = max(max_replicas_seen[0], c["replicas"])
    lags = [i["lag"] for i in c["instances"][:c["replicas"]] if i.get("lag") is not None]
    lag = sum(lags) if lags else None
    reasons.append((time.time(), c["replicas"], lag, c["scaling"]["reason"]))
    return s, c, lag


def auto_scalings(s):
    """The scale operations (none is asked for by hand here), oldest first: (at_ms, from, to,
    detail). A running automatic one reads "auto: 1 -> 2: REASON", a finished one "1 -> 2 replicas"."""
    out = []
    for op in reversed(s["operations"]):
        if op["operation"] != "scale":
            continue
        d = op["detail"]
        head = d[len("auto: "):].split(":", 1)[0] if d.startswith("auto: ") else d.split(" replicas")[0]
        a, b = (int(x) for x in head.split("->"))
        out.append((op["at_ms"], a, b, d))
    return out


def logged_scalings():
    """The orchestrator's log lines "scaling proc from A to B: REASON": [(A, B, REASON)]."""
    out = []
    with open(os.path.join(tmp, "orch.log")) as f:
        for line in f:
            if "orchestrator: scaling proc from " in line:
                rest = line.split("orchestrator: scaling proc from ", 1)[1]
                head, reason = rest.split(": ", 1)
                a, b = head.split(" to ")
                out.append((int(a), int(b), reason.strip()))
    return out


log = open(os.path.join(tmp, "orch.log"), "w")
orch = subprocess.Popen([SPATE, "orchestrate", deployment], stdout=log, stderr=subprocess.STDOUT)
check(wait_for(lambda: http_get(orch_port, "/ready")[0] == 200, timeout=60), "deployment comes up")
s, c, _ = observe()
check(c and c["replicas"] == 1 and c["scaling"]["enabled"] and c["partitions"] == PARTITIONS,
      f"proc starts with 1 replica, scaling enabled, {PARTITIONS} partitions: {c}")

# --- phase 1: load until the lag drives the processor up ---------------------------------------
loader = threading.Thread(target=load, daemon=True)
t_load = time.time()
loader.start()


def scaled_to_cap():
    _, c, _ = observe()
    return c and c["replicas"] >= PARTITIONS and c["ready_replicas"] == c["replicas"]


reached_cap = wait_for(scaled_to_cap, timeout=90, interval=0.2)
_, c, _ = observe()
check(c and c["replicas"] > 1, f"the processor scaled up on lag by itself: {c and c['replicas']} replicas, "
      f"reason {c and c['scaling']['reason']}")
check(reached_cap, f"the processor reached the partition cap ({PARTITIONS}) under sustained load: {c}")
stop_load.set()
loader.join(timeout=60)
t_unload = time.time()
print(f"load ran {t_unload - t_load:.1f}s: {len(sent)} events accepted, "
      f"{len(rejected)} requests refused", flush=True)
check(not rejected, f"every ingest request accepted: {rejected[:3]}")
s, c, _ = observe()
ups = [a for a in auto_scalings(s) if a[2] > a[1]]
check(ups, f"an automatic scale-up operation is recorded: {s['operations'][:5]}")

# --- phase 2: no load; the lag drains, the replicas come back to the minimum -------------------
t_drained = wait_for(lambda: (lambda v: v[2] is not None and v[2] < TARGET_LAG and time.time())(observe()),
                     timeout=120, interval=0.2)
check(t_drained, f"the lag drains once the load stops: {reasons[-1:]}")
back_to_min = wait_for(lambda: (lambda v: v[1] and v[1]["replicas"] == 1
                                and v[1]["ready_replicas"] == 1)(observe()),
                       timeout=120, interval=0.2)
s, c, _ = observe()
check(back_to_min, f"the processor scaled back down to min_replicas (1): {c}")
held = [r for r in reasons if "held by the stabilisation window" in r[3]]
check(held, f"/status showed the scale-down held by the stabilisation window: {reasons[-5:]}")

# --- the scaling history: caps, cooldowns, stabilisation ---------------------------------------
scalings = auto_scalings(s)
print("automatic scalings:", *[f"  +{(a - scalings[0][0]) / 1000:.1f}s {f} -> {t}"
                               for a, f, t, _ in scalings], sep="\n", flush=True)
cap = min(MAX_REPLICAS, PARTITIONS)
check(max_replicas_seen[0] <= cap, f"never more than min(max_replicas, partitions) = {cap}: "
      f"{max_replicas_seen[0]}")
check(all(1 <= t <= cap for _, _, t, _ in scalings), f"every scaling within [1, {cap}]: {scalings}")
check(scalings and scalings[-1][2] == 1, f"the last automatic scaling went to 1: {scalings[-1:]}")
for (a0, f0, t0, d0), (a1, f1, t1, d1) in zip(scalings, scalings[1:]):
    check(f1 == t0, f"scalings chain ({f0}->{t0} then {f1}->{t1})")
    gap = a1 - a0
    if t1 > f1:
        check(gap >= UP_COOLDOWN_MS, f"scale-up {f1}->{t1} came {gap} ms after the previous scaling "
              f"(scale_up_cooldown {UP_COOLDOWN_MS} ms)")
    else:
        check(gap >= DOWN_COOLDOWN_MS, f"scale-down {f1}->{t1} came {gap} ms after the previous scaling "
              f"(scale_down_cooldown {DOWN_COOLDOWN_MS} ms)")
downs = [x for x in scalings if x[2] < x[1]]
last_up = max((a for a, f, t, _ in scalings if t > f), default=None)
if downs and last_up is not None:
    first_down = min(a for a, _, _, _ in downs)
    check(first_down - last_up >= STABILIZATION_MS - DECISION_SLACK_MS,
          f"the first scale-down came {first_down - last_up} ms after the last scale-up "
          f"(scale_down_stabilization {STABILIZATION_MS} ms)")
    check(all(a > last_up for a, _, _, _ in downs), "every scale-down after the last scale-up")

# --- exactly once --------------------------------------------------------------------------------
log_port = component(s, "log")["instances"][0]["port"]


def out_seqs():
    r = spate("consume", "--log-url", f"http://127.0.0.1:{log_port}", "--topic", "out",
              "--from-beginning", "--isolation", "read_committed", timeout=60)
    return [json.loads(l)["seq"] for l in r.stdout.splitlines() if l.strip()]


seen = wait_for(lambda: (lambda v: v if len(v) >= len(sent) else None)(out_seqs()), timeout=60,
                interval=0.5) or out_seqs()
check(len(sent) > 0, "events were sent")
check(set(seen) == sent, f"every acknowledged event came out: missing {len(sent - set(seen))}, "
      f"unexpected {len(set(seen) - sent)}")
check(len(seen) == len(set(seen)), f"no duplicates in the output: {len(seen) - len(set(seen))}")
with sink_lock:
    check(sent <= sink_seqs, f"the slow sink saw every event: missing {len(sent - sink_seqs)}")
s, c, _ = observe()
check(c and c["replicas"] == 1, f"still 1 replica after the drain: {c}")

# --- SIGTERM: the orchestrator and every replica it ran stop ------------------------------------
orch.send_signal(signal.SIGTERM)
try:
    code = orch.wait(timeout=120)
except subprocess.TimeoutExpired:
    orch.kill()
    code = orch.wait()
check(code == 0, f"orchestrator exits 0 on SIGTERM: {code}")


# The reasons of the automatic scalings (the finished operations keep only "A -> B replicas").
logged = logged_scalings()
check([(a, b) for a, b, _ in logged] == [(f, t) for _, f, t, _ in scalings],
      f"the orchestrator logged the same scalings: {logged}")
check(all(r.startswith("consumer_lag ") for a, b, r in logged if b > a),
      f"the scale-ups were driven by the consumer lag: {logged}")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


left = wait_for(lambda: not any(alive(p) for p in seen_pids), timeout=10, interval=0.1)
check(left, f"every replica stopped: {[p for p in seen_pids if alive(p)]}")
sink_server.shutdown()
if FAILURES:
    print(f"orchestrator log: {tmp}/orch.log; replica logs: {tmp}/state/logs", flush=True)
finish("test_orchestrate_autoscale")
