"""`spate orchestrate` with the local backend, against real processes.

A deployment of an embedded-log pipeline (log owner, one processor, HTTP ingestion) is brought
up; events go in over HTTP while the test SIGKILLs the processor replica (it must come back
ready), scales the processor to 2 replicas through the admin API (partitions split anew), and
SIGKILLs the orchestrator itself (a new one must adopt the running replicas, not start
duplicates). Every acknowledged event must come out of the processor exactly once (exactly-once
processor: no duplicates either, across kills and rescales). A second deployment whose ingestion port
is taken crash-loops: reported in /status and the metrics, backing off; once the port is free it
comes up. SIGTERM stops every replica."""
import json
import os
import signal
import socket
import subprocess
import time

from spate_e2e import *

tmp = tempdir()
ingest_port = free_port()
orch_port = free_port()
pipeline = os.path.join(tmp, "pipeline.yaml")
with open(pipeline, "w") as f:
    f.write(f"""
name: orch
data_dir: {tmp}/data
server: {{port: {ingest_port}}}
log: {{fsync: {{interval_ms: 10}}}}
topics:
  - {{name: in, partitions: 4}}
  - {{name: out, partitions: 2}}
ingestion: {{ack: durable, key_field: id, default_topic: in}}
processors:
  - name: tag
    inputs: [in]
    output: out
    exactly_once: true
    batch_size: 100
    poll_timeout: 5ms
    steps: [{{map: [{{set: tagged, value: true}}]}}]
""")
deployment = os.path.join(tmp, "deployment.yaml")
with open(deployment, "w") as f:
    f.write(f"""
name: orch
pipeline: pipeline.yaml
state_dir: {tmp}/state
server: {{port: {orch_port}}}
monitor: {{interval: 200ms, probe_timeout: 1s}}
healing: {{backoff_initial: 200ms, backoff_max: 2s, crash_loop_restarts: 3, crash_loop_window: 1m}}
components:
  - {{name: ingest, type: ingestion}}
  - name: proc
    type: processor
    replicas: 1
    scaling: {{min_replicas: 1, max_replicas: 2, target_consumer_lag: 100000000, scale_down_stabilization: 1h}}
""")

r = spate("orchestrate", deployment, "--check")
check(r.returncode == 0, f"--check accepts the deployment: {r.stdout} {r.stderr}")


def start_orch(path=deployment, port=orch_port):
    log = open(os.path.join(tmp, f"orch-{time.time()}.log"), "w")
    return subprocess.Popen([SPATE, "orchestrate", path], stdout=log, stderr=subprocess.STDOUT)


def status(port=orch_port):
    code, body = http_get(port, "/status")
    return json.loads(body) if code == 200 else None


def component(name, port=orch_port):
    s = status(port)
    if not s:
        return None
    return next((c for c in s["components"] if c["name"] == name), None)


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


sent = set()
next_id = 0


def ingest(n):
    global next_id
    lines = []
    ids = []
    for _ in range(n):
        ids.append(next_id)
        lines.append(json.dumps({"id": f"k{next_id % 50}", "seq": next_id}))
        next_id += 1
    code, body = post(ingest_port, "/ingest/in", ("\n".join(lines) + "\n").encode())
    if code == 202:
        sent.update(ids)
    return code


import urllib.request  # noqa: E402  (spate_e2e imports it too; explicit for post())
import urllib.error  # noqa: E402

orch = start_orch()
check(wait_for(lambda: http_get(orch_port, "/ready")[0] == 200, timeout=60), "deployment comes up")
s = status()
check(s and [c["name"] for c in s["components"]] == ["log", "proc", "ingest"],
      f"start order log, processors, ingestion: {s and [c['name'] for c in s['components']]}")
for _ in range(5):
    check(ingest(200) == 202, "ingest accepted")

# SIGKILL the processor replica: it is restarted and ready again within the backoff.
proc = component("proc")
pid = proc["instances"][0]["pid"]
os.kill(pid, signal.SIGKILL)
back = wait_for(lambda: (lambda c: c and c["instances"][0]["pid"] not in (0, pid)
                         and c["instances"][0]["ready"] and c["instances"][0]["restarts"] >= 1)(component("proc")),
                timeout=30)
check(back, f"killed processor replica is back and ready: {component('proc')}")
for _ in range(5):
    check(ingest(200) == 202, "ingest accepted after the restart")

# Scale the processor to 2 while ingesting.
code, body = post(orch_port, "/scale/proc?replicas=2")
check(code == 202 and "operation" in body, f"POST /scale answers 202 with an operation: {code} {body}")
for _ in range(10):
    check(ingest(100) == 202, "ingest accepted while scaling")
    time.sleep(0.1)
check(wait_for(lambda: (component("proc") or {}).get("ready_replicas") == 2, timeout=60),
      f"2 processor replicas ready: {component('proc')}")
code, body = post(orch_port, "/scale/log?replicas=2")
check(code == 400, f"the log owner cannot be scaled: {code} {body}")
code, body = post(orch_port, "/heal/nope")
check(code == 404, f"heal of an unknown component is 404: {code}")

# SIGKILL the orchestrator: the replicas keep running; a new orchestrator adopts them.
pids = {c["name"]: [i["pid"] for i in c["instances"]] for c in status()["components"]}
orch.kill()
orch.wait()
check(ingest(300) == 202, "ingestion keeps working without the orchestrator")
orch = start_orch()
check(wait_for(lambda: http_get(orch_port, "/ready")[0] == 200, timeout=60), "new orchestrator ready")
s = status()
after = {c["name"]: [i["pid"] for i in c["instances"]] for c in s["components"]}
check(after == pids, f"replicas adopted, none started again: {pids} -> {after}")
check(all(i["adopted"] for c in s["components"] for i in c["instances"]), "instances marked adopted")
ops = [o["operation"] for o in s["operations"]]
check("adopt" in ops, f"adoption recorded in operations: {ops}")
for _ in range(5):
    check(ingest(200) == 202, "ingest accepted after adoption")

# Every acknowledged event comes out exactly once.
log_port = component("log")["instances"][0]["port"]


def out_seqs():
    r = spate("consume", "--log-url", f"http://127.0.0.1:{log_port}", "--topic", "out",
              "--from-beginning", "--isolation", "read_committed", timeout=60)
    return [json.loads(l)["seq"] for l in r.stdout.splitlines() if l.strip()]


seen = wait_for(lambda: (lambda v: v if len(v) >= len(sent) else None)(out_seqs()), timeout=60,
                interval=0.5) or out_seqs()
check(set(seen) == sent, f"every acknowledged event came out: missing {len(sent - set(seen))}")
check(len(seen) == len(set(seen)), f"no duplicates: {len(seen) - len(set(seen))}")
code, metrics = http_get(orch_port, "/metrics")
check('streaming_component_health{component="proc"} 1' in metrics, "proc health 1 in metrics")
check('orchestration_operations_total{operation="scale",status="success"} 1' in metrics
      or 'orchestration_operations_total{operation="scale",status="success"}' in metrics,
      "scale operations counted")
check('streaming_active_components{type="processor"} 1' in metrics, "active processor component")

# SIGTERM: everything stops, in reverse order.
orch.send_signal(signal.SIGTERM)
check(orch.wait(timeout=120) == 0, "orchestrator exits 0 on SIGTERM")
alive = [p for ps in after.values() for p in ps if os.path.exists(f"/proc/{p}")
         and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"]
check(not alive, f"every replica stopped: {alive}")

# A replica that crashes at start: the ingestion port is taken.
blocker = socket.socket()
blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
blocker.bind(("127.0.0.1", ingest_port))
blocker.listen()
orch2_port = free_port()
with open(deployment) as f:
    text = f.read()
d2 = os.path.join(tmp, "deployment2.yaml")
with open(d2, "w") as f:
    f.write(text.replace(f"port: {orch_port}", f"port: {orch2_port}").replace(f"{tmp}/state", f"{tmp}/state2"))
orch = start_orch(d2, orch2_port)
looping = wait_for(lambda: (lambda c: c and c["instances"]
                            and c["instances"][0]["state"] == "crash_loop")(component("ingest", orch2_port)),
                   timeout=60, interval=0.2)
check(looping, f"ingestion reported crash_loop: {component('ingest', orch2_port)}")
code, metrics = http_get(orch2_port, "/metrics")
check('orchestration_operations_total{operation="heal",status="crash_loop"}' in metrics,
      "crash loop counted in orchestration_operations_total")
c = component("ingest", orch2_port)
check(c and c["instances"][0]["restart_in_ms"] > 0, f"crash loop backs off: {c}")
check(http_get(orch2_port, "/ready")[0] == 503, "deployment not ready while ingestion crash-loops")
blocker.close()
check(wait_for(lambda: http_get(orch2_port, "/ready")[0] == 200, timeout=60),
      "ingestion comes up once its port is free")
orch.send_signal(signal.SIGTERM)
check(orch.wait(timeout=120) == 0, "second orchestrator exits 0")

# examples/deployment.yaml (the quickstart pipeline) comes up and takes an event.
ex_dir = tempdir()
ex_ingest, ex_orch = free_port(), free_port()
env = dict(os.environ, SPATE_DATA_DIR=f"{ex_dir}/data", SPATE_STATE_DIR=f"{ex_dir}/state",
           SPATE_PORT=str(ex_ingest), SPATE_ORCHESTRATOR_PORT=str(ex_orch))
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ex = subprocess.Popen([SPATE, "orchestrate", os.path.join(root, "examples", "deployment.yaml")],
                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
check(wait_for(lambda: http_get(ex_orch, "/ready")[0] == 200, timeout=60),
      "examples/deployment.yaml comes up")
code, body = post(ex_ingest, "/ingest/user_events",
                  b'{"user_id":"u1","action":"login","timestamp":"2026-11-29T10:00:00Z"}')
check(code == 202, f"the example takes an event: {code} {body}")
names = [c["name"] for c in (status(ex_orch) or {}).get("components", [])]
check(names == ["log", "errors", "analytics", "ingestion"], f"example components: {names}")
ex.send_signal(signal.SIGTERM)
check(ex.wait(timeout=120) == 0, "example orchestrator exits 0")
finish("test_orchestrate")
