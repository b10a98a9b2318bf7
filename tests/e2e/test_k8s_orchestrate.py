"""`spate orchestrate` with `backend: kubernetes` against a test double of the Kubernetes API
server (tests/e2e/fake_kube_api.py: HTTPS with its own CA, bearer tokens, server-side apply,
the scale subresource with resourceVersion preconditions, pod list/watch with 410/404, pod
deletion, fake controllers that keep the pods and a per-pod-IP metrics server). No Kubernetes
API server can run on these machines; this is how the in-cluster client is verified
(docs/kubernetes.md).

What a user relies on, checked from the requests the fake recorded and from /status:
 - the ConfigMap and every workload are applied server-side (field manager, force), the
   ingestion phase only after the processors' pods are ready;
 - every request carries the service account's token, re-read: after a rotation the new token
   is used and nothing is refused;
 - an unready pod is deleted and replaced; a crash-looping one is reported and not deleted
   (until POST /heal forces it);
 - consumer lag scales a group-membership processor up through the scale subresource (a 409
   on a stale resourceVersion is retried) and back down after the stabilisation window;
 - scaling an explicit-split StatefulSet goes through 0 pods before the new split is applied;
 - the pod watch survives 410 Gone (event and HTTP) and 404 by listing again;
 - a restarted orchestrator adopts the cluster's replica counts; SIGTERM leaves the
   workloads running."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spate_e2e import *  # noqa: E402,F403
from fake_kube_api import FakeKubeAPI  # noqa: E402

tmp = tempdir()
api = FakeKubeAPI(tmp, namespace="spate", token="token-1").start()

with open(os.path.join(tmp, "pipeline.yaml"), "w") as f:
    f.write("""name: kfk
data_dir: ./data
log: {kind: kafka, kafka: {bootstrap_servers: "kafka:9092"}}
topics:
  - {name: in, partitions: 6}
  - {name: out, partitions: 2}
  - {name: ledger_out, partitions: 2}
  - {name: counts, partitions: 1}
ingestion: {default_topic: in}
processors:
  - {name: enrich, inputs: [in], output: out, steps: [{filter: 'true'}]}
  - {name: ledger, inputs: [in], output: ledger_out, exactly_once: true, steps: [{filter: 'true'}]}
analytics:
  - name: counts
    inputs: [out]
    output: counts
    window: {type: tumbling, size: 1m}
    aggregations: [{type: count}]
""")
admin = free_port()
deploy = os.path.join(tmp, "deploy.yaml")
with open(deploy, "w") as f:
    f.write(f"""name: kfk
pipeline: pipeline.yaml
namespace: spate
backend: kubernetes
kubernetes:
  api_server: {api.url}
  service_account_dir: {api.sa_dir}
  metrics_port: {api.metrics_port}
  watch_timeout: 2s
server: {{port: {admin}}}
monitor: {{interval: 300ms, probe_timeout: 1s}}
healing: {{backoff_initial: 300ms, backoff_max: 2s, unresponsive_probes: 3, ready_timeout: 20s, crash_loop_restarts: 3}}
components:
  - name: ingest
    type: ingestion
  - name: enrich
    type: processor
    processors: [enrich]
    scaling: {{min_replicas: 1, max_replicas: 4, target_consumer_lag: 100, scale_up_cooldown: 1s,
               scale_down_cooldown: 2s, scale_down_stabilization: 6s}}
  - name: ledger
    type: processor
    processors: [ledger]
    replicas: 2
  - name: counts
    type: analytics
""")

ENV = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "KUBERNETES_SERVICE_HOST")}


def start_orchestrator(tag):
    log = open(os.path.join(tmp, f"orchestrator-{tag}.log"), "w")
    p = subprocess.Popen([SPATE, "orchestrate", deploy], stdout=log, stderr=subprocess.STDOUT, env=ENV)
    return p, log


def status():
    code, body = http_get(admin, "/status")
    if code != 200:
        return None
    return json.loads(body)


def component(st, name):
    for c in st["components"]:
        if c["name"] == name:
            return c
    return None


def post(path):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ops(st, component_name=None, operation=None):
    return [o for o in st["operations"]
            if (component_name is None or o["component"] == component_name)
            and (operation is None or o["operation"] == operation)]


def ready_pods(comp):
    return [p for p in api.pods(comp) if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in p.get("status", {}).get("conditions", []))]


def spec_replicas(kind, name):
    o = api.objects().get((kind, name))
    return None if o is None else o["spec"].get("replicas")


orch, orch_log = start_orchestrator("1")

# ---------------------------------------------------------------- deploy: apply, phases, auth
st = wait_for(lambda: (s := status()) and s["deployed"] and s, timeout=60)
check(st, f"the deployment comes up (status: {status()})")
applies = api.requests_matching("PATCH")
paths = [r["path"] for r in applies]
check(any(p.endswith("/configmaps/kfk-pipeline") for p in paths), f"the ConfigMap is applied: {paths}")
for r in applies:
    check(r["headers"].get("Content-Type") == "application/apply-patch+yaml"
          and r["query"].get("fieldManager") == "spate-orchestrator" and r["query"].get("force") == "true",
          f"server-side apply with a field manager and force: {r['path']} {r['headers'].get('Content-Type')} {r['query']}")
    check(r["status"] in (200, 201), f"apply accepted: {r['path']} {r['status']}")
workload_paths = [p for p in paths if "/deployments/" in p or "/statefulsets/" in p]
check(len(workload_paths) >= 4, f"the four workloads are applied: {workload_paths}")
first = {}
for i, p in enumerate(workload_paths):
    first.setdefault(p.rsplit("/", 1)[1], i)
check(first.get("kfk-ingest", -1) > max(first.get(n, 99) for n in ("kfk-enrich", "kfk-ledger", "kfk-counts")),
      f"ingestion is applied after the processors and analytics: {workload_paths}")
ingest_apply = next(r for r in applies if r["path"].endswith("/deployments/kfk-ingest"))
check(ingest_apply["body"]["kind"] == "Deployment" and ingest_apply["body"]["spec"]["replicas"] == 1,
      "the applied body is the rendered Deployment (JSON)")
check(spec_replicas("StatefulSet", "kfk-ledger") == 2 and len(ready_pods("ledger")) == 2, "ledger: 2 ready pods")
check(all(r["headers"].get("Authorization") == "Bearer token-1" for r in api.requests), "every request carries the token")
check(not [r for r in api.requests if r["status"] == 401], "nothing was refused")
inst = component(st, "enrich")["instances"]
check(len(inst) == 1 and inst[0]["pod"].startswith("kfk-enrich-") and inst[0]["state"] == "ready",
      f"/status lists the pod of enrich, ready: {inst}")
check(st.get("kubernetes", {}).get("synced") is True and st["kubernetes"]["namespace"] == "spate",
      f"/status has the Kubernetes view: {st.get('kubernetes')}")

# ---------------------------------------------------------------- token rotation
api.rotate_token("token-2")
rotated = time.time()
time.sleep(3)  # a few monitor ticks and watch renewals
late = [r for r in api.requests if r["time"] > rotated + 0.5]
check(late and all(r["headers"].get("Authorization") == "Bearer token-2" for r in late),
      f"after a rotation every request carries the new token ({len(late)} requests)")
check(not [r for r in late if r["status"] == 401], "and none is refused")

# ---------------------------------------------------------------- healing
victim = api.pods("enrich")[0]["metadata"]["name"]
api.fail_pod(victim, ready=False)
gone = wait_for(lambda: api.requests_matching("DELETE", f"/api/v1/namespaces/spate/pods/{victim}"), timeout=30)
check(gone, f"an unready pod ({victim}) is deleted")
replaced = wait_for(lambda: (s := status()) and component(s, "enrich")["ready_replicas"] == 1
                    and component(s, "enrich")["instances"][0]["pod"] != victim and s, timeout=30)
check(replaced, f"and replaced by a ready pod: {component(status(), 'enrich')}")
check(any(o["status"] == "success" and victim in o["detail"] for o in ops(status(), "enrich", "heal")),
      "the deletion is an operation in /status")

looper = "kfk-ledger-0"
api.fail_pod(looper, crash_loop=True)
looped = wait_for(lambda: (s := status()) and [o for o in ops(s, "ledger", "heal") if o["status"] == "crash_loop"], timeout=30)
check(looped, f"a crash-looping pod is reported: {ops(status(), 'ledger')}")
time.sleep(2)
check(not api.requests_matching("DELETE", f"/api/v1/namespaces/spate/pods/{looper}"),
      "a crash-looping pod is not deleted (the kubelet backs off)")
code, body = post("/heal/ledger")
check(code == 202, f"POST /heal/ledger: {code} {body}")
check(wait_for(lambda: api.requests_matching("DELETE", f"/api/v1/namespaces/spate/pods/{looper}"), timeout=20),
      "POST /heal deletes it")
check(wait_for(lambda: len(ready_pods("ledger")) == 2 and (s := status()) and component(s, "ledger")["ready_replicas"] == 2,
               timeout=30), "ledger is back to 2 ready pods")

# ---------------------------------------------------------------- watch faults
api.expire_next_watch("event")
check(wait_for(lambda: (s := status()) and s["kubernetes"]["watch"]["expired"] >= 1, timeout=20),
      f"a 410 ERROR event starts a fresh list: {status()['kubernetes']}")
api.expire_next_watch("http")
check(wait_for(lambda: (s := status()) and s["kubernetes"]["watch"]["expired"] >= 2, timeout=20),
      f"an HTTP 410 starts a fresh list: {status()['kubernetes']}")
api.not_found_next_watch()
check(wait_for(lambda: (s := status()) and s["kubernetes"]["watch"]["not_found"] >= 1, timeout=20),
      f"a 404 on the watch is survived: {status()['kubernetes']}")
check(wait_for(lambda: (s := status()) and s["kubernetes"]["watch"]["lists"] >= 4, timeout=20),
      f"each fault was followed by a fresh list: {status()['kubernetes']['watch']}")
# The cache still follows the cluster after the faults.
victim = api.pods("counts")[0]["metadata"]["name"]
api.fail_pod(victim, ready=False)
check(wait_for(lambda: (s := status()) and component(s, "counts")["ready_replicas"] == 0, timeout=20),
      "after the faults the watch still delivers pod changes")
check(wait_for(lambda: (s := status()) and component(s, "counts")["ready_replicas"] == 1, timeout=40),
      "and the unready analytics pod is healed")
time.sleep(1)
check(len(api.requests_matching("DELETE", f"/api/v1/namespaces/spate/pods/{victim}")) == 1,
      "once: its replacement (same name, new uid) starts with a clean record")

# ---------------------------------------------------------------- lag-driven scaling
api.conflict_next_scale_put(1)
api.set_pod_metrics("enrich", 'stream_consumer_lag{topic="in",partition="0"} 350\n')
check(wait_for(lambda: spec_replicas("Deployment", "kfk-enrich") == 4, timeout=30),
      f"lag 350 over target 100 scales enrich to 4 (max): spec.replicas {spec_replicas('Deployment', 'kfk-enrich')}")
# The fake records a request after answering it: wait for the successful PUT's record too.
puts = wait_for(lambda: (p := api.requests_matching("PUT", "/apis/apps/v1/namespaces/spate/deployments/kfk-enrich/scale"))
                and len(p) >= 2 and p, timeout=10) or \
    api.requests_matching("PUT", "/apis/apps/v1/namespaces/spate/deployments/kfk-enrich/scale")
check([r["status"] for r in puts][:2] == [409, 200], f"a 409 on a stale resourceVersion is retried: {[r['status'] for r in puts]}")
check(all(r["body"]["metadata"].get("resourceVersion") for r in puts), "every PUT carries the resourceVersion it read")
st = wait_for(lambda: (s := status()) and component(s, "enrich")["ready_replicas"] == 4 and s, timeout=30)
check(st, "4 ready pods of enrich in /status")
up = [o for o in ops(status(), "enrich", "scale") if o["status"] == "success"]
check(up and "consumer_lag" in up[0]["detail"] and "1 conflicts retried" in up[0]["detail"],
      f"the scaling says why, and that it retried: {up}")
api.set_pod_metrics("enrich", 'stream_consumer_lag{topic="in",partition="0"} 0\n')
down_at = time.time()
check(wait_for(lambda: spec_replicas("Deployment", "kfk-enrich") == 1, timeout=60),
      "no lag scales enrich back to 1")
# The window starts at the last tick that still saw lag, which can precede down_at by one
# monitor tick (slow on a loaded machine): allow 1.5 s of the 6 s.
check(time.time() - down_at >= 4.5, f"not before the stabilisation window ({time.time() - down_at:.1f} s of 6)")

# ---------------------------------------------------------------- an explicit split
code, body = post("/scale/ledger?replicas=3")
check(code == 202, f"POST /scale/ledger?replicas=3: {code} {body}")
check(wait_for(lambda: spec_replicas("StatefulSet", "kfk-ledger") == 3, timeout=40), "ledger goes to 3")
sts_reqs = [r for r in api.requests if "/statefulsets/kfk-ledger" in r["path"] and r["method"] in ("PUT", "PATCH")]
to_zero = [i for i, r in enumerate(sts_reqs) if r["method"] == "PUT" and r["body"]["spec"]["replicas"] == 0]
reapply = [i for i, r in enumerate(sts_reqs) if r["method"] == "PATCH" and r["body"]["spec"]["replicas"] == 3]
check(to_zero and reapply and to_zero[0] < reapply[0],
      f"through 0 pods, then the new split is applied: {[(r['method'], r['body']['spec'].get('replicas')) for r in sts_reqs]}")
if reapply:
    cmd = sts_reqs[reapply[0]]["body"]["spec"]["template"]["spec"]["containers"][0]["command"][2]
    check("--replica ${HOSTNAME##*-}/3" in cmd, f"the pods run --replica I/3: {cmd}")
check(wait_for(lambda: len(ready_pods("ledger")) == 3 and (s := status()) and component(s, "ledger")["ready_replicas"] == 3,
               timeout=30), "3 ready ledger pods")
code, body = post("/scale/log?replicas=2")
check(code in (400, 404), f"there is no log component on Kafka: {code}")

# ---------------------------------------------------------------- SIGKILL and adoption
orch.kill()
orch.wait()
before = len(api.requests)
orch, orch_log = start_orchestrator("2")
st = wait_for(lambda: (s := status()) and s["deployed"] and s, timeout=60)
check(st, "a restarted orchestrator comes up")
check(component(st, "ledger")["replicas"] == 3, f"it adopts ledger's 3 replicas: {component(st, 'ledger')}")
check([o for o in ops(st, "ledger", "adopt") if "3 replicas" in o["detail"]], f"adoption recorded: {ops(st, 'ledger')}")
later = api.requests[before:]
check(not [r for r in later if r["method"] == "PUT"], "adoption scales nothing")
check(spec_replicas("StatefulSet", "kfk-ledger") == 3, "ledger still has 3 replicas after the re-apply")

# ---------------------------------------------------------------- SIGTERM leaves the workloads
orch.send_signal(signal.SIGTERM)
check(orch.wait(timeout=30) == 0, "SIGTERM: exit 0")
check(spec_replicas("Deployment", "kfk-ingest") == 1 and spec_replicas("StatefulSet", "kfk-ledger") == 3
      and len(api.pods()) == 1 + 1 + 3 + 1, f"the workloads keep running: {len(api.pods())} pods")
orch_log.close()
if FAILURES:
    with open(os.path.join(tmp, "orchestrator-1.log")) as f:
        print(f.read()[-6000:])
api.stop()
finish("test_k8s_orchestrate")
